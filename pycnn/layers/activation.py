"""Activation layers with PyTorch's names and arguments, built on `pycnn.activations`.

Element-wise: ReLU, LeakyReLU, Sigmoid, Tanh, ELU, SELU, CELU, GELU, SiLU, Mish,
Softplus, Softsign, Hardtanh, ReLU6, Hardsigmoid, Hardswish, LogSigmoid, Tanhshrink,
Softshrink, Hardshrink, Threshold, TanhExp (not in PyTorch); with a learned slope:
PReLU; along an axis: Softmax, LogSoftmax.

They keep the input's dtype: float32 in, float32 out. Arguments are validated when the
layer is built, with the messages of `pycnn.activations`. ``inplace=`` is not offered.

Shape
-----
x (*) -> (*), the same shape and dtype (PReLU with ``num_parameters=C``: x (N, C, *)).
"""

import numpy as np

from pycnn import _eltwise
from pycnn import _validation as V
from pycnn import activations as F
from pycnn.layers.base import BaseLayer, _check_grad, _check_input, _Slot

_REQUIRED = object()  # an argument without a default: always in the repr


class _Elementwise(BaseLayer):
    """Shared bookkeeping: forward keeps its input (and output), backward checks `grad`.

    Subclasses set `_fn` / `_bwd` (functions of `pycnn.activations`) and `_args`, the
    (name, default) pairs passed to both as keywords and shown by `repr` when they differ
    from the default (`_REQUIRED` as the default: always shown).
    """

    _args: tuple = ()

    def __init__(self, **kwargs):
        super().__init__()
        for name, _ in self._args:
            setattr(self, name, kwargs[name])
        self._saved = None

    def _kwargs(self):
        return {name: getattr(self, name) for name, _ in self._args}

    def forward(self, x):
        _check_input(x, type(self).__name__)
        out = type(self)._fn(x, **self._kwargs())
        self._saved = (x, out)
        return out

    def backward(self, grad):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        x, out = self._saved
        _check_grad(grad, x.shape, x.dtype, type(self).__name__)
        return self._backward(grad, x, out)

    def _backward(self, grad, x, out):
        return type(self)._bwd(grad, x, **self._kwargs())

    def extra_repr(self):
        return ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name, default in self._args
            if default is _REQUIRED or getattr(self, name) != default
        )


class ReLU(_Elementwise):
    """``max(x, 0)``; the gradient at 0 is 0, as in PyTorch.

    The commonest activation runs in compiled loops (`pycnn._eltwise`), one pass each
    way: the formulas of `pycnn.activations.relu` and `relu_backward`, with the same
    results, NaN included. Backward reads the saved output, > 0 exactly where x is.
    """

    _fn = staticmethod(_eltwise.relu)

    def forward(self, x):
        out = super().forward(x)
        # backward reads the output alone, so the input is not kept: in a network the
        # layer before may then free it (one activation less held until backward, as
        # PyTorch's ReLU keeps only its result)
        self._saved = (out, out)
        return out

    def _backward(self, grad, x, out):
        return _eltwise.relu_backward(grad, out)

    def _absorbed(self, out):
        """Keep `out`, computed by the layer before with this ReLU in its epilogue
        (its ``_forward_relu``), as this layer's forward would have: its backward then
        runs as usual."""
        self._saved = (out, out)


class LeakyReLU(_Elementwise):
    """``x`` for x > 0, ``negative_slope * x`` otherwise, like ``torch.nn.LeakyReLU``."""

    _fn, _bwd = staticmethod(F.leaky_relu), staticmethod(F.leaky_relu_backward)
    _args = (("negative_slope", 0.01),)

    def __init__(self, negative_slope=0.01):
        super().__init__(negative_slope=V.real(negative_slope, "negative_slope"))


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``, computed without overflow for any finite x."""

    _fn = staticmethod(F.sigmoid)

    def _backward(self, grad, x, out):
        return F.sigmoid_backward(grad, x, output=out)


class Tanh(_Elementwise):
    """Hyperbolic tangent."""

    _fn = staticmethod(F.tanh)

    def _backward(self, grad, x, out):
        return F.tanh_backward(grad, x, output=out)


class ELU(_Elementwise):
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise, like ``torch.nn.ELU``."""

    _fn, _bwd = staticmethod(F.elu), staticmethod(F.elu_backward)
    _args = (("alpha", 1.0),)

    def __init__(self, alpha=1.0):
        super().__init__(alpha=V.real(alpha, "alpha"))


