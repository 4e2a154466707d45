"""Convolution plans: how one convolution geometry runs, decided once and reused.

A `ConvPlan` is built from sizes alone (N, C, H, W, F, kernel, stride, padding,
dilation, groups, dtype). It owns the geometry (output size, GEMM shapes), the choice
of algorithm (a plain GEMM for pointwise convolutions, the direct kernel for groups of
1-3 input channels where it measured faster, im2col + GEMM otherwise), the chunking of
the batch into pieces whose column matrix fits the workspace, and the loop that spreads
the chunks over pycnn's threads (`pycnn._parallel`). Its `forward` takes an epilogue
applied to each chunk of output while it is still in cache (the bias today; an
activation or a batch-norm scale and shift fit the same hook).

Plans hold no arrays and never change once built, so one plan serves every thread;
`plan()` caches them by their sizes, so a layer that sees the same input shape again
pays for validation and planning once. The callers (`functional.conv2d` and
`conv2d_backward`, the layers) validate arguments first: a plan trusts its sizes.
"""

import functools
import math
import threading
from collections import namedtuple

import numpy as np

from pycnn import _parallel
from pycnn import _validation as V
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
_local = threading.local()


# A training forward on the im2col path keeps its column matrix for backward, which
# needs it for the weight gradient, when it is at most this large: im2col then runs once
# a step instead of twice. Small convolutions gain most (on 4x4 and 8x8 images im2col
# costs more than their GEMMs); large ones would hold too much memory until backward.
KEEP_COLUMNS_BYTES = 4 * 2**20


