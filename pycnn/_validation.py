"""Argument normalisation and error messages, shared by every backend.

`pycnn.functional`, `pycnn.reference` and `pycnn.naive` call these checks first, so a
bad argument raises the same exception with the same text whichever backend runs.
Messages name the argument in backticks, say what was expected and what was received.
The output-size formula here (`out_size`) serves the size guards and the compiled path
alone: `pycnn.reference` and `pycnn.naive` derive their output sizes on their own, from
the padded array and from their loops, so a wrong formula shows up as a disagreement in
the tests.
"""

import math
import numbers
import operator
import os
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

ConvTransposeArgs = namedtuple(
    "ConvTransposeArgs", "stride padding dilation groups output_padding output_size"
)
ConvTransposeArgs.__doc__ = """Normalised transposed-convolution hyper-parameters.

stride, dilation, output_padding: pairs; padding: ((PH, PH), (PW, PW)); groups: int;
output_size: the (OH, OW) of the output."""

PoolArgs = namedtuple("PoolArgs", "kernel_size stride padding dilation ceil_mode")
PoolArgs.__doc__ = """Normalised pooling hyper-parameters.

kernel_size, stride, padding, dilation: (H, W) pairs, padding on each side (PH, PW);
stride is kernel_size when it was not given; ceil_mode: bool."""


# --- arrays ------------------------------------------------------------------------


def check_array(x, name, ndim=None, layout=None):
    """`x` must be a float32/float64 ndarray, of `ndim` dimensions when given."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"`{name}` must be a numpy.ndarray. Received: {name} of type {type(x).__name__}"
        )
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"`{name}` must have dtype float32 or float64. Received: {name}.dtype={x.dtype}"
        )
    if ndim is not None and x.ndim != ndim:
        shape = f" {layout}" if layout else ""
        raise ValueError(
            f"`{name}` must be a {ndim}-d array{shape}. Received: {name}.shape={x.shape}"
        )
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
        raise TypeError(
            f"`{other_name}` must have the same dtype as `{reference_name}` "
            f"({reference.dtype}). Received: {other_name}.dtype={other.dtype}"
        )


def check_nonempty(x, name, axes, layout):
    """Every axis in `axes` of `x` must be >= 1 (an empty batch is allowed elsewhere)."""
    if any(x.shape[a] < 1 for a in axes):
        raise ValueError(
            f"`{name}` must have non-zero {layout}. Received: {name}.shape={x.shape}"
        )


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
        raise TypeError(
            f"`{name}` must be an int or a pair of ints. Received: {name}={value!r}"
        ) from None
    if len(result) != 2:
        raise ValueError(f"`{name}` must have 2 elements. Received: {name}={value!r}")
    if min(result) < min_value:
        raise ValueError(f"`{name}` must be >= {min_value}. Received: {name}={value!r}")
    if max(result) > MAX_HYPERPARAMETER:
        raise ValueError(
            f"`{name}` must be <= {MAX_HYPERPARAMETER}. Received: {name}={value!r}"
        )
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
        raise ValueError(
            f"`{name}` must be <= {MAX_HYPERPARAMETER}. Received: {name}={value!r}"
        )
    return result


def flag(value, name):
    """A bool (numpy's too). Anything else is refused: the string 'False' is truthy."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")


def real(value, name, min_value=None, max_value=None, *, min_open=False, max_open=False):
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
    too_low = min_value is not None and (
        result <= min_value if min_open else result < min_value
    )
    too_high = max_value is not None and (
        result >= max_value if max_open else result > max_value
    )
    if too_low or too_high:
        if min_value is not None and max_value is not None:
            bounds = (
                f"in {'(' if min_open else '['}{min_value:g}, "
                f"{max_value:g}{')' if max_open else ']'}"
            )
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
                raise ValueError(
                    "padding='same' is not supported for strided "
                    f"convolutions. Received: stride={stride}"
                )
            pads = []
            for d, k in zip(dilation, kernel_size):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(
            "`padding` must be an int, a pair of ints, 'valid' or 'same'. "
            f"Received: padding={padding!r}"
        )
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
            f"padded input is {padded}"
        )


