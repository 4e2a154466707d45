"""Hostile-argument fuzz cases over pycnn's public API, and the check each must pass.

`cases()` is a hypothesis strategy of `Case`s: one public op (`pycnn.functional` against
`pycnn.reference`), one layer with a backend (``backend="compiled"`` against
``"numpy"``), or one layer or loss without a backend (against a NumPy formula written
here). Arguments are mostly valid small geometries with, often, one hostile thing:
zero and negative sizes, empty batches (N = 0), huge strides and paddings (up to
2**64), kernels larger than the input, mismatched shapes and dtypes, int, bool, float16,
complex, object and byte-swapped arrays, 0-d and 5-d arrays, non-contiguous, Fortran-
order, read-only and overlapping (``as_strided``) views, NaN and +-inf values, and
arguments of the wrong type.

`check_case(case)` holds both sides to the contract of DESIGN.md: either both raise
TypeError/ValueError with the same type and message, or both return arrays of the same
shape and dtype that agree within `TOL` (NaN and inf in the same places); no other
exception; the caller's arrays are never modified. A failure raises `Disagreement`.

Used by tests/test_fuzz.py (bounded, under pytest) and tools/fuzz.py (many cases, each
batch in its own subprocess, so a crash cannot take the checker down with it).
"""

from dataclasses import dataclass, field

import numpy as np
from conftest import TOL
from hypothesis import strategies as st

from pycnn import functional, losses, reference
from pycnn import layers as L
from pycnn._ops import OPS

# Sizes that no valid request can reach without allocating petabytes: each either is
# refused by validation or makes an allocation fail at once. Intermediate sizes
# (thousands) are left out on purpose: they would be valid and merely slow.
HUGE = (2**31 - 1, 2**31, 2**40, 2**63 - 1, 2**63, 2**64)
# Values of the wrong type for an int or a pair of ints.
NOT_INTS = (
    1.5,
    2.0,
    True,
    False,
    None,
    "2",
    (),
    (1, 2, 3),
    (1, None),
    [1, 2],
    np.float64(2.0),
    np.array([1, 2]),
    np.array([[1, 2]]),
    1 + 2j,
    object(),
)
DTYPES = (np.float32, np.float64)
HOSTILE_DTYPES = (
    np.float16,
    np.int64,
    np.int32,
    np.uint8,
    np.bool_,
    np.complex128,
    object,
    np.dtype(">f4"),
    np.dtype(">f8"),
    np.longdouble,
)
LAYOUTS = ("fortran", "strided", "reversed", "readonly", "overlap", "broadcast")

# Errors the contract allows. MemoryError only where an absurd size was asked for.
ALLOWED = (TypeError, ValueError, MemoryError)
# Reference-side failures that say "this NumPy derivation needs more memory than
# exists" rather than "the arguments are wrong" (numpy's own ValueErrors for them).
_NUMPY_SIZE_ERRORS = (
    "array is too big",
    "Maximum allowed size exceeded",
    "maximum supported dimension",
)


class Disagreement(AssertionError):
    """A case broke the contract: its message says how, and describes the case."""


# --- arrays ------------------------------------------------------------------------


@dataclass(frozen=True)
class ArraySpec:
    """How to build one test array: reproducible from its fields, printable."""

    shape: tuple
    dtype: object = np.float64
    layout: str = "c"
    special: str = "none"  # 'none', 'nan', 'inf', 'mixed': some entries replaced
    seed: int = 0

    def build(self):
        rng = np.random.default_rng(self.seed)
        values = rng.standard_normal(self.shape)
        if self.special != "none" and values.size:
            pool = {
                "nan": [np.nan],
                "inf": [np.inf, -np.inf],
                "mixed": [np.nan, np.inf, -np.inf, 0.0],
            }[self.special]
            hit = rng.random(self.shape) < 0.3
            values[hit] = rng.choice(pool, size=int(hit.sum()))
        return _lay_out(_cast(values, self.dtype), self.layout, rng)

    def __repr__(self):
        dtype = np.dtype(self.dtype).str if self.dtype is not object else "object"
        extras = "".join(
            f", {k}={v!r}"
            for k, v in (("layout", self.layout), ("special", self.special))
            if v not in ("c", "none")
        )
        return f"Array({self.shape}, {dtype}{extras}, seed={self.seed})"


