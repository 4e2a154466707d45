"""Convolution plans: how one convolution geometry runs, decided once and reused.

A `ConvPlan` is built from sizes alone (N, C, H, W, F, kernel, stride, padding,
dilation, groups, dtype). It owns the geometry (output size, GEMM shapes), the choice
of algorithm (a plain GEMM for pointwise convolutions, the direct kernel for groups of
1-3 input channels where it measured faster, Winograd's F(4x4, 3x3) for stride-1 3x3
convolutions where it measured faster, im2col + GEMM otherwise), the chunking of
the batch into pieces whose column matrix fits the workspace, and the loop that spreads
the chunks over pycnn's threads (`pycnn._parallel`). Its `forward` takes an epilogue
applied to each chunk of output while it is still in cache (the bias today; an
activation or a batch-norm scale and shift fit the same hook).

Plans never change once built (the one array a plan may hold, the position table of
its small-plane im2col, is read-only), so one plan serves every thread;
`plan()` caches them by their sizes, so a layer that sees the same input shape again
pays for validation and planning once. The callers (`functional.conv2d` and
`conv2d_backward`, the layers) validate arguments first: a plan trusts its sizes.
"""

import functools
import math
import threading
from collections import namedtuple

import numpy as np

from pycnn import _buffers, _eltwise, _parallel
from pycnn import _validation as V
from pycnn._config import get_num_threads, get_winograd
from pycnn._ext import load_kernels

_kernels = load_kernels()

__all__ = ["ConvPlan", "plan", "Epilogue"]

# The column matrix of a whole batch can be hundreds of MB; convolutions process the
# batch in chunks whose columns fit in this many bytes (at least one image a chunk).
# Small chunks keep the columns in cache between im2col and the GEMM that reads them.
WORKSPACE_BYTES = 4 * 2**20

# One reusable workspace per thread: a fresh large buffer on every call costs page
# faults each time, and threads must not share one. A thread keeps at most
# WORKSPACE_CACHE_BYTES between calls; a chunk that needs more (one image whose column
# matrix alone is larger) gets a buffer of its own, freed when the call ends.
WORKSPACE_CACHE_BYTES = 4 * WORKSPACE_BYTES
# A thread also keeps the views of its buffer that it handed out, by shape and dtype (at
# most this many), so that a layer seen again gets its view in one dict lookup.
WORKSPACE_VIEWS = 256
_local = threading.local()


# A training forward on the im2col path keeps its column matrix for backward, which
# needs it for the weight gradient, when it is at most this large: im2col then runs once
# a step instead of twice. Small convolutions gain most (on 4x4 and 8x8 images im2col
# costs more than their GEMMs); large ones would hold too much memory until backward.
KEEP_COLUMNS_BYTES = 4 * 2**20