def workspace(shape, dtype):
    """An uninitialised array of `shape`, in this thread's workspace when it fits."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if nbytes > WORKSPACE_CACHE_BYTES:
        V.check_memory("A convolution's workspace", nbytes, f"shape={tuple(shape)}")
        return np.empty(shape, dtype=dtype)
    buf = getattr(_local, "buffer", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _local.buffer = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def _chunks(lo, hi, bytes_per_image):
    """Ranges of images [start, stop) within [lo, hi) whose columns fit the workspace."""
    step = max(1, WORKSPACE_BYTES // max(bytes_per_image, 1))
    for start in range(lo, hi, step):
        yield start, min(start + step, hi)


Epilogue = namedtuple("Epilogue", "bias activation", defaults=(None, None))
Epilogue.__doc__ = """What `ConvPlan.forward` applies to each chunk of output while it is
in cache: `bias` (F,) added per output channel, or None; then `activation`, a function
that overwrites a chunk of output (any shape) with its activation in place, or None.
`pycnn.fusion` builds these from batch norm and ReLU-family layers."""


NO_EPILOGUE = Epilogue()


class ConvPlan:
    """One convolution geometry: sizes, algorithm, chunking, and the loops that run it.

    `padding` is ((top, bottom), (left, right)); stride and dilation are pairs.
    `out_hw`, when given, is the (OH, OW) grid to compute instead of the one the sizes
    give: a transposed convolution whose output_padding reaches past the stride (allowed
    up to the dilation) adds input rows that no output of its adjoint covers.
    """

    def __init__(self, x_shape, w_shape, dtype, stride, padding, dilation, groups, out_hw=None):
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

    # --- the pieces ------------------------------------------------------------------

    @property
    def columns_shape(self):
        """The shape (N, G, rows, L) of the whole batch's column matrix."""
        return (self.n, self.g, self.rows, self.blocks)

    @property
    def keeps_columns(self):
        """Whether a training forward should keep its columns for backward: the im2col
        path, with columns of at most KEEP_COLUMNS_BYTES."""
        return (
            not (self.direct or self.pointwise)
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
        _kernels.im2col(
            x_chunk,
            cols,
            self.kh,
            self.kw,
            self.sh,
            self.sw,
            self.ph,
            self.pw,
            self.dh,
            self.dw,
            self.oh,
            self.ow,
            1,
        )
        return cols.reshape(nb, self.g, self.rows, self.blocks)

    def col2im(self, dcols, grad_x_chunk):
        """Sum a chunk's column gradients (n, G, rows, L) into its input gradient."""
        nb = grad_x_chunk.shape[0]
        _kernels.col2im(
            dcols.reshape(nb, self.c * self.kh * self.kw, self.blocks),
            grad_x_chunk,
            self.kh,
            self.kw,
            self.sh,
            self.sw,
            self.ph,
            self.pw,
            self.dh,
            self.dw,
            self.oh,
            self.ow,
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

    def forward(self, x, weight, epilogue=NO_EPILOGUE, columns=None):
        """The convolution of C-contiguous `x` (N, C, H, W) with C-contiguous `weight`
        (F, C/groups, KH, KW); the epilogue is applied chunk by chunk. -> (N, F, OH, OW)

        `columns`, an array of `columns_shape` on a plan that `keeps_columns`, receives
        the column matrix, for `backward` to take instead of computing it again.
        """
        out = np.empty((self.n, self.g, self.fg, self.blocks), dtype=self.dtype)
        bias, act = epilogue
        if self.direct:
            self._forward_direct(x, weight, bias, act, out)
        else:
            w = weight.reshape(self.g, self.fg, self.rows)
            b = None if bias is None else bias.reshape(self.g, self.fg, 1)
            if self.one_image:
                self._forward_one_image(x, w, b, act, out, columns)
            else:
                self._forward_images(x, w, b, act, out, columns)
        return out.reshape(self.out_shape)

    def _forward_direct(self, x, weight, bias, act, out):
        out4 = out.reshape(self.out_shape)

        def images(lo, hi):
            for start, stop in _chunks(lo, hi, self.padded_bytes):
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
                    1,
                )
                if act is not None:
                    act(chunk)

        _parallel.over_ranges(self.n, self.macs, images)

    def _forward_images(self, x, w, b, act, out, keep):
        def images(lo, hi):
            for start, stop in _chunks(lo, hi, self.image_bytes):
                cols = self.columns(x[start:stop], None if keep is None else keep[start:stop])
                # (G, F/G, rows) @ (n, G, rows, L)
                chunk = np.matmul(w, cols, out=out[start:stop])
                if b is not None:
                    chunk += b  # while the chunk is in cache
                if act is not None:
                    act(chunk)

        _parallel.over_ranges(self.n, self.macs, images)

    def _forward_one_image(self, x, w, b, act, out, keep):
        cols = self.columns(x, keep)

        def columns(lo, hi):
            part = np.matmul(w, cols[..., lo:hi], out=out[..., lo:hi])
            if b is not None:
                part += b
            if act is not None:
                act(part)

        _parallel.over_ranges(self.blocks, self.macs // self.blocks, columns)

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
        grad_x = (
            np.empty((self.n, self.c, self.h, self.w), dtype=self.dtype) if need_x else None
        )
        if self.one_image:
            grad_w = self._backward_one_image(x, w_t, dout, grad_x, need_weight, columns)
        else:
            grad_w = sum(
                _parallel.over_ranges(
                    self.n,
                    (need_x + need_weight) * self.macs,
                    lambda lo, hi: self._backward_images(
                        lo, hi, x, w_t, dout, grad_x, need_weight, columns
                    ),
                )
            )
        if need_weight:
            grad_w = grad_w.reshape(weight.shape)
        return grad_x, grad_w if need_weight else None, grad_bias

    def _backward_images(self, lo, hi, x, w_t, dout, grad_x, need_weight, kept=None):
        """grad_x of images [lo, hi) (unless it is None), and their part of
        grad_weight (0 without `need_weight`), from the `kept` columns if given."""
        grad_w = np.zeros((self.g, self.fg, self.rows), dtype=self.dtype) if need_weight else 0
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
def _cached_plan(x_shape, w_shape, dtype, stride, padding, dilation, groups, out_hw):
    return ConvPlan(x_shape, w_shape, dtype, stride, padding, dilation, groups, out_hw)


def plan(x_shape, w_shape, dtype, args, out_hw=None):
    """The `ConvPlan` for these sizes and validated `ConvArgs`, built once and cached."""
    return _cached_plan(
        tuple(x_shape),
        tuple(w_shape),
        np.dtype(dtype).str,
        args.stride,
        args.padding,
        args.dilation,
        args.groups,
        out_hw,
    )


def transposed_plan(x_shape, w_shape, dtype, args):
    """The plan of the convolution whose input gradient is the transposed convolution of
    `x_shape` with validated `ConvTransposeArgs`: its input is the transposed output."""
    n, _, h, w = x_shape
    out_shape = (n, w_shape[1] * args.groups) + tuple(args.output_size)
    return plan(out_shape, w_shape, dtype, args, out_hw=(h, w))