class SELU(_Elementwise):
    """``scale * elu(x, alpha)``, alpha = 1.6732632423543772, scale = 1.0507009873554805."""

    _fn, _bwd = staticmethod(F.selu), staticmethod(F.selu_backward)


class CELU(_Elementwise):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``, alpha > 0."""

    _fn, _bwd = staticmethod(F.celu), staticmethod(F.celu_backward)
    _args = (("alpha", 1.0),)

    def __init__(self, alpha=1.0):
        super().__init__(alpha=V.real(alpha, "alpha", 0, min_open=True))


class GELU(_Elementwise):
    """``x * Phi(x)``, Phi the standard normal CDF (``approximate="none"``), or
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``approximate="tanh"``)."""

    _fn, _bwd = staticmethod(F.gelu), staticmethod(F.gelu_backward)
    _args = (("approximate", "none"),)

    def __init__(self, approximate="none"):
        super().__init__(approximate=F._approximate(approximate))


class SiLU(_Elementwise):
    """``x * sigmoid(x)`` (swish)."""

    _fn, _bwd = staticmethod(F.silu), staticmethod(F.silu_backward)


class Mish(_Elementwise):
    """``x * tanh(softplus(x))``."""

    _fn, _bwd = staticmethod(F.mish), staticmethod(F.mish_backward)


class TanhExp(_Elementwise):
    """``x * tanh(exp(x))`` (Liu & Di, 2020); PyTorch has no equivalent."""

    _fn, _bwd = staticmethod(F.tanhexp), staticmethod(F.tanhexp_backward)


class Softplus(_Elementwise):
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``."""

    _fn, _bwd = staticmethod(F.softplus), staticmethod(F.softplus_backward)
    _args = (("beta", 1.0), ("threshold", 20.0))

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__(
            beta=F._nonzero(beta, "beta"), threshold=V.real(threshold, "threshold")
        )


class Softsign(_Elementwise):
    """``x / (1 + |x|)``."""

    _fn, _bwd = staticmethod(F.softsign), staticmethod(F.softsign_backward)


class Hardtanh(_Elementwise):
    """``x`` clamped to [min_val, max_val]; gradient 0 at both ends, as in PyTorch."""

    _fn, _bwd = staticmethod(F.hardtanh), staticmethod(F.hardtanh_backward)
    _args = (("min_val", -1.0), ("max_val", 1.0))

    def __init__(self, min_val=-1.0, max_val=1.0):
        lo, hi = F._hardtanh_bounds(min_val, max_val)
        super().__init__(min_val=lo, max_val=hi)


class ReLU6(_Elementwise):
    """``min(max(x, 0), 6)``; gradient 0 at 0 and at 6, as in PyTorch."""

    _fn, _bwd = staticmethod(F.relu6), staticmethod(F.relu6_backward)


class Hardsigmoid(_Elementwise):
    """``relu6(x + 3) / 6``."""

    _fn, _bwd = staticmethod(F.hardsigmoid), staticmethod(F.hardsigmoid_backward)


class Hardswish(_Elementwise):
    """``x * relu6(x + 3) / 6``."""

    _fn, _bwd = staticmethod(F.hardswish), staticmethod(F.hardswish_backward)


class LogSigmoid(_Elementwise):
    """``log(sigmoid(x))``, computed as ``-softplus(-x)``."""

    _fn, _bwd = staticmethod(F.logsigmoid), staticmethod(F.logsigmoid_backward)


