"""Inference-time fusion: batch norm folded into the convolution before it, and ReLU-family
activations applied in the convolution's epilogue.

In eval mode a batch norm is a fixed affine map per channel,
``y = (z - running_mean) / sqrt(running_var + eps) * weight + bias``, so after a
convolution ``z = conv(x, W) + b`` it can be folded into the convolution itself:

    s  = weight / sqrt(running_var + eps)             (per output channel)
    W' = W * s                                        (each filter scaled)
    b' = (b - running_mean) * s + bias

A ReLU, LeakyReLU, ReLU6 or Hardtanh after it is then applied to each block of the
convolution's output while that block is still in cache, instead of in two more passes
over memory. `fuse(model)` returns a copy of the model with every such
``Conv2d [-> BatchNorm2d] [-> activation]`` run (inside `Sequential`s at any depth,
residual bodies and shortcuts included) replaced by one `FusedConv2d`; the original model
is not modified. A 2x2 `MaxPool2d` at stride 2 right after such a run joins it: on
Winograd's path (float32, AVX2) the output transform pools each 4x4 tile of output and
the full-size output is never written. A `Residual` whose body then ends in a
`FusedConv2d` without an activation has that convolution add the shortcut's output, and
apply the ReLU after the block, in its epilogue too (the same bits as the sum and the
ReLU on their own). The folding is computed in float64 and rounded once to the model's
dtype, so a float32 fused model gives the unfused eval outputs to about 1e-6 relative.
"""

import copy
import types

import numpy as np

from pycnn import _eltwise
from pycnn import _validation as V
from pycnn._config import get_winograd
from pycnn.layers.activation import Hardtanh, LeakyReLU, ReLU, ReLU6
from pycnn.layers.base import BaseLayer
from pycnn.layers.conv import Conv2d
from pycnn.layers.normalization import BatchNorm2d
from pycnn.layers.pooling import MaxPool2d

__all__ = ["fuse", "FusedConv2d"]


# --- activations that overwrite a block of output in place ---------------------------


def _clamp(lo, hi):
    def clamp(block):
        np.clip(block, lo, hi, out=block)

    return clamp


def _leaky(slope):
    def leaky(block):
        np.multiply(block, slope, out=block, where=block < 0)

    return leaky


def _in_place(activation):
    """The in-place block function of a ReLU-family layer, or None for other layers."""
    if type(activation) is ReLU:
        return _eltwise.relu_
    if type(activation) is ReLU6:
        return _clamp(0.0, 6.0)
    if type(activation) is Hardtanh:
        return _clamp(activation.min_val, activation.max_val)
    if type(activation) is LeakyReLU:
        return _leaky(activation.negative_slope)
    return None


