"""Containers that branch and join: `Residual` (``body(x) + shortcut(x)``), `Concat`
(branches on the same input, outputs concatenated) and `Identity`.

Containers are layers (`BaseLayer`): they nest in `Sequential` and in each other, and
their `named_children` give the nested keys of `parameters()` and `state_dict()` that a
PyTorch module with the same attributes has:

* ``Residual(body, shortcut)`` -> ``"body.<...>"`` and ``"shortcut.<...>"``, as a module
  with attributes ``self.body`` and ``self.shortcut``; the identity shortcut holds no
  state, so it adds no keys (as ``nn.Identity``).
* ``Concat(b0, b1, ...)`` -> ``"branches.<i>.<...>"``, as a module holding
  ``self.branches = nn.ModuleList([b0, b1, ...])``.

Backward sums the input gradients of the paths that join at the input (both paths of a
`Residual`, every branch of a `Concat`). A layer instance keeps what its backward needs
from its last forward, so one instance must not appear twice in a network.
"""

import numpy as np

from pycnn import _eltwise
from pycnn import _validation as V
from pycnn.layers.base import BaseLayer, _call_child, _check_grad, _check_input, _runs_fused

__all__ = ["Identity", "Residual", "Concat"]


def _check_layer(layer, container, what):
    if not isinstance(layer, BaseLayer):
        raise TypeError(
            f"{container}: `{what}` must be a pycnn layer (a BaseLayer "
            f"instance). Received: {what} of type {type(layer).__name__}"
        )
    return layer


class Identity(BaseLayer):
    """Returns its input unchanged (the input array itself); backward returns the
    gradient unchanged. The default shortcut of `Residual`.

    Shape: any.
    """

    def forward(self, x):
        return _check_input(x, "Identity")

    def backward(self, grad):
        return _check_input(grad, "Identity", "grad")


class Residual(BaseLayer):
    """``body(x) + shortcut(x)``: a residual block (He et al., 2015).

    ``shortcut=None`` is the identity. A block that changes the shape (a strided or
    wider body) needs a shortcut that changes it the same way, usually a 1x1 strided
    convolution and a batch norm::

        Residual(Sequential(Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
                            BatchNorm2d(16), ReLU(),
                            Conv2d(16, 16, 3, padding=1, bias=False), BatchNorm2d(16)),
                 shortcut=Sequential(Conv2d(8, 16, 1, stride=2, bias=False),
                                     BatchNorm2d(16)))

    Backward: the gradient of the output goes to both paths; the input gradient is the
    sum of theirs. Keys: ``"body.<...>"``, ``"shortcut.<...>"``.

    Shape: the input is whatever `body` and `shortcut` take; their outputs must have
    the same shape (and dtype), which is the output's.
    """

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = _check_layer(body, "Residual", "body")
        self.shortcut = (
            Identity() if shortcut is None else _check_layer(shortcut, "Residual", "shortcut")
        )
        self._out = None  # (shape, dtype) of the last forward's output

    def named_children(self):
        return iter((("body", self.body), ("shortcut", self.shortcut)))

    def forward(self, x):
        return self._forward(x, relu=False)

    def _forward_relu(self, x):
        """``relu(self.forward(x))``, the same bits, the sum and the ReLU in one pass
        (what `Sequential` calls for a Residual followed by a ReLU, as in ResNets)."""
        return self._forward(x, relu=True)

    def _forward(self, x, relu):
        _check_input(x, "Residual")
        if not self.training and _runs_fused(self.body, "_forward_add"):
            # inference: the body's last layer adds the shortcut's output (and the
            # ReLU) in its epilogue where it can (see `Sequential._forward_add`)
            b = _call_child("shortcut", self.shortcut, "forward", x)
            a, added = _call_child("body", self.body, "_forward_add", x, b, relu)
            if added:
                self._out = (a.shape, a.dtype)
                return a
        else:
            a = _call_child("body", self.body, "forward", x)
            b = _call_child("shortcut", self.shortcut, "forward", x)
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(
                f"Residual: the outputs of `body` and `shortcut` must have "
                f"the same shape and dtype to be added. Received: body -> "
                f"{a.shape} {a.dtype}, shortcut -> {b.shape} {b.dtype} "
                f"for an input of shape {x.shape}"
            )
        self._out = (a.shape, a.dtype)
        return _eltwise.add_relu(a, b) if relu else a + b

    def backward(self, grad):
        if self._out is None:
            raise RuntimeError("Residual.backward called before forward")
        _check_grad(grad, *self._out, "Residual")
        body = _call_child("body", self.body, "backward", grad)
        return body + _call_child("shortcut", self.shortcut, "backward", grad)  # a new array


