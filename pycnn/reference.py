"""Pure-NumPy twins of `pycnn.functional`: same names, signatures, errors and results.

Written to be read and to be fast in NumPy terms: blocks are taken with
`sliding_window_view` (no copies until the GEMM needs one), convolutions are batched
matmuls, and the scatter of `col2im` is KH*KW strided slice additions. The shape
arithmetic is derived here independently of the compiled path, from the padded array.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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
            xp[:, :, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw] += \
                blocks[:, :, i, j]
    (pt, pb), (pl, pr) = padding
    return xp[:, :, pt:padded_shape[2] - pb, pl:padded_shape[3] - pr]


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
    size, k, s, p, d = V.col2im_args(cols, output_size, kernel_size, stride, padding,
                                     dilation)
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
    out = np.matmul(w[None], cols.transpose(0, 1, 3, 2))      # (N, G, F/G, OH*OW)
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
    dblocks = dcols.reshape(n, c, kh, kw, oh, ow)       # rows are (c, i, j) per group
    (pt, pb), (pl, pr) = args.padding
    grad_x = _scatter(dblocks, (n, c, h + pt + pb, w + pl + pr), args.padding,
                      args.stride, args.dilation)
    return np.ascontiguousarray(grad_x), grad_weight, grad_out.sum(axis=(0, 2, 3))
