"""Activation functions, forward and backward, in pure NumPy, with PyTorch's semantics.

Each activation ``f`` has a pair: ``f(x, ...)`` returns the output and
``f_backward(grad, x, ...)`` the gradient with respect to `x`, given the gradient
`grad` of the output (``prelu_backward`` returns the weight's gradient too). The layers
in `pycnn.layers.activation` are built on these.

Conventions:

* float32 in, float32 out: constants are Python floats, which do not promote NumPy
  arrays (NumPy float64 scalars would). Only `erf`/`erfc` (hence exact GELU) compute in
  float64 and cast back.
* No overflow for any finite input: ``exp`` only ever sees arguments that cannot
  overflow (``-|x|`` or a clipped value). Underflow to zero (``exp(-100)`` in float32)
  is the correct result and is not avoided.
* At a kink the gradient is PyTorch's (e.g. Hardtanh's is 0 at ``min_val`` and
  ``max_val``, ReLU's is 0 at 0, ELU's is ``alpha`` at 0).
* `sigmoid_backward`, `tanh_backward`, `softmax_backward` and `log_softmax_backward`
  accept the forward ``output=`` to avoid recomputing it.

This is not part of `pycnn.functional`: that namespace holds the compiled ops mirrored
by `pycnn.reference` and `pycnn.naive`.
"""

import math

import numpy as np

from pycnn import _validation as V

__all__ = [
    "erf",
    "erfc",
    "relu",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
    "elu",
    "elu_backward",
    "selu",
    "selu_backward",
    "celu",
    "celu_backward",
    "gelu",
    "gelu_backward",
    "silu",
    "silu_backward",
    "mish",
    "mish_backward",
    "softplus",
    "softplus_backward",
    "softsign",
    "softsign_backward",
    "hardtanh",
    "hardtanh_backward",
    "relu6",
    "relu6_backward",
    "hardsigmoid",
    "hardsigmoid_backward",
    "hardswish",
    "hardswish_backward",
    "logsigmoid",
    "logsigmoid_backward",
    "tanhshrink",
    "tanhshrink_backward",
    "softshrink",
    "softshrink_backward",
    "hardshrink",
    "hardshrink_backward",
    "threshold",
    "threshold_backward",
    "prelu",
    "prelu_backward",
    "softmax",
    "softmax_backward",
    "log_softmax",
    "log_softmax_backward",
    "tanhexp",
    "tanhexp_backward",
]

# SELU's constants, as in PyTorch (Klambauer et al., 2017).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


# --- argument checks ---------------------------------------------------------------


def _x(x):
    return V.check_array(x, "x")


def _grad(grad, x):
    """`grad` must match the forward input `x` in shape and dtype."""
    V.check_array(grad, "grad")
    if grad.shape != x.shape:
        raise ValueError(
            f"`grad` must have the shape of `x` {x.shape}. Received: grad.shape={grad.shape}"
        )
    if grad.dtype != x.dtype:
        raise TypeError(
            f"`grad` must have the dtype of `x` ({x.dtype}). Received: grad.dtype={grad.dtype}"
        )
    return grad


def _nonzero(value, name):
    result = V.real(value, name)
    if result == 0:
        raise ValueError(f"`{name}` must be nonzero. Received: {name}={value!r}")
    return result


def _dim(dim, ndim):
    """A validated axis of an `ndim`-d array (negative counts from the end)."""
    if dim is None:
        raise TypeError(
            "`dim` is required (PyTorch's implicit choice is deprecated). Received: dim=None"
        )
    d = V.integer(dim, "dim")
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if not lo <= d <= hi:
        raise ValueError(
            f"`dim` must be in [{lo}, {hi}] for a {ndim}-d `x`. Received: dim={dim!r}"
        )
    return d % max(ndim, 1)


def _hardtanh_bounds(min_val, max_val):
    lo, hi = V.real(min_val, "min_val"), V.real(max_val, "max_val")
    if not hi > lo:
        raise ValueError(
            f"`max_val` must be greater than `min_val`. "
            f"Received: min_val={min_val!r}, max_val={max_val!r}"
        )
    return lo, hi


def _cast(a, dtype):
    return a.astype(dtype, copy=False)


# --- erf ---------------------------------------------------------------------------
# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp.
# 23 (1969) 631-637, as in his CALERF (SPECFUN): three intervals, relative error below
# 1e-16 in each. exp(-y*y) is split as exp(-z*z) * exp(-(y-z)(y+z)) with z = y rounded
# down to 1/16, so the large square loses no bits.

