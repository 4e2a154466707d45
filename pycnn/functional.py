"""Compiled operations: validate -> allocate -> C kernel -> BLAS.

Same names, signatures, errors and results as `pycnn.reference` (pure NumPy); the
tests hold the two to each other. Arrays are NCHW, float32 or float64 (preserved).
Hyper-parameters follow PyTorch: an int or an (H, W) pair.
"""

import numpy as np

from pycnn import _buffers, _conv, _lp, _parallel
from pycnn import _validation as V
from pycnn._config import get_num_threads
from pycnn._ext import load_kernels

_kernels = load_kernels()  # an ImportError here says what is missing and how to fix it

__all__ = ["im2col", "col2im", "conv2d", "conv2d_backward"]

# Below this many elements, starting an OpenMP team costs more than it saves.
PARALLEL_MIN_ELEMENTS = 1 << 15


def _threads(elements):
    """Threads for a standalone kernel call touching `elements` array elements."""
    return get_num_threads() if elements >= PARALLEL_MIN_ELEMENTS else 1


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Unfold sliding blocks of `x` into columns, like ``torch.nn.functional.unfold``.

    Shape: x (N, C, H, W) -> (N, C*KH*KW, OH*OW), with rows ordered (c, i, j) and
    ``OH = floor((H + 2*PH - DH*(KH-1) - 1) / SH) + 1`` (OW likewise).
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = V.im2col_args(
        x, kernel_size, stride, padding, dilation
    )
    n, c, h, w = x.shape
    oh, ow = V.out_size(h, kh, sh, 2 * ph, dh), V.out_size(w, kw, sw, 2 * pw, dw)
    cols = np.empty((n, c * kh * kw, oh * ow), dtype=x.dtype)
    with _parallel.team(_threads(cols.size)) as threads:
        _kernels.im2col(
            np.ascontiguousarray(x), cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, threads
        )
    return cols


def col2im(cols, output_size, kernel_size, stride=1, padding=0, dilation=1):
    """Sum columns back into images, like ``torch.nn.functional.fold``.

    The adjoint of `im2col`: entries of overlapping blocks add up.
    Shape: cols (N, C*KH*KW, L) -> (N, C, H, W) with (H, W) = `output_size` and
    L = OH*OW for the geometry given.
    """
    (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = V.col2im_args(
        cols, output_size, kernel_size, stride, padding, dilation
    )
    oh, ow = V.out_size(h, kh, sh, 2 * ph, dh), V.out_size(w, kw, sw, 2 * pw, dw)
    V.check_block_count(cols, (h, w), (oh, ow))
    n, c = cols.shape[0], cols.shape[1] // (kh * kw)
    x = np.empty((n, c, h, w), dtype=cols.dtype)
    with _parallel.team(_threads(cols.size)) as threads:
        _kernels.col2im(
            np.ascontiguousarray(cols), x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, threads
        )
    return x


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) like ``torch.nn.functional.conv2d``.

    Shape:
        x (N, C, H, W), weight (F, C/groups, KH, KW), bias (F,) -> (N, F, OH, OW), with
        ``OH = floor((H + PT + PB - DH*(KH-1) - 1) / SH) + 1`` (OW likewise).

    `padding` is an int, an (H, W) pair, 'valid' or 'same' (stride 1 only; the odd
    pixel of an even kernel goes to the bottom/right).

    Examples
    --------
    >>> import numpy as np
    >>> from pycnn import functional as F
    >>> x = np.ones((2, 3, 5, 5), dtype=np.float32)
    >>> w = np.ones((4, 3, 3, 3), dtype=np.float32)
    >>> y = F.conv2d(x, w, padding="same")
    >>> y.shape, y.dtype, float(y[0, 0, 2, 2]), float(y[0, 0, 0, 0])
    ((2, 4, 5, 5), dtype('float32'), 27.0, 12.0)
    """
    args = V.conv2d_args(x, weight, bias, stride, padding, dilation, groups)
    plan = _conv.plan(x.shape, weight.shape, x.dtype, args)
    epilogue = _conv.Epilogue(bias=None if bias is None else np.ascontiguousarray(bias))
    return plan.forward(np.ascontiguousarray(x), np.ascontiguousarray(weight), epilogue)


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of `conv2d` with respect to x, weight and bias.

    Shape: grad_out (N, F, OH, OW) -> (grad_x (N, C, H, W), grad_weight
    (F, C/groups, KH, KW), grad_bias (F,)).
    """
    args = V.conv2d_args(x, weight, None, stride, padding, dilation, groups)
    plan = _conv.plan(x.shape, weight.shape, x.dtype, args)
    V.check_grad_out(grad_out, x, plan.out_shape)
    return plan.backward(
        np.ascontiguousarray(grad_out), np.ascontiguousarray(x), np.ascontiguousarray(weight)
    )


