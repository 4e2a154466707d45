"""The one interface every layer implements."""
import numpy as np


class BaseLayer:
    """A layer with a forward pass, a backward pass and named parameters.

    Subclasses implement `forward(x)` and `backward(grad)`; parameters live in the
    `params` dict and their gradients, filled by `backward`, in `grads` (same keys).
    `train()` / `eval()` switch the behaviour of layers such as dropout and batch
    normalisation. One layer instance must not be used from several threads at once
    during training: forward stores what backward needs.
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.training = True

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)  # not `__call__ = forward`: that binds BaseLayer.forward

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for name, value in self.params.items():
            self.grads[name] = np.zeros_like(value)

    def extra_repr(self):
        """Arguments shown by `repr`; only those that differ from their default."""
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


def _backend(name):
    """The op module behind `backend=`: compiled `functional` or NumPy `reference`."""
    if name == "compiled":
        from pycnn import functional
        return functional
    if name == "numpy":
        from pycnn import reference
        return reference
    raise ValueError(f"`backend` must be 'compiled' or 'numpy'. Received: backend={name!r}")
