"""pycnn: convolutional neural networks on CPU with compiled kernels.

`pycnn.functional` holds the compiled ops, `pycnn.reference` their pure-NumPy twins and
`pycnn.naive` loop versions; `pycnn.activations` the activation functions (forward
and backward, pure NumPy); layers wrap them behind one `BaseLayer` interface, and
`Sequential` stacks layers into a network that trains with `pycnn.optim` and
`pycnn.losses`.

Without the compiled extension (an unbuilt source checkout, a broken install) the pure
parts still import: `pycnn.reference`, `pycnn.naive`, layers with ``backend="numpy"``
and `pycnn.show_config()`; `pycnn.functional` and compiled layers raise an ImportError
that says what is wrong and how to fix it.
"""

from pycnn._version import __version__
from pycnn._config import get_num_threads, set_num_threads
from pycnn import activations, init, naive, reference
from pycnn.layers import BaseLayer, Conv2d, ConvTranspose2d
from pycnn.layers import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, LPPool2d, MaxPool2d
from pycnn.layers import Concat, Identity, Residual
from pycnn.layers import (
    BatchNorm1d,
    BatchNorm2d,
    Dropout,
    Dropout2d,
    Flatten,
    GroupNorm,
    LayerNorm,
    Linear,
    Upsample,
)
from pycnn.layers import (
    ReLU,
    LeakyReLU,
    Sigmoid,
    Tanh,
    ELU,
    SELU,
    CELU,
    GELU,
    SiLU,
    Mish,
    Softplus,
    Softsign,
    Hardtanh,
    ReLU6,
    Hardsigmoid,
    Hardswish,
    LogSigmoid,
    Tanhshrink,
    Softshrink,
    Hardshrink,
    Threshold,
    PReLU,
    Softmax,
    LogSoftmax,
    TanhExp,
)
from pycnn import datasets, losses, optim
from pycnn.losses import CrossEntropyLoss, MSELoss
from pycnn.model import Sequential
from pycnn._info import show_config

try:
    from pycnn import functional
except ImportError:  # no compiled extension: `pycnn.functional` raises, see __getattr__
    pass

__all__ = [
    "__version__",
    "functional",
    "reference",
    "naive",
    "init",
    "activations",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "BaseLayer",
    "Conv2d",
    "ConvTranspose2d",
    "MaxPool2d",
    "AvgPool2d",
    "LPPool2d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "Linear",
    "Flatten",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "ELU",
    "SELU",
    "CELU",
    "GELU",
    "SiLU",
    "Mish",
    "Softplus",
    "Softsign",
    "Hardtanh",
    "ReLU6",
    "Hardsigmoid",
    "Hardswish",
    "LogSigmoid",
    "Tanhshrink",
    "Softshrink",
    "Hardshrink",
    "Threshold",
    "PReLU",
    "Softmax",
    "LogSoftmax",
    "TanhExp",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "GroupNorm",
    "Dropout",
    "Dropout2d",
    "Upsample",
    "Identity",
    "Residual",
    "Concat",
    "losses",
    "CrossEntropyLoss",
    "MSELoss",
    "optim",
    "datasets",
    "Sequential",
]


def __getattr__(name):
    if name == "functional":  # reached only when the import above failed
        import importlib

        return importlib.import_module("pycnn.functional")  # raises the helpful error
    raise AttributeError(f"module 'pycnn' has no attribute {name!r}")