def workspace(shape, dtype):
    """An uninitialised array of `shape`, in this thread's workspace when it fits."""
    views = getattr(_local, "views", None)
    key = (shape, dtype)
    if views is not None:
        view = views.get(key)  # the same view of the same buffer as the last time
        if view is not None:
            return view
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if nbytes > WORKSPACE_CACHE_BYTES:
        V.check_memory("A convolution's workspace", nbytes, f"shape={tuple(shape)}")
        return np.empty(shape, dtype=dtype)
    buf = getattr(_local, "buffer", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _local.buffer = np.empty(max(nbytes, 1), dtype=np.uint8)
        views = _local.views = {}  # views of the old buffer would keep it alive
    view = buf[:nbytes].view(dtype).reshape(shape)
    if len(views) < WORKSPACE_VIEWS:
        views[key] = view
    return view


def _chunks(lo, hi, bytes_per_image):
    """Ranges of images [start, stop) within [lo, hi) whose columns fit the workspace."""
    step = max(1, WORKSPACE_BYTES // max(bytes_per_image, 1))
    for start in range(lo, hi, step):
        yield start, min(start + step, hi)


# im2col through a table of positions (`_kernels.gather_columns`) where the C kernel's
# per-row cost dominates: output rows of at most this many pixels (measured on 3x3
# layers, 64 images: 6x faster at 4x4, 3x at 7x7, 1.5x at 14x14, 1.2x at 16x16 and
# 0.8x at 28x28), with a table of at most GATHER_TABLE_MAX entries.
GATHER_MAX_OW = 16
GATHER_TABLE_MAX = 2**20
# The weight gradient of a chunk of images as one GEMM, (F, n*L) @ (n*L, rows), on
# columns `_kernels.gather_columns_t` lays side by side, instead of n GEMMs L deep
# summed: up to images of this many output pixels, from this many GEMM rows (input
# channels times taps) up. Measured on 3x3 layers of 64 images, one thread, columns
# computed again: 1.16-1.22x faster at 7x7 and 8x8 with 64 channels, even at 14x14 and
# 16x16, 0.83-0.86x at 28x28 and 32x32 (16 filters: BLAS's GEMM is poor that thin);
# from kept columns (which it must transpose) 1.1x at 8x8 with 64 channels, even with
# 32, 0.78x with 16. Up to 256 output pixels: the per-image GEMMs' (n, F, rows) products,
# summed after, are a pass over memory on both threads at once, which one GEMM a chunk
# avoids; the backward of 32 images 64 -> 128 channels, 3x3 at stride 2 to 14x14, went
# 15.0/13.8 -> 13.5/13.5 ms (two A/B pairs), of 64 images 64 -> 64 at 14x14 (stride 1,
# im2col) 16.7/15.8 -> 15.9/16.0.
BATCHED_WEIGHT_GRAD_MAX_L = 256
BATCHED_WEIGHT_GRAD_MIN_ROWS = 512


def _column_table(c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """The flat input position each element of one image's column matrix reads, in
    im2col's order (channel, kernel row, kernel column, output row, output column);
    C*H*W, one past the image, where it reads the zero padding. int32, read-only."""
    ci = np.arange(c).reshape(-1, 1, 1, 1, 1)
    iy = (
        np.arange(oh).reshape(1, 1, 1, -1, 1) * sh
        - ph
        + np.arange(kh).reshape(1, -1, 1, 1, 1) * dh
    )
    ix = (
        np.arange(ow).reshape(1, 1, 1, 1, -1) * sw
        - pw
        + np.arange(kw).reshape(1, 1, -1, 1, 1) * dw
    )
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    table = np.where(inside, ci * (h * w) + iy * w + ix, c * h * w).astype(np.int32).ravel()
    table.flags.writeable = False
    return table


# Winograd: the transformed input and output tiles of one chunk of images (36 values a
# tile and channel, for input and output channels) fit in this many bytes, about the L2
# cache of one core; and a batch splits into at least this many chunks when it has as
# many images, so that pycnn's threads share it.
WINOGRAD_BYTES = 2**20
WINOGRAD_CHUNKS = 4


def _winograd_pays(n, c, f, oh, ow):
    """Whether Winograd measured faster than im2col + GEMM for a stride-1 3x3
    convolution of N images from C to F channels and an OH x OW output (for an input
    gradient: from the layer's F to its C, over its input's H x W).

    Measured (bench/bench_winograd.py --all, 2 threads, medians of 15 interleaved runs
    on a quiet machine), im2col time / Winograd time, forward and input gradient:

    ======================  ===========  ===========
    N, C -> F, H x W         float32      float64
    ======================  ===========  ===========
    64, 32 -> 64, 32x32      2.08 / 1.55  2.21 / 2.09
    16, 64 -> 64, 56x56      2.14 / 1.96  2.37 / 2.25
    64, 16 -> 16, 28x28      1.66 / 1.51  1.73 / 1.45
    64, 32 -> 32, 14x14      1.58 / 1.37  1.55 / 1.36
    64, 64 -> 64, 8x8        1.70 / 1.73  2.02 / 1.74
    64, 64 -> 64, 7x7        1.47 / 1.45  1.68 / 1.48
    32, 16 -> 32, 4x4        0.85 / 1.01  1.37 / 1.37
    ======================  ===========  ===========

    In effective GFLOP/s (the direct convolution's operations / time), the float32
    forwards ran at 225 (32x32) and 265 (56x56), against 159 for a float32 1024^3
    GEMM on the same 2 threads (im2col: 108 and 124).

    The products of a chunk of images are one fixed-order call at each position
    (`_kernels.matmul_fixed`, see `ConvPlan._winograd`), so an image of a few tiles
    costs no call of its own; but a chunk's transforms and calls have a fixed cost that
    few images do not repay. Planes of 4 to 15 tiles gained 1.2-1.3x from 16 images with
    32 channels or more at 7x7 and 8x8 outputs (float32; with 8 images 0.9x, and 16 -> 32
    channels at 7x7 0.95x with 32 images), and 1.5-2.1x at 11x11 and 12x12 (9 tiles;
    measured while another process ran, im2col and Winograd interleaved); one tile (4x4)
    is left to im2col.
    Planes of 16 tiles or more pay from 2 images and 16 channels. Tiles past the output's
    edge are work for nothing: the rule also asks for at most a third of im2col's
    multiplications, 36 per 4x4 tile against 9 per output pixel, which 13x13, 17x17, 5x5
    and 6x6 outputs do not meet. One image: see `_winograd_pays_one_image`.
    """
    tiles = -(-oh // 4) * -(-ow // 4)
    channels = min(c, f)
    if tiles >= 16:
        enough = n >= 2 and channels >= 16
    else:
        enough = tiles >= 4 and n >= 16 and channels >= 32
    return enough and 9 * oh * ow >= 3 * 36 * tiles


def _winograd_pays_one_image(c, f, oh, ow):
    """Whether the forward of one float32 image from C to F channels to an OH x OW
    output measured faster on Winograd than on im2col + GEMM (whose one-image path
    spreads a GEMM's columns over the threads, where Winograd has one chunk).

    Measured since the AVX2 transforms (2 threads, the layer's forward, medians of 9),
    Winograd time / im2col time: 16 -> 16 at 32x32 0.54, at 28x28 0.63, at 16x16 0.68;
    32 -> 32 at 16x16 0.71, at 14x14 0.83; 16 -> 32 at 14x14 0.99; 64 -> 64 at 16x16
    0.61, at 32x32 0.72, at 56x56 0.70; 32 -> 64 at 32x32 0.64. 128 -> 128 at 16x16 lost
    (1.30): its 2.4 MB of transformed filters stream from memory for 16 tiles. Float64
    and the baseline instruction set (no AVX2 transforms), more than 64 channels (not
    measured) and the input gradient (1.0-1.3x over forward and backward) stay on
    im2col.
    """
    tiles = -(-oh // 4) * -(-ow // 4)
    return (
        tiles >= 16
        and 16 <= min(c, f)
        and max(c, f) <= 64
        and 9 * oh * ow >= 3 * 36 * tiles
        and _kernels.simd_target() != "baseline"  # measured with the AVX2 transforms
    )


def _winograd_grad_w_pays(n, c, f, oh, ow):
    """Whether Winograd's weight gradient measured faster than im2col + GEMM's, for a
    stride-1 3x3 convolution of N images from C to F channels and an OH x OW output.

    Measured (2 threads, medians of 9 runs on a quiet machine; bench/bench_winograd.py
    times it too), im2col time / Winograd time, the weight gradient alone:

    ======================  ===========  ===========
    N, C -> F, H x W         float32      float64
    ======================  ===========  ===========
    64, 16 -> 16, 28x28      1.53         1.43
    64, 32 -> 32, 14x14      1.42         1.48
    64, 16 -> 32, 14x14      1.08         1.33
    64, 64 -> 64, 7x7        1.37         1.33
    64, 32 -> 32, 16x16      1.99         1.89
    64, 64 -> 64, 8x8        1.68         1.73
    16, 64 -> 64, 56x56      2.02         2.00
    64, 16 -> 32, 8x8        0.96         1.52
    64, 6 -> 16, 14x14       0.35         0.48
    64, 1 -> 16, 28x28       0.30         -
    ======================  ===========  ===========

    Its GEMMs are (F, tiles) @ (tiles, C) at 36 positions, so it wants channels: at
    least 32, or 16 with 16 tiles an image. Like the forward's rule, it asks for at
    most a third of im2col's multiplications (tiles past the output's edge are work
    for nothing), and one image stays on im2col.
    """
    tiles = -(-oh // 4) * -(-ow // 4)
    channels = min(c, f)
    return (
        n >= 2
        and (channels >= 32 or (channels >= 16 and tiles >= 16))
        and 9 * oh * ow >= 3 * 36 * tiles
    )


def _winograd_filter(weight, dtype):
    """The transformed filters (36, F, C) of a 3x3 `weight` (F, C, 3, 3), computed in
    float64 and rounded once to `dtype`, in a buffer this thread keeps for the shape
    (valid until its next call for that shape: the call that uses it returns first),
    up to WORKSPACE_CACHE_BYTES of them. A fresh array of this size cost page faults
    every call: 0.4 ms for 64 x 64 filters, whose transform takes 0.15."""
    shape = (36,) + weight.shape[:2]
    buffers = vars(_local).setdefault("filters", {})
    u = buffers.get((shape, dtype))
    if u is None:
        u = np.empty(shape, dtype=dtype)
        if u.nbytes + sum(b.nbytes for b in buffers.values()) > WORKSPACE_CACHE_BYTES:
            buffers.clear()  # at most as much as the workspace a thread keeps
        if u.nbytes <= WORKSPACE_CACHE_BYTES:
            buffers[(shape, dtype)] = u
    _kernels.winograd_filter(np.ascontiguousarray(weight, dtype=dtype), u)  # in double
    return u


Epilogue = namedtuple(
    "Epilogue", "bias activation residual pool", defaults=(None, None, None, False)
)
Epilogue.__doc__ = """What `ConvPlan.forward` applies to each chunk of output while it is
in cache: `bias` (F,) added per output channel, or None; then `residual`, an array of
the output's shape, dtype and layout (C-contiguous) added to it, or None (a residual
block's shortcut, added by the block's last convolution); then `activation`, a
function that overwrites a chunk of output (any shape) with its activation in place,
or None; then, with `pool`, 2x2 max pooling at stride 2, tile by tile: the output is
(N, F, OH // 2, OW // 2) (only where `ConvPlan.pools` says so). `pycnn.fusion` builds
these from batch norm, ReLU-family and max-pooling layers."""


NO_EPILOGUE = Epilogue()


class ConvPlan:
    """One convolution geometry: sizes, algorithm, chunking, and the loops that run it.

    `padding` is ((top, bottom), (left, right)); stride and dilation are pairs.
    `out_hw`, when given, is the (OH, OW) grid to compute instead of the one the sizes
    give: a transposed convolution whose output_padding reaches past the stride (allowed
    up to the dilation) adds input rows that no output of its adjoint covers.
    `winograd` False forbids the Winograd path (`pycnn.set_winograd`).
    """

    def __init__(
        self,
        x_shape,
        w_shape,
        dtype,
        stride,
        padding,
        dilation,
        groups,
        out_hw=None,
        winograd=True,
    ):
        self.dtype = np.dtype(dtype)
        self.n, self.c, self.h, self.w = x_shape
        self.f, self.cg, self.kh, self.kw = w_shape
        self.g = groups
        self.fg = self.f // groups  # filters a group
        (self.sh, self.sw), (self.dh, self.dw) = stride, dilation
        (pt, pb), (pl, pr) = padding
        self.padding = (pt, pb, pl, pr)
        self.ph, self.pw = pt, pl  # the kernels need the top/left padding only
        natural = (
            V.out_size(self.h, self.kh, self.sh, pt + pb, self.dh),
            V.out_size(self.w, self.kw, self.sw, pl + pr, self.dw),
        )
        self.oh, self.ow = natural if out_hw is None else out_hw
        exact = (self.oh, self.ow) == natural
        self.rows = self.cg * self.kh * self.kw  # GEMM depth of one group
        self.blocks = self.oh * self.ow  # GEMM width: output pixels
        self.macs = self.f * self.rows * self.blocks  # multiply-adds of one image
        self.out_shape = (self.n, self.f, self.oh, self.ow)
        self.x_shape = (self.n, self.c, self.h, self.w)
        itemsize = self.dtype.itemsize
        self.image_bytes = self.c * self.kh * self.kw * self.blocks * itemsize
        self.padded_bytes = self.c * (self.h + pt + pb) * (self.w + pl + pr) * itemsize
        # a 1x1, stride-1, unpadded convolution is a plain GEMM on the input
        self.pointwise = (
            self.kh == self.kw == 1
            and self.sh == self.sw == 1
            and pt == pb == pl == pr == 0
            and exact
        )
        # Groups of 1-3 input channels make the column matrix a GEMM operand only a
        # few rows deep, which BLAS handles poorly; the direct kernel wins there
        # (measured: 1.1-2x on first layers and depthwise layers), except at column
        # stride > 1, on rows narrower than its 2-vector block, and in float32 with
        # more than 32 filters a group, where BLAS's wide GEMM is faster again.
        lanes = _kernels.DIRECT_VECTOR_BYTES // itemsize
        self.direct = (
            self.cg <= 3
            and self.sw == 1
            and self.ow >= 2 * lanes
            and not self.pointwise
            and exact
            and (self.dtype == np.float64 or self.fg <= 32)
        )
        # one image spreads its GEMMs over output columns instead of images
        self.one_image = self.n == 1 and self.blocks > 1
        # Winograd's F(4x4, 3x3) for the forward and for the input gradient (itself a
        # stride-1 3x3 convolution, of grad_out), each where it measured faster
        winograd = (
            winograd
            and self.g == 1
            and self.kh == self.kw == 3
            and self.sh == self.sw == self.dh == self.dw == 1
            and all(0 <= p <= 2 for p in self.padding)
            and exact
        )
        self.winograd = winograd and (
            _winograd_pays(self.n, self.c, self.f, self.oh, self.ow)
            or (
                self.n == 1
                and self.dtype == np.float32
                and _winograd_pays_one_image(self.c, self.f, self.oh, self.ow)
            )
        )
        self.winograd_grad_x = winograd and _winograd_pays(
            self.n, self.f, self.c, self.h, self.w
        )
        self.winograd_grad_w = winograd and _winograd_grad_w_pays(
            self.n, self.c, self.f, self.oh, self.ow
        )
        # what im2col, col2im and the position table take after the sizes
        self.im2col_geometry = (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)
        self.im2col_geometry += (self.dh, self.dw, self.oh, self.ow)
        # small output rows: im2col through a table of positions; and the weight
        # gradient as one GEMM a chunk of images, on columns the table lays side by side
        self.gather_table = None
        self.gather_im2col = not self.pointwise and self.ow <= GATHER_MAX_OW
        self.batched_weight_grad = (
            not self.pointwise
            and self.g == 1
            and self.blocks <= BATCHED_WEIGHT_GRAD_MAX_L
            and self.rows >= BATCHED_WEIGHT_GRAD_MIN_ROWS
        )
        if (
            (self.gather_im2col or self.batched_weight_grad)
            and self.rows * self.g * self.blocks <= GATHER_TABLE_MAX
            and self.c * self.h * self.w < 2**31 - 1
        ):
            self.gather_table = _column_table(self.c, self.h, self.w, *self.im2col_geometry)
        else:
            self.gather_im2col = self.batched_weight_grad = False

    # --- the pieces ------------------------------------------------------------------

    @property
    def columns_shape(self):
        """The shape (N, G, rows, L) of the whole batch's column matrix."""
        return (self.n, self.g, self.rows, self.blocks)

    @property
    def keeps_columns(self):
        """Whether a training forward should keep its columns for backward: the im2col
        path (Winograd's forward makes none), with columns of at most
        KEEP_COLUMNS_BYTES."""
        return (
            not (self.direct or self.pointwise or self.winograd or self.winograd_grad_w)
            and self.n * self.image_bytes <= KEEP_COLUMNS_BYTES
        )

    def columns(self, x_chunk, out=None):
        """The column matrix of a chunk of images, (n, G, rows, L), in the workspace or
        in `out` (a C-contiguous array of that shape).

        im2col runs on the calling thread: the plan spreads ranges of images over
        pycnn's threads itself (`_parallel.over_ranges`).
        """
        nb = x_chunk.shape[0]
        if self.pointwise:
            return x_chunk.reshape(nb, self.g, self.rows, self.blocks)
        shape = (nb, self.c * self.kh * self.kw, self.blocks)
        cols = workspace(shape, x_chunk.dtype) if out is None else out.reshape(shape)
        if self.gather_im2col:
            _kernels.gather_columns(
                x_chunk.reshape(nb, self.c * self.h * self.w),
                self.gather_table,
                cols.reshape(nb, self.gather_table.size),
            )
            return cols.reshape(nb, self.g, self.rows, self.blocks)
        _kernels.im2col(x_chunk, cols, *self.im2col_geometry, 1)
        return cols.reshape(nb, self.g, self.rows, self.blocks)

    def col2im(self, dcols, grad_x_chunk):
        """Sum a chunk's column gradients (n, G, rows, L) into its input gradient."""
        nb = grad_x_chunk.shape[0]
        _kernels.col2im(
            dcols.reshape(nb, self.c * self.kh * self.kw, self.blocks),
            grad_x_chunk,
            *self.im2col_geometry,
            1,
        )

    def padded(self, x_chunk):
        """A chunk of images with its zero padding, in the workspace (the direct
        kernel reads every tap without a bounds test)."""
        pt, pb, pl, pr = self.padding
        if pt == pb == pl == pr == 0:
            return x_chunk
        nb = x_chunk.shape[0]
        xp = workspace((nb, self.c, self.h + pt + pb, self.w + pl + pr), x_chunk.dtype)
        xp.fill(0)
        xp[:, :, pt : pt + self.h, pl : pl + self.w] = x_chunk
        return xp

    # --- forward ---------------------------------------------------------------------

    def forward(self, x, weight, epilogue=NO_EPILOGUE, columns=None, filters=None):
        """The convolution of C-contiguous `x` (N, C, H, W) with C-contiguous `weight`
        (F, C/groups, KH, KW); the epilogue is applied chunk by chunk. -> (N, F, OH, OW),
        or (N, F, OH // 2, OW // 2) with ``epilogue.pool`` (see `pools`).

        `columns`, an array of `columns_shape` on a plan that `keeps_columns`, receives
        the column matrix, for `backward` to take instead of computing it again.
        `filters`, on a Winograd plan, are `winograd_filters(weight)` kept from an
        earlier call (an inference layer's constant weight), not transformed again.
        """
        if epilogue.pool and not self.pools(epilogue):
            raise ValueError("ConvPlan.forward: this plan cannot pool in its epilogue")
        if self.winograd:
            shape = self.out_shape
            if epilogue.pool:
                shape = (self.n, self.f, self.oh // 2, self.ow // 2)
            out = _buffers.empty(shape, self.dtype)
            u = _winograd_filter(weight, self.dtype) if filters is None else filters
            if epilogue.bias is not None:
                bias = np.ascontiguousarray(epilogue.bias, dtype=self.dtype)
                epilogue = epilogue._replace(bias=bias)
            self._winograd(x, u, (self.ph, self.pw), epilogue, out)
            return out
        out = _buffers.empty((self.n, self.g, self.fg, self.blocks), self.dtype)
        if self.direct:
            self._forward_direct(x, weight, epilogue, out)
        else:
            w = weight.reshape(self.g, self.fg, self.rows)
            if self.one_image:
                self._forward_one_image(x, w, epilogue, out, columns)
            else:
                self._forward_images(x, w, epilogue, out, columns)
        return out.reshape(self.out_shape)

    def pools(self, epilogue):
        """Whether `forward` can take this epilogue with ``pool=True``: the Winograd
        path in float32 on AVX2 (its output transform pools each 4x4 tile), without a
        residual, with a ReLU or no activation, on an output of at least 2x2."""
        return (
            self.winograd
            and self.dtype == np.float32
            and _kernels.simd_target() != "baseline"
            and epilogue.residual is None
            and epilogue.activation in (None, _eltwise.relu_)
            and self.oh >= 2
            and self.ow >= 2
        )

    def winograd_filters(self, weight):
        """The transformed filters (36, F, C) of `weight` for `forward`'s `filters`, in
        a new array (the same values `forward` computes for itself)."""
        u = np.empty((36,) + weight.shape[:2], dtype=self.dtype)
        _kernels.winograd_filter(np.ascontiguousarray(weight, dtype=self.dtype), u)
        return u

    def _forward_direct(self, x, weight, epilogue, out):
        """One kernel call a chunk of images, the images spread over an OpenMP team
        (`_parallel.team`), the ReLU in the kernel's pass. Ranges of images on pycnn's
        Python threads cost more: 64 images 1 -> 16 channels at 28x28 took 312 µs
        there against 195 in the team, of which the hand-off and the padding copies,
        serialised by the GIL, were 120."""
        bias, act, residual, _ = epilogue
        out4 = out.reshape(self.out_shape)
        # a ReLU in the kernel's own pass, unless a residual comes first
        relu = act is _eltwise.relu_ and residual is None
        with _parallel.team(_parallel.n_parts(self.n, self.macs)) as threads:
            for start, stop in _chunks(0, self.n, self.padded_bytes):
                chunk = out4[start:stop]
                _kernels.conv2d_direct(
                    self.padded(x[start:stop]),
                    weight,
                    bias,
                    chunk,
                    self.g,
                    self.sh,
                    self.sw,
                    self.dh,
                    self.dw,
                    threads,
                    relu,
                )
                if residual is not None:
                    chunk += residual[start:stop]
                if act is not None and not relu:
                    act(chunk)

    def _forward_images(self, x, w, epilogue, out, keep):
        bias, act, residual, _ = epilogue
        if residual is not None:
            residual = residual.reshape(self.n, self.f, self.blocks)

        def images(lo, hi):
            for start, stop in _chunks(lo, hi, self.image_bytes):
                cols = self.columns(x[start:stop], None if keep is None else keep[start:stop])
                # (G, F/G, rows) @ (n, G, rows, L); then the epilogue, while the chunk
                # is in cache
                chunk = np.matmul(w, cols, out=out[start:stop])
                _eltwise.bias_activation_(
                    chunk.reshape(stop - start, self.f, -1),
                    bias,
                    act,
                    None if residual is None else residual[start:stop],
                )

        _parallel.over_ranges(self.n, self.macs, images)

    def _forward_one_image(self, x, w, epilogue, out, keep):
        bias, act, residual, _ = epilogue
        cols = self.columns(x, keep)
        if self.g == 1:  # 2-D operands: the same GEMMs, less of NumPy's batching work
            w, cols, out2 = w[0], cols[0, 0], out[0, 0]
        else:
            out2 = out
        parts = _parallel.n_parts(self.blocks, self.macs // self.blocks)
        if parts == 1:  # the whole image at once, its epilogue in one pass
            with _parallel.one_blas_thread():  # as over_ranges holds it
                np.matmul(w, cols, out=out2)
            _eltwise.bias_activation_(
                out.reshape(1, self.f, -1),
                bias,
                act,
                None if residual is None else residual.reshape(1, self.f, -1),
            )
            return
        b = None if bias is None else bias.reshape(out2.shape[-3:-1] + (1,))
        res = None if residual is None else residual.reshape(out2.shape)

        def columns(lo, hi):
            part = np.matmul(w, cols[..., lo:hi], out=out2[..., lo:hi])
            if b is not None:
                part += b
            if res is not None:
                part += res[..., lo:hi]
            if act is not None:
                act(part)

        _parallel.over_ranges(self.blocks, self.macs // self.blocks, columns)

    # --- Winograd --------------------------------------------------------------------

    def _winograd(self, x, u, padding, epilogue, out):
        """`out` (N, K, OH', OW') = the stride-1 3x3 convolution of `x` (N, J, H', W'),
        zero-padded by `padding` (top, left) and as needed past the end, with the
        transformed filters `u` (36, K, J); then the epilogue (bias, residual, ReLU and
        pooling in the output transform, chunk by chunk; another activation on the whole
        output after). With ``epilogue.pool``, `out` is the pooled (N, K, OH'//2, OW'//2).

        At each of the 36 positions, one product (K, J) @ (J, the chunk's tiles) in
        `_kernels.matmul_fixed`, which sums every element in one fixed order: BLAS
        rounds a column differently depending on the shape of the call it is in
        (measured: OpenBLAS), so a BLAS call spanning several images would make an
        image's result depend on the others in its chunk, hence on the batch size and
        the thread count (and two ranks of a distributed batch would not compute what
        one process does). BLAS with one call per image kept the bits but cost 1.2x
        GEMM time at 64 tiles an image and 3.5x at 4; the fixed-order product runs at
        BLAS's rate for the whole chunk (AVX2: 53-68 GFLOP/s on one core, float32).
        """
        n, j = x.shape[:2]
        k, oh, ow = out.shape[1:]
        bias, act, residual, pool = epilogue
        if pool:  # `out` is pooled: the convolution's output is the plan's
            oh, ow = self.oh, self.ow
        th, tw = -(-oh // 4), -(-ow // 4)
        relu = act is _eltwise.relu_  # in the output transform's pass
        tiles = th * tw
        per_image = 36 * (j + k) * tiles * self.dtype.itemsize
        # images a chunk: their transformed tiles fit WINOGRAD_BYTES, and a batch gives
        # at least WINOGRAD_CHUNKS chunks (to spread over threads) when it has as many,
        # and a multiple of the threads when it has more (64 images in 5 chunks of 14
        # kept one thread on 3 of them; in 6 of 11, 3 each), the images shared out
        # evenly (64 images in chunks of up to 9: seven of 9 and one of 1 left one
        # thread 36 images and the other 28; 16 -> 32 channels at 14x14 in the MNIST
        # CNN went from 1005-1029 to 958-1001 µs). Every tile's result is the same in
        # any chunk (see above), so the chunking changes no bits.
        step = max(1, min(WINOGRAD_BYTES // per_image, -(-n // WINOGRAD_CHUNKS)))
        n_chunks, threads = -(-n // step), get_num_threads()
        if n_chunks > threads and n_chunks % threads:
            step = -(-n // (-(-n_chunks // threads) * threads))
            n_chunks = -(-n // step)

        # each chunk: winograd_input, then (36, K, J) @ (36, J, tiles of the chunk), every
        # sum in a fixed order (matmul_fixed), then winograd_output; in one call, the
        # chunks (chunk c: images [n * c // n_chunks, n * (c + 1) // n_chunks)) over an
        # OpenMP team
        with _parallel.team(_parallel.n_parts(n_chunks, step * 36 * j * k * tiles)) as t:
            _kernels.winograd_forward(
                x,
                u,
                out,
                bias,
                padding[0],
                padding[1],
                relu,
                residual,
                n_chunks,
                t,
                oh if pool else 0,
                ow if pool else 0,
            )
        if act is not None and not relu:
            act(out)

    def _winograd_grad_x(self, grad_out, weight):
        """The input gradient, as the Winograd convolution of `grad_out` with the
        filters flipped and transposed (C <-> F), padded by 2 - padding."""
        flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        grad_x = _buffers.empty(self.x_shape, self.dtype)
        u = _winograd_filter(flipped, self.dtype)
        self._winograd(grad_out, u, (2 - self.ph, 2 - self.pw), NO_EPILOGUE, grad_x)
        return grad_x

    def _winograd_grad_weight(self, x, grad_out):
        """The weight gradient (F, C, 3, 3) as G^T [sum over tiles of (A dY A^T) *
        (B^T d B)] G: per chunk of images, the transformed input and output-gradient
        tiles, and at each of the 36 positions one GEMM over the chunk's tiles,
        (F, tiles) @ (tiles, C), summed over chunks (see _winograd.pxi)."""
        n, c, f, dtype = self.n, self.c, self.f, self.dtype
        th, tw = -(-self.oh // 4), -(-self.ow // 4)
        tiles = th * tw
        per_image = 36 * (c + f) * tiles * dtype.itemsize
        step = max(1, min(WINOGRAD_BYTES // per_image, -(-n // WINOGRAD_CHUNKS)))
        n_chunks = -(-n // step)

        def chunks(lo, hi):
            m = np.zeros((36, f, c), dtype=dtype)
            part = np.empty_like(m)
            for ci in range(lo, hi):
                start, stop = ci * step, min(ci * step + step, n)
                cols = (stop - start) * tiles
                buf = workspace((36 * (c + f) * cols,), dtype)
                v = buf[: 36 * c * cols].reshape(36, c, cols)
                w = buf[36 * c * cols :].reshape(36, f, cols)
                _kernels.winograd_input(x[start:stop], v, self.ph, self.pw, th, tw)
                _kernels.winograd_grad_output(grad_out[start:stop], w, th, tw)
                np.matmul(w, v.transpose(0, 2, 1), out=part)
                m += part
            return m

        m = sum(_parallel.over_ranges(n_chunks, step * 36 * c * f * tiles, chunks))
        grad_w = np.empty((f, c, 3, 3), dtype=dtype)
        _kernels.winograd_filter_grad(m, grad_w)
        return grad_w

    # --- backward --------------------------------------------------------------------

    def backward(
        self, grad_out, x, weight, need_x=True, need_weight=True, need_bias=True, columns=None
    ):
        """Gradients of `forward` with respect to x, weight and bias, from C-contiguous
        `grad_out` (N, F, OH, OW), `x` and `weight`. -> (grad_x, grad_weight, grad_bias)

        `need_x` / `need_weight` / `need_bias` False skip a gradient (None in its
        place): a transposed convolution is this plan's input gradient alone, and its
        weight gradient this plan's weight gradient alone (`x` is then unused, and may
        be None, without `need_weight`). `columns`, what `forward` wrote for `x`, spares
        computing them again; they are read, never overwritten.
        """
        w_t = weight.reshape(self.g, self.fg, self.rows).transpose(0, 2, 1)
        dout = grad_out.reshape(self.n, self.g, self.fg, self.blocks)
        grad_bias = grad_out.sum(axis=(0, 2, 3)) if need_bias else None
        winograd_x = need_x and self.winograd_grad_x
        grad_x = None
        if winograd_x:
            grad_x = self._winograd_grad_x(grad_out, weight)
        elif need_x:
            grad_x = _buffers.empty((self.n, self.c, self.h, self.w), self.dtype)
        gemm_x = None if winograd_x else grad_x  # the input gradient im2col's GEMMs make
        winograd_w = need_weight and self.winograd_grad_w
        gemm_w = need_weight and not winograd_w  # the weight gradient im2col's GEMMs make
        grad_w = None
        if winograd_w:
            grad_w = self._winograd_grad_weight(x, grad_out)
        if self.one_image:
            part = self._backward_one_image(x, w_t, dout, gemm_x, gemm_w, columns)
            grad_w = part if gemm_w else grad_w
        elif gemm_w or gemm_x is not None:
            part = sum(
                _parallel.over_ranges(
                    self.n,
                    ((gemm_x is not None) + gemm_w) * self.macs,
                    lambda lo, hi: self._backward_images(
                        lo, hi, x, w_t, dout, gemm_x, gemm_w, columns
                    ),
                )
            )
            grad_w = part if gemm_w else grad_w
        if need_weight:
            grad_w = grad_w.reshape(weight.shape)
        return grad_x, grad_w, grad_bias

    def _backward_images(self, lo, hi, x, w_t, dout, grad_x, need_weight, kept=None):
        """grad_x of images [lo, hi) (unless it is None), and their part of
        grad_weight (0 without `need_weight`), from the `kept` columns if given."""
        grad_w = np.zeros((self.g, self.fg, self.rows), dtype=self.dtype) if need_weight else 0
        if need_weight and self.batched_weight_grad:
            self._weight_grad_batched(lo, hi, x, dout, grad_w[0], kept)
            need_weight = False
        for start, stop in _chunks(lo, hi, self.image_bytes):
            nb, d = stop - start, dout[start:stop]
            if need_weight:
                cols = self.columns(x[start:stop]) if kept is None else kept[start:stop]
                grad_w += np.matmul(d, cols.transpose(0, 1, 3, 2)).sum(axis=0)
            if not self.pointwise and (kept is not None or not need_weight):
                cols = workspace((nb, self.g, self.rows, self.blocks), self.dtype)
            if grad_x is None:
                continue
            if self.pointwise:
                np.matmul(
                    w_t, d, out=grad_x[start:stop].reshape(nb, self.g, self.rows, self.blocks)
                )
            else:
                dcols = np.matmul(w_t, d, out=cols)  # (n, G, rows, L), reusing the columns
                self.col2im(dcols, grad_x[start:stop])
        return grad_w

    def _weight_grad_batched(self, lo, hi, x, dout, grad_w, kept=None):
        """Add the weight gradient of images [lo, hi) to `grad_w` (F, rows), one GEMM a
        chunk: (F, n*L) @ (n*L, rows), on the chunk's columns side by side (from the
        `kept` columns when given: the same values, so the same bits)."""
        rows, width, f = self.rows, self.blocks, self.fg
        size = self.c * self.h * self.w
        per_image = self.image_bytes + f * width * self.dtype.itemsize
        part = np.empty_like(grad_w)
        for start, stop in _chunks(lo, hi, per_image):
            nb = stop - start
            buf = workspace(((rows + f) * nb * width,), self.dtype)
            cols_t = buf[: rows * nb * width].reshape(rows, nb * width)
            d_t = buf[rows * nb * width :].reshape(f, nb, width)
            _kernels.gather_columns_t(
                x[start:stop].reshape(nb, size), self.gather_table, cols_t
            )
            np.copyto(d_t, dout[start:stop, 0].transpose(1, 0, 2))
            np.matmul(d_t.reshape(f, nb * width), cols_t.T, out=part)
            grad_w += part

    def _backward_one_image(self, x, w_t, dout, grad_x, need_weight, kept=None):
        """Both gradients of one image, its GEMMs spread over pycnn's threads: over the
        rows of grad_weight, then over the columns of the input's gradient."""
        grad_w = None
        if need_weight:
            cols = self.columns(x) if kept is None else kept
            grad_w = np.empty((self.g, self.fg, self.rows), dtype=self.dtype)

            def weight_rows(lo, hi):
                np.matmul(dout[0, :, lo:hi], cols[0].transpose(0, 2, 1), out=grad_w[:, lo:hi])

            _parallel.over_ranges(self.fg, self.macs // self.fg, weight_rows)
        if grad_x is None:
            return grad_w
        shape = (1, self.g, self.rows, self.blocks)
        if self.pointwise:
            target = grad_x.reshape(shape)
        elif need_weight and kept is None:
            target = cols  # the columns are no longer needed
        else:
            target = workspace(shape, self.dtype)

        def columns(lo, hi):
            np.matmul(w_t, dout[..., lo:hi], out=target[..., lo:hi])

        _parallel.over_ranges(self.blocks, self.macs // self.blocks, columns)
        if not self.pointwise:  # the columns now hold their gradient
            self.col2im(target, grad_x)
        return grad_w


@functools.lru_cache(maxsize=512)
def _cached_plan(x_shape, w_shape, dtype, stride, padding, dilation, groups, out_hw, winograd):
    return ConvPlan(
        x_shape, w_shape, dtype, stride, padding, dilation, groups, out_hw, winograd
    )


def plan(x_shape, w_shape, dtype, args, out_hw=None):
    """The `ConvPlan` for these sizes and validated `ConvArgs`, built once and cached
    (keyed on `pycnn.get_winograd()` too: switching it picks other plans)."""
    return _cached_plan(
        tuple(x_shape),
        tuple(w_shape),
        np.dtype(dtype).str,
        args.stride,
        args.padding,
        args.dilation,
        args.groups,
        out_hw,
        get_winograd(),
    )


def transposed_plan(x_shape, w_shape, dtype, args):
    """The plan of the convolution whose input gradient is the transposed convolution of
    `x_shape` with validated `ConvTransposeArgs`: its input is the transposed output."""
    n, _, h, w = x_shape
    out_shape = (n, w_shape[1] * args.groups) + tuple(args.output_size)
    return plan(out_shape, w_shape, dtype, args, out_hw=(h, w))