def _cast(values, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        values = np.nan_to_num(values * 3, nan=0, posinf=7, neginf=-7)
    with np.errstate(invalid="ignore", over="ignore"):
        return values.astype(dtype)


def _lay_out(a, layout, rng):
    """`a`'s values (or, for 'overlap'/'broadcast', some values) in the given memory
    layout; the result never owns a C-contiguous buffer unless layout is 'c'."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "strided":  # every other element of a larger buffer
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],) if a.ndim else (), a.dtype)
        view = big[..., ::2] if a.ndim else big
        view[...] = a
        return view
    if layout == "reversed":  # negative strides on every axis
        flip = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[flip])[flip]
    if layout == "readonly":
        a.flags.writeable = False
        return a
    if layout in ("overlap", "broadcast") and a.ndim:
        # every axis but the last steps by 0 or 1 element: rows overlap or repeat
        item = a.dtype.itemsize
        steps = [
            0 if layout == "broadcast" else int(rng.integers(0, 2)) for _ in a.shape[:-1]
        ] + [1]
        length = sum((n - 1) * s for n, s in zip(a.shape, steps)) + 1 if a.size else 1
        base = a.reshape(-1)[:length] if a.size >= length else np.resize(a.reshape(-1), length)
        return np.lib.stride_tricks.as_strided(
            np.ascontiguousarray(base),
            a.shape,
            [s * item for s in steps],
            writeable=layout == "overlap",
        )
    return a


def _build(value):
    """Arguments with every ArraySpec (also inside tuples, lists, dicts) built."""
    if isinstance(value, ArraySpec):
        return value.build()
    if isinstance(value, tuple):
        return tuple(_build(v) for v in value)
    if isinstance(value, dict):
        return {k: _build(v) for k, v in value.items()}
    return value


@st.composite
def array_specs(draw, shape, dtype=None):
    """An array of `shape` (hostile shape, dtype, layout or values now and then)."""
    roll = draw(st.integers(0, 99))
    if roll >= 97:  # wrong number of dimensions
        shape = draw(st.sampled_from([(), (3,), shape[1:], shape + (2,), (1,) + shape]))
    dtype = dtype or draw(st.sampled_from(DTYPES))
    if 93 <= roll < 97:
        dtype = draw(st.sampled_from(HOSTILE_DTYPES))
    layout = draw(st.sampled_from(("c",) * 4 + LAYOUTS))
    special = draw(st.sampled_from(("none",) * 5 + ("nan", "inf", "mixed")))
    return ArraySpec(tuple(shape), dtype, layout, special, draw(st.integers(0, 2**16)))


def maybe_hostile(draw, value, extra=()):
    """`value` most of the time; otherwise a huge, negative, zero or ill-typed one."""
    roll = draw(st.integers(0, 99))
    if roll < 92:
        return value
    if roll < 96:
        return draw(st.sampled_from(HUGE + (0, -1, -(2**63)) + tuple(extra)))
    return draw(st.sampled_from(NOT_INTS))


def _ints(lo, hi):
    """An int in [lo, hi] or an (H, W) pair of them."""
    return st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))


def _pair_of(value, low=1):
    """(a, b) from an int or a pair of ints in [low, 2**31), else None (the value is
    ill-formed or out of range, and validation refuses it)."""

    def ok(v):
        return (
            isinstance(v, (int, np.integer))
            and not isinstance(v, (bool, np.bool_))
            and low <= v < 2**31
        )

    if ok(value):
        return (int(value),) * 2
    if isinstance(value, tuple) and len(value) == 2 and all(ok(v) for v in value):
        return tuple(int(v) for v in value)
    return None


def _conv_size(size, kernel, stride, pad_total, dilation):
    """Output size of a convolution along one axis (this module's own derivation)."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def _pool_size(size, kernel, stride, pad, dilation, ceil_mode):
    """Output size of a pooling along one axis, PyTorch's rule (derived here again)."""
    span = dilation * (kernel - 1) + 1
    room = size + 2 * pad - span
    out = (-(-room // stride) if ceil_mode else room // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _grad_shape(draw, shape):
    """The forward output's shape when it is known and small, else a random one; now
    and then a wrong one."""
    # (a zero N or C makes the product small, but NumPy still refuses an array whose
    # other sides multiply past 2**63: every side must be small)
    if (
        shape is None
        or min(shape) < 0
        or max(shape) > 4096
        or np.prod(shape, dtype=float) > 4096
    ):
        shape = draw(st.tuples(*[st.integers(0, 4)] * 4))
    if draw(st.integers(0, 99)) >= 92:
        axis = draw(st.integers(0, 3))
        shape = (
            shape[:axis] + (shape[axis] + draw(st.sampled_from([-1, 1])),) + shape[axis + 1 :]
        )
    return tuple(max(s, 0) for s in shape)


@st.composite
def images(draw, min_h=1):
    """An (N, C, H, W) shape: N = 0 now and then, a zero C, H or W rarely; now and
    then rows wide enough for the vector blocks of the direct convolution kernel."""
    n = draw(st.sampled_from([0, 1, 1, 2, 2, 3]))
    c, h = draw(st.integers(1, 4)), draw(st.integers(min_h, 7))
    w = draw(st.integers(1, 7)) if draw(st.integers(0, 4)) else draw(st.integers(8, 26))
    if draw(st.integers(0, 99)) >= 96:
        c, h, w = draw(st.sampled_from([(0, h, w), (c, 0, w), (c, h, 0)]))
    return (n, c, h, w)


# --- cases -----------------------------------------------------------------------------


@dataclass
class Case:
    """One call, or one forward/backward pass, on two implementations.

    `run(side)` returns the results of side 'compiled' or 'reference' as a tuple of
    arrays (or raises); `inputs` are the specs whose built arrays must come back
    unmodified. Arrays are built afresh for each side from their specs.
    """

    kind: str  # op or layer name
    args: dict
    runner: object = field(repr=False)
    tol_scale: float = 1.0  # extra tolerance factor for amplifying ops
    same_message: bool = True  # False against a formula: it only says "refused"

    def run(self, side):
        built = _build(self.args)
        arrays = [(k, v) for k, v in built.items() if isinstance(v, np.ndarray)]
        before = [(v.shape, v.tobytes()) for _, v in arrays]
        try:
            return _as_tuple(self.runner(side, **built))
        finally:
            for (k, v), (shape, raw) in zip(arrays, before):
                if v.shape != shape or v.tobytes() != raw:
                    raise Disagreement(f"{side} modified its input `{k}`\n{self}")

    def __str__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.kind}({args})"


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def _functional(name):
    """Runner calling `name` of pycnn.functional or pycnn.reference."""

    def run(side, **kwargs):
        module = functional if side == "compiled" else reference
        return getattr(module, name)(**kwargs)

    return run


@st.composite
def im2col_cases(draw):
    shape = draw(images())
    kernel = draw(_ints(1, 4))
    return Case(
        "im2col",
        dict(
            x=draw(array_specs(shape)),
            kernel_size=maybe_hostile(draw, kernel),
            stride=maybe_hostile(draw, draw(_ints(1, 3))),
            padding=maybe_hostile(draw, draw(_ints(0, 2))),
            dilation=maybe_hostile(draw, draw(_ints(1, 2))),
        ),
        _functional("im2col"),
    )


@st.composite
def col2im_cases(draw):
    n, c = draw(st.sampled_from([0, 1, 2])), draw(st.integers(1, 3))
    size, kernel, stride, padding, dilation = (
        maybe_hostile(draw, draw(g))
        for g in (_ints(1, 7), _ints(1, 3), _ints(1, 3), _ints(0, 2), _ints(1, 2))
    )
    geo = [
        _pair_of(v, low)
        for v, low in zip((size, kernel, stride, padding, dilation), (1, 1, 1, 0, 1))
    ]
    if None in geo or max(max(p) for p in geo) > 64:
        rows, blocks = c * draw(st.integers(0, 9)), draw(st.integers(0, 9))
    else:
        (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geo
        rows = c * kh * kw
        blocks = max(0, _conv_size(h, kh, sh, 2 * ph, dh)) * max(
            0, _conv_size(w, kw, sw, 2 * pw, dw)
        )
        if draw(st.integers(0, 99)) >= 90:
            blocks += draw(st.sampled_from([-1, 1])) if blocks else 1
    return Case(
        "col2im",
        dict(
            cols=draw(array_specs((n, rows, blocks))),
            output_size=size,
            kernel_size=kernel,
            stride=stride,
            padding=padding,
            dilation=dilation,
        ),
        _functional("col2im"),
    )


@st.composite
def conv_geometry(draw):
    """x and weight shapes and the convolution's hyper-parameters, with the forward
    output shape (None when the arguments are ill-formed)."""
    g = draw(st.sampled_from([1, 1, 1, 2, 3]))
    n, cg, h, w = draw(images())
    fg, kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    x_shape, w_shape = (n, cg * g, h, w), (fg * g, cg, kh, kw)
    if draw(st.integers(0, 99)) >= 95:  # channel or group mismatch
        w_shape = (fg * g + draw(st.integers(0, 1)), cg + 1, kh, kw)
    stride = maybe_hostile(draw, draw(_ints(1, 3)))
    dilation = maybe_hostile(draw, draw(_ints(1, 2)))
    padding = draw(st.sampled_from(["int"] * 6 + ["same", "same", "valid", "full"]))
    padding = maybe_hostile(draw, draw(_ints(0, 2))) if padding == "int" else padding
    groups = maybe_hostile(draw, g)
    out = None
    s, d = _pair_of(stride), _pair_of(dilation)
    if s and d and not isinstance(padding, str):
        p = _pair_of(padding, 0)
        if p:
            out = (n, w_shape[0]) + tuple(
                _conv_size(*a) for a in zip((h, w), (kh, kw), s, (2 * p[0], 2 * p[1]), d)
            )
    elif isinstance(padding, str) and padding != "full" and s and d:
        out = (n, w_shape[0]) + (
            (h, w)
            if padding == "same"
            else tuple(_conv_size(*a) for a in zip((h, w), (kh, kw), s, (0, 0), d))
        )
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x_shape, w_shape, out, kwargs


@st.composite
def conv2d_cases(draw):
    x_shape, w_shape, _, kwargs = draw(conv_geometry())
    dtype = draw(st.sampled_from(DTYPES))
    bias = draw(st.sampled_from(["none", "ok", "ok", "bad"]))
    if bias != "none":
        f = w_shape[0] + (draw(st.sampled_from([-1, 1])) if bias == "bad" else 0)
        bias = draw(array_specs((max(f, 0),), dtype))
    return Case(
        "conv2d",
        dict(
            x=draw(array_specs(x_shape, dtype)),
            weight=draw(array_specs(w_shape, dtype)),
            bias=None if bias == "none" else bias,
            **kwargs,
        ),
        _functional("conv2d"),
    )


@st.composite
def conv2d_backward_cases(draw):
    x_shape, w_shape, out, kwargs = draw(conv_geometry())
    dtype = draw(st.sampled_from(DTYPES))
    return Case(
        "conv2d_backward",
        dict(
            grad_out=draw(array_specs(_grad_shape(draw, out), dtype)),
            x=draw(array_specs(x_shape, dtype)),
            weight=draw(array_specs(w_shape, dtype)),
            **kwargs,
        ),
        _functional("conv2d_backward"),
    )


@st.composite
def pool_geometry(draw, dilation=True, padding=True):
    """An input shape and pooling hyper-parameters, and the forward output shape
    (None when the arguments are ill-formed)."""
    shape = draw(images())
    kernel = draw(_ints(1, 4))
    k = _pair_of(kernel)
    kwargs = dict(
        kernel_size=maybe_hostile(draw, kernel),
        stride=draw(st.one_of(st.none(), _ints(1, 3))),
        ceil_mode=draw(st.sampled_from([False, True] * 8 + [1, None])),
    )
    kwargs["stride"] = (
        None if kwargs["stride"] is None else maybe_hostile(draw, kwargs["stride"])
    )
    if padding and draw(st.integers(0, 99)) >= 97:
        # valid however small the input: the window is mostly padding, which may be half
        # the kernel (the reference cannot pad that far; the compiled kernels clip)
        kwargs.update(kernel_size=HUGE[0], padding=HUGE[0] // 2, stride=draw(_ints(1, 3)))
    elif padding:
        kwargs["padding"] = maybe_hostile(
            draw,
            (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2))),
            extra=(k[0] // 2 + 1,),
        )
    if dilation:
        kwargs["dilation"] = maybe_hostile(draw, draw(_ints(1, 3)))
    geo = [
        _pair_of(kwargs.get(name, default) if kwargs.get(name) is not None else default, low)
        for name, default, low in (
            ("kernel_size", None, 1),
            ("stride", kwargs["kernel_size"], 1),
            ("padding", 0, 0),
            ("dilation", 1, 1),
        )
    ]
    out = None
    if None not in geo and isinstance(kwargs["ceil_mode"], bool):
        out = shape[:2] + tuple(
            _pool_size(shape[2 + a], *(p[a] for p in geo), kwargs["ceil_mode"]) for a in (0, 1)
        )
    return shape, out, kwargs


@st.composite
def max_pool2d_cases(draw):
    shape, _, kwargs = draw(pool_geometry())
    kwargs["return_indices"] = draw(st.sampled_from([False, True, True, 0]))
    return Case(
        "max_pool2d", dict(x=draw(array_specs(shape)), **kwargs), _functional("max_pool2d")
    )


def _input_shape(draw, shape):
    """`input_shape` argument: the forward input's shape, or a hostile one."""
    roll = draw(st.integers(0, 99))
    if roll < 85:
        return draw(st.sampled_from([tuple, list]))(shape)
    if roll < 90:
        return tuple(np.int64(s) for s in shape)
    axis = draw(st.integers(0, 3))
    bad = draw(st.sampled_from((-1, 0, 1.5, True, None) + HUGE))
    return shape[:axis] + (bad,) + shape[axis + 1 :] if roll < 97 else shape[:3]


@st.composite
def max_pool2d_backward_cases(draw):
    shape, out, _ = draw(pool_geometry())
    dtype = draw(st.sampled_from(DTYPES))
    grad_shape = _grad_shape(draw, out)
    plane = shape[2] * shape[3]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    indices = rng.integers(0, max(plane, 1), size=grad_shape)
    roll = draw(st.integers(0, 99))
    if roll >= 90 and indices.size:  # one index out of the plane
        indices.reshape(-1)[rng.integers(indices.size)] = draw(
            st.sampled_from([-1, plane, 2**62, -(2**63)])
        )
    elif roll >= 85:
        indices = indices.astype(draw(st.sampled_from([np.int32, np.float64, np.uint64])))
    return Case(
        "max_pool2d_backward",
        dict(
            grad_out=draw(array_specs(grad_shape, dtype)),
            indices=indices,
            input_shape=_input_shape(draw, shape),
        ),
        _functional("max_pool2d_backward"),
    )


def _avg_options(draw, kwargs):
    kwargs["count_include_pad"] = draw(st.sampled_from([True, False] * 4 + [1]))
    kwargs["divisor_override"] = draw(
        st.sampled_from([None] * 12 + [1, 3, 7, 0, -2, 2.5, True, 2**31])
    )
    return kwargs


@st.composite
def avg_pool2d_cases(draw):
    shape, _, kwargs = draw(pool_geometry(dilation=False))
    return Case(
        "avg_pool2d",
        dict(x=draw(array_specs(shape)), **_avg_options(draw, kwargs)),
        _functional("avg_pool2d"),
    )


@st.composite
def avg_pool2d_backward_cases(draw):
    shape, out, kwargs = draw(pool_geometry(dilation=False))
    return Case(
        "avg_pool2d_backward",
        dict(
            grad_out=draw(array_specs(_grad_shape(draw, out))),
            input_shape=_input_shape(draw, shape),
            **_avg_options(draw, kwargs),
        ),
        _functional("avg_pool2d_backward"),
    )


# p well away from 0: (sum)**(1/p) would amplify rounding differences by 1/p
NORM_TYPES = (1, 2, 3, 1.5, 2.5, 4, 0.5, np.float32(2))
BAD_NORM_TYPES = (0, -1, -0.5, np.nan, np.inf, True, "2", None, 1 + 1j)


def _norm_type(draw):
    return draw(st.sampled_from(NORM_TYPES * 6 + BAD_NORM_TYPES))


def _lp_tol(norm_type):
    """(1/p)-th powers amplify a relative error by up to 1/p (and by p in backward)."""
    p = float(norm_type) if isinstance(norm_type, (int, float, np.floating)) else 1.0
    return max(1.0, p, 1.0 / p) if np.isfinite(p) and p > 0 else 1.0


@st.composite
def lp_pool2d_cases(draw):
    shape, _, kwargs = draw(pool_geometry(dilation=False, padding=False))
    norm_type = _norm_type(draw)
    return Case(
        "lp_pool2d",
        dict(x=draw(array_specs(shape)), norm_type=norm_type, **kwargs),
        _functional("lp_pool2d"),
        _lp_tol(norm_type),
    )


@st.composite
def lp_pool2d_backward_cases(draw):
    shape, out, kwargs = draw(pool_geometry(dilation=False, padding=False))
    dtype = draw(st.sampled_from(DTYPES))
    norm_type = _norm_type(draw)
    return Case(
        "lp_pool2d_backward",
        dict(
            grad_out=draw(array_specs(_grad_shape(draw, out), dtype)),
            x=draw(array_specs(shape, dtype)),
            norm_type=norm_type,
            **kwargs,
        ),
        _functional("lp_pool2d_backward"),
        4 * _lp_tol(norm_type),
    )


# --- layers with a backend: backend="compiled" against backend="numpy" ---------------


def _backend_layer(cls):
    """Runner: build `cls(**ctor, backend=...)`, forward x, backward grad; return the
    output, the input gradient and the parameter gradients."""

    def run(side, ctor, x, grad):
        layer = getattr(L, cls)(**ctor, backend="compiled" if side == "compiled" else "numpy")
        out = layer.forward(x)
        grad_x = layer.backward(grad)
        return (out, grad_x) + tuple(layer.grads[k] for k in sorted(layer.grads))

    return run


@st.composite
def backend_layer_cases(draw):
    cls = draw(st.sampled_from(["Conv2d", "MaxPool2d", "AvgPool2d", "LPPool2d"]))
    tol = 1.0
    if cls == "Conv2d":
        x_shape, w_shape, out, kwargs = draw(conv_geometry())
        dtype = draw(st.sampled_from(DTYPES))
        ctor = dict(
            in_channels=maybe_hostile(draw, x_shape[1]),
            out_channels=w_shape[0],
            kernel_size=w_shape[2:],
            bias=draw(st.booleans()),
            dtype=dtype,
            rng=0,
            **kwargs,
        )
    else:
        shape, out, ctor = draw(
            pool_geometry(dilation=cls == "MaxPool2d", padding=cls != "LPPool2d")
        )
        x_shape = shape
        dtype = draw(st.sampled_from(DTYPES))
        if cls == "AvgPool2d":
            _avg_options(draw, ctor)
        if cls == "LPPool2d":
            ctor["norm_type"] = _norm_type(draw)
            tol = 4 * _lp_tol(ctor["norm_type"])
    return Case(
        cls,
        dict(
            ctor=ctor,
            x=draw(array_specs(x_shape, dtype)),
            grad=draw(array_specs(_grad_shape(draw, out), dtype)),
        ),
        _backend_layer(cls),
        tol,
    )


# --- layers and losses without a backend: against a NumPy formula ---------------------


def _refuse_unless(condition, exc=ValueError):
    """The formula's stand-in for validation: the layer must have refused this input
    (with its own message; only the exception type is compared)."""
    if not condition:
        raise exc("the contract refuses this input")


def _is_float(*arrays):
    return all(
        isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) for a in arrays
    )


def _oracle_elementwise(forward, backward, valid=lambda x, layer: True):
    def oracle(x, grad, layer):
        _refuse_unless(_is_float(x), TypeError)
        _refuse_unless(valid(x, layer))
        xf = x.astype(np.float64)
        out = forward(xf, layer)
        _refuse_unless(_is_float(grad), TypeError)
        _refuse_unless(grad.shape == out.shape)
        _refuse_unless(grad.dtype == x.dtype, TypeError)
        return (
            out.astype(x.dtype),
            backward(xf, out, grad.astype(np.float64), layer).astype(x.dtype),
        )

    return oracle


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(x / 2))  # stable everywhere, a different formula


def _linear_forward(x, layer):
    _refuse_unless(x.ndim >= 1 and x.shape[-1] == layer.in_features)
    b = 0 if layer.bias is None else layer.bias
    return x @ layer.weight.astype(np.float64).T + b


def _oracle_linear(x, grad, layer):
    out, grad_x = _oracle_elementwise(
        _linear_forward, lambda x, y, g, layer: g @ layer.weight.astype(np.float64)
    )(x, grad, layer)
    g = grad.reshape(-1, layer.out_features).astype(np.float64)
    grads = (g.T @ x.reshape(-1, layer.in_features),)  # sorted: bias, weight
    if layer.bias is not None:
        grads = (g.sum(0),) + grads
    return (out, grad_x) + tuple(a.astype(x.dtype) for a in grads)


def _batchnorm_stats(x, layer):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv_std = 1 / np.sqrt(x.var(axis=axes).reshape(shape) + layer.eps)
    xhat = (x - x.mean(axis=axes).reshape(shape)) * inv_std
    return axes, shape, xhat, inv_std


def _batchnorm_valid(x, layer):
    return (
        x.ndim in layer._ndims
        and x.shape[1] == layer.num_features
        and x.size // layer.num_features > 1
    )


def _batchnorm_forward(x, layer):
    _, shape, xhat, _ = _batchnorm_stats(x, layer)
    return xhat * layer.weight.reshape(shape) + layer.bias.reshape(shape)


def _batchnorm_backward(x, y, g, layer):
    axes, shape, xhat, inv_std = _batchnorm_stats(x, layer)
    d = g * layer.weight.reshape(shape)
    return (
        d - d.mean(axis=axes, keepdims=True) - xhat * (d * xhat).mean(axis=axes, keepdims=True)
    ) * inv_std


def _oracle_batchnorm(x, grad, layer):
    out, grad_x = _oracle_elementwise(
        _batchnorm_forward, _batchnorm_backward, _batchnorm_valid
    )(x, grad, layer)
    axes, _, xhat, _ = _batchnorm_stats(x.astype(np.float64), layer)
    g = grad.astype(np.float64)
    return (out, grad_x) + tuple(
        a.astype(x.dtype) for a in (g.sum(axis=axes), (g * xhat).sum(axis=axes))
    )  # sorted: bias, weight


ORACLES = {
    "ReLU": _oracle_elementwise(
        lambda x, _: np.maximum(x, 0), lambda x, y, g, _: np.where(x > 0, g, 0)
    ),
    "LeakyReLU": _oracle_elementwise(
        lambda x, layer: np.where(x > 0, x, layer.negative_slope * x),
        lambda x, y, g, layer: np.where(x > 0, g, layer.negative_slope * g),
    ),
    "Sigmoid": _oracle_elementwise(
        lambda x, _: _sigmoid(x), lambda x, y, g, _: g * y * (1 - y)
    ),
    "Tanh": _oracle_elementwise(lambda x, _: np.tanh(x), lambda x, y, g, _: g * (1 - y * y)),
    "Flatten": _oracle_elementwise(
        lambda x, _: x.reshape(_layer_out_shape("Flatten", x.shape, {})),
        lambda x, y, g, _: g.reshape(x.shape),
        lambda x, _: x.ndim >= 2,
    ),
    "Dropout": _oracle_elementwise(lambda x, _: x, lambda x, y, g, _: g),  # eval mode
    "Linear": _oracle_linear,
    "BatchNorm1d": _oracle_batchnorm,
    "BatchNorm2d": _oracle_batchnorm,
}


def _oracle_layer(cls):
    """Runner: the layer itself ('compiled') or the NumPy formula ('reference') on a
    fresh layer built the same way."""

    def run(side, ctor, x, grad):
        layer = getattr(L, cls)(**ctor)
        if cls == "Dropout":
            layer.eval()
        if side == "reference":
            return ORACLES[cls](x, grad, layer)
        out = layer.forward(x)
        grad_x = layer.backward(grad)
        return (out, grad_x) + tuple(layer.grads[k] for k in sorted(layer.grads))

    return run


def _layer_out_shape(cls, shape, ctor):
    """The forward output shape for an input of `shape` (the input's when invalid)."""
    if cls == "Linear" and len(shape) >= 1:
        return shape[:-1] + (ctor["out_features"],)
    if cls == "Flatten" and len(shape) >= 2:
        return (shape[0], int(np.prod(shape[1:])))
    return shape


@st.composite
def oracle_layer_cases(draw):
    cls = draw(st.sampled_from(sorted(ORACLES)))
    dtype = draw(st.sampled_from(DTYPES))
    n, c = draw(st.sampled_from([1, 2, 3])), draw(st.integers(1, 4))
    shape = {
        "Linear": (n, c),
        "BatchNorm1d": (n + 1, c, draw(st.integers(1, 3))),
        "BatchNorm2d": (n + 1, c, 2, 2),
    }.get(cls, draw(st.sampled_from([(n, c), (n, c, 3), (n, c, 2, 3), (0, c, 2), ()])))
    ctor = {
        "LeakyReLU": dict(negative_slope=draw(st.sampled_from([0.01, 0.2, 0.0]))),
        "Linear": dict(
            in_features=c,
            out_features=draw(st.integers(1, 3)),
            rng=0,
            dtype=dtype,
            bias=draw(st.booleans()),
        ),
        "BatchNorm1d": dict(num_features=c, dtype=dtype),
        "BatchNorm2d": dict(num_features=c, dtype=dtype),
        "Dropout": dict(p=draw(st.sampled_from([0.0, 0.5]))),
    }.get(cls, {})
    x = draw(array_specs(shape, dtype))
    grad = draw(array_specs(_grad_like(draw, _layer_out_shape(cls, x.shape, ctor)), dtype))
    return Case(cls, dict(ctor=ctor, x=x, grad=grad), _oracle_layer(cls), same_message=False)


def _grad_like(draw, shape):
    """`shape`, or now and then one with an axis off by one."""
    if shape and draw(st.integers(0, 99)) >= 92:
        axis = draw(st.integers(0, len(shape) - 1))
        return shape[:axis] + (shape[axis] + 1,) + shape[axis + 1 :]
    return shape


def _loss_oracle(loss, x, target):
    """Value and gradient of `loss` from the formula; refuses what the contract does."""
    _refuse_unless(_is_float(x), TypeError)
    t = np.asarray(target)
    xf = x.astype(np.float64)
    if loss == "MSELoss":
        _refuse_unless(t.dtype.kind in "iuf", TypeError)
        _refuse_unless(t.shape == x.shape)
        diff = xf - t.astype(x.dtype).astype(np.float64)
        return np.mean(diff**2), 2 * diff / max(x.size, 1)
    _refuse_unless(x.ndim == 2 and x.size > 0)
    _refuse_unless(t.dtype.kind in "iuf", TypeError)
    if t.dtype.kind == "f":
        _refuse_unless(t.shape == x.shape)
        onehot = t.astype(x.dtype).astype(np.float64)
    else:
        _refuse_unless(t.shape == x.shape[:1] and t.min() >= 0 and t.max() < x.shape[1])
        onehot = np.eye(x.shape[1])[t]
    shifted = xf - xf.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    picked = log_p[np.arange(n), t] if t.ndim == 1 else onehot * log_p  # no 0 * -inf
    return (-picked.sum() / n, (np.exp(log_p) * onehot.sum(axis=1, keepdims=True) - onehot) / n)


def _run_loss(side, loss, x, target):
    if side == "compiled":
        fn = getattr(losses, loss)()
        value = fn(x, target)
        return np.asarray(value), fn.backward()
    value, grad = _loss_oracle(loss, x, target)
    return np.asarray(value, x.dtype), grad.astype(x.dtype)


@st.composite
def loss_cases(draw):
    loss = draw(st.sampled_from(["CrossEntropyLoss", "MSELoss"]))
    dtype = draw(st.sampled_from(DTYPES))
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    x = draw(array_specs((n, c), dtype))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if loss == "MSELoss" or draw(st.booleans()):
        target = draw(array_specs((n, c), dtype))
    else:
        target = rng.integers(0, c, size=n)
        roll = draw(st.integers(0, 99))
        if roll >= 90:
            target[0] = draw(st.sampled_from([-1, c, 2**62]))
        elif roll >= 85:
            target = target[:-1]
    return Case(loss, dict(loss=loss, x=x, target=target), _run_loss, same_message=False)


# --- any op of the table, from its example call ---------------------------------------


@st.composite
def table_cases(draw, name):
    """Hostile calls of op `name` built from its example in pycnn/_ops.py, for an op
    without a strategy of its own: a batch of 0 to 3, and now and then a hostile array
    (shape, dtype, layout, NaN/inf; see `array_specs`), an axis off by one, or a huge,
    negative or ill-typed value for any other argument."""
    op = OPS[name]
    dtype = draw(st.sampled_from(DTYPES))
    example = op.example_args(dtype, n=draw(st.sampled_from([0, 1, 2, 3])))
    args = {}
    for key, value in example.items():
        if isinstance(value, np.ndarray):
            kind = dtype if value.dtype.kind == "f" else value.dtype.type
            args[key] = draw(array_specs(_grad_like(draw, value.shape), kind))
        elif value is None or isinstance(value, (bool, str)):
            args[key] = (
                value if draw(st.integers(0, 99)) < 95 else draw(st.sampled_from(NOT_INTS))
            )
        else:
            args[key] = maybe_hostile(draw, value)
    return Case(name, args, _functional(name))


def _op_strategy(op):
    """The strategy of a table op: the one its entry names (defined above), else
    `table_cases`."""
    if op.fuzz is None:
        return lambda: table_cases(op.name)
    if op.fuzz not in globals():
        raise LookupError(
            f"pycnn/_ops.py: {op.name}'s fuzz strategy {op.fuzz!r} is not "
            f"in tests/fuzz_cases.py"
        )
    return globals()[op.fuzz]


LAYER_CASES = {
    "backend layers": backend_layer_cases,
    "other layers": oracle_layer_cases,
    "losses": loss_cases,
}
# every op of the table (pycnn/_ops.py), then the layers and losses
OP_CASES = {**{name: _op_strategy(op) for name, op in OPS.items()}, **LAYER_CASES}


def cases():
    """Any case: a public op, a layer or a loss, uniformly over OP_CASES."""
    return st.one_of(*(strategy() for strategy in OP_CASES.values()))


# --- the check -------------------------------------------------------------------------


def _outcome(case, side):
    """('ok', results) or ('raised', exception); other exceptions are disagreements."""
    try:
        return "ok", case.run(side)
    except Disagreement:
        raise
    except ALLOWED as exc:
        if not str(exc):
            raise Disagreement(
                f"{side} raised {type(exc).__name__} without a message\n{case}"
            ) from exc
        return "raised", exc
    except Exception as exc:
        raise Disagreement(f"{side} raised {type(exc).__name__}: {exc}\n{case}") from exc


def _too_big(exc):
    """Did the side fail only for lack of memory (MemoryError or numpy's size check)?"""
    return isinstance(exc, MemoryError) or (
        isinstance(exc, ValueError) and any(s in str(exc) for s in _NUMPY_SIZE_ERRORS)
    )


def check_case(case):
    """Hold the compiled side to the reference side; raise Disagreement if it breaks
    the contract. Returns 'agree', 'both raised', or 'too big': the reference ran out
    of memory for a huge geometry (its NumPy derivation pads the whole input), and the
    compiled side then only had to stay alive and raise nothing but
    TypeError/ValueError/MemoryError."""
    with np.errstate(all="ignore"):
        got = _outcome(case, "compiled")
        want = _outcome(case, "reference")
    if want[0] == "raised" and _too_big(want[1]):
        return "too big"
    if got[0] == "raised" and _too_big(got[1]):
        raise Disagreement(
            f"compiled ran out of memory ({_summary(got)}) where the "
            f"reference {_summary(want) if want[0] == 'raised' else 'did not'}"
            f"\n{case}"
        )
    if got[0] != want[0]:
        what = {"ok": "returned", "raised": "raised"}
        raise Disagreement(
            f"compiled {what[got[0]]} {_summary(got)} but reference {what[want[0]]} "
            f"{_summary(want)}\n{case}"
        )
    if got[0] == "raised":
        if type(got[1]) is not type(want[1]) or (
            case.same_message and str(got[1]) != str(want[1])
        ):
            raise Disagreement(
                f"different errors: compiled {_summary(got)}, reference "
                f"{_summary(want)}\n{case}"
            )
        return "both raised"
    if len(got[1]) != len(want[1]):
        raise Disagreement(f"{len(got[1])} results against {len(want[1])}\n{case}")
    for i, (a, b) in enumerate(zip(got[1], want[1])):
        _compare(a, b, case, f"result {i}")
    return "agree"


def _summary(outcome):
    kind, value = outcome
    if kind == "raised":
        return f"{type(value).__name__}({value})"
    return ", ".join(f"{np.shape(v)} {getattr(v, 'dtype', type(v).__name__)}" for v in value)


def _compare(got, want, case, what):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        raise Disagreement(
            f"{what}: compiled {got.shape} {got.dtype}, reference "
            f"{want.shape} {want.dtype}\n{case}"
        )
    if got.dtype.kind in "iub":
        if not np.array_equal(got, want):
            raise Disagreement(f"{what}: integer results differ\n{case}")
        return
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    same_inf = np.array_equal(got[np.isinf(got)], want[np.isinf(got)]) and np.array_equal(
        np.isinf(got), np.isinf(want)
    )
    if not np.array_equal(nan_g, nan_w) or not same_inf:
        raise Disagreement(f"{what}: NaN/inf in different places\n{case}")
    finite = np.isfinite(want)
    a, b = got[finite].astype(np.float64), want[finite].astype(np.float64)
    tol = TOL[got.dtype.type] * case.tol_scale
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    err = np.abs(a - b) - (tol * np.abs(b) + tol * scale)
    if err.size and err.max() > 0:
        i = int(np.argmax(err))
        raise Disagreement(
            f"{what}: values differ (compiled {a[i]!r}, reference "
            f"{b[i]!r}, tolerance {tol:g} x scale {scale:g})\n{case}"
        )