class Concat(BaseLayer):
    """Runs every branch on the same input and concatenates the outputs along `dim`
    (channels by default): an Inception-style block, ``torch.cat([b(x) for b in
    branches], dim)``.

    Backward splits the gradient of the output into the branches' parts and sums the
    branches' input gradients. Keys: ``"branches.<i>.<...>"``, as a PyTorch module with
    ``self.branches = nn.ModuleList(branches)``.

    Shape: the outputs of the branches must have the same shape except along `dim`,
    and the same dtype; the output's size along `dim` is the sum of theirs, e.g.
    branches giving (N, C1, H, W) and (N, C2, H, W) give (N, C1 + C2, H, W).
    """

    def __init__(self, *branches, dim=1):
        super().__init__()
        if not branches:
            raise ValueError(
                "Concat: `branches` must hold at least one layer. Received: no branches"
            )
        for i, branch in enumerate(branches):
            _check_layer(branch, "Concat", f"branches[{i}]")
        self.branches = list(branches)
        self.dim = V.integer(dim, "dim")
        self._split = None  # (axis, sizes along it, output shape, dtype)

    def named_children(self):
        return ((f"branches.{i}", branch) for i, branch in enumerate(self.branches))

    def extra_repr(self):
        return "" if self.dim == 1 else f"dim={self.dim}"

    def forward(self, x):
        _check_input(x, "Concat")
        outs = [
            _call_child(f"branches.{i}", branch, "forward", x)
            for i, branch in enumerate(self.branches)
        ]
        ndim = outs[0].ndim
        if not -ndim <= self.dim < ndim:
            raise ValueError(
                f"Concat: `dim` must be in [{-ndim}, {ndim}) for the "
                f"branches' {ndim}-d outputs. Received: dim={self.dim}"
            )
        axis = self.dim % ndim
        rest = lambda out: out.shape[:axis] + out.shape[axis + 1 :]  # noqa: E731
        if any(
            out.ndim != ndim or rest(out) != rest(outs[0]) or out.dtype != outs[0].dtype
            for out in outs
        ):
            got = ", ".join(
                f"branch {i} -> {out.shape} {out.dtype}" for i, out in enumerate(outs)
            )
            raise ValueError(
                f"Concat: the outputs of the branches must have the same "
                f"shape except along dim={self.dim}, and the same dtype. "
                f"Received: {got} for an input of shape {x.shape}"
            )
        out = np.concatenate(outs, axis=axis)
        self._split = (axis, [o.shape[axis] for o in outs], out.shape, out.dtype)
        return out

    def backward(self, grad):
        if self._split is None:
            raise RuntimeError("Concat.backward called before forward")
        axis, sizes, shape, dtype = self._split
        _check_grad(grad, shape, dtype, "Concat")
        parts = np.split(grad, np.cumsum(sizes)[:-1], axis=axis)
        grad_x = None
        for i, (branch, part) in enumerate(zip(self.branches, parts)):
            # the kernels want C order
            g = _call_child(f"branches.{i}", branch, "backward", np.ascontiguousarray(part))
            grad_x = g.copy() if grad_x is None else grad_x + g  # never the branch's own
        return grad_x
