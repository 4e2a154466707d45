"""The element-wise passes of ReLU and batch norm, in compiled loops.

NumPy takes several passes over memory for what one loop does: batch norm's training
forward is seven (mean, x - mean, its square, their mean, * inv_std, * weight, + bias)
and its backward as many, and ``np.where(x > 0, grad, 0)`` (ReLU's backward) took 40
times as long as a copy (4 ms for 3.2 MB of float32). The loops in `pycnn._ext._kernels`
take one pass each (two for the batch statistics, which are taken in double), with the
GIL released; large arrays are split over pycnn's threads, by flat ranges for ReLU and
by channels for batch norm, so every per-channel sum runs over its channel in one fixed
order and no result depends on the thread count.

Each function takes the arrays its caller already checked; the compiled loops need
them C-contiguous (batch norm's as an (N, C, M) view, M = H*W or L or 1). Without the
compiled extension, or for an array that is not C-contiguous, NumPy does the same work,
so that `ReLU` and the batch norm layers keep working with the pure-NumPy parts of pycnn.
"""

import numpy as np

from pycnn import _buffers, _parallel
from pycnn._ext import load_kernels

try:
    _kernels = load_kernels()
except ImportError:  # pure NumPy, as without the extension before these loops
    _kernels = None

__all__ = [
    "relu",
    "relu_",
    "add_relu",
    "bias_activation_",
    "relu_backward",
    "batch_norm_stats",
    "batch_norm_statistics",
    "batch_norm_forward",
    "batch_norm_grad_sums",
    "batch_norm_backward",
]


def _compiled(*arrays):
    """Whether the compiled loops can take these arrays (all C-contiguous)."""
    if _kernels is None:
        return False
    for a in arrays:
        if not a.flags.c_contiguous:
            return False
    return True


# An element of these passes counts as this many multiply-adds in pycnn's rule for
# splitting work over threads (`_parallel.MIN_MACS_PER_THREAD`): they split from 2**19
# elements. Measured on 2 threads, (64, 16, 32, 32) float32: batch norm's backward
# 1.56 -> 0.95 ms, ReLU's 0.61 -> 0.45 ms; arrays of 2**18 elements gained nothing from
# a split (and ReLU lost 2x at twice this weight).
ELEMENT_WEIGHT = 4


def _split(n_items, per_item, work):
    """``work(lo, hi)`` over ranges covering ``range(n_items)``, on pycnn's threads when
    the work is large enough (`pycnn._parallel.over_ranges`; `per_item` values each);
    a call too small to split runs at once, without over_ranges' BLAS bookkeeping."""
    weight = per_item * ELEMENT_WEIGHT
    if _parallel.n_parts(n_items, weight) == 1:
        work(0, n_items)
    else:
        _parallel.over_ranges(n_items, weight, work)


# --- ReLU ------------------------------------------------------------------------------


def relu(x):
    """``max(x, 0)`` in x's dtype, NaN propagated (as ``np.maximum(x, 0)``)."""
    if not _compiled(x):
        return np.maximum(x, 0)
    out = _buffers.empty(x.shape, x.dtype)
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    _split(x.size, 1, lambda lo, hi: _kernels.relu_forward(flat_x[lo:hi], flat_out[lo:hi]))
    return out


def add_relu(a, b):
    """``relu(a + b)`` in a new array, the same bits, in one pass where compiled (`a`
    and `b` of one shape and dtype)."""
    if not _compiled(a, b) or a.shape != b.shape or a.dtype != b.dtype:
        return relu(a + b)
    return _pairwise(_kernels.add_relu, a, b)


def _pairwise(kernel, a, b):
    """``kernel(a, b, out)`` on flat ranges split over the threads, into a new array of
    a's shape and dtype (`a`, `b`: C-contiguous, of one size)."""
    out = _buffers.empty(a.shape, a.dtype)
    flat_a, flat_b, flat_out = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    _split(a.size, 1, lambda lo, hi: kernel(flat_a[lo:hi], flat_b[lo:hi], flat_out[lo:hi]))
    return out


def relu_(x):
    """`relu` in place, overwriting `x` (a fused convolution's block of output)."""
    if not _compiled(x):
        np.maximum(x, 0, out=x)
        return
    flat = x.reshape(-1)
    _split(x.size, 1, lambda lo, hi: _kernels.relu_forward(flat[lo:hi], flat[lo:hi]))


def bias_activation_(block, bias, activation, residual=None):
    """A convolution's epilogue on `block` (n, F, L) in place: `bias` (F,) added per
    channel unless None, then `residual` (n, F, L) unless None, then `activation` (a
    function overwriting its argument, or None). A bias, a residual, a `relu_` or all
    three take one compiled call (row by row, each row in cache); the same bits as
    ``block += bias[:, None]``, ``block += residual`` and ``activation(block)``."""
    relu = activation is relu_
    if (
        (relu or activation is None)
        and _compiled(block)
        and (bias is None or (bias.flags.c_contiguous and bias.dtype == block.dtype))
        and (residual is None or _compiled(residual) and residual.dtype == block.dtype)
    ):
        _kernels.bias_relu(block, bias, relu, residual)
        return
    if bias is not None:
        block += bias[:, None]
    if residual is not None:
        block += residual
    if activation is not None:
        activation(block)


