"""Explicit loops over output pixels: the "naive" in naive vs NumPy vs compiled.

Each output pixel is computed as it is written on paper, an elementwise product of the
window with every filter, summed; no BLAS, no im2col. Slow on purpose and obvious on
purpose: ground truth on small shapes and the baseline of `pycnn bench`. Same
signatures and errors as `pycnn.functional`.
"""
import numpy as np

from pycnn import _validation as V

__all__ = ["conv2d", "conv2d_backward"]


def _geometry(x, weight, args):
    (pt, pb), (pl, pr) = args.padding
    (sh, sw), (dh, dw) = args.stride, args.dilation
    kh, kw = weight.shape[2:]
    oh = (x.shape[2] + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (x.shape[3] + pl + pr - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    return xp, oh, ow


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution, one output pixel at a time."""
    args = V.conv2d_args(x, weight, bias, stride, padding, dilation, groups)
    xp, oh, ow = _geometry(x, weight, args)
    (sh, sw), (dh, dw), g = args.stride, args.dilation, args.groups
    n, f, (kh, kw) = x.shape[0], weight.shape[0], weight.shape[2:]
    cg, fg = weight.shape[1], f // g
    out = np.zeros((n, f, oh, ow), dtype=x.dtype)
    for oy in range(oh):
        for ox in range(ow):
            y0, x0 = oy * sh, ox * sw
            window = xp[:, :, y0:y0 + dh * (kh - 1) + 1:dh, x0:x0 + dw * (kw - 1) + 1:dw]
            for k in range(g):
                wk = weight[k * fg:(k + 1) * fg]                       # (F/G, C/G, KH, KW)
                xk = window[:, k * cg:(k + 1) * cg]                    # (N, C/G, KH, KW)
                # out[n, f] = sum over c, i, j of x[n, c, i, j] * w[f, c, i, j]
                out[:, k * fg:(k + 1) * fg, oy, ox] = np.sum(
                    xk[:, None] * wk[None], axis=(2, 3, 4))
    if bias is not None:
        out += bias[:, None, None]
    return out


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of `conv2d`, accumulated one output pixel at a time."""
    args = V.conv2d_args(x, weight, None, stride, padding, dilation, groups)
    xp, oh, ow = _geometry(x, weight, args)
    (sh, sw), (dh, dw), g = args.stride, args.dilation, args.groups
    n, f, (kh, kw) = x.shape[0], weight.shape[0], weight.shape[2:]
    cg, fg = weight.shape[1], f // g
    V.check_grad_out(grad_out, x, (n, f, oh, ow))
    grad_xp = np.zeros_like(xp)
    grad_w = np.zeros_like(weight)
    for oy in range(oh):
        for ox in range(ow):
            ys = slice(oy * sh, oy * sh + dh * (kh - 1) + 1, dh)
            xs = slice(ox * sw, ox * sw + dw * (kw - 1) + 1, dw)
            for k in range(g):
                fs, cs = slice(k * fg, (k + 1) * fg), slice(k * cg, (k + 1) * cg)
                d = grad_out[:, fs, oy, ox][:, :, None, None, None]   # (N, F/G, 1, 1, 1)
                window = xp[:, cs, ys, xs][:, None]                   # (N, 1, C/G, KH, KW)
                grad_w[fs] += np.sum(d * window, axis=0)
                grad_xp[:, cs, ys, xs] += np.sum(d * weight[fs][None], axis=1)
    (pt, pb), (pl, pr) = args.padding
    grad_x = grad_xp[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]]
    return np.ascontiguousarray(grad_x), grad_w, grad_out.sum(axis=(0, 2, 3))