_A = (
    3.16112374387056560e00,
    1.13864154151050156e02,
    3.77485237685302021e02,
    3.20937758913846947e03,
    1.85777706184603153e-1,
)
_B = (
    2.36012909523441209e01,
    2.44024637934444173e02,
    1.28261652607737228e03,
    2.84423683343917062e03,
)
_C = (
    5.64188496988670089e-1,
    8.88314979438837594e00,
    6.61191906371416295e01,
    2.98635138197400131e02,
    8.81952221241769090e02,
    1.71204761263407058e03,
    2.05107837782607147e03,
    1.23033935479799725e03,
    2.15311535474403846e-8,
)
_D = (
    1.57449261107098347e01,
    1.17693950891312499e02,
    5.37181101862009858e02,
    1.62138957456669019e03,
    3.29079923573345963e03,
    4.36261909014324716e03,
    3.43936767414372164e03,
    1.23033935480374942e03,
)
_P = (
    3.05326634961232344e-1,
    3.60344899949804439e-1,
    1.25781726111229246e-1,
    1.60837851487422766e-2,
    6.58749161529837803e-4,
    1.63153871373020978e-2,
)
_Q = (
    2.56852019228982242e00,
    1.87295284992346047e00,
    5.27905102951428412e-1,
    6.05183413124413191e-2,
    2.33520497626869185e-3,
)
_XBREAK, _XBIG = 0.46875, 27.3  # erfc(y) < 2**-1075 (rounds to 0) for y >= _XBIG
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def _erf_small(x):
    """erf(x) for |x| <= 0.46875 (float64 array)."""
    z = x * x
    num, den = _A[4] * z, z
    for i in range(3):
        num, den = (num + _A[i]) * z, (den + _B[i]) * z
    return x * (num + _A[3]) / (den + _B[3])


def _erfc_large(y):
    """erfc(y) for y > 0.46875 (float64 array); 0 from _XBIG on."""
    y = np.minimum(y, _XBIG)
    mid = y <= 4.0
    # 0.46875 < y <= 4
    num, den = _C[8] * y, y
    for i in range(7):
        num, den = (num + _C[i]) * y, (den + _D[i]) * y
    r_mid = (num + _C[7]) / (den + _D[7])
    # y > 4: an asymptotic form in 1/y^2
    z = 1.0 / (y * y)
    num, den = _P[5] * z, z
    for i in range(4):
        num, den = (num + _P[i]) * z, (den + _Q[i]) * z
    r_big = (_INV_SQRT_PI - z * (num + _P[4]) / (den + _Q[4])) / y
    r = np.where(mid, r_mid, r_big)
    zz = np.trunc(y * 16.0) / 16.0
    r = np.exp(-zz * zz) * np.exp(-(y - zz) * (y + zz)) * r
    return np.where(y >= _XBIG, 0.0, r)


def erf(x):
    """The error function, elementwise, to float64 accuracy (Cody's approximations).

    float32 input is computed in float64 and cast back. NumPy has no erf and SciPy is
    not a dependency.
    """
    _x(x)
    x64 = x.astype(np.float64)
    ax = np.abs(x64)
    small = ax <= _XBREAK
    out = np.where(
        small,
        _erf_small(np.where(small, x64, 0.0)),
        np.copysign(1.0 - _erfc_large(np.where(small, 1.0, ax)), x64),
    )
    return _cast(out, x.dtype)


def erfc(x):
    """The complementary error function ``1 - erf(x)``, accurate in the right tail."""
    _x(x)
    x64 = x.astype(np.float64)
    ax = np.abs(x64)
    small = ax <= _XBREAK
    tail = _erfc_large(np.where(small, 1.0, ax))
    out = np.where(
        small, 1.0 - _erf_small(np.where(small, x64, 0.0)), np.where(x64 < 0, 2.0 - tail, tail)
    )
    return _cast(out, x.dtype)


# --- helpers -----------------------------------------------------------------------


