"""Power-average (Lp) pooling as PyTorch defines it, over a backend's average pooling.

``F.lp_pool2d`` is a composition::

    out = avg_pool2d(x ** p, kernel_size, stride, 0, ceil_mode)
    out = (sign(out) * relu(abs(out)) * (KH * KW)) ** (1 / p)

and its gradient is autograd's through those steps. `pycnn.functional` and
`pycnn.reference` both call these with their own `avg_pool2d` (and backward), so the
only thing that differs between them is the pooling itself, which the tests hold to
each other exactly. The elementwise steps are computed as PyTorch computes them
(`_pow`), so float32 results agree with it to a few ulps even where a window's sum
cancels.
"""

import numpy as np


def _pow(a, exponent):
    """`a ** exponent` the way PyTorch evaluates it: x*x and x*x*x for 2 and 3, sqrt,
    1/sqrt and 1/x for 0.5, -0.5, -1, a copy for 1, ones for 0."""
    if exponent == 0:
        return np.ones_like(a)
    if exponent == 1:
        return a.copy()
    if exponent == 2:
        return a * a
    if exponent == 3:
        return a * a * a
    if exponent == 0.5:
        return np.sqrt(a)
    if exponent == -0.5:
        return 1 / np.sqrt(a)
    if exponent == -1:
        return 1 / a
    if exponent == -2:
        return 1 / (a * a)
    return np.power(a, a.dtype.type(exponent))


def _sign(a):
    """torch.sign: like np.sign, but 0 at NaN."""
    return np.where(np.isnan(a), 0, np.sign(a))


def lp_pool2d(avg_pool2d, x, p, args):
    """Forward, `args` a validated PoolArgs (no padding, no dilation)."""
    size = args.kernel_size[0] * args.kernel_size[1]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = avg_pool2d(_pow(x, p), args.kernel_size, args.stride, 0, args.ceil_mode)
        return _pow(_sign(mean) * np.maximum(np.abs(mean), 0) * size, 1.0 / p)


def lp_pool2d_backward(avg_pool2d, avg_pool2d_backward, grad_out, x, p, args):
    """Gradient with respect to x: the chain rule through the steps of the forward,
    so relu cuts it to 0 where a window's mean is 0 (there t ** (1/p - 1) is inf)."""
    size = args.kernel_size[0] * args.kernel_size[1]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = avg_pool2d(_pow(x, p), args.kernel_size, args.stride, 0, args.ceil_mode)
        sign, magnitude = _sign(mean), np.maximum(np.abs(mean), 0)
        t = sign * magnitude * size  # out = t ** (1/p)
        grad_t = grad_out * ((1.0 / p) * _pow(t, 1.0 / p - 1.0))
        grad_magnitude = np.where(magnitude <= 0, 0, grad_t * size * sign)  # relu
        grad_mean = grad_magnitude * sign  # abs
        grad_pow = avg_pool2d_backward(
            grad_mean, x.shape, args.kernel_size, args.stride, 0, args.ceil_mode
        )
        return grad_pow * (p * _pow(x, p - 1.0))
