"""pycnn: convolutional neural networks on CPU with compiled kernels.

`pycnn.functional` holds the compiled ops, `pycnn.reference` their pure-NumPy twins and
`pycnn.naive` loop versions; `pycnn.activations` the activation functions (forward
and backward, pure NumPy); layers wrap them behind one `BaseLayer` interface, and
`Sequential` stacks layers into a network that trains with `pycnn.optim` and
`pycnn.losses` (learning-rate schedules in `pycnn.lr_scheduler`, gradient clipping in
`pycnn.utils`, early stopping and checkpoints in `pycnn.callbacks`); `from_torch` /
`to_torch` convert models to and from PyTorch, and `Sequential.save` / `load` write and
read ``.npz`` and ``.safetensors`` files.

Without the compiled extension (an unbuilt source checkout, a broken install) the pure
parts still import: `pycnn.reference`, `pycnn.naive`, layers with ``backend="numpy"``
and `pycnn.show_config()`; `pycnn.functional` and compiled layers raise an ImportError
that says what is wrong and how to fix it.
"""

from pycnn._version import __version__
from pycnn._config import get_num_threads, get_winograd, set_num_threads, set_winograd
from pycnn import activations, init, naive, reference
from pycnn import layers
from pycnn.layers import *  # noqa: F403  (every layer class, as listed in layers.__all__)
from pycnn import callbacks, datasets, losses, lr_scheduler, optim, utils
from pycnn import onnx  # the onnx package itself is imported only when called
from pycnn.losses import *  # noqa: F403  (every loss class, as listed in losses.__all__)
from pycnn.model import Sequential
from pycnn.fusion import fuse
from pycnn.torch_bridge import from_torch, to_torch
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
    "layers",
    "get_num_threads",
    "set_num_threads",
    "get_winograd",
    "set_winograd",
    "show_config",
    *layers.__all__,
    "losses",
    *losses.__all__,
    "optim",
    "lr_scheduler",
    "utils",
    "callbacks",
    "datasets",
    "onnx",
    "Sequential",
    "fuse",
    "from_torch",
    "to_torch",
]


def __getattr__(name):
    if name == "functional":  # reached only when the import above failed
        import importlib

        return importlib.import_module("pycnn.functional")  # raises the helpful error
    raise AttributeError(f"module 'pycnn' has no attribute {name!r}")