class Tanhshrink(_Elementwise):
    """``x - tanh(x)``."""

    _fn, _bwd = staticmethod(F.tanhshrink), staticmethod(F.tanhshrink_backward)


class Softshrink(_Elementwise):
    """``x - lambd`` above lambd, ``x + lambd`` below -lambd, 0 between; lambd >= 0."""

    _fn, _bwd = staticmethod(F.softshrink), staticmethod(F.softshrink_backward)
    _args = (("lambd", 0.5),)

    def __init__(self, lambd=0.5):
        super().__init__(lambd=V.real(lambd, "lambd", 0))


class Hardshrink(_Elementwise):
    """``x`` where ``|x| > lambd``, 0 elsewhere."""

    _fn, _bwd = staticmethod(F.hardshrink), staticmethod(F.hardshrink_backward)
    _args = (("lambd", 0.5),)

    def __init__(self, lambd=0.5):
        super().__init__(lambd=V.real(lambd, "lambd"))


class Threshold(_Elementwise):
    """``x`` where x > threshold, `value` elsewhere."""

    _fn = staticmethod(F.threshold)
    _args = (("threshold", _REQUIRED), ("value", _REQUIRED))

    def __init__(self, threshold, value):
        super().__init__(threshold=V.real(threshold, "threshold"), value=V.real(value, "value"))

    def _backward(self, grad, x, out):
        return F.threshold_backward(grad, x, self.threshold)


class Softmax(_Elementwise):
    """``exp(x) / sum(exp(x), dim)``; `dim` is required.

    Shape
    -----
    x (*) -> (*), the same shape and dtype; entries along `dim` sum to 1.
    """

    _fn = staticmethod(F.softmax)
    _args = (("dim", _REQUIRED),)

    def __init__(self, dim):
        if dim is None:
            F._dim(dim, 0)  # the "`dim` is required" TypeError
        super().__init__(dim=V.integer(dim, "dim"))

    def _backward(self, grad, x, out):
        return F.softmax_backward(grad, x, self.dim, output=out)


class LogSoftmax(Softmax):
    """``x - log(sum(exp(x), dim))``; `dim` is required."""

    _fn = staticmethod(F.log_softmax)

    def _backward(self, grad, x, out):
        return F.log_softmax_backward(grad, x, self.dim, output=out)


class PReLU(BaseLayer):
    """``x`` for x > 0, ``weight * x`` otherwise, with a learned `weight`.

    ``num_parameters=1`` learns one slope; ``num_parameters=C`` one per channel of
    axis 1. `weight` starts at `init` (0.25, as PyTorch).

    Shape
    -----
    x (*) with one slope, (N, C, *) with C slopes -> the same shape and dtype.
    """

    def __init__(self, num_parameters=1, init=0.25, *, dtype=np.float32):
        super().__init__()
        self.num_parameters = V.positive_int(num_parameters, "num_parameters")
        self.init = V.real(init, "init")
        self.dtype = V.float_dtype(dtype)
        self.params["weight"] = np.full(self.num_parameters, self.init, dtype=self.dtype)
        self._x = None

    weight = _Slot()

    def forward(self, x):
        _check_input(x, "PReLU")
        V.check_same_dtype(self.weight, "weight", x, "x")
        out = F.prelu(x, self.weight)
        self._x = x
        return out

    def backward(self, grad):
        if self._x is None:
            raise RuntimeError("PReLU.backward called before forward")
        _check_grad(grad, self._x.shape, self._x.dtype, "PReLU")
        grad_x, grad_w = F.prelu_backward(grad, self._x, self.weight)
        self._accumulate_grad("weight", grad_w)
        return grad_x

    def extra_repr(self):
        parts = []
        if self.num_parameters != 1:
            parts.append(f"num_parameters={self.num_parameters}")
        if self.init != 0.25:
            parts.append(f"init={self.init!r}")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        return ", ".join(parts)
