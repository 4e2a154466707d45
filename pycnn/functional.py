"""Compiled operations: validate -> allocate -> C kernel -> BLAS.

Same names, signatures, errors and results as `pycnn.reference` (pure NumPy); the
tests hold the two to each other. Arrays are NCHW, float32 or float64 (preserved).
Hyper-parameters follow PyTorch: an int or an (H, W) pair.
"""
import math
import threading

import numpy as np

from pycnn import _lp, _parallel
from pycnn import _validation as V
from pycnn._config import get_num_threads
from pycnn._ext import load_kernels

_kernels = load_kernels()  # an ImportError here says what is missing and how to fix it

__all__ = ["im2col", "col2im", "conv2d", "conv2d_backward"]

# The column matrix of a whole batch can be hundreds of MB; convolutions process the
# batch in chunks whose columns fit in this many bytes (at least one image a chunk).
# Small chunks keep the columns in cache between im2col and the GEMM that reads them.
WORKSPACE_BYTES = 4 * 2**20

# One reusable workspace per thread: a fresh large buffer on every call costs page
# faults each time, and threads must not share one. A thread keeps at most
# WORKSPACE_CACHE_BYTES between calls; a chunk that needs more (one image whose column
# matrix alone is larger) gets a buffer of its own, freed when the call ends.
WORKSPACE_CACHE_BYTES = 4 * WORKSPACE_BYTES
_local = threading.local()