def _sigmoid(x):
    """1 / (1 + exp(-x)); exp only sees -|x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


def _softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), finite for every finite x."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


# --- ReLU family -------------------------------------------------------------------


def relu(x):
    """``max(x, 0)``."""
    return np.maximum(_x(x), 0)


def relu_backward(grad, x):
    """Gradient of `relu`; 0 at x = 0, as in PyTorch."""
    _grad(grad, _x(x))
    return _cast(np.where(x > 0, grad, 0), grad.dtype)


def leaky_relu(x, negative_slope=0.01):
    """``x`` for x > 0, ``negative_slope * x`` otherwise."""
    s = V.real(negative_slope, "negative_slope")
    return np.where(_x(x) > 0, x, x * s)


def leaky_relu_backward(grad, x, negative_slope=0.01):
    s = V.real(negative_slope, "negative_slope")
    _grad(grad, _x(x))
    return np.where(x > 0, grad, grad * s)


def relu6(x):
    """``min(max(x, 0), 6)``."""
    return hardtanh(x, 0.0, 6.0)


def relu6_backward(grad, x):
    """Gradient of `relu6`: 0 at 0 and at 6, as in PyTorch."""
    return hardtanh_backward(grad, x, 0.0, 6.0)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """``x`` clamped to [min_val, max_val]."""
    lo, hi = _hardtanh_bounds(min_val, max_val)
    return np.clip(_x(x), lo, hi)


def hardtanh_backward(grad, x, min_val=-1.0, max_val=1.0):
    """1 strictly inside (min_val, max_val), 0 elsewhere (kinks included, as PyTorch)."""
    lo, hi = _hardtanh_bounds(min_val, max_val)
    _grad(grad, _x(x))
    return _cast(np.where((x > lo) & (x < hi), grad, 0), grad.dtype)


def threshold(x, threshold, value):
    """``x`` where x > threshold, `value` elsewhere (``torch.nn.functional.threshold``)."""
    t, v = V.real(threshold, "threshold"), V.real(value, "value")
    return _cast(np.where(_x(x) > t, x, v), x.dtype)


def threshold_backward(grad, x, threshold):
    t = V.real(threshold, "threshold")
    _grad(grad, _x(x))
    return _cast(np.where(x > t, grad, 0), grad.dtype)


def prelu(x, weight):
    """``x`` for x > 0, ``weight * x`` otherwise; `weight` (1,) or (C,) on axis 1."""
    w = _prelu_weight(_x(x), weight)
    return np.where(x > 0, x, x * w)


def prelu_backward(grad, x, weight):
    """(grad_x, grad_weight); grad_weight has `weight`'s shape."""
    w = _prelu_weight(_x(x), weight)
    _grad(grad, x)
    grad_x = np.where(x > 0, grad, grad * w)
    contrib = np.where(x > 0, 0, grad * x)
    if weight.size == 1:
        grad_w = np.sum(contrib, dtype=x.dtype).reshape(weight.shape)
    else:
        axes = (0,) + tuple(range(2, x.ndim))
        grad_w = np.sum(contrib, axis=axes, dtype=x.dtype)
    return grad_x, _cast(grad_w, x.dtype)


def _prelu_weight(x, weight):
    """`weight` broadcast against `x`: one slope, or one per channel of axis 1."""
    V.check_array(weight, "weight", ndim=1)
    if weight.dtype != x.dtype:
        raise TypeError(
            f"`weight` must have the dtype of `x` ({x.dtype}). "
            f"Received: weight.dtype={weight.dtype}"
        )
    if weight.size == 1:
        return weight.reshape(())
    if x.ndim < 2 or x.shape[1] != weight.size:
        raise ValueError(
            f"`x` must have {weight.size} channels on axis 1 to match "
            f"`weight` of shape {weight.shape}. Received: x.shape={x.shape}"
        )
    return weight.reshape((-1,) + (1,) * (x.ndim - 2))


# --- exponential family ------------------------------------------------------------


def elu(x, alpha=1.0):
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""
    a = V.real(alpha, "alpha")
    return np.where(_x(x) > 0, x, np.expm1(np.minimum(x, 0)) * a)


def elu_backward(grad, x, alpha=1.0):
    """1 for x > 0, ``alpha * exp(x)`` otherwise (alpha at 0, as in PyTorch)."""
    a = V.real(alpha, "alpha")
    _grad(grad, _x(x))
    return np.where(x > 0, grad, grad * (np.exp(np.minimum(x, 0)) * a))


def selu(x):
    """``scale * elu(x, alpha)`` with SELU's fixed constants."""
    return elu(x, SELU_ALPHA) * SELU_SCALE


def selu_backward(grad, x):
    return elu_backward(grad, x, SELU_ALPHA) * SELU_SCALE