def out_size(size, kernel, stride, pad_total, dilation):
    """floor((size + padding - dilation*(kernel-1) - 1) / stride) + 1, as PyTorch."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def _blocks(size, padding, kernel_size, stride, dilation):
    """(OH, OW) of a kernel that fits (check_kernel_fits), as Python ints."""
    return tuple(
        out_size(n, k, s, p0 + p1, d)
        for n, (p0, p1), k, s, d in zip(size, padding, kernel_size, stride, dilation)
    )


# The largest array NumPy can address, in bytes; a larger request is refused with
# pycnn's own message before anything is allocated (products are Python ints, so they
# cannot wrap around).
MAX_ARRAY_BYTES = np.iinfo(np.intp).max


def check_array_size(what, shape, itemsize, received):
    """Refuse an array of `shape` that no address space could hold (ValueError), or
    that this machine's memory could not (MemoryError, `check_memory`)."""
    n = math.prod(int(dim) for dim in shape)
    if n * itemsize > MAX_ARRAY_BYTES:
        raise ValueError(
            f"{what} would have {n} elements, more than an array can hold. Received: {received}"
        )
    check_memory(what, n * itemsize, received)


# Requests below this are not checked against the memory available: reading it costs
# ~20 µs, and a failure that small is NumPy's MemoryError to report.
MEMORY_CHECK_BYTES = 2**28