def _workspace(shape, dtype):
    """An uninitialised array of `shape`, in this thread's workspace when it fits."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if nbytes > WORKSPACE_CACHE_BYTES:
        V.check_memory("A convolution's workspace", nbytes, f"shape={tuple(shape)}")
        return np.empty(shape, dtype=dtype)
    buf = getattr(_local, "buffer", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _local.buffer = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


# Below this many elements, starting an OpenMP team costs more than it saves.
PARALLEL_MIN_ELEMENTS = 1 << 15


def _threads(elements):
    """Threads for a standalone kernel call touching `elements` array elements."""
    return get_num_threads() if elements >= PARALLEL_MIN_ELEMENTS else 1


def _chunks(lo, hi, bytes_per_image):
    """Ranges of images [start, stop) within [lo, hi) whose columns fit the workspace."""
    step = max(1, WORKSPACE_BYTES // max(bytes_per_image, 1))
    for start in range(lo, hi, step):
        yield start, min(start + step, hi)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Unfold sliding blocks of `x` into columns, like ``torch.nn.functional.unfold``.

    Shape: x (N, C, H, W) -> (N, C*KH*KW, OH*OW), with rows ordered (c, i, j) and
    ``OH = floor((H + 2*PH - DH*(KH-1) - 1) / SH) + 1`` (OW likewise).
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = V.im2col_args(
        x, kernel_size, stride, padding, dilation)
    n, c, h, w = x.shape
    oh, ow = V.out_size(h, kh, sh, 2 * ph, dh), V.out_size(w, kw, sw, 2 * pw, dw)
    cols = np.empty((n, c * kh * kw, oh * ow), dtype=x.dtype)
    with _parallel.team(_threads(cols.size)) as threads:
        _kernels.im2col(np.ascontiguousarray(x), cols, kh, kw, sh, sw, ph, pw, dh, dw,
                        oh, ow, threads)
    return cols


def col2im(cols, output_size, kernel_size, stride=1, padding=0, dilation=1):
    """Sum columns back into images, like ``torch.nn.functional.fold``.

    The adjoint of `im2col`: entries of overlapping blocks add up.
    Shape: cols (N, C*KH*KW, L) -> (N, C, H, W) with (H, W) = `output_size` and
    L = OH*OW for the geometry given.
    """
    (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = V.col2im_args(
        cols, output_size, kernel_size, stride, padding, dilation)
    oh, ow = V.out_size(h, kh, sh, 2 * ph, dh), V.out_size(w, kw, sw, 2 * pw, dw)
    V.check_block_count(cols, (h, w), (oh, ow))
    n, c = cols.shape[0], cols.shape[1] // (kh * kw)
    x = np.empty((n, c, h, w), dtype=cols.dtype)
    with _parallel.team(_threads(cols.size)) as threads:
        _kernels.col2im(np.ascontiguousarray(cols), x, kh, kw, sh, sw, ph, pw, dh, dw,
                        oh, ow, threads)
    return x


class _ConvGeometry:
    """Sizes of one convolution, derived once from validated arguments."""

    def __init__(self, x, weight, args):
        self.n, self.c, self.h, self.w = x.shape
        self.f, self.cg, self.kh, self.kw = weight.shape
        self.g = args.groups
        (self.sh, self.sw), (self.dh, self.dw) = args.stride, args.dilation
        (pt, pb), (pl, pr) = args.padding
        self.ph, self.pw = pt, pl          # the kernels need the top/left padding only
        self.oh = V.out_size(self.h, self.kh, self.sh, pt + pb, self.dh)
        self.ow = V.out_size(self.w, self.kw, self.sw, pl + pr, self.dw)
        self.rows = self.cg * self.kh * self.kw          # GEMM depth of one group
        self.blocks = self.oh * self.ow
        self.macs = self.f * self.rows * self.blocks      # multiply-adds of one image
        self.padding = (pt, pb, pl, pr)
        # a 1x1, stride-1, unpadded convolution is a plain GEMM on the input
        self.pointwise = (self.kh == self.kw == 1 and self.sh == self.sw == 1
                          and pt == pb == pl == pr == 0)
        # Groups of 1-3 input channels make the column matrix a GEMM operand only a
        # few rows deep, which BLAS handles poorly; the direct kernel wins there
        # (measured: 1.1-2x on first layers and depthwise layers), except at column
        # stride > 1, on rows narrower than its 2-vector block, and in float32 with
        # more than 32 filters a group, where BLAS's wide GEMM is faster again.
        lanes = 32 // x.dtype.itemsize
        self.direct = (self.cg <= 3 and self.sw == 1 and self.ow >= 2 * lanes
                       and not self.pointwise
                       and (x.dtype == np.float64 or self.f // self.g <= 32))

    def columns(self, x_chunk):
        """The column matrix of a chunk of images, (n, G, rows, L), in the workspace.

        im2col runs on the calling thread: convolutions spread ranges of images over
        pycnn's threads themselves (`_parallel.over_images`).
        """
        nb = x_chunk.shape[0]
        if self.pointwise:
            return x_chunk.reshape(nb, self.g, self.rows, self.blocks)
        cols = _workspace((nb, self.c * self.kh * self.kw, self.blocks), x_chunk.dtype)
        _kernels.im2col(x_chunk, cols, self.kh, self.kw, self.sh, self.sw, self.ph,
                        self.pw, self.dh, self.dw, self.oh, self.ow, 1)
        return cols.reshape(nb, self.g, self.rows, self.blocks)

    def image_bytes(self, dtype):
        """Bytes of one image's column matrix."""
        return self.c * self.kh * self.kw * self.blocks * np.dtype(dtype).itemsize

    def padded(self, x_chunk):
        """A chunk of images with its zero padding, in the workspace (the direct
        kernel reads every tap without a bounds test)."""
        pt, pb, pl, pr = self.padding
        if pt == pb == pl == pr == 0:
            return x_chunk
        nb = x_chunk.shape[0]
        xp = _workspace((nb, self.c, self.h + pt + pb, self.w + pl + pr), x_chunk.dtype)
        xp.fill(0)
        xp[:, :, pt:pt + self.h, pl:pl + self.w] = x_chunk
        return xp

    def padded_bytes(self, dtype):
        pt, pb, pl, pr = self.padding
        return self.c * (self.h + pt + pb) * (self.w + pl + pr) * np.dtype(dtype).itemsize


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) like ``torch.nn.functional.conv2d``.

    Shape:
        x (N, C, H, W), weight (F, C/groups, KH, KW), bias (F,) -> (N, F, OH, OW), with
        ``OH = floor((H + PT + PB - DH*(KH-1) - 1) / SH) + 1`` (OW likewise).
    `padding` is an int, an (H, W) pair, 'valid' or 'same' (stride 1 only; the odd
    pixel of an even kernel goes to the bottom/right).
    """
    args = V.conv2d_args(x, weight, bias, stride, padding, dilation, groups)
    geo = _ConvGeometry(x, weight, args)
    x = np.ascontiguousarray(x)
    w4 = np.ascontiguousarray(weight)
    w = w4.reshape(geo.g, geo.f // geo.g, geo.rows)
    out = np.empty((geo.n, geo.g, geo.f // geo.g, geo.blocks), dtype=x.dtype)
    out4 = out.reshape(geo.n, geo.f, geo.oh, geo.ow)
    b1 = None if bias is None else np.ascontiguousarray(bias)
    b = None if bias is None else b1.reshape(geo.g, geo.f // geo.g, 1)

    def direct(lo, hi):
        for start, stop in _chunks(lo, hi, geo.padded_bytes(x.dtype)):
            _kernels.conv2d_direct(geo.padded(x[start:stop]), w4, b1, out4[start:stop],
                                   geo.g, geo.sh, geo.sw, geo.dh, geo.dw, 1)

    def images(lo, hi):
        for start, stop in _chunks(lo, hi, geo.image_bytes(x.dtype)):
            cols = geo.columns(x[start:stop])
            # (G, F/G, rows) @ (n, G, rows, L)
            chunk = np.matmul(w, cols, out=out[start:stop])
            if b is not None:
                chunk += b                                # while the chunk is in cache

    def columns_of_one_image():
        # one image's GEMM, its columns (output pixels) spread over pycnn's threads
        cols = geo.columns(x)

        def columns(lo, hi):
            part = np.matmul(w, cols[..., lo:hi], out=out[..., lo:hi])
            if b is not None:
                part += b

        _parallel.over_ranges(geo.blocks, geo.macs // geo.blocks, columns)

    if geo.direct:
        _parallel.over_images(geo.n, geo.macs, direct)
    elif geo.n == 1 and geo.blocks > 1:
        columns_of_one_image()
    else:
        _parallel.over_images(geo.n, geo.macs, images)
    return out4


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of `conv2d` with respect to x, weight and bias.

    Shape: grad_out (N, F, OH, OW) -> (grad_x (N, C, H, W), grad_weight
    (F, C/groups, KH, KW), grad_bias (F,)).
    """
    args = V.conv2d_args(x, weight, None, stride, padding, dilation, groups)
    geo = _ConvGeometry(x, weight, args)
    V.check_grad_out(grad_out, x, (geo.n, geo.f, geo.oh, geo.ow))
    x = np.ascontiguousarray(x)
    fg = geo.f // geo.g
    w_t = np.ascontiguousarray(weight).reshape(geo.g, fg, geo.rows).transpose(0, 2, 1)
    dout = np.ascontiguousarray(grad_out).reshape(geo.n, geo.g, fg, geo.blocks)

    grad_bias = grad_out.sum(axis=(0, 2, 3))
    grad_x = np.empty_like(x)

    def images(lo, hi):
        """grad_x of images [lo, hi), and their part of grad_weight."""
        grad_w = np.zeros((geo.g, fg, geo.rows), dtype=x.dtype)
        for start, stop in _chunks(lo, hi, geo.image_bytes(x.dtype)):
            nb, d = stop - start, dout[start:stop]
            cols = geo.columns(x[start:stop])
            grad_w += np.matmul(d, cols.transpose(0, 1, 3, 2)).sum(axis=0)
            if geo.pointwise:
                np.matmul(w_t, d, out=grad_x[start:stop].reshape(cols.shape))
            else:
                dcols = np.matmul(w_t, d, out=cols)   # (n, G, rows, L), reusing the columns
                _kernels.col2im(dcols.reshape(nb, geo.c * geo.kh * geo.kw, geo.blocks),
                                grad_x[start:stop], geo.kh, geo.kw, geo.sh, geo.sw,
                                geo.ph, geo.pw, geo.dh, geo.dw, geo.oh, geo.ow, 1)
        return grad_w

    def one_image():
        """Both gradients of one image, its GEMMs spread over pycnn's threads: over
        the rows of grad_weight, then over the columns of the input's gradient."""
        cols = geo.columns(x)
        grad_w = np.empty((geo.g, fg, geo.rows), dtype=x.dtype)

        def weight_rows(lo, hi):
            np.matmul(dout[0, :, lo:hi], cols[0].transpose(0, 2, 1), out=grad_w[:, lo:hi])

        def columns(lo, hi):
            target = grad_x.reshape(cols.shape) if geo.pointwise else cols
            np.matmul(w_t, dout[..., lo:hi], out=target[..., lo:hi])

        _parallel.over_ranges(fg, geo.macs // fg, weight_rows)
        _parallel.over_ranges(geo.blocks, geo.macs // geo.blocks, columns)
        if not geo.pointwise:          # the columns now hold their gradient
            _kernels.col2im(cols.reshape(1, geo.c * geo.kh * geo.kw, geo.blocks), grad_x,
                            geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw, geo.dh,
                            geo.dw, geo.oh, geo.ow, 1)
        return grad_w

    if geo.n == 1 and geo.blocks > 1:
        grad_w = one_image()
    else:
        grad_w = sum(_parallel.over_images(geo.n, 2 * geo.macs, images))
    return grad_x, grad_w.reshape(weight.shape), grad_bias


# --- pooling: direct kernels, one (H, W) plane per call ----------------------------

__all__ += ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
            "lp_pool2d", "lp_pool2d_backward"]


def _pool_out_size(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's pooling output size along one axis.

    ``floor((size + 2*pad - dilation*(kernel-1) - 1) / stride) + 1``, rounded up instead
    with `ceil_mode`, where a last window that would start in the bottom/right padding
    is dropped.
    """
    out = (size + 2 * pad - dilation * (kernel - 1) - 1
           + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pool_out_shape(shape, args):
    """(N, C, OH, OW) of a pooling over an (N, C, H, W) input."""
    n, c, h, w = shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = args[:4]
    return (n, c, _pool_out_size(h, kh, sh, ph, dh, args.ceil_mode),
            _pool_out_size(w, kw, sw, pw, dw, args.ceil_mode))


# Below this many elements per thread a pooling call runs on fewer threads: the work
# of a small batch is worth less than waking (and, on a busy machine, waiting for) a team.
POOL_GRAIN = 1 << 15


def _pool_threads(n_elements, n_planes):
    return max(1, min(get_num_threads(), n_planes, n_elements // POOL_GRAIN))


def _planes(a):
    """(N, C, H, W) -> C-contiguous (N*C, H, W): the kernels run plane by plane."""
    n, c, h, w = a.shape
    return np.ascontiguousarray(a).reshape(n * c, h, w)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
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
    args = V.pool2d_args(x, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = V.flag(return_indices, "return_indices")
    out_shape = _pool_out_shape(x.shape, args)
    V.check_pool_windows(x.shape[2:], out_shape[2:], args)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = args[:4]
    n, c, oh, ow = out_shape
    out = np.empty(out_shape, dtype=x.dtype)
    indices = np.empty(out_shape, dtype=np.int64) if return_indices else None
    with _parallel.team(_pool_threads(x.size + out.size, n * c)) as threads:
        _kernels.max_pool2d_forward(
            _planes(x), out.reshape(n * c, oh, ow),
            None if indices is None else indices.reshape(n * c, oh, ow),
            kh, kw, sh, sw, ph, pw, dh, dw, threads)
    return (out, indices) if return_indices else out


def max_pool2d_backward(grad_out, indices, input_shape):
    """Gradient of `max_pool2d` with respect to x: grad_out routed through `indices`.

    Shape: grad_out and indices (N, C, OH, OW) -> grad_x `input_shape` (N, C, H, W);
    where windows overlap, gradients of one pixel add up.
    """
    n, c, h, w = V.max_pool2d_backward_args(grad_out, indices, input_shape)
    # A fresh output, as every op here returns. Measured on (64, 64, 32, 32): from 32 MiB
    # up (float64 here) glibc maps it anew and unmaps it on free, every call (its
    # dynamic mmap threshold stops at 32 MiB), and the page faults cost about 3 ms of
    # ~6 (PyTorch, without NumPy's huge pages, pays ~18 ms of 23). Smaller arrays are
    # reused from the heap. Reusing one buffer across calls would hand callers arrays
    # that the next call overwrites, so the cost stays; MALLOC_MMAP_THRESHOLD_ and
    # MALLOC_TRIM_THRESHOLD_ in the environment remove it for a whole process.
    grad_x = np.empty((n, c, h, w), dtype=grad_out.dtype)
    with _parallel.team(_pool_threads(grad_x.size + grad_out.size, n * c)) as threads:
        bad = _kernels.max_pool2d_backward(_planes(grad_out), _planes(indices),
                                           grad_x.reshape(n * c, h, w), threads)
    if bad:         # the kernel skipped them; say which values were wrong
        V.check_pool_indices(indices, h * w)
    return grad_x


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling like ``torch.nn.functional.avg_pool2d``.

    Each window's sum of input pixels is divided by `divisor_override` if given, else by
    the window size clipped to the padded input (`count_include_pad`, padding counts as
    zeros) or by the number of input pixels in it.

    Shape: x (N, C, H, W) -> (N, C, OH, OW), OH and OW as in `max_pool2d` (dilation 1).
    """
    args, count_include_pad, divisor = V.avg_pool2d_args(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    (kh, kw), (sh, sw), (ph, pw) = args[:3]
    n, c, oh, ow = out_shape = _pool_out_shape(x.shape, args)
    out = np.empty(out_shape, dtype=x.dtype)
    with _parallel.team(_pool_threads(x.size + out.size, n * c)) as threads:
        _kernels.avg_pool2d_forward(_planes(x), out.reshape(n * c, oh, ow), kh, kw, sh,
                                    sw, ph, pw, count_include_pad, divisor or 0, threads)
    return out


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Gradient of `avg_pool2d` with respect to x.

    Shape: grad_out (N, C, OH, OW) -> grad_x `input_shape` (N, C, H, W).
    """
    shape, args, count_include_pad, divisor = V.avg_pool2d_backward_args(
        grad_out, input_shape, kernel_size, stride, padding, ceil_mode,
        count_include_pad, divisor_override)
    n, c, h, w = shape
    V.check_pool_grad_out(grad_out, _pool_out_shape(shape, args))
    (kh, kw), (sh, sw), (ph, pw) = args[:3]
    grad_x = np.empty(shape, dtype=grad_out.dtype)
    with _parallel.team(_pool_threads(grad_x.size + grad_out.size, n * c)) as threads:
        _kernels.avg_pool2d_backward(_planes(grad_out), grad_x.reshape(n * c, h, w), kh,
                                     kw, sh, sw, ph, pw, count_include_pad, divisor or 0,
                                     threads)
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
