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
            window = xp[
                :, :, y0 : y0 + dh * (kh - 1) + 1 : dh, x0 : x0 + dw * (kw - 1) + 1 : dw
            ]
            for k in range(g):
                wk = weight[k * fg : (k + 1) * fg]  # (F/G, C/G, KH, KW)
                xk = window[:, k * cg : (k + 1) * cg]  # (N, C/G, KH, KW)
                # out[n, f] = sum over c, i, j of x[n, c, i, j] * w[f, c, i, j]
                out[:, k * fg : (k + 1) * fg, oy, ox] = np.sum(
                    xk[:, None] * wk[None], axis=(2, 3, 4)
                )
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
                d = grad_out[:, fs, oy, ox][:, :, None, None, None]  # (N, F/G, 1, 1, 1)
                window = xp[:, cs, ys, xs][:, None]  # (N, 1, C/G, KH, KW)
                grad_w[fs] += np.sum(d * window, axis=0)
                grad_xp[:, cs, ys, xs] += np.sum(d * weight[fs][None], axis=1)
    (pt, pb), (pl, pr) = args.padding
    grad_x = grad_xp[:, :, pt : pt + x.shape[2], pl : pl + x.shape[3]]
    return np.ascontiguousarray(grad_x), grad_w, grad_out.sum(axis=(0, 2, 3))


# --- pooling ---------------------------------------------------------------------------

__all__ += ["conv_transpose2d", "conv_transpose2d_backward"]


def _transposed_pairs(x, weight, args):
    """Every (input pixel, kernel tap, output pixel) of a transposed convolution, by
    explicit loops: ``oy = i*S + ki*D - P`` kept when inside the output."""
    n, c_in, h, w = x.shape
    cog, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
    g = args.groups
    cig = c_in // g
    (sh, sw), (dh, dw) = args.stride, args.dilation
    (ph, _), (pw, _) = args.padding
    oh, ow = args.output_size
    for b in range(n):
        for ci in range(c_in):
            k = ci // cig
            for co in range(k * cog, (k + 1) * cog):
                for i in range(h):
                    for j in range(w):
                        for ki in range(kh):
                            for kj in range(kw):
                                oy, ox = i * sh + ki * dh - ph, j * sw + kj * dw - pw
                                if 0 <= oy < oh and 0 <= ox < ow:
                                    yield b, ci, co - k * cog, co, i, j, ki, kj, oy, ox


