"""Element-wise activations: ReLU, LeakyReLU, Sigmoid, Tanh.

They have no parameters and keep the input's dtype: float32 in, float32 out (Python
float constants do not promote NumPy arrays; NumPy float64 scalars would, so none are
used).
"""
import numpy as np

from pycnn import _validation as V
from pycnn.layers.base import BaseLayer, _check_grad, _check_input


class _Elementwise(BaseLayer):
    """Shared bookkeeping: forward keeps what backward needs, backward checks `grad`."""

    def __init__(self):
        super().__init__()
        self._saved = None

    def forward(self, x):
        _check_input(x, type(self).__name__)
        out, self._saved = self._forward(x)
        return out

    def backward(self, grad):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        _check_grad(grad, self._saved.shape, self._saved.dtype, type(self).__name__)
        return self._backward(grad, self._saved)


class ReLU(_Elementwise):
    """``max(x, 0)``; the gradient at 0 is 0, as in PyTorch.

    Shape
    -----
    x (*) -> (*), the same shape and dtype.
    """

    def _forward(self, x):
        return np.maximum(x, 0), x

    def _backward(self, grad, x):
        return np.where(x > 0, grad, 0).astype(grad.dtype, copy=False)


class LeakyReLU(_Elementwise):
    """``x`` for x > 0, ``negative_slope * x`` otherwise, like ``torch.nn.LeakyReLU``.

    Shape
    -----
    x (*) -> (*), the same shape and dtype.
    """

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = V.real(negative_slope, "negative_slope")

    def _forward(self, x):
        return np.where(x > 0, x, x * self.negative_slope), x

    def _backward(self, grad, x):
        return np.where(x > 0, grad, grad * self.negative_slope)

    def extra_repr(self):
        if self.negative_slope == 0.01:
            return ""
        return f"negative_slope={self.negative_slope!r}"


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``, computed without overflow for any finite x.

    ``exp`` only ever sees ``-|x|``: for x >= 0 the result is ``1 / (1 + e)``, for
    x < 0 it is ``e / (1 + e)``, with ``e = exp(-|x|)`` in (0, 1].

    Shape
    -----
    x (*) -> (*), the same shape and dtype.
    """

    def _forward(self, x):
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1, e) / (1 + e)
        return out, out

    def _backward(self, grad, y):
        return grad * y * (1 - y)


class Tanh(_Elementwise):
    """Hyperbolic tangent.

    Shape
    -----
    x (*) -> (*), the same shape and dtype.
    """

    def _forward(self, x):
        out = np.tanh(x)
        return out, out

    def _backward(self, grad, y):
        return grad * (1 - y * y)
