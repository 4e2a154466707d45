"""Layer classes behind one `BaseLayer` interface."""
from pycnn.layers.base import BaseLayer
from pycnn.layers.conv import Conv2d
from pycnn.layers.pooling import AvgPool2d, LPPool2d, MaxPool2d

__all__ = ["BaseLayer", "Conv2d"]
__all__ += ["MaxPool2d", "AvgPool2d", "LPPool2d"]