def relu_backward(grad, out):
    """`grad` where the forward output `out` is > 0 (where the input was), else 0."""
    if not _compiled(grad, out):
        return np.where(out > 0, grad, 0).astype(grad.dtype, copy=False)
    return _pairwise(_kernels.relu_backward, grad, out)


# --- batch norm over (N, C, M) ---------------------------------------------------------


def batch_norm_stats(x):
    """Per-channel mean and sum of squared deviations from it (both float64, (C,)) of
    an (N, C, M) array, over N and M."""
    c = x.shape[1]
    if not _compiled(x):
        mean = x.mean(axis=(0, 2), dtype=np.float64)
        centred = x - mean[:, None]
        return mean, np.sum(centred * centred, axis=(0, 2))
    mean, m2 = np.empty(c), np.empty(c)
    _split(c, x.size // c, lambda lo, hi: _kernels.batch_norm_stats(x, mean, m2, lo, hi))
    return mean, m2


def batch_norm_statistics(mean, var, running_mean, running_var, momentum, var_momentum, eps):
    """A training forward's per-channel vectors from the batch's `mean` and biased `var`
    (float64, (C,)): ``(mean, 1 / sqrt(var + eps))`` in the dtype of the running
    statistics, which move in place towards the batch's: ``running_mean = (1 - m) *
    running_mean + m * mean`` (m the `momentum`) and ``running_var = (1 - m) *
    running_var + var_momentum * var``. The same bits from both paths."""
    dtype = running_mean.dtype
    if not (_compiled(running_mean, running_var) and running_var.dtype == dtype):
        mean, var = mean.astype(dtype), var.astype(dtype)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += var_momentum * var
        return mean, 1 / np.sqrt(var + eps)
    mean_out, inv_std = np.empty(mean.shape, dtype), np.empty(mean.shape, dtype)
    _kernels.batch_norm_statistics(
        mean, var, running_mean, running_var, momentum, var_momentum, eps, mean_out, inv_std
    )
    return mean_out, inv_std


def batch_norm_forward(x, mean, inv_std, weight, bias, then_relu=False):
    """``(x - mean) * inv_std * weight + bias`` per channel of an (N, C, M) array, in its
    dtype (`mean`, `inv_std` and the optional `weight` and `bias`: (C,), x's dtype);
    with `then_relu`, `relu` of that, in the same pass, with the same bits."""
    c = x.shape[1]
    if not _compiled(x):
        out = (x - mean[:, None]) * inv_std[:, None]
        if weight is not None:
            out = out * weight[:, None] + bias[:, None]
        return relu(out) if then_relu else out
    out = _buffers.empty(x.shape, x.dtype)
    _split(
        c,
        x.size // c,
        lambda lo, hi: _kernels.batch_norm_forward(
            x, mean, inv_std, weight, bias, out, lo, hi, then_relu
        ),
    )
    return out


def batch_norm_grad_sums(grad, x, mean, inv_std):
    """Per-channel sums (float64, (C,)) of `grad` and of ``grad * xhat`` over N and M,
    ``xhat = (x - mean) * inv_std`` as `batch_norm_forward` computes it."""
    c = x.shape[1]
    if not _compiled(grad, x):
        xhat = (x - mean[:, None]) * inv_std[:, None]
        return (
            np.sum(grad, axis=(0, 2), dtype=np.float64),
            np.sum(grad * xhat, axis=(0, 2), dtype=np.float64),
        )
    sum_g, sum_gx = np.empty(c), np.empty(c)
    _split(
        c,
        x.size // c,
        lambda lo, hi: _kernels.batch_norm_grad_sums(
            grad, x, mean, inv_std, sum_g, sum_gx, lo, hi
        ),
    )
    return sum_g, sum_gx


def batch_norm_backward(grad, x, mean, inv_std, weight, mean_g=None, mean_gx=None):
    """The gradient with respect to x of `batch_norm_forward`, ``dxhat = grad * weight``
    (`grad` without `weight`). Training, given the batch's per-channel means `mean_g`
    of `grad` and `mean_gx` of ``grad * xhat``: ``(dxhat - weight * mean_g - xhat *
    (weight * mean_gx)) * inv_std``; eval (both None), the statistics being constants:
    ``dxhat * inv_std``. Every vector (C,) in x's dtype."""
    c = x.shape[1]
    if not _compiled(grad, x):
        w = 1 if weight is None else weight[:, None]
        dxhat = grad * w
        if mean_g is not None:
            xhat = (x - mean[:, None]) * inv_std[:, None]
            dxhat = dxhat - w * mean_g[:, None] - xhat * (w * mean_gx[:, None])
        return dxhat * inv_std[:, None]
    dx = _buffers.empty(x.shape, x.dtype)
    _split(
        c,
        x.size // c,
        lambda lo, hi: _kernels.batch_norm_backward(
            grad, x, mean, inv_std, weight, mean_g, mean_gx, dx, lo, hi
        ),
    )
    return dx