def celu(x, alpha=1.0):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``; alpha > 0 (PyTorch also
    takes a negative alpha, where the formula is no longer an ELU)."""
    a = V.real(alpha, "alpha", 0, min_open=True)
    return np.where(_x(x) > 0, x, np.expm1(np.minimum(x / a, 0)) * a)


def celu_backward(grad, x, alpha=1.0):
    """1 for x > 0, ``exp(x / alpha)`` otherwise (1 at 0, as in PyTorch)."""
    a = V.real(alpha, "alpha", 0, min_open=True)
    _grad(grad, _x(x))
    return np.where(x > 0, grad, grad * np.exp(np.minimum(x / a, 0)))


# --- smooth gates ------------------------------------------------------------------

_GELU_APPROXIMATIONS = ("none", "tanh")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_KAPPA = 0.044715


def _approximate(approximate):
    if approximate not in _GELU_APPROXIMATIONS:
        raise ValueError(
            f"`approximate` must be 'none' or 'tanh'. Received: approximate={approximate!r}"
        )
    return approximate


def _normal_cdf(x):
    """Phi(x) = erfc(-x / sqrt(2)) / 2, accurate in the left tail (float64)."""
    return erfc(x.astype(np.float64) * -_INV_SQRT_2) * 0.5


def gelu(x, approximate="none"):
    """``x * Phi(x)`` (Phi the standard normal CDF), or its tanh approximation."""
    _x(x)
    if _approximate(approximate) == "tanh":
        xc = np.clip(x, -30, 30)  # tanh(inner) is +-1 exactly from |x| = 10 on
        inner = (xc + xc * xc * xc * _KAPPA) * _SQRT_2_OVER_PI
        return x * (0.5 * (1 + np.tanh(inner)))
    return _cast(x * _normal_cdf(x), x.dtype)


def gelu_backward(grad, x, approximate="none"):
    if _approximate(approximate) == "tanh":
        _grad(grad, _x(x))
        xc = np.clip(x, -30, 30)  # beyond, 1 - tanh^2 is 0 exactly
        x2 = xc * xc
        t = np.tanh((xc + x2 * xc * _KAPPA) * _SQRT_2_OVER_PI)
        d_inner = (1 + x2 * (3 * _KAPPA)) * _SQRT_2_OVER_PI
        return grad * (0.5 * (1 + t) + xc * 0.5 * (1 - t * t) * d_inner)
    _grad(grad, _x(x))
    xc = np.clip(x.astype(np.float64), -40.0, 40.0)  # x * pdf(x) < 1e-300 beyond
    pdf = np.exp(xc * xc * -0.5) * _INV_SQRT_2PI
    return _cast(grad * (_normal_cdf(x) + xc * pdf), x.dtype)


def silu(x):
    """``x * sigmoid(x)``."""
    return _x(x) * _sigmoid(x)


def silu_backward(grad, x):
    _grad(grad, _x(x))
    s = _sigmoid(x)
    return grad * (s * (1 + x * (1 - s)))


def mish(x):
    """``x * tanh(softplus(x))``."""
    return _x(x) * np.tanh(_softplus(x))


def mish_backward(grad, x):
    _grad(grad, _x(x))
    t = np.tanh(_softplus(x))
    return grad * (t + x * _sigmoid(x) * (1 - t * t))


def softplus(x, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, and ``x`` where ``beta * x > threshold``."""
    b, t = _nonzero(beta, "beta"), V.real(threshold, "threshold")
    bx = _x(x) * b
    return np.where(bx > t, x, _softplus(bx) / b)


def softplus_backward(grad, x, beta=1.0, threshold=20.0):
    b, t = _nonzero(beta, "beta"), V.real(threshold, "threshold")
    _grad(grad, _x(x))
    bx = x * b
    return np.where(bx > t, grad, grad * _sigmoid(bx))


def logsigmoid(x):
    """``log(sigmoid(x)) = -softplus(-x)``."""
    return -_softplus(-_x(x))


def logsigmoid_backward(grad, x):
    _grad(grad, _x(x))
    return grad * _sigmoid(-x)


def sigmoid(x):
    """``1 / (1 + exp(-x))``, without overflow for any finite x."""
    return _sigmoid(_x(x))


def sigmoid_backward(grad, x, *, output=None):
    _grad(grad, _x(x))
    y = _sigmoid(x) if output is None else output
    return grad * y * (1 - y)


def tanh(x):
    return np.tanh(_x(x))


def tanh_backward(grad, x, *, output=None):
    _grad(grad, _x(x))
    y = np.tanh(x) if output is None else output
    return grad * (1 - y * y)


def tanhexp(x):
    """TanhExp, ``x * tanh(exp(x))`` (Liu & Di, 2020).

    ``tanh(exp(x))`` is 1 in float64 from x = 4 on, so exp sees ``min(x, 20)``.
    """
    return _x(x) * np.tanh(np.exp(np.minimum(x, 20)))


