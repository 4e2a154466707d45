"""Inverted dropout: of elements (Dropout) and of whole channels (Dropout2d)."""

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
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
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
            self._mask = keep * x.dtype.type(1 / (1 - self.p))  # x's dtype, not float64
        return x * self._mask

    def backward(self, grad):
        if self._shape is None:
            raise RuntimeError("Dropout.backward called before forward")
        _check_grad(grad, self._shape, self._dtype, "Dropout")
        return grad if self._mask is None else grad * self._mask

    def extra_repr(self):
        return "" if self.p == 0.5 else f"p={self.p!r}"


class Dropout2d(Dropout):
    """Zero whole channels with probability `p` in train mode, like ``torch.nn.Dropout2d``.

    One draw per (sample, channel): a dropped channel is zero over all of H and W, a
    kept one is scaled by ``1 / (1 - p)`` (inverted dropout, so eval mode is the
    identity). The mask comes from the layer's own `rng`.

    Shape
    -----
    x (N, C, H, W) -> (N, C, H, W).
    """

    def forward(self, x):
        _check_input(x, "Dropout2d")
        if x.ndim != 4:
            raise ValueError(
                f"Dropout2d: `x` must be a 4-d array (N, C, H, W). Received: x.shape={x.shape}"
            )
        self._shape, self._dtype = x.shape, x.dtype
        if not self.training or self.p == 0:
            self._mask = None
            return x
        channels = x.shape[:2] + (1, 1)  # one draw per (N, C), broadcast
        if self.p == 1:
            self._mask = np.zeros(channels, dtype=x.dtype)
        else:
            keep = self.rng.random(channels, dtype=x.dtype) >= self.p
            self._mask = keep * x.dtype.type(1 / (1 - self.p))
        return x * self._mask

    def backward(self, grad):
        if self._shape is None:
            raise RuntimeError("Dropout2d.backward called before forward")
        _check_grad(grad, self._shape, self._dtype, "Dropout2d")
        return grad if self._mask is None else grad * self._mask