def available_memory():
    """Bytes of memory this process could still be given: MemAvailable + SwapFree on
    Linux, else the machine's physical memory; None when nothing says."""
    try:
        with open("/proc/meminfo", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
        return sum(int(fields[k].split()[0]) * 1024 for k in (b"MemAvailable", b"SwapFree"))
    except (OSError, KeyError, ValueError, IndexError):
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None


def check_memory(what, nbytes, received):
    """Refuse to allocate more than the memory available, before a byte is written.

    With overcommit (Linux's default) a huge `np.empty` succeeds and the writes that
    follow exhaust the machine's memory instead; this says how much was asked."""
    if nbytes < MEMORY_CHECK_BYTES:
        return
    available = available_memory()
    if available is not None and nbytes > available:
        raise MemoryError(
            f"{what} would need {nbytes / 2**30:.1f} GiB ({nbytes} bytes), "
            f"more than the {available / 2**30:.1f} GiB of memory available. "
            f"Received: {received}"
        )


# --- per-op argument sets ------------------------------------------------------------


def im2col_args(x, kernel_size, stride, padding, dilation):
    """Validate im2col arguments; return (kernel, stride, padding, dilation) pairs."""
    check_array(x, "x", 4, "(N, C, H, W)")
    check_nonempty(x, "x", (1, 2, 3), "C, H and W")
    k = pair(kernel_size, "kernel_size")
    s = pair(stride, "stride")
    p = pair(padding, "padding", min_value=0)
    d = pair(dilation, "dilation")
    pads = ((p[0], p[0]), (p[1], p[1]))
    check_kernel_fits(x.shape[2:], pads, k, d)
    oh, ow = _blocks(x.shape[2:], pads, k, s, d)
    check_array_size(
        "The column matrix",
        (x.shape[0], x.shape[1] * k[0] * k[1], oh * ow),
        x.dtype.itemsize,
        f"x.shape={x.shape}, kernel_size={k}, stride={s}, padding={p}, dilation={d}",
    )
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
        raise ValueError(
            f"`cols` must have C*KH*KW rows, a non-zero multiple of "
            f"KH*KW={k[0] * k[1]}. Received: cols.shape={cols.shape}"
        )
    check_kernel_fits(size, ((p[0], p[0]), (p[1], p[1])), k, d)
    check_array_size(
        "The output",
        (cols.shape[0], cols.shape[1] // (k[0] * k[1])) + size,
        cols.dtype.itemsize,
        f"cols.shape={cols.shape}, output_size={size}, kernel_size={k}",
    )
    return size, k, s, p, d


def check_block_count(cols, output_size, blocks):
    if cols.shape[2] != blocks[0] * blocks[1]:
        raise ValueError(
            f"`output_size` gives {blocks[0]}x{blocks[1]}={blocks[0] * blocks[1]} "
            f"blocks but `cols` has L={cols.shape[2]} columns. "
            f"Received: output_size={tuple(output_size)}, cols.shape={cols.shape}"
        )


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
        raise ValueError(
            f"`groups` must divide the input channels. Received: groups={g}, x.shape={x.shape}"
        )
    if f % g != 0:
        raise ValueError(
            f"`groups` must divide the output channels. "
            f"Received: groups={g}, weight.shape={weight.shape}"
        )
    if weight.shape[1] * g != c:
        raise ValueError(
            f"`weight` must have C/groups = {c // g} input channels for x with C={c} "
            f"and groups={g}. Received: weight.shape={weight.shape}"
        )
    if bias is not None:
        check_array(bias, "bias", 1, "(F,)")
        check_same_dtype(x, "x", bias, "bias")
        if bias.shape[0] != f:
            raise ValueError(
                f"`bias` must have shape ({f},), one value per filter. "
                f"Received: bias.shape={bias.shape}"
            )
    s = pair(stride, "stride")
    d = pair(dilation, "dilation")
    kernel = weight.shape[2:]
    p = conv_padding(padding, s, d, kernel)
    check_kernel_fits(x.shape[2:], p, kernel, d)
    oh, ow = _blocks(x.shape[2:], p, kernel, s, d)
    received = (
        f"x.shape={x.shape}, weight.shape={weight.shape}, stride={s}, padding={p}, dilation={d}"
    )
    check_array_size("The output", (x.shape[0], f, oh, ow), x.dtype.itemsize, received)
    check_array_size(
        "One image's column matrix",
        (c * kernel[0] * kernel[1], oh * ow),
        x.dtype.itemsize,
        received,
    )
    return ConvArgs(s, p, d, g)


def linear_args(x, weight, bias):
    """Validate linear arguments: x (*, in), weight (out, in), bias (out,) or None."""
    check_array(x, "x", None, "(*, in_features)")
    check_array(weight, "weight", 2, "(out_features, in_features)")
    check_same_dtype(x, "x", weight, "weight")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"`x` must have in_features={weight.shape[1]} (weight.shape[1]) "
            f"as its last axis. Received: x.shape={x.shape}, "
            f"weight.shape={weight.shape}"
        )
    if bias is not None:
        check_array(bias, "bias", 1, "(out_features,)")
        check_same_dtype(x, "x", bias, "bias")
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(
                f"`bias` must have out_features={weight.shape[0]} entries. "
                f"Received: bias.shape={bias.shape}"
            )


def check_linear_grad_out(grad_out, x, weight):
    """`grad_out` must be a float array of shape (*x.shape[:-1], out_features)."""
    expected = x.shape[:-1] + (weight.shape[0],)
    check_array(grad_out, "grad_out", len(expected), "(*, out_features)")
    check_same_dtype(x, "x", grad_out, "grad_out")
    if grad_out.shape != expected:
        raise ValueError(
            f"`grad_out` must have shape {expected} (x.shape[:-1] + "
            f"(out_features,)). Received: grad_out.shape={grad_out.shape}"
        )


def conv_transpose2d_args(x, weight, bias, stride, padding, output_padding, groups, dilation):
    """Validate conv_transpose2d arguments; return a ConvTransposeArgs."""
    check_array(x, "x", 4, "(N, C_in, H, W)")
    check_array(weight, "weight", 4, "(C_in, C_out/groups, KH, KW)")
    check_same_dtype(x, "x", weight, "weight")
    check_nonempty(x, "x", (1, 2, 3), "C_in, H and W")
    check_nonempty(weight, "weight", (0, 1, 2, 3), "C_in, C_out/groups, KH and KW")
    g = positive_int(groups, "groups")
    c = x.shape[1]
    if c % g != 0:
        raise ValueError(
            f"`groups` must divide the input channels. Received: groups={g}, x.shape={x.shape}"
        )
    if weight.shape[0] != c:
        raise ValueError(
            f"`weight` must have C_in = {c} rows (its first axis) for x with "
            f"C_in={c}. Received: weight.shape={weight.shape}"
        )
    f = weight.shape[1] * g
    if bias is not None:
        check_array(bias, "bias", 1, "(C_out,)")
        check_same_dtype(x, "x", bias, "bias")
        if bias.shape[0] != f:
            raise ValueError(
                f"`bias` must have shape ({f},), one value per output "
                f"channel. Received: bias.shape={bias.shape}"
            )
    s = pair(stride, "stride")
    d = pair(dilation, "dilation")
    p = pair(padding, "padding", min_value=0)
    op = pair(output_padding, "output_padding", min_value=0)
    for a in (0, 1):
        if op[a] >= max(s[a], d[a]):
            raise ValueError(
                f"`output_padding` must be smaller than the stride or the "
                f"dilation. Received: output_padding={op}, stride={s}, "
                f"dilation={d}"
            )
    kernel = weight.shape[2:]
    size = tuple(
        (n - 1) * s[a] - 2 * p[a] + d[a] * (kernel[a] - 1) + op[a] + 1
        for a, n in enumerate(x.shape[2:])
    )
    received = (
        f"x.shape={x.shape}, weight.shape={weight.shape}, stride={s}, "
        f"padding={p}, output_padding={op}, dilation={d}"
    )
    if min(size) < 1:
        raise ValueError(
            f"The output would be {size[0]}x{size[1]}: `padding` removes more "
            f"than the transposed convolution makes. Received: {received}"
        )
    check_array_size("The output", (x.shape[0], f) + size, x.dtype.itemsize, received)
    check_array_size(
        "One image's column matrix",
        (weight.shape[1] * g * kernel[0] * kernel[1], x.shape[2] * x.shape[3]),
        x.dtype.itemsize,
        received,
    )
    return ConvTransposeArgs(s, ((p[0], p[0]), (p[1], p[1])), d, g, op, size)


def check_grad_out(grad_out, x, expected_shape):
    """`grad_out` must be an array of `x`'s dtype with the forward output's shape."""
    check_array(grad_out, "grad_out", 4, "(N, F, OH, OW)")
    check_same_dtype(x, "x", grad_out, "grad_out")
    if grad_out.shape != tuple(expected_shape):
        raise ValueError(
            f"`grad_out` must have the forward output's shape "
            f"{tuple(expected_shape)}. Received: grad_out.shape={grad_out.shape}"
        )


# --- pooling -------------------------------------------------------------------------


# Validated pooling geometries by their arguments: a pooling layer passes the same ones
# on every call, and validating them took 13 µs of a 60 µs small-batch forward. Only
# arguments of built-in types are cached, keyed with their types (so that 2.0, True
# or np.int64(2), equal to 2 as dict keys, are still validated and refused as before).
_GEOMETRIES: dict = {}
_GEOMETRIES_MAX = 256


UNCACHED = object()  # a `_typed_key` that must not be looked up


def _typed_key(value):
    """A dict key for a hyper-parameter that only arguments of its own type can equal:
    built-in ints, None and tuples of built-in ints as they are, bools tagged (True == 1
    as a key); `UNCACHED` for anything else (floats, NumPy scalars, lists)."""
    t = type(value)
    if t is int or value is None:
        return value
    if t is bool:
        return bool, value
    if t is tuple and all(type(v) is int for v in value):
        return value
    return UNCACHED


def pool_geometry(kernel_size, stride, padding, dilation, ceil_mode):
    """Validate pooling hyper-parameters (no input needed); return a PoolArgs.

    Like PyTorch, `stride=None` means `kernel_size`, and each side may be padded by at
    most half the kernel (kernel_size // 2, whatever the dilation), so that every
    window overlaps the input.
    """
    key = (
        _typed_key(kernel_size),
        _typed_key(stride),
        _typed_key(padding),
        _typed_key(dilation),
        _typed_key(ceil_mode),
    )
    cached = None if UNCACHED in key else _GEOMETRIES.get(key)
    if cached is not None:
        return cached
    args = _pool_geometry(kernel_size, stride, padding, dilation, ceil_mode)
    if UNCACHED not in key:
        if len(_GEOMETRIES) >= _GEOMETRIES_MAX:
            _GEOMETRIES.clear()
        _GEOMETRIES[key] = args
    return args


def _pool_geometry(kernel_size, stride, padding, dilation, ceil_mode):
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    p = pair(padding, "padding", min_value=0)
    d = pair(dilation, "dilation")
    ceil = flag(ceil_mode, "ceil_mode")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(
            f"`padding` must be at most half of `kernel_size`. "
            f"Received: padding={p}, kernel_size={k}"
        )
    return PoolArgs(k, s, p, d, ceil)


def check_pool_fits(size, args):
    """The (dilated) window must fit inside the padded input.

    With ceil_mode PyTorch also accepts a window that overhangs the padded input by
    less than a stride (the one window per axis then covers the whole input).
    """
    padded = tuple(n + 2 * p for n, p in zip(size, args.padding))
    span = tuple(d * (k - 1) + 1 for k, d in zip(args.kernel_size, args.dilation))
    if not args.ceil_mode:
        check_kernel_fits(
            size, tuple((p, p) for p in args.padding), args.kernel_size, args.dilation
        )
    elif any(sp > pd + st - 1 for sp, pd, st in zip(span, padded, args.stride)):
        raise ValueError(
            "`kernel_size` (dilated) must not exceed the padded input size by more than "
            f"`stride` - 1 with ceil_mode=True. Received: kernel_size={args.kernel_size}, "
            f"dilation={args.dilation} spans {span}, padded input is {padded}, "
            f"stride={args.stride}"
        )


def check_pool_windows(size, out_size, args):
    """Every max-pooling window must hold at least one input pixel.

    Padding of at most half the kernel guarantees it unless the dilation exceeds the
    input size; then a window's taps can straddle the whole input. (PyTorch returns
    -inf there with an index outside the plane, which its backward writes through.)
    """
    for axis, name in enumerate("HW"):
        n, k, d = size[axis], args.kernel_size[axis], args.dilation[axis]
        if d <= n:  # taps d apart over a span reaching into [0, n) hit it
            continue
        starts = np.arange(out_size[axis]) * args.stride[axis] - args.padding[axis]
        first = np.maximum(0, -(starts // d))  # first tap at or after 0
        if np.any((first >= k) | (starts + first * d >= n)):
            raise ValueError(
                f"`dilation` must not let a pooling window skip the whole input: a window "
                f"along {name} holds no input pixel. Received: "
                f"kernel_size={args.kernel_size}, dilation={args.dilation}, "
                f"padding={args.padding}, input (H, W)={tuple(size)}"
            )


def pool2d_args(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate max-pooling arguments; return a PoolArgs.

    Each backend then derives (OH, OW) itself and calls `check_pool_windows`.
    """
    check_array(x, "x", 4, "(N, C, H, W)")
    check_nonempty(x, "x", (1, 2, 3), "C, H and W")
    args = pool_geometry(kernel_size, stride, padding, dilation, ceil_mode)
    check_pool_fits(x.shape[2:], args)
    return args


def divisor(value):
    """`divisor_override`: None or an int >= 1."""
    return None if value is None else positive_int(value, "divisor_override")


def avg_pool2d_args(
    x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
):
    """Validate avg-pooling arguments; return (PoolArgs, count_include_pad, divisor)."""
    args = pool2d_args(x, kernel_size, stride, padding, 1, ceil_mode)
    return args, flag(count_include_pad, "count_include_pad"), divisor(divisor_override)


def input_shape(value, name="input_shape"):
    """The (N, C, H, W) of a forward input: 4 ints, N >= 0, C, H, W >= 1."""
    try:
        shape = tuple(_int(v, name) for v in value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a sequence of 4 ints (N, C, H, W). Received: {name}={value!r}"
        ) from None
    if len(shape) != 4:
        raise ValueError(
            f"`{name}` must have 4 elements (N, C, H, W). Received: {name}={value!r}"
        )
    if shape[0] < 0 or min(shape[1:]) < 1:
        raise ValueError(
            f"`{name}` must have N >= 0 and non-zero C, H and W. Received: {name}={value!r}"
        )
    return shape


def check_pool_grad_out(grad_out, expected_shape):
    """`grad_out` must have the shape of the forward output (its dtype is checked)."""
    if grad_out.shape != tuple(expected_shape):
        raise ValueError(
            f"`grad_out` must have the forward output's shape "
            f"{tuple(expected_shape)}. Received: grad_out.shape={grad_out.shape}"
        )


def avg_pool2d_backward_args(
    grad_out,
    input_shape_,
    kernel_size,
    stride,
    padding,
    ceil_mode,
    count_include_pad,
    divisor_override,
):
    """Validate avg-pooling backward arguments; return
    (input shape, PoolArgs, count_include_pad, divisor). Each backend then checks
    `grad_out`'s shape with `check_pool_grad_out` and its own output size."""
    check_array(grad_out, "grad_out", 4, "(N, C, OH, OW)")
    shape = input_shape(input_shape_)
    args = pool_geometry(kernel_size, stride, padding, 1, ceil_mode)
    check_pool_fits(shape[2:], args)
    check_array_size(
        "The input gradient", shape, grad_out.dtype.itemsize, f"input_shape={input_shape_!r}"
    )
    return (
        shape,
        args,
        flag(count_include_pad, "count_include_pad"),
        divisor(divisor_override),
    )


def max_pool2d_backward_args(grad_out, indices, input_shape_):
    """Validate max-pooling backward arguments; return the input shape (N, C, H, W).

    The index values are checked by `check_pool_indices` (the compiled backend checks
    them while it scatters and calls it only when one is out of range).
    """
    check_array(grad_out, "grad_out", 4, "(N, C, OH, OW)")
    if not isinstance(indices, np.ndarray):
        raise TypeError(
            "`indices` must be a numpy.ndarray. "
            f"Received: indices of type {type(indices).__name__}"
        )
    if indices.dtype != np.int64:
        raise TypeError(
            f"`indices` must have dtype int64. Received: indices.dtype={indices.dtype}"
        )
    if indices.shape != grad_out.shape:
        raise ValueError(
            f"`indices` must have the shape of `grad_out` {grad_out.shape}. "
            f"Received: indices.shape={indices.shape}"
        )
    shape = input_shape(input_shape_)
    if shape[:2] != grad_out.shape[:2]:
        raise ValueError(
            f"`input_shape` must have the N and C of `grad_out` "
            f"{grad_out.shape[:2]}. Received: input_shape={input_shape_!r}"
        )
    check_array_size(
        "The input gradient", shape, grad_out.dtype.itemsize, f"input_shape={input_shape_!r}"
    )
    return shape


def check_pool_indices(indices, plane_size):
    """Every index must be a flat position h*W + w inside an input plane."""
    if indices.size == 0:
        return
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= plane_size:
        raise ValueError(
            f"`indices` must be flat positions in [0, H*W) = [0, {plane_size}) "
            f"of an input plane. Received: values in [{low}, {high}]"
        )


def norm_type(value):
    """Lp pooling's p: a positive, finite real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`norm_type` must be a real number. Received: norm_type={value!r}")
    p = float(value)
    if not (math.isfinite(p) and p > 0):
        raise ValueError(
            f"`norm_type` must be a positive finite number. Received: norm_type={value!r}"
        )
    return p


def lp_pool2d_args(x, norm_type_, kernel_size, stride, ceil_mode):
    """Validate Lp-pooling arguments; return (p, PoolArgs) (no padding, no dilation)."""
    check_array(x, "x", 4, "(N, C, H, W)")
    p = norm_type(norm_type_)
    return p, pool2d_args(x, kernel_size, stride, 0, 1, ceil_mode)


# --- adaptive pooling ----------------------------------------------------------------


def adaptive_output_size(value):
    """`output_size` of an adaptive pooling: an int or a pair whose entries are ints
    >= 1 or None (None keeps that axis of the input, as in PyTorch). Returns a pair.

    PyTorch returns an empty output for a size of 0; here it is refused, like every
    other size of zero."""
    try:
        if np.ndim(value) == 0 and value is not None:
            result = (_int(value, "output_size"),) * 2
        else:
            result = tuple(None if v is None else _int(v, "output_size") for v in value)
    except TypeError:
        raise TypeError(
            "`output_size` must be an int or a pair of ints or None. "
            f"Received: output_size={value!r}"
        ) from None
    if len(result) != 2:
        raise ValueError(f"`output_size` must have 2 elements. Received: output_size={value!r}")
    sizes = [v for v in result if v is not None]
    if sizes and min(sizes) < 1:
        raise ValueError(f"`output_size` must be >= 1. Received: output_size={value!r}")
    if sizes and max(sizes) > MAX_HYPERPARAMETER:
        raise ValueError(
            f"`output_size` must be <= {MAX_HYPERPARAMETER}. Received: output_size={value!r}"
        )
    return result


def resolve_output_size(size, input_hw):
    """(OH, OW) of a validated `adaptive_output_size` for an input of (H, W)."""
    return tuple(int(n) if s is None else s for s, n in zip(size, input_hw))


def adaptive_pool2d_args(x, output_size):
    """Validate adaptive-pooling arguments; return (OH, OW)."""
    check_array(x, "x", 4, "(N, C, H, W)")
    check_nonempty(x, "x", (1, 2, 3), "C, H and W")
    oh, ow = resolve_output_size(adaptive_output_size(output_size), x.shape[2:])
    check_array_size(
        "The output", x.shape[:2] + (oh, ow), x.dtype.itemsize, f"output_size={output_size!r}"
    )
    return oh, ow


def adaptive_avg_pool2d_backward_args(grad_out, input_shape_, output_size):
    """Validate adaptive-average-pooling backward arguments; return the input shape
    (N, C, H, W). `grad_out` must have the forward output's shape."""
    check_array(grad_out, "grad_out", 4, "(N, C, OH, OW)")
    shape = input_shape(input_shape_)
    oh, ow = resolve_output_size(adaptive_output_size(output_size), shape[2:])
    check_pool_grad_out(grad_out, shape[:2] + (oh, ow))
    check_array_size(
        "The input gradient", shape, grad_out.dtype.itemsize, f"input_shape={input_shape_!r}"
    )
    return shape


# --- interpolation ---------------------------------------------------------------------

# PyTorch's other modes: refused with NotImplementedError (any other word: ValueError)
TORCH_INTERPOLATE_MODES = (
    "linear",
    "bilinear",
    "bicubic",
    "trilinear",
    "area",
    "nearest-exact",
)


def interpolate_mode(mode):
    """`mode`: only 'nearest' is implemented."""
    if isinstance(mode, str) and mode == "nearest":
        return mode
    if isinstance(mode, str) and mode in TORCH_INTERPOLATE_MODES:
        raise NotImplementedError(
            f"`mode`={mode!r} is not implemented: only 'nearest' is. Received: mode={mode!r}"
        )
    raise ValueError(f"`mode` must be 'nearest'. Received: mode={mode!r}")


def scale_pair(value):
    """`scale_factor`: a positive finite real or a pair of them."""
    if np.ndim(value) == 0:
        value_pair = (value, value)
    else:
        try:
            value_pair = tuple(value)
        except TypeError:
            value_pair = (value,)
    if len(value_pair) != 2:
        raise ValueError(
            f"`scale_factor` must have 2 elements. Received: scale_factor={value!r}"
        )
    for v in value_pair:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(
                "`scale_factor` must be a real number or a pair of them. "
                f"Received: scale_factor={value!r}"
            )
        if not (math.isfinite(float(v)) and v > 0):
            raise ValueError(
                f"`scale_factor` must be positive and finite. Received: scale_factor={value!r}"
            )
    return tuple(float(v) for v in value_pair)


def interpolate_geometry(input_hw, scale_factor, size, mode):
    """Validate interpolation arguments for an input of (H, W); return
    ((OH, OW), scales) where scales is the (SH, SW) pair of `scale_factor` or None.

    Exactly one of `size` and `scale_factor` is given; with `scale_factor` the output
    is ``floor(H * SH)`` by ``floor(W * SW)``, as PyTorch's."""
    interpolate_mode(mode)
    if (size is None) == (scale_factor is None):
        raise ValueError(
            "Exactly one of `size` and `scale_factor` must be given. "
            f"Received: size={size!r}, scale_factor={scale_factor!r}"
        )
    if size is not None:
        return pair(size, "size"), None
    scales = scale_pair(scale_factor)
    out = tuple(math.floor(float(n) * s) for n, s in zip(input_hw, scales))
    if min(out) < 1:
        raise ValueError(
            f"The output would be {out[0]}x{out[1]}: `scale_factor` must "
            "leave at least one pixel per axis. Received: "
            f"scale_factor={scale_factor!r}, input (H, W)={tuple(input_hw)}"
        )
    return out, scales


def interpolate_args(x, scale_factor, size, mode):
    """Validate interpolation arguments; return ((OH, OW), scales or None)."""
    check_array(x, "x", 4, "(N, C, H, W)")
    check_nonempty(x, "x", (1, 2, 3), "C, H and W")
    out, scales = interpolate_geometry(x.shape[2:], scale_factor, size, mode)
    received = f"size={size!r}, scale_factor={scale_factor!r}"
    # one image first: with an empty batch the whole output has no elements at all
    check_array_size("One image's output", x.shape[1:2] + out, x.dtype.itemsize, received)
    check_array_size("The output", x.shape[:2] + out, x.dtype.itemsize, received)
    return out, scales


def interpolate_backward_args(grad_out, input_shape_, scale_factor, size, mode):
    """Validate interpolation backward arguments; return (input shape, scales or None).
    `grad_out` must have the forward output's shape."""
    check_array(grad_out, "grad_out", 4, "(N, C, OH, OW)")
    shape = input_shape(input_shape_)
    out, scales = interpolate_geometry(shape[2:], scale_factor, size, mode)
    check_array_size(
        "One image's output gradient",
        shape[1:2] + out,
        grad_out.dtype.itemsize,
        f"size={size!r}, scale_factor={scale_factor!r}",
    )
    check_pool_grad_out(grad_out, shape[:2] + out)
    check_array_size(
        "The input gradient", shape, grad_out.dtype.itemsize, f"input_shape={input_shape_!r}"
    )
    return shape, scales