class FusedConv2d(BaseLayer):
    """A `Conv2d`, an optional eval-mode `BatchNorm2d` folded into its weights, an
    optional ReLU-family activation applied in its epilogue, and an optional 2x2
    `MaxPool2d` at stride 2 after it; for inference only.

    The pooling is done tile by tile in the output transform of Winograd's convolution
    (float32 on AVX2, no activation or a ReLU), which then never writes the full-size
    output; elsewhere the layer runs its `MaxPool2d` on the convolution's output. Either
    way the values are the `MaxPool2d`'s.

    Made by `fuse`; `weight` and `bias` are the folded values (every fused convolution
    has a bias). `backward` raises: train the unfused model and fuse it again.

    Shape
    -----
    That of the `Conv2d` it was made from; with `pool`, (N, F, OH // 2, OW // 2).
    """

    def __init__(self, conv, batch_norm=None, activation=None, pool=None):
        super().__init__()
        self.conv = conv
        self.batch_norm = batch_norm
        self.activation = activation
        self.pool = pool
        self.dtype = conv.dtype
        weight = conv.weight.astype(np.float64)
        bias = (
            np.zeros(conv.out_channels) if conv.bias is None else conv.bias.astype(np.float64)
        )
        if batch_norm is not None:
            scale = 1 / np.sqrt(batch_norm.running_var.astype(np.float64) + batch_norm.eps)
            shift = -batch_norm.running_mean.astype(np.float64) * scale
            if batch_norm.affine:
                gamma = batch_norm.weight.astype(np.float64)
                scale, shift = scale * gamma, shift * gamma + batch_norm.bias
            weight = weight * scale[:, None, None, None]
            bias = bias * scale + shift
        self.params["weight"] = np.ascontiguousarray(weight, dtype=self.dtype)
        self.params["bias"] = np.ascontiguousarray(bias, dtype=self.dtype)
        self._act = None if activation is None else _in_place(activation)
        self._plans = {}
        # (copy of the weight, its Winograd transform): the weight is constant in
        # inference, so a Winograd plan takes the transform from here while the weight
        # equals the copy (0.15 ms a call for 64 x 64 filters, more than a batch-1
        # forward of the layer)
        self._filters = None
        self.training = False

    @property
    def weight(self):
        return self.params["weight"]

    @property
    def bias(self):
        return self.params["bias"]

    def forward(self, x):
        return self._forward(x, None)[0]

    def _forward_add(self, x, residual, relu):
        """``(out, True)`` with out = ``relu(self.forward(x) + residual)`` (without the
        ReLU unless `relu`), the same bits, the sum and the ReLU in the convolution's
        epilogue: what a `Residual` whose body ends in this layer calls with its
        shortcut's output. ``(self.forward(x), False)`` where that does not apply: a
        layer with an activation or a pooling of its own, or a `residual` not of the
        output's shape and dtype (the caller adds it)."""
        if self._act is not None or self.pool is not None:
            return self.forward(x), False
        return self._forward(x, (residual, relu))

    def _forward(self, x, add):
        """``(out, added)``: the layer's output, with `add` = (residual, relu) the sum
        and the ReLU done in the epilogue where the residual fits (added True)."""
        from pycnn import _conv

        key = (type(x), getattr(x, "shape", None), getattr(x, "dtype", None), get_winograd())
        plan = self._plans.get(key)
        if plan is None:
            conv = self.conv
            args = V.conv2d_args(
                x,
                self.weight,
                self.bias,
                conv.stride,
                conv.padding,
                conv.dilation,
                conv.groups,
            )
            plan = _conv.plan(x.shape, self.weight.shape, x.dtype, args)
            if len(self._plans) >= 8:
                self._plans.clear()
            self._plans[key] = plan
        filters = None
        if plan.winograd:
            weight, kept = self.weight, self._filters
            if (
                kept is None
                or kept[1].dtype != plan.dtype
                or not np.array_equal(kept[0], weight)
            ):
                kept = self._filters = (weight.copy(), plan.winograd_filters(weight))
            filters = kept[1]
        epilogue = _conv.Epilogue(self.bias, self._act)
        x = np.ascontiguousarray(x)
        if self.pool is not None:
            pooled = epilogue._replace(pool=True)
            if plan.pools(pooled):
                return plan.forward(x, self.weight, pooled, filters=filters), False
            out = plan.forward(x, self.weight, epilogue, filters=filters)
            return self.pool.forward(out), False
        added = False
        if add is not None:
            residual, relu = add
            if (
                isinstance(residual, np.ndarray)
                and residual.shape == plan.out_shape
                and residual.dtype == plan.dtype
            ):
                epilogue = _conv.Epilogue(
                    self.bias,
                    _eltwise.relu_ if relu else None,
                    np.ascontiguousarray(residual),
                )
                added = True
        return plan.forward(x, self.weight, epilogue, filters=filters), added

    def backward(self, grad):
        raise RuntimeError(
            "FusedConv2d is for inference (made by pycnn.fuse); train the unfused model "
            "and fuse it again"
        )

    def train(self, mode=True):
        if mode:
            raise RuntimeError(
                "a fused model is for inference: train the unfused model and fuse it again"
            )
        return self

    def extra_repr(self):
        parts = [repr(self.conv)]
        if self.batch_norm is not None:
            parts.append(repr(self.batch_norm))
        if self.activation is not None:
            parts.append(repr(self.activation))
        if self.pool is not None:
            parts.append(repr(self.pool))
        return " + ".join(parts)