def conv_transpose2d(
    x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """Transposed convolution, one multiply-add at a time (small shapes; ground truth)."""
    args = V.conv_transpose2d_args(
        x, weight, bias, stride, padding, output_padding, groups, dilation
    )
    cout = weight.shape[1] * args.groups
    out = np.zeros((x.shape[0], cout) + tuple(args.output_size), dtype=x.dtype)
    for b, ci, cw, co, i, j, ki, kj, oy, ox in _transposed_pairs(x, weight, args):
        out[b, co, oy, ox] += x[b, ci, i, j] * weight[ci, cw, ki, kj]
    if bias is not None:
        out += bias[:, None, None]
    return out


def conv_transpose2d_backward(
    grad_out, x, weight, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """Gradients of `conv_transpose2d`, one product at a time."""
    args = V.conv_transpose2d_args(
        x, weight, None, stride, padding, output_padding, groups, dilation
    )
    cout = weight.shape[1] * args.groups
    V.check_grad_out(grad_out, x, (x.shape[0], cout) + tuple(args.output_size))
    grad_x, grad_w = np.zeros_like(x), np.zeros_like(weight)
    for b, ci, cw, co, i, j, ki, kj, oy, ox in _transposed_pairs(x, weight, args):
        grad_x[b, ci, i, j] += grad_out[b, co, oy, ox] * weight[ci, cw, ki, kj]
        grad_w[ci, cw, ki, kj] += grad_out[b, co, oy, ox] * x[b, ci, i, j]
    return grad_x, grad_w, grad_out.sum(axis=(0, 2, 3))


# --- fully connected -----------------------------------------------------------------

__all__ += ["linear", "linear_backward"]


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` one output at a time (small shapes; ground truth)."""
    V.linear_args(x, weight, bias)
    out_f, in_f = weight.shape
    rows = x.reshape(-1, in_f)
    out = np.zeros((rows.shape[0], out_f), dtype=x.dtype)
    for r in range(rows.shape[0]):
        for o in range(out_f):
            acc = 0.0 if bias is None else float(bias[o])
            for i in range(in_f):
                acc += float(rows[r, i]) * float(weight[o, i])
            out[r, o] = acc
    return out.reshape(x.shape[:-1] + (out_f,))


def linear_backward(grad_out, x, weight):
    """Gradients of `linear`, accumulated one product at a time."""
    V.linear_args(x, weight, None)
    V.check_linear_grad_out(grad_out, x, weight)
    out_f, in_f = weight.shape
    rows, grads = x.reshape(-1, in_f), grad_out.reshape(-1, out_f)
    grad_x = np.zeros(rows.shape, dtype=x.dtype)
    grad_w = np.zeros(weight.shape, dtype=x.dtype)
    grad_b = np.zeros(out_f, dtype=x.dtype)
    for r in range(rows.shape[0]):
        for o in range(out_f):
            g = float(grads[r, o])
            grad_b[o] += g
            for i in range(in_f):
                grad_x[r, i] += g * float(weight[o, i])
                grad_w[o, i] += g * float(rows[r, i])
    return grad_x.reshape(x.shape), grad_w, grad_b


__all__ += ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]


def _window_starts(size, kernel, stride, pad, dilation, ceil_mode):
    """Window starts along one axis (input coordinates), enumerated one by one: a window
    is kept while its span ends inside the padded input (with ceil_mode: overhangs it by
    less than a stride, and starts inside the input or the left padding)."""
    span = dilation * (kernel - 1) + 1
    limit = size + pad + (stride - 1 if ceil_mode else 0)
    starts, start = [], -pad
    while start + span <= limit and (start < size or not ceil_mode):
        starts.append(start)
        start += stride
    return starts


def _windows(shape, args):
    """Per axis, the list of (start, real taps) of every window; real taps are the
    input coordinates of the taps that are not padding."""
    axes = []
    for size, k, s, p, d in zip(shape[2:], *args[:4]):
        axes.append(
            [
                (start, [start + t * d for t in range(k) if 0 <= start + t * d < size])
                for start in _window_starts(size, k, s, p, d, args.ceil_mode)
            ]
        )
    return axes


def max_pool2d(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """2-D max pooling, one output pixel (and one tap) at a time."""
    args = V.pool2d_args(x, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = V.flag(return_indices, "return_indices")
    rows, cols = _windows(x.shape, args)
    V.check_pool_windows(x.shape[2:], (len(rows), len(cols)), args)
    n, c, h, w = x.shape
    out = np.empty((n, c, len(rows), len(cols)), dtype=x.dtype)
    indices = np.empty(out.shape, dtype=np.int64)
    for oy, (_, ys) in enumerate(rows):
        for ox, (_, xs) in enumerate(cols):
            best = np.full((n, c), -np.inf, dtype=x.dtype)
            where = np.full((n, c), -1, dtype=np.int64)
            for y in ys:
                for xx in xs:
                    v = x[:, :, y, xx]
                    take = (where < 0) | (v > best) | np.isnan(v)
                    best[take] = v[take]
                    where[take] = y * w + xx
            out[:, :, oy, ox] = best
            indices[:, :, oy, ox] = where
    return (out, indices) if return_indices else out


def max_pool2d_backward(grad_out, indices, input_shape):
    """Gradient of `max_pool2d`, one output pixel at a time."""
    n, c, h, w = V.max_pool2d_backward_args(grad_out, indices, input_shape)
    V.check_pool_indices(indices, h * w)
    grad_x = np.zeros((n, c, h * w), dtype=grad_out.dtype)
    ni, ci = np.indices((n, c))
    for oy in range(grad_out.shape[2]):
        for ox in range(grad_out.shape[3]):
            grad_x[ni, ci, indices[:, :, oy, ox]] += grad_out[:, :, oy, ox]
    return grad_x.reshape(n, c, h, w)


def _avg_windows(shape, args, count_include_pad, divisor_override):
    """(input rows, input cols, divisor) of every window, in row-major output order."""
    rows, cols = _windows(shape, args)
    h, w = shape[2:]
    (kh, kw), (ph, pw) = args.kernel_size, args.padding
    for oy, (y0, ys) in enumerate(rows):
        for ox, (x0, xs) in enumerate(cols):
            # taps in the padded input [-P, size + P) count with count_include_pad
            padded = sum(y0 + i < h + ph for i in range(kh)) * sum(
                x0 + j < w + pw for j in range(kw)
            )
            divisor = (
                divisor_override
                if divisor_override is not None
                else padded
                if count_include_pad
                else len(ys) * len(xs)
            )
            yield oy, ox, ys, xs, divisor


def avg_pool2d(
    x,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    """2-D average pooling, one output pixel (and one tap) at a time."""
    args, count_include_pad, divisor = V.avg_pool2d_args(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    rows, cols = _windows(x.shape, args)
    out = np.empty(x.shape[:2] + (len(rows), len(cols)), dtype=x.dtype)
    for oy, ox, ys, xs, div in _avg_windows(x.shape, args, count_include_pad, divisor):
        total = np.zeros(x.shape[:2], dtype=x.dtype)
        for y in ys:
            for xx in xs:
                total += x[:, :, y, xx]
        out[:, :, oy, ox] = total / x.dtype.type(div)
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
    """Gradient of `avg_pool2d`, one output pixel at a time."""
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
    rows, cols = _windows(shape, args)
    V.check_pool_grad_out(grad_out, shape[:2] + (len(rows), len(cols)))
    grad_x = np.zeros(shape, dtype=grad_out.dtype)
    for oy, ox, ys, xs, div in _avg_windows(shape, args, count_include_pad, divisor):
        delta = grad_out[:, :, oy, ox] / grad_out.dtype.type(div)
        for y in ys:
            for xx in xs:
                grad_x[:, :, y, xx] += delta
    return grad_x