def tanhexp_backward(grad, x):
    """``tanh(e^x) + x e^x (1 - tanh(e^x)^2)``."""
    _grad(grad, _x(x))
    e = np.exp(np.minimum(x, 20))
    t = np.tanh(e)
    return grad * (t + x * (e * (1 - t * t)))  # e * 0 first: x * e may overflow


# --- soft / hard shapes ------------------------------------------------------------


def softsign(x):
    """``x / (1 + |x|)``."""
    return _x(x) / (1 + np.abs(x))


def softsign_backward(grad, x):
    _grad(grad, _x(x))
    d = 1 + np.abs(x)
    return grad / d / d  # d * d may overflow


def hardsigmoid(x):
    """``relu6(x + 3) / 6``."""
    return np.clip(_x(x) + 3, 0, 6) / 6


def hardsigmoid_backward(grad, x):
    """1/6 strictly inside (-3, 3), 0 elsewhere, as in PyTorch."""
    _grad(grad, _x(x))
    return _cast(np.where((x > -3) & (x < 3), grad / 6, 0), grad.dtype)


def hardswish(x):
    """``x * relu6(x + 3) / 6``."""
    return _x(x) * (np.clip(x + 3, 0, 6) / 6)


def hardswish_backward(grad, x):
    """0 up to -3, ``x / 3 + 1/2`` on (-3, 3), 1 from 3 on (PyTorch's kink convention)."""
    _grad(grad, _x(x))
    return _cast(np.where(x <= -3, 0, np.where(x < 3, grad * (x / 3 + 0.5), grad)), grad.dtype)


def tanhshrink(x):
    """``x - tanh(x)``."""
    return _x(x) - np.tanh(x)


def tanhshrink_backward(grad, x):
    _grad(grad, _x(x))
    t = np.tanh(x)
    return grad * (t * t)


def softshrink(x, lambd=0.5):
    """``x - lambd`` above lambd, ``x + lambd`` below -lambd, 0 between."""
    lam = V.real(lambd, "lambd", 0)
    _x(x)
    return _cast(np.where(x > lam, x - lam, np.where(x < -lam, x + lam, 0)), x.dtype)


def softshrink_backward(grad, x, lambd=0.5):
    """0 on [-lambd, lambd] (kinks included, as PyTorch), 1 outside."""
    lam = V.real(lambd, "lambd", 0)
    _grad(grad, _x(x))
    return _cast(np.where((x >= -lam) & (x <= lam), 0, grad), grad.dtype)


def hardshrink(x, lambd=0.5):
    """``x`` where ``|x| > lambd``, 0 elsewhere."""
    lam = V.real(lambd, "lambd")
    _x(x)
    return _cast(np.where((x >= -lam) & (x <= lam), 0, x), x.dtype)


def hardshrink_backward(grad, x, lambd=0.5):
    lam = V.real(lambd, "lambd")
    _grad(grad, _x(x))
    return _cast(np.where((x >= -lam) & (x <= lam), 0, grad), grad.dtype)


# --- along an axis -----------------------------------------------------------------


def softmax(x, dim):
    """``exp(x) / sum(exp(x), dim)``, the maximum subtracted first."""
    d = _dim(dim, _x(x).ndim)
    if x.ndim == 0 or x.size == 0:
        return np.ones_like(x)
    e = np.exp(x - np.max(x, axis=d, keepdims=True))
    return e / np.sum(e, axis=d, keepdims=True)


def softmax_backward(grad, x, dim, *, output=None):
    """``y * (grad - sum(grad * y, dim))``."""
    d = _dim(dim, _x(x).ndim)
    _grad(grad, x)
    y = softmax(x, d) if output is None else output
    if x.ndim == 0 or x.size == 0:
        return np.zeros_like(grad)
    return y * (grad - np.sum(grad * y, axis=d, keepdims=True))


def log_softmax(x, dim):
    """``x - logsumexp(x, dim)``, the maximum subtracted first."""
    d = _dim(dim, _x(x).ndim)
    if x.ndim == 0 or x.size == 0:
        return np.zeros_like(x)
    shifted = x - np.max(x, axis=d, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=d, keepdims=True))


def log_softmax_backward(grad, x, dim, *, output=None):
    """``grad - exp(y) * sum(grad, dim)``."""
    d = _dim(dim, _x(x).ndim)
    _grad(grad, x)
    y = log_softmax(x, d) if output is None else output
    if x.ndim == 0 or x.size == 0:
        return np.zeros_like(grad)
    return grad - np.exp(y) * np.sum(grad, axis=d, keepdims=True)
