"""Inverted dropout."""
import numpy as np

from pycnn import _validation as V
from pycnn.layers.base import BaseLayer, _check_grad, _check_input


class Dropout(BaseLayer):
    """Zero each element with probability `p` in train mode, like ``torch.nn.Dropout``.

    Inverted dropout: kept elements are scaled by ``1 / (1 - p)`` during training so
    eval mode is the identity. The mask comes from the layer's own `rng` (a numpy
    Generator, or a seed for one), so a seeded network drops the same elements on
    every run; ``p = 1`` zeroes everything.

    Shape
    -----
    x (*) -> (*), the same shape and dtype.
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        self.p = V.real(p, "p", 0, 1)
        self.rng = (rng if isinstance(rng, np.random.Generator)
                    else np.random.default_rng(rng))
        self._mask = None
        self._shape = None

    def forward(self, x):
        _check_input(x, "Dropout")
        self._shape, self._dtype = x.shape, x.dtype
        if not self.training or self.p == 0:
            self._mask = None
            return x
        if self.p == 1:
            self._mask = np.zeros(x.shape, dtype=x.dtype)
        else:
            keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p
            self._mask = keep * x.dtype.type(1 / (1 - self.p))   # x's dtype, not float64
        return x * self._mask

    def backward(self, grad):
        if self._shape is None:
            raise RuntimeError("Dropout.backward called before forward")
        _check_grad(grad, self._shape, self._dtype, "Dropout")
        return grad if self._mask is None else grad * self._mask

    def extra_repr(self):
        return "" if self.p == 0.5 else f"p={self.p!r}"
