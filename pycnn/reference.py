"""Pure-NumPy twins of `pycnn.functional`: same names, signatures, errors and results.

Written to be read and to be fast in NumPy terms: blocks are taken with
`sliding_window_view` (no copies until the GEMM needs one), convolutions are batched
matmuls, and the scatter of `col2im` is KH*KW strided slice additions. The shape
arithmetic is derived here independently of the compiled path, from the padded array.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pycnn import _lp
from pycnn import _validation as V

__all__ = ["im2col", "col2im", "conv2d", "conv2d_backward"]


def _pad(x, padding):
    """Zero-pad the two spatial axes by ((top, bottom), (left, right))."""
    if not any(padding[0] + padding[1]):
        return x
    return np.pad(x, ((0, 0), (0, 0)) + tuple(padding))


def _blocks(xp, kernel, stride, dilation):
    """All (dilated, strided) blocks of a padded input: (N, C, OH, OW, KH, KW) view."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    view = sliding_window_view(xp, span, axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def _scatter(blocks, padded_shape, padding, stride, dilation):
    """Adjoint of `_blocks`: add (N, C, KH, KW, OH, OW) blocks into a padded image."""
    n, c, kh, kw, oh, ow = blocks.shape
    (sh, sw), (dh, dw) = stride, dilation
    xp = np.zeros(padded_shape, dtype=blocks.dtype)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            xp[:, :, y0 : y0 + sh * (oh - 1) + 1 : sh, x0 : x0 + sw * (ow - 1) + 1 : sw] += (
                blocks[:, :, i, j]
            )
    (pt, pb), (pl, pr) = padding
    return xp[:, :, pt : padded_shape[2] - pb, pl : padded_shape[3] - pr]


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Unfold sliding blocks into columns (``torch.nn.functional.unfold``).

    Shape: (N, C, H, W) -> (N, C*KH*KW, OH*OW).
    """
    k, s, p, d = V.im2col_args(x, kernel_size, stride, padding, dilation)
    blocks = _blocks(_pad(x, ((p[0], p[0]), (p[1], p[1]))), k, s, d)
    n, c, oh, ow, kh, kw = blocks.shape
    return blocks.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)


def col2im(cols, output_size, kernel_size, stride=1, padding=0, dilation=1):
    """Sum columns back into images (``torch.nn.functional.fold``).

    Shape: (N, C*KH*KW, L) -> (N, C, H, W).
    """
    size, k, s, p, d = V.col2im_args(cols, output_size, kernel_size, stride, padding, dilation)
    padded = (size[0] + 2 * p[0], size[1] + 2 * p[1])
    blocks = tuple((padded[a] - (d[a] * (k[a] - 1) + 1)) // s[a] + 1 for a in (0, 1))
    V.check_block_count(cols, size, blocks)
    n, c = cols.shape[0], cols.shape[1] // (k[0] * k[1])
    cols6 = cols.reshape(n, c, k[0], k[1], blocks[0], blocks[1])
    return _scatter(cols6, (n, c) + padded, ((p[0], p[0]), (p[1], p[1])), s, d)


def _conv_columns(x, weight, args):
    """Group-major column matrix (N, G, OH*OW, C/G*KH*KW) and the output grid."""
    g = args.groups
    blocks = _blocks(_pad(x, args.padding), weight.shape[2:], args.stride, args.dilation)
    n, c, oh, ow, kh, kw = blocks.shape
    cols = blocks.reshape(n, g, c // g, oh, ow, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6)
    return cols.reshape(n, g, oh * ow, (c // g) * kh * kw), (oh, ow)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (``torch.nn.functional.conv2d``).

    Shape: x (N, C, H, W), weight (F, C/groups, KH, KW), bias (F,) -> (N, F, OH, OW).
    """
    args = V.conv2d_args(x, weight, bias, stride, padding, dilation, groups)
    cols, (oh, ow) = _conv_columns(x, weight, args)
    g, f = args.groups, weight.shape[0]
    w = weight.reshape(g, f // g, -1)
    out = np.matmul(w[None], cols.transpose(0, 1, 3, 2))  # (N, G, F/G, OH*OW)
    out = out.reshape(x.shape[0], f, oh, ow)
    if bias is not None:
        out += bias[:, None, None]
    return out


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of `conv2d` with respect to x, weight and bias.

    Shape: grad_out (N, F, OH, OW) -> (grad_x, grad_weight, grad_bias).
    """
    args = V.conv2d_args(x, weight, None, stride, padding, dilation, groups)
    cols, (oh, ow) = _conv_columns(x, weight, args)
    n, c, h, w = x.shape
    f, cg, kh, kw = weight.shape
    g = args.groups
    V.check_grad_out(grad_out, x, (n, f, oh, ow))
    dout = grad_out.reshape(n, g, f // g, oh * ow)

    grad_weight = np.matmul(dout, cols).sum(axis=0).reshape(weight.shape)
    dcols = np.matmul(weight.reshape(g, f // g, -1).transpose(0, 2, 1)[None], dout)
    dblocks = dcols.reshape(n, c, kh, kw, oh, ow)  # rows are (c, i, j) per group
    (pt, pb), (pl, pr) = args.padding
    grad_x = _scatter(
        dblocks, (n, c, h + pt + pb, w + pl + pr), args.padding, args.stride, args.dilation
    )
    return np.ascontiguousarray(grad_x), grad_weight, grad_out.sum(axis=(0, 2, 3))


# --- pooling: a loop over the KH*KW kernel offsets, each a strided view of the input --

__all__ += ["conv_transpose2d", "conv_transpose2d_backward"]


def _transposed_taps(x_shape, weight_shape, args):
    """Per axis: the full (uncropped) output size, and the slice of it that each kernel
    tap ``i`` of the input grid lands on: ``i*D : i*D + S*(H - 1) + 1 : S``."""
    full, starts = [], []
    for a in (0, 1):
        h, k = x_shape[2 + a], weight_shape[2 + a]
        s, d, op = args.stride[a], args.dilation[a], args.output_padding[a]
        full.append((h - 1) * s + d * (k - 1) + 1 + op)
        starts.append([slice(i * d, i * d + s * (h - 1) + 1, s) for i in range(k)])
    return full, starts


def conv_transpose2d(
    x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """2-D transposed convolution (``torch.nn.functional.conv_transpose2d``): every
    input pixel adds its kernel, scaled, into the output, taps at stride apart; the
    padding is then cropped from each side.

    Shape: x (N, C_in, H, W), weight (C_in, C_out/groups, KH, KW) -> (N, C_out, OH, OW).
    """
    args = V.conv_transpose2d_args(
        x, weight, bias, stride, padding, output_padding, groups, dilation
    )
    n, c_in, g = x.shape[0], x.shape[1], args.groups
    cig, cog, kh, kw = c_in // g, weight.shape[1], weight.shape[2], weight.shape[3]
    (fh, fw), (rows, cols) = _transposed_taps(x.shape, weight.shape, args)
    full = np.zeros((n, cog * g, fh, fw), dtype=x.dtype)
    for k in range(g):
        xg, wg = x[:, k * cig : (k + 1) * cig], weight[k * cig : (k + 1) * cig]
        # tensordot, not einsum: einsum's shortcuts for broadcast (zero-stride) inputs
        # sum before multiplying, which loses the NaN of inf * 0 (found by the fuzzer)
        taps = np.tensordot(xg, wg, axes=([1], [0])).transpose(0, 3, 4, 5, 1, 2)
        for i in range(kh):
            for j in range(kw):
                full[:, k * cog : (k + 1) * cog, rows[i], cols[j]] += taps[:, :, i, j]
    (ph, _), (pw, _) = args.padding
    out = full[:, :, ph : fh - ph, pw : fw - pw]
    if bias is not None:
        out = out + bias[:, None, None]
    return np.ascontiguousarray(out)


def conv_transpose2d_backward(
    grad_out, x, weight, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """Gradients of `conv_transpose2d`: each tap gathers the output gradient back.

    Shape: grad_out (N, C_out, OH, OW) -> (grad_x, grad_weight, grad_bias).
    """
    args = V.conv_transpose2d_args(
        x, weight, None, stride, padding, output_padding, groups, dilation
    )
    n, c_in, g = x.shape[0], x.shape[1], args.groups
    cig, cog, kh, kw = c_in // g, weight.shape[1], weight.shape[2], weight.shape[3]
    (fh, fw), (rows, cols) = _transposed_taps(x.shape, weight.shape, args)
    (ph, _), (pw, _) = args.padding
    V.check_grad_out(grad_out, x, (n, cog * g, fh - 2 * ph, fw - 2 * pw))
    full = np.zeros((n, cog * g, fh, fw), dtype=x.dtype)
    full[:, :, ph : fh - ph, pw : fw - pw] = grad_out
    grad_x = np.zeros_like(x)
    grad_w = np.zeros_like(weight)
    for k in range(g):
        xg = x[:, k * cig : (k + 1) * cig]
        for i in range(kh):
            for j in range(kw):
                view = full[:, k * cog : (k + 1) * cog, rows[i], cols[j]]  # (N, Cog, H, W)
                wij = weight[k * cig : (k + 1) * cig, :, i, j]  # (Cig, Cog)
                grad_x[:, k * cig : (k + 1) * cig] += np.tensordot(
                    view, wij, axes=([1], [1])
                ).transpose(0, 3, 1, 2)
                grad_w[k * cig : (k + 1) * cig, :, i, j] = np.tensordot(
                    xg, view, axes=([0, 2, 3], [0, 2, 3])
                )
    return grad_x, grad_w, grad_out.sum(axis=(0, 2, 3))


# --- fully connected -----------------------------------------------------------------

__all__ += ["linear", "linear_backward"]


def linear(x, weight, bias=None):
    """``x @ weight.T + bias``, like ``torch.nn.functional.linear``.

    Shape: x (*, in_features), weight (out_features, in_features), bias
    (out_features,) -> (*, out_features).
    """
    V.linear_args(x, weight, bias)
    out = np.matmul(x, weight.T)
    return out if bias is None else out + bias


def linear_backward(grad_out, x, weight):
    """Gradients of `linear` with respect to x, weight and bias.

    Shape: grad_out (*, out_features) -> (grad_x (*, in_features), grad_weight
    (out_features, in_features), grad_bias (out_features,)).
    """
    V.linear_args(x, weight, None)
    V.check_linear_grad_out(grad_out, x, weight)
    lead = tuple(range(x.ndim - 1))  # every axis but the features
    grad_weight = np.tensordot(grad_out, x, axes=(lead, lead))
    return np.matmul(grad_out, weight), grad_weight, grad_out.sum(axis=lead)


__all__ += [
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "lp_pool2d",
    "lp_pool2d_backward",
]


def _n_windows(size, kernel, stride, pad, dilation, ceil_mode):
    """How many windows fit along one axis: start positions 0, stride, ... of the
    padded input up to the last one leaving room for the dilated kernel (one more,
    partial, window with ceil_mode unless it would start in the far padding)."""
    room = size + 2 * pad - (dilation * (kernel - 1) + 1)  # last possible start
    n = (-(-room // stride) if ceil_mode else room // stride) + 1
    if ceil_mode and (n - 1) * stride - pad >= size:
        n -= 1
    return n


class _Taps:
    """Geometry of a pooling: for each kernel offset (i, j), the strided view of the
    padded input it reads for every window, which of those pixels are real, and their
    flat positions ``y*W + x`` in the input plane."""

    def __init__(self, shape, args):
        self.h, self.w = shape[2:]
        (self.kh, self.kw), self.stride, self.pad, self.dilation = args[:4]
        self.oh, self.ow = (
            _n_windows(n, k, s, p, d, args.ceil_mode)
            for n, k, s, p, d in zip(
                shape[2:], args.kernel_size, args.stride, args.padding, args.dilation
            )
        )
        # window starts in input coordinates, (OH,) and (OW,)
        self.y0 = np.arange(self.oh) * self.stride[0] - self.pad[0]
        self.x0 = np.arange(self.ow) * self.stride[1] - self.pad[1]

    def pad_input(self, x, value):
        """x padded on every side far enough for every tap of every window."""
        (ph, pw), (sh, sw), (dh, dw) = self.pad, self.stride, self.dilation
        bottom = (self.oh - 1) * sh + (self.kh - 1) * dh + 1 - ph - self.h
        right = (self.ow - 1) * sw + (self.kw - 1) * dw + 1 - pw - self.w
        return np.pad(
            x,
            ((0, 0), (0, 0), (ph, max(bottom, 0)), (pw, max(right, 0))),
            constant_values=value,
        )

    def first_pixel(self):
        """Row (OH,) and column (OW,) of the first tap of each window inside the input."""
        return tuple(
            start + np.maximum(0, -(start // d)) * d  # ceil(-start / d) taps in
            for start, d in zip((self.y0, self.x0), self.dilation)
        )

    def offsets(self):
        """Kernel offsets in row-major order: (i, j, rows (OH,), cols (OW,))."""
        for i in range(self.kh):
            for j in range(self.kw):
                yield (i, j, self.y0 + i * self.dilation[0], self.x0 + j * self.dilation[1])

    def view(self, xp, i, j):
        """The (N, C, OH, OW) pixels of offset (i, j) of every window, from padded xp."""
        (sh, sw), (dh, dw) = self.stride, self.dilation
        return xp[
            :,
            :,
            i * dh : i * dh + (self.oh - 1) * sh + 1 : sh,
            j * dw : j * dw + (self.ow - 1) * sw + 1 : sw,
        ]


def max_pool2d(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """2-D max pooling (``torch.nn.functional.max_pool2d``).

    Shape: (N, C, H, W) -> (N, C, OH, OW) [and int64 indices (N, C, OH, OW)].
    """
    args = V.pool2d_args(x, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = V.flag(return_indices, "return_indices")
    taps = _Taps(x.shape, args)
    V.check_pool_windows(x.shape[2:], (taps.oh, taps.ow), args)
    xp = taps.pad_input(x, -np.inf)
    # PyTorch's scan, every window at once: the maximum starts at -inf and at the first
    # input pixel of the window; a tap replaces it only if larger (ties keep the first)
    # or NaN (so NaN propagates). Padding reads -inf and so never wins.
    out = np.full(x.shape[:2] + (taps.oh, taps.ow), -np.inf, dtype=x.dtype)
    first_row, first_col = taps.first_pixel()
    indices = np.empty(out.shape, dtype=np.int64)
    indices[...] = first_row[:, None] * taps.w + first_col
    for i, j, rows, cols in taps.offsets():
        v = taps.view(xp, i, j)
        take = v > out
        take |= np.isnan(v)
        np.copyto(out, v, where=take)
        np.copyto(indices, rows[:, None] * taps.w + cols, where=take)
    return (out, indices) if return_indices else out


def max_pool2d_backward(grad_out, indices, input_shape):
    """Gradient of `max_pool2d`: each grad_out entry is added at its index.

    Shape: grad_out, indices (N, C, OH, OW) -> grad_x (N, C, H, W).
    """
    n, c, h, w = V.max_pool2d_backward_args(grad_out, indices, input_shape)
    V.check_pool_indices(indices, h * w)
    grad_x = np.zeros((n * c, h * w), dtype=grad_out.dtype)
    flat = (
        indices.reshape(n * c, indices.shape[2] * indices.shape[3])
        + (np.arange(n * c) * (h * w))[:, None]
    )
    # unbuffered: repeated indices (overlapping windows) accumulate, in output order
    np.add.at(grad_x.reshape(-1), flat.reshape(-1), grad_out.reshape(-1))
    return grad_x.reshape(n, c, h, w)


def _avg_divisor(taps, count_include_pad, divisor_override, dtype):
    """(OH, OW) divisor of every window, in the input's dtype."""
    if divisor_override is not None:
        return np.full((taps.oh, taps.ow), divisor_override, dtype=dtype)
    sizes = []
    for start, k, n, p in (
        (taps.y0, taps.kh, taps.h, taps.pad[0]),
        (taps.x0, taps.kw, taps.w, taps.pad[1]),
    ):
        end = np.minimum(start + k, n + p)  # clipped to the padded input
        sizes.append(
            end - start if count_include_pad else np.minimum(end, n) - np.maximum(start, 0)
        )
    return np.multiply.outer(*sizes).astype(dtype)


def avg_pool2d(
    x,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    """2-D average pooling (``torch.nn.functional.avg_pool2d``).

    Shape: (N, C, H, W) -> (N, C, OH, OW).
    """
    args, count_include_pad, divisor = V.avg_pool2d_args(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    taps = _Taps(x.shape, args)
    xp = taps.pad_input(x, 0)
    total = np.zeros(x.shape[:2] + (taps.oh, taps.ow), dtype=x.dtype)
    for i, j, _, _ in taps.offsets():
        total += taps.view(xp, i, j)  # row-major, like PyTorch; padding adds 0
    return total / _avg_divisor(taps, count_include_pad, divisor, x.dtype)


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
    """Gradient of `avg_pool2d`: each window spreads grad_out / divisor over its pixels.

    Shape: grad_out (N, C, OH, OW) -> grad_x (N, C, H, W).
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
    taps = _Taps(shape, args)
    V.check_pool_grad_out(grad_out, shape[:2] + (taps.oh, taps.ow))
    delta = grad_out / _avg_divisor(taps, count_include_pad, divisor, grad_out.dtype)
    grad_xp = taps.pad_input(np.zeros(shape, dtype=grad_out.dtype), 0)
    # offsets last to first: a pixel shared by windows (oy1, ox1) < (oy2, ox2) is
    # offset (i1, j1) > (i2, j2) of them, so it sums its shares in row-major window
    # order, as PyTorch (and the compiled kernel) do
    for i, j, _, _ in reversed(list(taps.offsets())):
        taps.view(grad_xp, i, j)[...] += delta  # a strided view: writes through
    (ph, pw), (h, w) = taps.pad, shape[2:]
    return np.ascontiguousarray(grad_xp[:, :, ph : ph + h, pw : pw + w])


def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """2-D power-average pooling (``torch.nn.functional.lp_pool2d``):
    ``(KH*KW * avg_pool2d(x**p)) ** (1/p)``, over this module's `avg_pool2d`.

    Shape: (N, C, H, W) -> (N, C, OH, OW).
    """
    p, args = V.lp_pool2d_args(x, norm_type, kernel_size, stride, ceil_mode)
    return _lp.lp_pool2d(avg_pool2d, x, p, args)


def lp_pool2d_backward(grad_out, x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Gradient of `lp_pool2d` (PyTorch's autograd of its definition; zero where a
    window's sum of x**p is zero).

    Shape: grad_out (N, C, OH, OW) -> grad_x (N, C, H, W).
    """
    p, args = V.lp_pool2d_args(x, norm_type, kernel_size, stride, ceil_mode)
    taps = _Taps(x.shape, args)
    V.check_grad_out(grad_out, x, x.shape[:2] + (taps.oh, taps.ow))
    return _lp.lp_pool2d_backward(avg_pool2d, avg_pool2d_backward, grad_out, x, p, args)


__all__ += [
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
]


def _adaptive_windows(shape, out_size):
    """Every window of an adaptive pooling, one by one, by PyTorch's rule: output pixel
    (i, j) reads rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1, and columns likewise."""
    h, w = shape[2:]
    oh, ow = out_size
    for i in range(oh):
        for j in range(ow):
            # exact integer floor and ceil (a float quotient can round across an int)
            rows = slice(i * h // oh, -(-(i + 1) * h // oh))
            cols = slice(j * w // ow, -(-(j + 1) * w // ow))
            yield i, j, rows, cols


def adaptive_avg_pool2d(x, output_size):
    """2-D adaptive average pooling (``torch.nn.functional.adaptive_avg_pool2d``), one
    window at a time.

    Shape: (N, C, H, W) -> (N, C, OH, OW).
    """
    oh, ow = V.adaptive_pool2d_args(x, output_size)
    out = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i, j, rows, cols in _adaptive_windows(x.shape, (oh, ow)):
        out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return out


def adaptive_avg_pool2d_backward(grad_out, input_shape, output_size):
    """Gradient of `adaptive_avg_pool2d`, one window at a time.

    Shape: grad_out (N, C, OH, OW) -> grad_x (N, C, H, W).
    """
    shape = V.adaptive_avg_pool2d_backward_args(grad_out, input_shape, output_size)
    grad_x = np.zeros(shape, dtype=grad_out.dtype)
    for i, j, rows, cols in _adaptive_windows(shape, grad_out.shape[2:]):
        count = (rows.stop - rows.start) * (cols.stop - cols.start)
        grad_x[:, :, rows, cols] += (grad_out[:, :, i, j] / grad_out.dtype.type(count))[
            :, :, None, None
        ]
    return grad_x


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """2-D adaptive max pooling (``torch.nn.functional.adaptive_max_pool2d``), PyTorch's
    scan of each window: the maximum starts at -inf and the window's first pixel, and a
    pixel replaces it if larger (ties keep the first) or NaN.

    Shape: (N, C, H, W) -> (N, C, OH, OW) [and int64 indices (N, C, OH, OW)].
    """
    oh, ow = V.adaptive_pool2d_args(x, output_size)
    return_indices = V.flag(return_indices, "return_indices")
    w = x.shape[3]
    out = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    indices = np.empty(out.shape, dtype=np.int64)
    for i, j, rows, cols in _adaptive_windows(x.shape, (oh, ow)):
        best = np.full(x.shape[:2], -np.inf, dtype=x.dtype)
        where = np.full(x.shape[:2], rows.start * w + cols.start, dtype=np.int64)
        for y in range(rows.start, rows.stop):
            for xx in range(cols.start, cols.stop):
                v = x[:, :, y, xx]
                take = (v > best) | np.isnan(v)
                best[take] = v[take]
                where[take] = y * w + xx
        out[:, :, i, j] = best
        indices[:, :, i, j] = where
    return (out, indices) if return_indices else out


def adaptive_max_pool2d_backward(grad_out, indices, input_shape):
    """Gradient of `adaptive_max_pool2d`: each grad_out entry added at its index (the
    scatter of `max_pool2d_backward`).

    Shape: grad_out, indices (N, C, OH, OW) -> grad_x (N, C, H, W).
    """
    return max_pool2d_backward(grad_out, indices, input_shape)


__all__ += ["interpolate", "interpolate_backward"]


def _nearest_source(i, in_size, out_size, scale):
    """PyTorch's nearest source of output index `i` along one axis (`nearest_idx`)."""
    if out_size == in_size:
        return i
    if out_size == 2 * in_size:
        return i // 2
    if scale is not None:
        step = np.float32(1.0 / scale)  # float32, as PyTorch
    else:
        step = np.float32(in_size) / np.float32(out_size)
    return min(int(np.floor(np.float32(i) * step)), in_size - 1)


def _nearest_pixels(in_hw, out_hw, scales):
    """(output (i, j), input (y, x)) of every output pixel."""
    sh, sw = scales or (None, None)
    for i in range(out_hw[0]):
        y = _nearest_source(i, in_hw[0], out_hw[0], sh)
        for j in range(out_hw[1]):
            yield (i, j), (y, _nearest_source(j, in_hw[1], out_hw[1], sw))


def interpolate(x, *, scale_factor=None, size=None, mode="nearest"):
    """Nearest-neighbour resize (``torch.nn.functional.interpolate``), one output pixel
    at a time.

    Shape: (N, C, H, W) -> (N, C, OH, OW).
    """
    out_hw, scales = V.interpolate_args(x, scale_factor, size, mode)
    out = np.empty(x.shape[:2] + out_hw, dtype=x.dtype)
    for (i, j), (y, xx) in _nearest_pixels(x.shape[2:], out_hw, scales):
        out[:, :, i, j] = x[:, :, y, xx]
    return out


def interpolate_backward(
    grad_out, input_shape, *, scale_factor=None, size=None, mode="nearest"
):
    """Gradient of `interpolate`, one output pixel at a time.

    Shape: grad_out (N, C, OH, OW) -> grad_x (N, C, H, W).
    """
    shape, scales = V.interpolate_backward_args(grad_out, input_shape, scale_factor, size, mode)
    grad_x = np.zeros(shape, dtype=grad_out.dtype)
    for (i, j), (y, xx) in _nearest_pixels(shape[2:], grad_out.shape[2:], scales):
        grad_x[:, :, y, xx] += grad_out[:, :, i, j]
    return grad_x
