"""Layer classes behind one `BaseLayer` interface."""
from pycnn.layers.base import BaseLayer
from pycnn.layers.conv import Conv2d, ConvTranspose2d
from pycnn.layers.linear import Flatten, Linear
from pycnn.layers.activation import (ReLU, LeakyReLU, Sigmoid, Tanh, ELU, SELU, CELU,
                                    GELU, SiLU, Mish, Softplus, Softsign, Hardtanh,
                                    ReLU6, Hardsigmoid, Hardswish, LogSigmoid,
                                    Tanhshrink, Softshrink, Hardshrink, Threshold,
                                    PReLU, Softmax, LogSoftmax, TanhExp)
from pycnn.layers.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from pycnn.layers.dropout import Dropout, Dropout2d
from pycnn.layers.pooling import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, LPPool2d,
                                  MaxPool2d)
from pycnn.layers.upsample import Upsample
from pycnn.layers.containers import Concat, Identity, Residual

__all__ = ["BaseLayer", "Conv2d", "ConvTranspose2d",
           "Linear", "Flatten",
           "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "ELU", "SELU", "CELU", "GELU",
           "SiLU", "Mish", "Softplus", "Softsign", "Hardtanh", "ReLU6", "Hardsigmoid",
           "Hardswish", "LogSigmoid", "Tanhshrink", "Softshrink", "Hardshrink",
           "Threshold", "PReLU", "Softmax", "LogSoftmax", "TanhExp",
           "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "Dropout", "Dropout2d",
           "MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
           "Upsample", "Identity", "Residual", "Concat"]
