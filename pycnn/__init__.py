"""pycnn: convolutional neural networks on CPU with compiled kernels.

`pycnn.functional` holds the compiled ops, `pycnn.reference` their pure-NumPy twins and
`pycnn.naive` loop versions; layers wrap them behind one `BaseLayer` interface, and
`Sequential` stacks layers into a network that trains with `pycnn.optim` and
`pycnn.losses`.
"""
from pycnn._version import __version__
from pycnn._config import get_num_threads, set_num_threads
from pycnn import functional, init, naive, reference
from pycnn.layers import BaseLayer, Conv2d
from pycnn.layers import (BatchNorm1d, BatchNorm2d, Dropout, Flatten, LeakyReLU, Linear,
                          ReLU, Sigmoid, Tanh)
from pycnn import datasets, losses, optim
from pycnn.losses import CrossEntropyLoss, MSELoss
from pycnn.model import Sequential

__all__ = ["__version__", "functional", "reference", "naive", "init",
           "get_num_threads", "set_num_threads", "BaseLayer", "Conv2d",
           "Linear", "Flatten", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
           "BatchNorm1d", "BatchNorm2d", "Dropout",
           "losses", "CrossEntropyLoss", "MSELoss", "optim", "datasets", "Sequential"]