__all__ += ["conv_transpose2d", "conv_transpose2d_backward"]


def conv_transpose2d(
    x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """2-D transposed convolution like ``torch.nn.functional.conv_transpose2d``: the
    input gradient of a convolution, computed by its plan (GEMM, then col2im).

    Shape:
        x (N, C_in, H, W), weight (C_in, C_out/groups, KH, KW), bias (C_out,) ->
        (N, C_out, OH, OW), ``OH = (H - 1)*SH - 2*PH + DH*(KH - 1) + OPH + 1`` (OW
        likewise), with `output_padding` (OPH, OPW) smaller than the stride or dilation.
    """
    args = V.conv_transpose2d_args(
        x, weight, bias, stride, padding, output_padding, groups, dilation
    )
    plan = _conv.transposed_plan(x.shape, weight.shape, x.dtype, args)
    out, _, _ = plan.backward(
        np.ascontiguousarray(x),
        None,
        np.ascontiguousarray(weight),
        need_weight=False,
        need_bias=False,
    )
    if bias is not None:
        out += bias.reshape(-1, 1, 1)
    return out


def conv_transpose2d_backward(
    grad_out, x, weight, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """Gradients of `conv_transpose2d` with respect to x, weight and bias: a forward
    convolution of `grad_out`, and that convolution's weight gradient.

    Shape: grad_out (N, C_out, OH, OW) -> (grad_x (N, C_in, H, W), grad_weight
    (C_in, C_out/groups, KH, KW), grad_bias (C_out,)).
    """
    args = V.conv_transpose2d_args(
        x, weight, None, stride, padding, output_padding, groups, dilation
    )
    plan = _conv.transposed_plan(x.shape, weight.shape, x.dtype, args)
    V.check_grad_out(grad_out, x, plan.x_shape)
    grad_out = np.ascontiguousarray(grad_out)
    weight = np.ascontiguousarray(weight)
    grad_x = plan.forward(grad_out, weight)
    _, grad_w, _ = plan.backward(
        np.ascontiguousarray(x), grad_out, weight, need_x=False, need_bias=False
    )
    return grad_x, grad_w, grad_out.sum(axis=(0, 2, 3))


# --- fully connected -----------------------------------------------------------------

__all__ += ["linear", "linear_backward"]


def linear(x, weight, bias=None):
    """``x @ weight.T + bias``, like ``torch.nn.functional.linear``; the rows of `x`
    spread over pycnn's threads with BLAS on one thread (`pycnn._parallel`).

    Shape: x (*, in_features), weight (out_features, in_features), bias
    (out_features,) -> (*, out_features).
    """
    V.linear_args(x, weight, bias)
    return _linear(x, weight, bias)


def _linear(x, weight, bias):
    """`linear` of checked arguments."""
    out = _parallel.matmul(x.reshape(-1, weight.shape[1]), weight.T)
    if bias is not None:
        out += bias
    return out.reshape(x.shape[:-1] + (weight.shape[0],))


def linear_backward(grad_out, x, weight):
    """Gradients of `linear` with respect to x, weight and bias.

    Shape: grad_out (*, out_features) -> (grad_x (*, in_features), grad_weight
    (out_features, in_features), grad_bias (out_features,)).
    """
    V.linear_args(x, weight, None)
    V.check_linear_grad_out(grad_out, x, weight)
    return _linear_backward(grad_out, x, weight)


def _linear_backward(grad_out, x, weight):
    """`linear_backward` of checked arguments."""
    g2 = grad_out.reshape(-1, weight.shape[0])
    grad_weight = _parallel.matmul_t(g2, x.reshape(-1, weight.shape[1]))
    grad_x = _parallel.matmul(g2, weight).reshape(x.shape)
    return grad_x, grad_weight, g2.sum(axis=0)


# --- pooling: direct kernels, one (H, W) plane per call ----------------------------

__all__ += [
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "lp_pool2d",
    "lp_pool2d_backward",
]


def _pool_out_size(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's pooling output size along one axis.

    ``floor((size + 2*pad - dilation*(kernel-1) - 1) / stride) + 1``, rounded up instead
    with `ceil_mode`, where a last window that would start in the bottom/right padding
    is dropped.
    """
    out = (
        size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    ) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pool_out_shape(shape, args):
    """(N, C, OH, OW) of a pooling over an (N, C, H, W) input."""
    n, c, h, w = shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = args[:4]
    return (
        n,
        c,
        _pool_out_size(h, kh, sh, ph, dh, args.ceil_mode),
        _pool_out_size(w, kw, sw, pw, dw, args.ceil_mode),
    )


# Below this many elements per thread a pooling call runs on fewer threads: the work
# of a small batch is worth less than waking (and, on a busy machine, waiting for) a team.
POOL_GRAIN = 1 << 15


# The same for the kernels split over pycnn's Python threads (`_max_pool_planes`),
# whose hand-off costs more: max pooling 2x2 of 64 images, input + output elements,
# 1 thread / 2 threads (µs): 82K 65/111, 128K 97/127, 250K 136/143, 376K 151/147,
# 500K 313/227, 1M 389/267.
POOL_GRAIN_PYTHON = 3 << 16
# And for the 2x2 kernel's pass without indices, about 3x faster than its rows, whose
# planes an OpenMP team shares (a cheaper hand-off than pycnn's Python threads). In a
# network, on the output a convolution has just written from both cores (MNIST CNN, 64
# images, µs): 16 x 28x28 planes 314 on one Python thread, 174-196 on two, 124-133 on
# two OpenMP threads; 32 x 14x14 175, 151-159, 81-89; 64 x 7x7 106 on one, 69-73 on
# two OpenMP threads. 16 x 8x8 planes (the digits CNN) took 33 µs on one, 58 on two.
POOL_GRAIN_FLAT = 1 << 16


def _pool_threads(n_elements, n_planes, grain=POOL_GRAIN):
    return max(1, min(get_num_threads(), n_planes, n_elements // grain))


def _planes(a):
    """(N, C, H, W) -> C-contiguous (N*C, H, W): the kernels run plane by plane."""
    n, c, h, w = a.shape
    return np.ascontiguousarray(a).reshape(n * c, h, w)


# Validated max-pooling geometries by input shape and arguments: a layer pools inputs of
# one shape with the same arguments call after call, and checking them again cost a
# third of a small batch's forward. Keys hold the arguments' types (`V._typed_key`).
_MAX_POOL_GEOMETRIES: dict = {}

# Max pooling through a table of tap positions (`_kernels.max_pool_gather`), for
# unpadded windows that all lie inside the plane, where the C kernel's rows do not fill
# its 8-wide vectors (OW not a multiple of 8). Measured against it on 2x2/2 pooling of
# 64 images: 7.7x faster at 4x4 and 7x7 inputs, 3x at 14x14, 1.4x at 8x8 and 28x28;
# 0.8x at 16x16 and 0.5x at 32x32, which keep the C kernel.
POOL_TABLE_MAX = 2**16


def _pool_table(h, w, args, oh, ow):
    """(K, OH*OW) int32 flat positions of the taps of every window of one plane, taps
    in row-major window order; None where the C kernel runs (see above)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = args[:4]
    if (
        ph
        or pw
        or ow % 8 == 0
        or (oh - 1) * sh + (kh - 1) * dh >= h  # a window reaches past the plane
        or (ow - 1) * sw + (kw - 1) * dw >= w
        or kh * kw * oh * ow > POOL_TABLE_MAX
    ):
        return None
    row = np.arange(oh).reshape(1, 1, -1, 1) * sh + np.arange(kh).reshape(-1, 1, 1, 1) * dh
    col = np.arange(ow).reshape(1, 1, 1, -1) * sw + np.arange(kw).reshape(1, -1, 1, 1) * dw
    table = (row * w + col).astype(np.int32).reshape(kh * kw, oh * ow)
    table.flags.writeable = False
    return table


def _max_pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    """(PoolArgs, output shape, tap table or None) of a max pooling of `x`, validated
    once per shape, in the order every backend checks (the geometry,
    `return_indices`, then the windows)."""
    V.check_array(x, "x", 4, "(N, C, H, W)")
    key = (
        x.shape,
        V._typed_key(kernel_size),
        V._typed_key(stride),
        V._typed_key(padding),
        V._typed_key(dilation),
        V._typed_key(ceil_mode),
    )
    cached = None if V.UNCACHED in key else _MAX_POOL_GEOMETRIES.get(key)
    if cached is not None:
        return cached
    args = V.pool2d_args(x, kernel_size, stride, padding, dilation, ceil_mode)
    V.flag(return_indices, "return_indices")
    out_shape = _pool_out_shape(x.shape, args)
    V.check_pool_windows(x.shape[2:], out_shape[2:], args)
    table = _pool_table(*x.shape[2:], args, *out_shape[2:])
    if V.UNCACHED not in key:
        if len(_MAX_POOL_GEOMETRIES) >= V._GEOMETRIES_MAX:
            _MAX_POOL_GEOMETRIES.clear()
        _MAX_POOL_GEOMETRIES[key] = args, out_shape, table
    return args, out_shape, table


def max_pool2d(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """2-D max pooling like ``torch.nn.functional.max_pool2d``.

    Padding counts as -inf; the first maximum in row-major window order wins ties; a
    window holding NaN gives NaN. `stride` defaults to `kernel_size`; `padding` is at
    most half the kernel.

    Shape:
        x (N, C, H, W) -> (N, C, OH, OW), with
        ``OH = floor((H + 2*PH - DH*(KH-1) - 1) / SH) + 1`` (ceil with `ceil_mode`, then
        one less if the last window would start in the bottom padding); OW likewise.
        With `return_indices`, also the int64 indices (N, C, OH, OW) of the maxima as
        flat positions ``h*W + w`` in each input plane.
    """
    geometry = _max_pool_geometry(
        x, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )
    return _max_pool2d(x, geometry, V.flag(return_indices, "return_indices"))


def _max_pool2d(x, geometry, return_indices):
    """`max_pool2d` of a checked `x` with its `_max_pool_geometry`."""
    args, out_shape, table = geometry
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = args[:4]
    n, c, oh, ow = out_shape
    out = _buffers.empty(out_shape, x.dtype)
    indices = _buffers.empty(out_shape, np.int64) if return_indices else None
    if _pool_2x2_pays(x, args, out_shape, return_indices):
        h, w = x.shape[2:]
        if not return_indices:  # the flat pass, its planes over an OpenMP team
            planes = _planes(x).reshape(n * c, h * w)
            with _parallel.team(_pool_threads(x.size + out.size, n * c, POOL_GRAIN_FLAT)) as t:
                _kernels.max_pool_2x2(planes, h, w, out.reshape(n * c, oh * ow), None, t)
            return out
        _max_pool_planes(
            lambda xs, os, ix: _kernels.max_pool_2x2(xs, h, w, os, ix), x, out, indices
        )
        return (out, indices) if return_indices else out
    if table is not None and x.size:
        _max_pool_planes(
            lambda xs, os, ix: _kernels.max_pool_gather(xs, table, os, ix), x, out, indices
        )
        return (out, indices) if return_indices else out
    with _parallel.team(_pool_threads(x.size + out.size, n * c)) as threads:
        _kernels.max_pool2d_forward(
            _planes(x),
            out.reshape(n * c, oh, ow),
            None if indices is None else indices.reshape(n * c, oh, ow),
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
            threads,
        )
    return (out, indices) if return_indices else out


def _pool_2x2_pays(x, args, out_shape, return_indices):
    """Whether `_kernels.max_pool_2x2` takes this pooling: 2x2 windows at stride 2 without
    padding, dilation or ceil_mode's extra window, float32 on AVX2; rows of 7 outputs
    or more, or any rows on the flat pass (no indices, even widths). Measured (64
    images, 2 threads, training / eval, µs) against the table gather and the C kernel:
    16 x 28x28 planes 417/386 -> 269/225, 32 x 14x14 249/231 -> 228/194, 16 x 32x32
    245/209 -> 209/197, 32 x 16x16 199/178 -> 163/158; at 7x7 (rows of 3, all in
    masked lanes) the table gather stays (137 against 205). The flat pass then took
    the eval column to 118, 72, 135 and 86."""
    h, w = x.shape[2:]
    return (
        tuple(args[:4]) == ((2, 2), (2, 2), (0, 0), (1, 1))
        and out_shape[2:] == (h // 2, w // 2)
        and (out_shape[3] >= 7 or not return_indices)
        and x.dtype == np.float32
        and _kernels.simd_target() != "baseline"
    )


def _max_pool_planes(kernel, x, out, indices):
    """``kernel(x_planes, out_planes, indices_planes)`` on ranges of the flattened
    (N*C, H*W) planes, split over as many of pycnn's threads as pay (indices may be
    None): the 2x2 kernel with indices and the table gather."""
    n, c, h, w = x.shape
    planes, n_out = n * c, out.shape[2] * out.shape[3]
    x2 = _planes(x).reshape(planes, h * w)
    out2 = out.reshape(planes, n_out)
    ind2 = None if indices is None else indices.reshape(planes, n_out)

    def work(lo, hi):
        kernel(x2[lo:hi], out2[lo:hi], None if ind2 is None else ind2[lo:hi])

    parts = _pool_threads(x.size + out.size, planes, POOL_GRAIN_PYTHON)
    if parts == 1:
        work(0, planes)
    else:
        _parallel._run(work, [planes * p // parts for p in range(parts + 1)])


def max_pool2d_backward(grad_out, indices, input_shape):
    """Gradient of `max_pool2d` with respect to x: grad_out routed through `indices`.

    Shape: grad_out and indices (N, C, OH, OW) -> grad_x `input_shape` (N, C, H, W);
    where windows overlap, gradients of one pixel add up.
    """
    return _max_pool2d_backward(
        grad_out, indices, V.max_pool2d_backward_args(grad_out, indices, input_shape)
    )


def _max_pool2d_backward(grad_out, indices, input_shape):
    """`max_pool2d_backward` of checked arguments."""
    n, c, h, w = input_shape
    # An output new to the caller, from `pycnn._buffers`: an array of an earlier call is
    # reused only once nothing refers to it any more. Measured on (64, 64, 32, 32): from
    # 32 MiB up (float64 here) glibc maps a fresh array anew and unmaps it on free,
    # every call (its dynamic mmap threshold stops at 32 MiB), and the page faults cost
    # about 3 ms of ~6; the pool keeps arrays up to its per-thread cap (256 MiB).
    grad_x = _buffers.empty((n, c, h, w), grad_out.dtype)
    with _parallel.team(_pool_threads(grad_x.size + grad_out.size, n * c)) as threads:
        bad = _kernels.max_pool2d_backward(
            _planes(grad_out), _planes(indices), grad_x.reshape(n * c, h, w), threads
        )
    if bad:  # the kernel skipped them; say which values were wrong
        V.check_pool_indices(indices, h * w)
    return grad_x


def avg_pool2d(
    x,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    """2-D average pooling like ``torch.nn.functional.avg_pool2d``.

    Each window's sum of input pixels is divided by `divisor_override` if given, else by
    the window size clipped to the padded input (`count_include_pad`, padding counts as
    zeros) or by the number of input pixels in it.

    Shape: x (N, C, H, W) -> (N, C, OH, OW), OH and OW as in `max_pool2d` (dilation 1).
    """
    args, count_include_pad, divisor = V.avg_pool2d_args(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    (kh, kw), (sh, sw), (ph, pw) = args[:3]
    n, c, oh, ow = out_shape = _pool_out_shape(x.shape, args)
    out = np.empty(out_shape, dtype=x.dtype)
    with _parallel.team(_pool_threads(x.size + out.size, n * c)) as threads:
        _kernels.avg_pool2d_forward(
            _planes(x),
            out.reshape(n * c, oh, ow),
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            count_include_pad,
            divisor or 0,
            threads,
        )
    return out


def avg_pool2d_backward(
    grad_out,
    input_shape,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    """Gradient of `avg_pool2d` with respect to x.

    Shape: grad_out (N, C, OH, OW) -> grad_x `input_shape` (N, C, H, W).
    """
    shape, args, count_include_pad, divisor = V.avg_pool2d_backward_args(
        grad_out,
        input_shape,
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )
    n, c, h, w = shape
    V.check_pool_grad_out(grad_out, _pool_out_shape(shape, args))
    (kh, kw), (sh, sw), (ph, pw) = args[:3]
    grad_x = np.empty(shape, dtype=grad_out.dtype)
    with _parallel.team(_pool_threads(grad_x.size + grad_out.size, n * c)) as threads:
        _kernels.avg_pool2d_backward(
            _planes(grad_out),
            grad_x.reshape(n * c, h, w),
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            count_include_pad,
            divisor or 0,
            threads,
        )
    return grad_x


def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """2-D power-average pooling like ``torch.nn.functional.lp_pool2d``.

    ``out = (KH*KW * avg_pool2d(x**p)) ** (1/p)``: the p-norm of each window,
    ``(sum x**p) ** (1/p)``; p = 1 is sum pooling, large p approaches max pooling. As in
    PyTorch, a window clipped by `ceil_mode` is averaged over its clipped size and then
    scaled by the full KH*KW. No padding, no dilation. Composed over the compiled
    `avg_pool2d` (pycnn._lp).

    Shape: x (N, C, H, W) -> (N, C, OH, OW), OH and OW as in `max_pool2d`.
    """
    p, args = V.lp_pool2d_args(x, norm_type, kernel_size, stride, ceil_mode)
    return _lp.lp_pool2d(avg_pool2d, x, p, args)


def lp_pool2d_backward(grad_out, x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Gradient of `lp_pool2d` with respect to x, PyTorch's autograd step by step
    (zero where a window's sum of x**p is zero).

    Shape: grad_out (N, C, OH, OW) -> grad_x (N, C, H, W).
    """
    p, args = V.lp_pool2d_args(x, norm_type, kernel_size, stride, ceil_mode)
    V.check_grad_out(grad_out, x, _pool_out_shape(x.shape, args))
    return _lp.lp_pool2d_backward(avg_pool2d, avg_pool2d_backward, grad_out, x, p, args)


# --- adaptive pooling: NumPy, separable; reshaped means when the split is even -------

__all__ += [
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
]


def _adaptive_bounds(size, out):
    """PyTorch's windows along one axis: window i spans
    [floor(i*size/out), ceil((i+1)*size/out))."""
    i = np.arange(out)
    return i * size // out, -(-(i + 1) * size // out)


def adaptive_avg_pool2d(x, output_size):
    """2-D adaptive average pooling like ``torch.nn.functional.adaptive_avg_pool2d``.

    Output pixel (i, j) is the mean of rows [floor(i*H/OH), ceil((i+1)*H/OH)) and
    columns [floor(j*W/OW), ceil((j+1)*W/OW)). `output_size` is an int or a pair whose
    None entries keep the input's size. When OH divides H and OW divides W (global
    pooling, ``output_size=1``, among them) the windows tile the input and the result
    is one reshaped mean; otherwise the mean is taken over columns, then over rows,
    one output column (row) at a time.

    Shape: x (N, C, H, W) -> (N, C, OH, OW).
    """
    oh, ow = V.adaptive_pool2d_args(x, output_size)
    n, c, h, w = x.shape
    if oh == ow == 1 and h * w and x.dtype in (np.float32, np.float64):
        # global pooling (a ResNet's head): each plane's sum in double, in one compiled
        # pass; NumPy's mean took 130 µs (230 in a network) on 64 x 64 x 8x8 planes,
        # 30 ns a plane whatever its size
        out = np.empty((n, c, 1, 1), dtype=x.dtype)
        _kernels.plane_means(np.ascontiguousarray(x).reshape(n * c, h * w), out.reshape(-1))
        return out
    if h % oh == 0 and w % ow == 0:
        return x.reshape(n, c, oh, h // oh, ow, w // ow).mean(axis=(3, 5))
    cols = np.empty((n, c, h, ow), dtype=x.dtype)
    for j, (s, e) in enumerate(zip(*_adaptive_bounds(w, ow))):
        cols[..., j] = x[..., s:e].mean(axis=-1)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    for i, (s, e) in enumerate(zip(*_adaptive_bounds(h, oh))):
        out[:, :, i] = cols[:, :, s:e].mean(axis=2)
    return out


def adaptive_avg_pool2d_backward(grad_out, input_shape, output_size):
    """Gradient of `adaptive_avg_pool2d` with respect to x: each grad_out entry spread
    evenly over its window (overlapping windows add up).

    Shape: grad_out (N, C, OH, OW) -> grad_x `input_shape` (N, C, H, W).
    """
    n, c, h, w = V.adaptive_avg_pool2d_backward_args(grad_out, input_shape, output_size)
    oh, ow = grad_out.shape[2:]
    dtype = grad_out.dtype.type
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        g = grad_out / dtype(kh * kw)
        return np.ascontiguousarray(
            np.broadcast_to(g[:, :, :, None, :, None], (n, c, oh, kh, ow, kw)).reshape(
                n, c, h, w
            )
        )
    rows = np.zeros((n, c, h, ow), dtype=grad_out.dtype)
    for i, (s, e) in enumerate(zip(*_adaptive_bounds(h, oh))):
        rows[:, :, s:e] += (grad_out[:, :, i] / dtype(e - s))[:, :, None]
    grad_x = np.zeros((n, c, h, w), dtype=grad_out.dtype)
    for j, (s, e) in enumerate(zip(*_adaptive_bounds(w, ow))):
        grad_x[..., s:e] += (rows[..., j] / dtype(e - s))[..., None]
    return grad_x


def _window_max(v):
    """Maximum over the last axis and its position, as PyTorch scans a window: the
    first maximum wins ties, and NaN wins, the last NaN if several."""
    where = np.argmax(v, axis=-1)
    nan = np.isnan(v)
    if nan.any():
        last_nan = v.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
        where = np.where(nan.any(axis=-1), last_nan, where)
    return np.take_along_axis(v, where[..., None], axis=-1)[..., 0], where


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """2-D adaptive max pooling like ``torch.nn.functional.adaptive_max_pool2d``.

    The windows of `adaptive_avg_pool2d`; the first maximum in row-major window order
    wins ties and a window holding NaN gives NaN. With `return_indices`, also the int64
    indices (N, C, OH, OW) of the maxima as flat positions ``h*W + w`` in each input
    plane. Evenly split inputs are reshaped into their windows; otherwise the maximum
    is taken along rows, then along columns (row-major first maximum = first row holding
    the maximum, then its first column holding it).

    Shape: x (N, C, H, W) -> (N, C, OH, OW).
    """
    oh, ow = V.adaptive_pool2d_args(x, output_size)
    return_indices = V.flag(return_indices, "return_indices")
    n, c, h, w = x.shape
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        windows = x.reshape(n, c, oh, kh, ow, kw).transpose(0, 1, 2, 4, 3, 5)
        out, k = _window_max(windows.reshape(n, c, oh, ow, kh * kw))
        if not return_indices:
            return out
        rows = (np.arange(oh) * kh)[:, None] + k // kw
        return out, rows * w + (np.arange(ow) * kw) + k % kw
    # along each row: the maximum of every column window and its column
    col_max = np.empty((n, c, h, ow), dtype=x.dtype)
    col_at = np.empty((n, c, h, ow), dtype=np.int64)
    for j, (s, e) in enumerate(zip(*_adaptive_bounds(w, ow))):
        col_max[..., j], where = _window_max(x[..., s:e])
        col_at[..., j] = where + s
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    indices = np.empty((n, c, oh, ow), dtype=np.int64)
    for i, (s, e) in enumerate(zip(*_adaptive_bounds(h, oh))):
        out[:, :, i], r = _window_max(np.moveaxis(col_max[:, :, s:e], 2, -1))
        at = np.take_along_axis(col_at[:, :, s:e], r[:, :, None], axis=2)[:, :, 0]
        indices[:, :, i] = (r + s) * w + at
    return (out, indices) if return_indices else out


def adaptive_max_pool2d_backward(grad_out, indices, input_shape):
    """Gradient of `adaptive_max_pool2d` with respect to x: grad_out routed through
    `indices` (the scatter of `max_pool2d_backward`, its compiled kernel).

    Shape: grad_out and indices (N, C, OH, OW) -> grad_x `input_shape` (N, C, H, W).
    """
    return max_pool2d_backward(grad_out, indices, input_shape)


# --- interpolation: nearest neighbour, NumPy gathers ---------------------------------

__all__ += ["interpolate", "interpolate_backward"]


def _nearest_sources(in_size, out_size, scale):
    """Source index of every output index along one axis, as PyTorch's `nearest_idx`:
    the identity for an equal size, ``i >> 1`` for twice the size, else
    ``min(floor(i * s), in - 1)`` computed in float32 with ``s = 1 / scale_factor`` if
    it was given, else ``in / out``. Nondecreasing in i."""
    if out_size == in_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) >> 1
    s = (
        np.float32(1.0 / scale)
        if scale is not None
        else np.float32(in_size) / np.float32(out_size)
    )
    src = np.floor(np.arange(out_size, dtype=np.float32) * s).astype(np.int64)
    return np.minimum(src, in_size - 1)


def interpolate(x, *, scale_factor=None, size=None, mode="nearest"):
    """Resize like ``torch.nn.functional.interpolate``, nearest neighbour only.

    Exactly one of `size` (an int or an (OH, OW) pair) and `scale_factor` (a positive
    real or a pair; OH = floor(H * SH)) is given. Output pixel (i, j) copies input pixel
    (floor(i * H / OH), floor(j * W / OW)), PyTorch's rule: with `scale_factor`,
    ``1 / scale_factor`` stands for H / OH, in float32 as PyTorch computes it. Any mode
    but 'nearest' raises (NotImplementedError for PyTorch's other modes). `size` and
    `scale_factor` are keyword-only: PyTorch's positional order is (size, scale_factor).

    Shape: x (N, C, H, W) -> (N, C, OH, OW).
    """
    (oh, ow), scales = V.interpolate_args(x, scale_factor, size, mode)
    sh, sw = scales or (None, None)
    rows = _nearest_sources(x.shape[2], oh, sh)
    cols = _nearest_sources(x.shape[3], ow, sw)
    return np.take(np.take(x, rows, axis=2), cols, axis=3)


def _sum_runs(g, sources, in_size, axis):
    """The adjoint of gathering `sources` along `axis`: the gradients of the output
    indices that read one source add up there (runs, since `sources` is sorted)."""
    starts = np.flatnonzero(np.concatenate(([True], sources[1:] != sources[:-1])))
    shape = list(g.shape)
    shape[axis] = in_size
    result = np.zeros(shape, dtype=g.dtype)
    where = [slice(None)] * g.ndim
    where[axis] = sources[starts]
    result[tuple(where)] = np.add.reduceat(g, starts, axis=axis)
    return result


def interpolate_backward(
    grad_out, input_shape, *, scale_factor=None, size=None, mode="nearest"
):
    """Gradient of `interpolate` with respect to x: each input pixel receives the sum of
    the gradients of the output pixels that copied it.

    Shape: grad_out (N, C, OH, OW) -> grad_x `input_shape` (N, C, H, W).
    """
    shape, scales = V.interpolate_backward_args(grad_out, input_shape, scale_factor, size, mode)
    sh, sw = scales or (None, None)
    (h, w), (oh, ow) = shape[2:], grad_out.shape[2:]
    g = _sum_runs(grad_out, _nearest_sources(w, ow, sw), w, 3)
    return _sum_runs(g, _nearest_sources(h, oh, sh), h, 2)
