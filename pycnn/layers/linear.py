"""Fully connected layer and the reshape that feeds it."""

import math

import numpy as np

from pycnn import _eltwise
from pycnn import _validation as V
from pycnn.layers.base import (
    BaseLayer,
    _backend,
    _check_grad,
    _check_input,
    _check_layer_input,
    _WeightedLayer,
)


class Linear(_WeightedLayer):
    """``y = x @ weight.T + bias``, like ``torch.nn.Linear``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    dtype : float32 (default) or float64
    rng : numpy Generator or seed for the He-normal initial weights
    backend : 'compiled' (pycnn.functional) or 'numpy' (pycnn.reference)

    Shape
    -----
    x (*, in_features) -> (*, out_features), any number of leading axes (at least the
    feature axis). `weight` is (out_features, in_features), He-normal initialised
    (std = sqrt(2 / in_features)) as `Conv2d` is; `bias` is (out_features,), zero.
    """

    def __init__(
        self,
        in_features,
        out_features,
        bias=True,
        *,
        dtype=np.float32,
        rng=None,
        backend="compiled",
    ):
        super().__init__()
        self.in_features = V.positive_int(in_features, "in_features")
        self.out_features = V.positive_int(out_features, "out_features")
        self.dtype = V.float_dtype(dtype)
        self.backend = backend
        self._ops = _backend(backend)
        self._init_params((self.out_features, self.in_features), bias, rng)

    def forward(self, x):
        f = self.in_features
        _check_layer_input(
            self,
            x,
            lambda a: a.ndim >= 1 and a.shape[-1] == f,
            f"input with in_features={f} on its last axis (*, {f})",
            self.weight.dtype,
        )
        weight, bias = self.weight, self.bias
        if self.backend == "compiled" and (
            bias is None or (bias.dtype == weight.dtype and bias.shape == weight.shape[:1])
        ):
            out = self._ops._linear(x, weight, bias)  # checked above, as far as it needs
        else:
            out = self._ops.linear(x, weight, bias)
        self._x = x
        return out

    def _forward_relu(self, x):
        """``relu(self.forward(x))``, the same bits, in place on the fresh output (what
        `Sequential` calls for a Linear followed by a ReLU)."""
        out = self.forward(x)
        _eltwise.relu_(out)
        return out

    def backward(self, grad):
        if self._x is None:
            raise RuntimeError("Linear.backward called before forward")
        x = self._x
        _check_grad(grad, x.shape[:-1] + (self.out_features,), x.dtype, "Linear")
        weight = self.weight
        if self.backend == "compiled" and weight.dtype == x.dtype:
            grad_x, grad_w, grad_b = self._ops._linear_backward(grad, x, weight)
        else:
            grad_x, grad_w, grad_b = self._ops.linear_backward(grad, x, weight)
        self._accumulate_grad("weight", grad_w)
        if "bias" in self.params:
            self._accumulate_grad("bias", grad_b)
        return grad_x

    def extra_repr(self):
        s = f"{self.in_features}, {self.out_features}"
        if "bias" not in self.params:
            s += ", bias=False"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype.name}"
        return s


class Flatten(BaseLayer):
    """Flatten axes `start_dim`..`end_dim` into one, like ``torch.nn.Flatten``.

    Shape
    -----
    x (N, C, H, W) -> (N, C*H*W) with the defaults ``start_dim=1, end_dim=-1``.
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = V.integer(start_dim, "start_dim")
        self.end_dim = V.integer(end_dim, "end_dim")
        self._shape = None

    def forward(self, x):
        _check_input(x, "Flatten")
        nd = x.ndim
        start = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        end = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not (0 <= start < nd and 0 <= end < nd) or start > end:
            raise ValueError(
                f"Flatten: `start_dim`..`end_dim` must be valid axes of x, "
                f"start before end. Received: start_dim={self.start_dim}, "
                f"end_dim={self.end_dim}, x.shape={x.shape}"
            )
        new = x.shape[:start] + (math.prod(x.shape[start : end + 1]),) + x.shape[end + 1 :]
        self._shape, self._out_shape = x.shape, new
        return x.reshape(new)

    def backward(self, grad):
        if self._shape is None:
            raise RuntimeError("Flatten.backward called before forward")
        _check_input(grad, "Flatten", "grad")
        if grad.shape != self._out_shape:
            # compare shapes, not sizes: with an empty batch every size is 0
            raise ValueError(
                f"Flatten: `grad` must have the shape of the forward output "
                f"{self._out_shape}. Received: grad.shape={grad.shape}"
            )
        return grad.reshape(self._shape)

    def extra_repr(self):
        parts = []
        if self.start_dim != 1:
            parts.append(f"start_dim={self.start_dim}")
        if self.end_dim != -1:
            parts.append(f"end_dim={self.end_dim}")
        return ", ".join(parts)
