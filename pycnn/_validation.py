"""Argument normalisation and error messages, shared by every backend.

`pycnn.functional`, `pycnn.reference` and `pycnn.naive` call these checks first, so a
bad argument raises the same exception with the same text whichever backend runs.
Messages name the argument in backticks, say what was expected and what was received.
Output-size arithmetic is deliberately *not* shared: each backend derives it on its
own, so a wrong formula shows up as a disagreement in the tests.
"""
import math
import numbers
import operator
from collections import namedtuple

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Hyper-parameters (kernel sizes, strides, paddings, dilations, groups) above this are
# refused: no real input needs them, and below it every index product of two of them
# fits the kernels' 64-bit arithmetic.
MAX_HYPERPARAMETER = 2**31 - 1

ConvArgs = namedtuple("ConvArgs", "stride padding dilation groups")
ConvArgs.__doc__ = """Normalised convolution hyper-parameters.

stride, dilation: (SH, SW) and (DH, DW); padding: ((top, bottom), (left, right));
groups: int."""


# --- arrays ------------------------------------------------------------------------

def check_array(x, name, ndim=None, layout=None):
    """`x` must be a float32/float64 ndarray, of `ndim` dimensions when given."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray. "
                        f"Received: {name} of type {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"`{name}` must have dtype float32 or float64. "
                        f"Received: {name}.dtype={x.dtype}")
    if ndim is not None and x.ndim != ndim:
        shape = f" {layout}" if layout else ""
        raise ValueError(f"`{name}` must be a {ndim}-d array{shape}. "
                         f"Received: {name}.shape={x.shape}")
    return x


def float_dtype(dtype):
    """A validated float32/float64 numpy dtype from a `dtype=` argument."""
    try:
        result = np.dtype(dtype)
    except TypeError:
        result = None
    if result not in FLOAT_DTYPES:
        raise TypeError(f"`dtype` must be float32 or float64. Received: dtype={dtype!r}")
    return result


def check_same_dtype(reference, reference_name, other, other_name):
    if other.dtype != reference.dtype:
        raise TypeError(f"`{other_name}` must have the same dtype as `{reference_name}` "
                        f"({reference.dtype}). Received: {other_name}.dtype={other.dtype}")


def check_nonempty(x, name, axes, layout):
    """Every axis in `axes` of `x` must be >= 1 (an empty batch is allowed elsewhere)."""
    if any(x.shape[a] < 1 for a in axes):
        raise ValueError(f"`{name}` must have non-zero {layout}. "
                         f"Received: {name}.shape={x.shape}")


# --- hyper-parameters --------------------------------------------------------------

def _int(value, name):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError
    return operator.index(value)


def pair(value, name, *, min_value=1):
    """A validated `(a, b)` from an int or a pair of ints (torch's `_pair`, checked)."""
    try:
        if np.ndim(value) == 0:
            result = (_int(value, name),) * 2
        else:
            result = tuple(_int(v, name) for v in value)
    except TypeError:
        raise TypeError(f"`{name}` must be an int or a pair of ints. "
                        f"Received: {name}={value!r}") from None
    if len(result) != 2:
        raise ValueError(f"`{name}` must have 2 elements. Received: {name}={value!r}")
    if min(result) < min_value:
        raise ValueError(f"`{name}` must be >= {min_value}. Received: {name}={value!r}")
    if max(result) > MAX_HYPERPARAMETER:
        raise ValueError(f"`{name}` must be <= {MAX_HYPERPARAMETER}. "
                         f"Received: {name}={value!r}")
    return result


def integer(value, name):
    """A validated int (bools and floats are rejected)."""
    try:
        return _int(value, name)
    except TypeError:
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}") from None


def positive_int(value, name):
    try:
        result = _int(value, name)
    except TypeError:
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}") from None
    if result < 1:
        raise ValueError(f"`{name}` must be >= 1. Received: {name}={value!r}")
    if result > MAX_HYPERPARAMETER:
        raise ValueError(f"`{name}` must be <= {MAX_HYPERPARAMETER}. "
                         f"Received: {name}={value!r}")
    return result


def real(value, name, min_value=None, max_value=None, *, min_open=False,
         max_open=False):
    """A validated, finite Python float within the given bounds.

    An open bound excludes its value: ``real(p, "p", 0, 1, max_open=True)`` is [0, 1).
    Returning a Python float matters: a NumPy float64 scalar would promote float32
    arrays it multiplies, a Python float does not.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number. Received: {name}={value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"`{name}` must be finite. Received: {name}={value!r}")
    too_low = min_value is not None and (result <= min_value if min_open
                                         else result < min_value)
    too_high = max_value is not None and (result >= max_value if max_open
                                          else result > max_value)
    if too_low or too_high:
        if min_value is not None and max_value is not None:
            bounds = (f"in {'(' if min_open else '['}{min_value:g}, "
                      f"{max_value:g}{')' if max_open else ']'}")
        elif min_value is not None:
            bounds = f"{'>' if min_open else '>='} {min_value:g}"
        else:
            bounds = f"{'<' if max_open else '<='} {max_value:g}"
        raise ValueError(f"`{name}` must be {bounds}. Received: {name}={value!r}")
    return result


def conv_padding(padding, stride, dilation, kernel_size):
    """Normalise `padding` (int, pair, 'valid', 'same') to ((top, bottom), (left, right)).

    'same' pads dilation*(kernel-1) in all per axis, the odd pixel at the bottom/right,
    as PyTorch does; it requires stride 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided "
                                 f"convolutions. Received: stride={stride}")
            pads = []
            for d, k in zip(dilation, kernel_size):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError("`padding` must be an int, a pair of ints, 'valid' or 'same'. "
                         f"Received: padding={padding!r}")
    ph, pw = pair(padding, "padding", min_value=0)
    return (ph, ph), (pw, pw)