def _fusible_conv(layer):
    return type(layer) is Conv2d and layer.backend == "compiled"


def _fusible_bn(layer, conv):
    return (
        type(layer) is BatchNorm2d
        and layer.num_features == conv.out_channels
        and layer.running_mean.dtype == conv.dtype
    )


def _fusible_pool(layer):
    """A 2x2 max pooling at stride 2 without padding, dilation or ceil_mode."""
    return (
        type(layer) is MaxPool2d
        and layer.backend == "compiled"
        and tuple(layer.kernel_size) == (2, 2)
        and tuple(layer.stride or layer.kernel_size) == (2, 2)
        and tuple(layer.padding) == (0, 0)
        and tuple(layer.dilation) == (1, 1)
        and not layer.ceil_mode
    )


def _fuse_list(layers):
    """The layers of one `Sequential` with each Conv2d [BatchNorm2d] [activation]
    [MaxPool2d 2x2] run replaced by a `FusedConv2d` (a convolution followed by none of
    them stays as it is)."""
    out, i = [], 0
    while i < len(layers):
        conv = layers[i]
        if not _fusible_conv(conv):
            out.append(conv)
            i += 1
            continue
        j = i + 1
        bn = act = None
        if j < len(layers) and _fusible_bn(layers[j], conv):
            bn, j = layers[j], j + 1
        if j < len(layers) and _in_place(layers[j]) is not None:
            act, j = layers[j], j + 1
        pool = None
        if j < len(layers) and _fusible_pool(layers[j]):
            pool, j = layers[j], j + 1
        if bn is None and act is None and pool is None:
            out.append(conv)
        else:
            out.append(FusedConv2d(conv, bn, act, pool))
        i = j
    return out


def _copy(model):
    """A deep copy of a model's layers and arrays that shares the backend modules the
    layers hold and leaves behind what a forward pass kept for backward."""
    memo = {}
    for _, layer in model.named_layers():
        for name, value in vars(layer).items():
            if isinstance(value, types.ModuleType):
                memo[id(value)] = value
            elif name in ("_x", "_saved", "_cache"):
                memo[id(value)] = None
            elif name == "_plans":
                memo[id(value)] = {}
    return copy.deepcopy(model, memo)


def fuse(model):
    """A copy of `model` for inference, with batch norm folded into convolutions and
    ReLU-family activations fused into their epilogues.

    Parameters
    ----------
    model : BaseLayer
        Usually a `Sequential`; runs of ``Conv2d [-> BatchNorm2d] [-> ReLU | LeakyReLU |
        ReLU6 | Hardtanh] [-> MaxPool2d(2)]`` in any `Sequential` nested in it (residual
        bodies, shortcuts and `Concat` branches included) are fused. Convolutions on the
        NumPy backend are left alone.

    Returns
    -------
    BaseLayer
        A new model in eval mode; `model` itself is not modified. It computes the same
        outputs as ``model.eval()`` to rounding (the folding is done in float64), and
        cannot be trained (`backward` and ``train()`` raise).

    Examples
    --------
    >>> import numpy as np, pycnn
    >>> model = pycnn.Sequential(
    ...     pycnn.Conv2d(1, 4, 3, rng=0), pycnn.BatchNorm2d(4), pycnn.ReLU()
    ... ).eval()
    >>> fused = pycnn.fuse(model)
    >>> fused
    Sequential(
      (0): FusedConv2d(Conv2d(1, 4, kernel_size=(3, 3)) + BatchNorm2d(4) + ReLU())
    )
    >>> x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    >>> bool(np.allclose(fused(x), model(x), rtol=1e-5, atol=1e-6))
    True
    """
    from pycnn.model import Sequential

    if not isinstance(model, BaseLayer):
        raise TypeError(
            f"`model` must be a pycnn layer or model. Received: model of type "
            f"{type(model).__name__}"
        )
    fused = _copy(model)
    fused.eval()
    for _, layer in list(fused.named_layers()):
        if isinstance(layer, Sequential):
            layer.layers = _fuse_list(layer.layers)
    return fused