def check_kernel_fits(size, padding, kernel_size, dilation):
    """The dilated kernel must fit inside the padded input, on both axes."""
    padded = tuple(s + p0 + p1 for s, (p0, p1) in zip(size, padding))
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel_size, dilation))
    if span[0] > padded[0] or span[1] > padded[1]:
        raise ValueError(
            "`kernel_size` (dilated) must not exceed the padded input size. Received: "
            f"kernel_size={tuple(kernel_size)}, dilation={tuple(dilation)} spans {span}, "
            f"padded input is {padded}")


# --- per-op argument sets ------------------------------------------------------------

def im2col_args(x, kernel_size, stride, padding, dilation):
    """Validate im2col arguments; return (kernel, stride, padding, dilation) pairs."""
    check_array(x, "x", 4, "(N, C, H, W)")
    check_nonempty(x, "x", (1, 2, 3), "C, H and W")
    k = pair(kernel_size, "kernel_size")
    s = pair(stride, "stride")
    p = pair(padding, "padding", min_value=0)
    d = pair(dilation, "dilation")
    check_kernel_fits(x.shape[2:], ((p[0], p[0]), (p[1], p[1])), k, d)
    return k, s, p, d


def col2im_args(cols, output_size, kernel_size, stride, padding, dilation):
    """Validate col2im arguments; return (output_size, kernel, stride, padding, dilation).

    The caller still checks that `output_size` gives as many blocks as `cols` has
    columns, with its own output-size arithmetic, through `check_block_count`.
    """
    check_array(cols, "cols", 3, "(N, C*KH*KW, L)")
    size = pair(output_size, "output_size")
    k = pair(kernel_size, "kernel_size")
    s = pair(stride, "stride")
    p = pair(padding, "padding", min_value=0)
    d = pair(dilation, "dilation")
    if cols.shape[1] % (k[0] * k[1]) != 0 or cols.shape[1] == 0:
        raise ValueError(f"`cols` must have C*KH*KW rows, a non-zero multiple of "
                         f"KH*KW={k[0] * k[1]}. Received: cols.shape={cols.shape}")
    check_kernel_fits(size, ((p[0], p[0]), (p[1], p[1])), k, d)
    return size, k, s, p, d


def check_block_count(cols, output_size, blocks):
    if cols.shape[2] != blocks[0] * blocks[1]:
        raise ValueError(
            f"`output_size` gives {blocks[0]}x{blocks[1]}={blocks[0] * blocks[1]} "
            f"blocks but `cols` has L={cols.shape[2]} columns. "
            f"Received: output_size={tuple(output_size)}, cols.shape={cols.shape}")


def conv2d_args(x, weight, bias, stride, padding, dilation, groups):
    """Validate conv2d arguments; return a ConvArgs."""
    check_array(x, "x", 4, "(N, C, H, W)")
    check_array(weight, "weight", 4, "(F, C/groups, KH, KW)")
    check_same_dtype(x, "x", weight, "weight")
    check_nonempty(x, "x", (1, 2, 3), "C, H and W")
    check_nonempty(weight, "weight", (0, 1, 2, 3), "F, C/groups, KH and KW")
    g = positive_int(groups, "groups")
    c, f = x.shape[1], weight.shape[0]
    if c % g != 0:
        raise ValueError(f"`groups` must divide the input channels. "
                         f"Received: groups={g}, x.shape={x.shape}")
    if f % g != 0:
        raise ValueError(f"`groups` must divide the output channels. "
                         f"Received: groups={g}, weight.shape={weight.shape}")
    if weight.shape[1] * g != c:
        raise ValueError(
            f"`weight` must have C/groups = {c // g} input channels for x with C={c} "
            f"and groups={g}. Received: weight.shape={weight.shape}")
    if bias is not None:
        check_array(bias, "bias", 1, "(F,)")
        check_same_dtype(x, "x", bias, "bias")
        if bias.shape[0] != f:
            raise ValueError(f"`bias` must have shape ({f},), one value per filter. "
                             f"Received: bias.shape={bias.shape}")
    s = pair(stride, "stride")
    d = pair(dilation, "dilation")
    kernel = weight.shape[2:]
    p = conv_padding(padding, s, d, kernel)
    check_kernel_fits(x.shape[2:], p, kernel, d)
    return ConvArgs(s, p, d, g)


def check_grad_out(grad_out, x, expected_shape):
    """`grad_out` must be an array of `x`'s dtype with the forward output's shape."""
    check_array(grad_out, "grad_out", 4, "(N, F, OH, OW)")
    check_same_dtype(x, "x", grad_out, "grad_out")
    if grad_out.shape != tuple(expected_shape):
        raise ValueError(f"`grad_out` must have the forward output's shape "
                         f"{tuple(expected_shape)}. Received: grad_out.shape={grad_out.shape}")
