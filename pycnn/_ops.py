"""The table of public ops (issue 13): one entry per op of `pycnn.functional`.

Each `Op` says which backends define it (`functional`, `reference`, `naive`), which
of its arguments are arrays, how to build a valid call for a dtype and a batch size N
(N = 0 included), its bad-argument cases (exception and message) and how the fuzzer
draws hostile calls of it. The table drives the tests that every op must pass whatever
it computes (tests/test_ops_table.py: backend parity of names, ``__all__`` and
signatures, errors, empty batch, layouts, inputs never modified, dtypes;
tests/test_leaks.py; tests/fuzz_cases.py's OP_CASES). An op's own oracle test (its
values against a definition or PyTorch) stays in its tests/test_<op>.py.

Adding an op is one entry in OPS (see CONTRIBUTING.md). This module imports numpy only:
tools and the benchmark may use it.
"""

import importlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

BACKENDS = ("functional", "reference", "naive")
NO_NAIVE = ("functional", "reference")


@dataclass(frozen=True)
class Op:
    """One public op.

    name      the function's name in every backend that has it
    backends  the backend modules (names in BACKENDS) that define it; the others must not
    arrays    the arguments that are arrays (layout and not-modified tests transform and
              check these)
    example   example(dtype, n, rng) -> {argument: value}, every argument by name: a
              valid call on a batch of `n` (n may be 0)
    bad       {case id: (overrides, exception type, message regex)}: the call
              example(float32, 2) with `overrides` applied must raise that exception
              with that message from every backend; an override value may be a function
              of the example's arguments
    fuzz      the strategy of tests/fuzz_cases.py that draws hostile calls of this op,
              or None: fuzz_cases then mutates `example` (layouts, dtypes, NaN, shapes,
              hostile hyper-parameters) generically
    """

    name: str
    backends: tuple
    arrays: tuple
    example: object = field(repr=False)
    bad: dict = field(default_factory=dict, repr=False)
    fuzz: Optional[str] = None

    def example_args(self, dtype=np.float64, n=2, seed=0):
        return self.example(np.dtype(dtype).type, n, np.random.default_rng(seed))

    def bad_args(self, case):
        """The arguments of bad case `case` and its (exception, regex)."""
        overrides, exc, match = self.bad[case]
        args = self.example_args(np.float32, 2)
        args.update({k: v(args) if callable(v) else v for k, v in overrides.items()})
        return args, exc, match

    def function(self, backend):
        return getattr(backend_module(backend), self.name)


def backend_module(name):
    """The module of backend `name` ('functional', 'reference' or 'naive')."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}")
    return importlib.import_module(f"pycnn.{name}")


# --- example builders ------------------------------------------------------------------


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _conv_size(size, kernel, stride, pad_total, dilation):
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def _pool_size(size, kernel, stride, pad, ceil_mode):
    room = size + 2 * pad - kernel
    out = (-(-room // stride) if ceil_mode else room // stride) + 1
    return out - 1 if ceil_mode and (out - 1) * stride >= size + pad else out


# im2col / col2im: C=2, 5x6 images, a 3x2 kernel, stride (2, 1), padding (1, 0)
_I2C = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=1)
_I2C_L = _conv_size(5, 3, 2, 2, 1) * _conv_size(6, 2, 1, 0, 1)


def _im2col(dtype, n, rng):
    return dict(x=_normal(rng, (n, 2, 5, 6), dtype), **_I2C)


def _col2im(dtype, n, rng):
    return dict(cols=_normal(rng, (n, 2 * 3 * 2, _I2C_L), dtype), output_size=(5, 6), **_I2C)


# conv2d: x (N, 4, 6, 6), weight (6, 2, 3, 3) in 2 groups, uneven stride, padding and
# dilation per axis. The bad cases reset the geometry to _CONV_BASE (their messages
# name the sizes it gives: a (2, 6, 4, 4) output).
_CONV = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
_CONV_OUT = (6, _conv_size(6, 3, 2, 2, 1), _conv_size(6, 3, 1, 4, 2))
_CONV_BASE = dict(stride=1, padding=0, dilation=1, groups=2)


def _conv2d(dtype, n, rng):
    return dict(
        x=_normal(rng, (n, 4, 6, 6), dtype),
        weight=_normal(rng, (6, 2, 3, 3), dtype),
        bias=_normal(rng, (6,), dtype),
        **_CONV,
    )


def _conv2d_backward(dtype, n, rng):
    args = _conv2d(dtype, n, rng)
    del args["bias"]
    return dict(grad_out=_normal(rng, (n,) + _CONV_OUT, dtype), **args)


# pooling: x (N, 3, 7, 8), a 3x3 window, stride 2, padding 1, ceil_mode (Lp: a 2x3
# window, stride (2, 1), no padding). The bad cases reset to _POOL_BASE: x (2, 3, 6, 6),
# a 2x2 window, default everything else, a (2, 3, 3, 3) output.
_POOL = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
_POOL_OUT = (3, _pool_size(7, 3, 2, 1, True), _pool_size(8, 3, 2, 1, True))
_LP = dict(norm_type=2, kernel_size=(2, 3), stride=(2, 1), ceil_mode=True)
_LP_OUT = (3, _pool_size(7, 2, 2, 0, True), _pool_size(8, 3, 1, 0, True))
_POOL_BASE = dict(
    kernel_size=2,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode=False,
    return_indices=False,
    count_include_pad=True,
    divisor_override=None,
    norm_type=2,
)


def _max_pool2d(dtype, n, rng):
    return dict(x=_normal(rng, (n, 3, 7, 8), dtype), dilation=1, return_indices=True, **_POOL)


def _max_pool2d_backward(dtype, n, rng):
    shape = (n,) + _POOL_OUT
    return dict(
        grad_out=_normal(rng, shape, dtype),
        indices=rng.integers(0, 7 * 8, size=shape, dtype=np.int64),
        input_shape=(n, 3, 7, 8),
    )


def _avg_pool2d(dtype, n, rng):
    return dict(
        x=_normal(rng, (n, 3, 7, 8), dtype),
        count_include_pad=False,
        divisor_override=None,
        **_POOL,
    )


def _avg_pool2d_backward(dtype, n, rng):
    args = _avg_pool2d(dtype, n, rng)
    del args["x"]
    return dict(
        grad_out=_normal(rng, (n,) + _POOL_OUT, dtype), input_shape=(n, 3, 7, 8), **args
    )


def _lp_pool2d(dtype, n, rng):
    return dict(x=_normal(rng, (n, 3, 7, 8), dtype), **_LP)


def _lp_pool2d_backward(dtype, n, rng):
    return dict(grad_out=_normal(rng, (n,) + _LP_OUT, dtype), **_lp_pool2d(dtype, n, rng))


# linear: x (N, 3, 8) (any leading axes), weight (6, 8), bias (6,)
def _linear(dtype, n, rng):
    return dict(
        x=_normal(rng, (n, 3, 8), dtype),
        weight=_normal(rng, (6, 8), dtype),
        bias=_normal(rng, (6,), dtype),
    )


def _linear_backward(dtype, n, rng):
    args = _linear(dtype, n, rng)
    del args["bias"]
    return dict(grad_out=_normal(rng, (n, 3, 6), dtype), **args)


# conv_transpose2d: x (N, 4, 5, 6), weight (4, 3, 3, 2) in 2 groups (6 output channels),
# uneven stride, padding, output_padding (one past the stride, below the dilation) and
# dilation per axis. The bad cases reset the geometry to _CONVT_BASE: a (2, 6, 7, 7)
# output.
_CONVT = dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 1), groups=2, dilation=(1, 2))
_CONVT_OUT = (6, (5 - 1) * 2 - 2 + 2 + 1 + 1, (6 - 1) - 0 + 2 + 1 + 1)
_CONVT_BASE = dict(stride=1, padding=0, output_padding=0, groups=2, dilation=1)


def _conv_transpose2d(dtype, n, rng):
    return dict(
        x=_normal(rng, (n, 4, 5, 6), dtype),
        weight=_normal(rng, (4, 3, 3, 2), dtype),
        bias=_normal(rng, (6,), dtype),
        **_CONVT,
    )


def _conv_transpose2d_backward(dtype, n, rng):
    args = _conv_transpose2d(dtype, n, rng)
    del args["bias"]
    return dict(grad_out=_normal(rng, (n,) + _CONVT_OUT, dtype), **args)


# adaptive pooling: x (N, 3, 7, 8) to (5, 3): windows overlap along H and do not tile W.
# The bad cases reset to x (2, 3, 6, 6) and output_size 3, a (2, 3, 3, 3) output.
_ADAPTIVE = dict(output_size=(5, 3))


def _adaptive_avg_pool2d(dtype, n, rng):
    return dict(x=_normal(rng, (n, 3, 7, 8), dtype), **_ADAPTIVE)


def _adaptive_avg_pool2d_backward(dtype, n, rng):
    return dict(
        grad_out=_normal(rng, (n, 3, 5, 3), dtype), input_shape=(n, 3, 7, 8), **_ADAPTIVE
    )


def _adaptive_max_pool2d(dtype, n, rng):
    return dict(x=_normal(rng, (n, 3, 7, 8), dtype), return_indices=True, **_ADAPTIVE)


def _adaptive_max_pool2d_backward(dtype, n, rng):
    shape = (n, 3, 5, 3)
    return dict(
        grad_out=_normal(rng, shape, dtype),
        indices=rng.integers(0, 7 * 8, size=shape, dtype=np.int64),
        input_shape=(n, 3, 7, 8),
    )


# interpolate: x (N, 3, 7, 5) scaled by (1.7, 2): PyTorch's float32 1/scale rule along H
# (a size of 11 would read other rows), the doubling shortcut along W. The bad cases
# reset to x (2, 3, 6, 6) and scale_factor 2, a (2, 3, 12, 12) output.
_INTERP = dict(scale_factor=(1.7, 2.0), size=None, mode="nearest")


def _interpolate(dtype, n, rng):
    return dict(x=_normal(rng, (n, 3, 7, 5), dtype), **_INTERP)


def _interpolate_backward(dtype, n, rng):
    return dict(
        grad_out=_normal(rng, (n, 3, 11, 10), dtype), input_shape=(n, 3, 7, 5), **_INTERP
    )


# --- bad arguments -----------------------------------------------------------------------


def _z(shape, dtype=np.float32):
    return np.zeros(shape, dtype)


def _only(cases, names):
    """The cases whose overrides are all arguments in `names` (a derived op's share of
    another op's cases)."""
    return {k: v for k, v in cases.items() if set(v[0]) <= set(names)}


def _conv(**overrides):
    return {**_CONV_BASE, **overrides}


CONV_ERRORS = {
    "x-list": (
        _conv(x=[[1.0]]),
        TypeError,
        r"`x` must be a numpy.ndarray. Received: x of type list",
    ),
    "x-int": (
        _conv(x=_z((2, 4, 6, 6), np.int64)),
        TypeError,
        r"`x` must have dtype float32 or float64. Received: x.dtype=int64",
    ),
    "x-float16": (_conv(x=_z((2, 4, 6, 6), np.float16)), TypeError, r"x.dtype=float16"),
    "x-complex": (_conv(x=_z((2, 4, 6, 6), complex)), TypeError, r"x.dtype=complex128"),
    "mixed-dtypes": (
        _conv(weight=_z((6, 2, 3, 3), np.float64)),
        TypeError,
        r"`weight` must have the same dtype as `x` \(float32\). Received: weight.dtype=float64",
    ),
    "bias-dtype": (
        _conv(bias=_z(6, np.float64)),
        TypeError,
        r"`bias` must have the same dtype as `x`",
    ),
    "x-3d": (
        _conv(x=_z((4, 6, 6))),
        ValueError,
        r"`x` must be a 4-d array \(N, C, H, W\). Received: x.shape=\(4, 6, 6\)",
    ),
    "weight-5d": (
        _conv(weight=_z((6, 2, 3, 3, 1))),
        ValueError,
        r"`weight` must be a 4-d array",
    ),
    "channel-mismatch": (
        _conv(weight=_z((6, 3, 3, 3))),
        ValueError,
        r"`weight` must have C/groups = 2 input channels for x with C=4 and groups=2. Received: weight.shape=\(6, 3, 3, 3\)",
    ),
    "groups-not-dividing-c": (
        _conv(groups=3, weight=_z((6, 1, 3, 3))),
        ValueError,
        r"`groups` must divide the input channels. Received: groups=3",
    ),
    "groups-not-dividing-f": (
        _conv(weight=_z((5, 2, 3, 3)), bias=None),
        ValueError,
        r"`groups` must divide the output channels",
    ),
    "groups-zero": (_conv(groups=0), ValueError, r"`groups` must be >= 1. Received: groups=0"),
    "groups-float": (
        _conv(groups=2.0),
        TypeError,
        r"`groups` must be an int. Received: groups=2.0",
    ),
    "bias-shape": (
        _conv(bias=_z(5)),
        ValueError,
        r"`bias` must have shape \(6,\), one value per filter. Received: bias.shape=\(5,\)",
    ),
    "stride-zero": (_conv(stride=0), ValueError, r"`stride` must be >= 1. Received: stride=0"),
    "stride-negative-pair": (
        _conv(stride=(1, -2)),
        ValueError,
        r"`stride` must be >= 1. Received: stride=\(1, -2\)",
    ),
    "stride-float": (
        _conv(stride=1.5),
        TypeError,
        r"`stride` must be an int or a pair of ints. Received: stride=1.5",
    ),
    "stride-bool": (
        _conv(stride=True),
        TypeError,
        r"`stride` must be an int or a pair of ints. Received: stride=True",
    ),
    "stride-triple": (
        _conv(stride=(1, 1, 1)),
        ValueError,
        r"`stride` must have 2 elements. Received: stride=\(1, 1, 1\)",
    ),
    "dilation-zero": (_conv(dilation=(0, 1)), ValueError, r"`dilation` must be >= 1"),
    "padding-negative": (
        _conv(padding=-1),
        ValueError,
        r"`padding` must be >= 0. Received: padding=-1",
    ),
    "padding-word": (
        _conv(padding="full"),
        ValueError,
        r"`padding` must be an int, a pair of ints, 'valid' or 'same'. Received: padding='full'",
    ),
    "same-strided": (
        _conv(padding="same", stride=(1, 2)),
        ValueError,
        r"padding='same' is not supported for strided convolutions. Received: stride=\(1, 2\)",
    ),
    "kernel-too-large": (
        _conv(weight=_z((6, 2, 7, 3))),
        ValueError,
        r"`kernel_size` \(dilated\) must not exceed the padded input size. Received: kernel_size=\(7, 3\), dilation=\(1, 1\) spans \(7, 3\), padded input is \(6, 6\)",
    ),
    "dilated-kernel-too-large": (
        _conv(dilation=3),
        ValueError,
        r"spans \(7, 7\), padded input is \(6, 6\)",
    ),
    "zero-channels": (
        _conv(x=_z((2, 0, 6, 6))),
        ValueError,
        r"`x` must have non-zero C, H and W",
    ),
    "zero-width": (_conv(x=_z((2, 4, 6, 0))), ValueError, r"`x` must have non-zero C, H and W"),
    "huge-stride": (_conv(stride=2**63), ValueError, r"`stride` must be <= 2147483647"),
    "huge-padding": (_conv(padding=(0, 2**40)), ValueError, r"`padding` must be <= 2147483647"),
    "huge-dilation": (_conv(dilation=2**31), ValueError, r"`dilation` must be <= 2147483647"),
    "huge-groups": (_conv(groups=2**64), ValueError, r"`groups` must be <= 2147483647"),
}

# conv2d_backward: the geometry of _CONV_BASE, so grad_out (2, 6, 4, 4) fits
_CONV_BWD = dict(grad_out=_z((2, 6, 4, 4)))
CONV_BACKWARD_ERRORS = {
    **{
        k: ({**_CONV_BWD, **o}, e, m)
        for k, (o, e, m) in _only(
            CONV_ERRORS, ("x", "weight", "stride", "padding", "dilation", "groups")
        ).items()
    },
    "grad-shape": (
        _conv(grad_out=_z((2, 6, 4, 5))),
        ValueError,
        r"`grad_out` must have the forward output's shape \(2, 6, 4, 4\). Received: grad_out.shape=\(2, 6, 4, 5\)",
    ),
    "grad-dtype": (
        _conv(grad_out=_z((2, 6, 4, 4), np.float64)),
        TypeError,
        r"`grad_out` must have the same dtype as `x` \(float32\)",
    ),
    "grad-3d": (_conv(grad_out=_z((6, 4, 4))), ValueError, r"`grad_out` must be a 4-d array"),
    "grad-str": (
        _conv(grad_out="grad"),
        TypeError,
        r"`grad_out` must be a numpy.ndarray. Received: grad_out of type str",
    ),
}


def _convt(**overrides):
    return {**_CONVT_BASE, **overrides}


CONV_TRANSPOSE_ERRORS = {
    "x-list": (
        _convt(x=[[1.0]]),
        TypeError,
        r"`x` must be a numpy.ndarray. Received: x of type list",
    ),
    "x-int": (
        _convt(x=_z((2, 4, 5, 6), np.int64)),
        TypeError,
        r"`x` must have dtype float32 or float64",
    ),
    "mixed-dtypes": (
        _convt(weight=_z((4, 3, 3, 2), np.float64)),
        TypeError,
        r"`weight` must have the same dtype as `x` \(float32\)",
    ),
    "x-3d": (_convt(x=_z((4, 5, 6))), ValueError, r"`x` must be a 4-d array \(N, C_in, H, W\)"),
    "weight-rows": (
        _convt(weight=_z((6, 2, 3, 2))),
        ValueError,
        r"`weight` must have C_in = 4 rows \(its first axis\) for x with C_in=4. Received: weight.shape=\(6, 2, 3, 2\)",
    ),
    "groups-not-dividing-c": (
        _convt(groups=3),
        ValueError,
        r"`groups` must divide the input channels. Received: groups=3",
    ),
    "bias-shape": (
        _convt(bias=_z(4)),
        ValueError,
        r"`bias` must have shape \(6,\), one value per output channel. Received: bias.shape=\(4,\)",
    ),
    "stride-zero": (_convt(stride=0), ValueError, r"`stride` must be >= 1. Received: stride=0"),
    "padding-same": (
        _convt(padding="same"),
        TypeError,
        r"`padding` must be an int or a pair of ints",
    ),
    "output-padding-negative": (
        _convt(output_padding=-1),
        ValueError,
        r"`output_padding` must be >= 0",
    ),
    "output-padding-too-large": (
        _convt(output_padding=(0, 1)),
        ValueError,
        r"`output_padding` must be smaller than the stride or the dilation. Received: output_padding=\(0, 1\), stride=\(1, 1\), dilation=\(1, 1\)",
    ),
    "padding-eats-output": (
        _convt(padding=(4, 0)),
        ValueError,
        r"The output would be -1x7: `padding` removes more than the transposed convolution makes",
    ),
    "zero-channels": (
        _convt(x=_z((2, 0, 5, 6))),
        ValueError,
        r"`x` must have non-zero C_in, H and W",
    ),
    "huge-stride": (_convt(stride=2**63), ValueError, r"`stride` must be <= 2147483647"),
}
CONV_TRANSPOSE_BACKWARD_ERRORS = {
    **{
        k: ({**o, "grad_out": _z((2, 6, 7, 7))}, e, m)
        for k, (o, e, m) in _only(
            CONV_TRANSPOSE_ERRORS,
            ("x", "weight", "stride", "padding", "output_padding", "dilation", "groups"),
        ).items()
    },
    "grad-shape": (
        _convt(grad_out=_z((2, 6, 7, 6))),
        ValueError,
        r"`grad_out` must have the forward output's shape \(2, 6, 7, 7\). Received: grad_out.shape=\(2, 6, 7, 6\)",
    ),
    "grad-dtype": (
        _convt(grad_out=_z((2, 6, 7, 7), np.float64)),
        TypeError,
        r"`grad_out` must have the same dtype as `x` \(float32\)",
    ),
}


def _i2c(**overrides):
    return {"kernel_size": 2, "stride": 1, "padding": 0, "dilation": 1, **overrides}


IM2COL_ERRORS = {
    "x-int32": (
        _i2c(x=_z((1, 2, 4, 4), np.int32)),
        TypeError,
        r"`x` must have dtype float32 or float64",
    ),
    "x-3d": (_i2c(x=_z((2, 4, 4))), ValueError, r"`x` must be a 4-d array"),
    "kernel-too-large": (
        _i2c(x=_z((1, 2, 4, 4)), kernel_size=5),
        ValueError,
        r"padded input is \(4, 4\)",
    ),
    "kernel-zero": (_i2c(kernel_size=(2, 0)), ValueError, r"`kernel_size` must be >= 1"),
    "padding-same": (
        _i2c(padding="same"),
        TypeError,
        r"`padding` must be an int or a pair of ints",
    ),
    "stride-negative": (_i2c(stride=-1), ValueError, r"`stride` must be >= 1"),
}

COL2IM_ERRORS = {
    "block-count": (
        _i2c(cols=_z((1, 8, 9)), output_size=(4, 5)),
        ValueError,
        r"`output_size` gives 3x4=12 blocks but `cols` has L=9 columns",
    ),
    "rows": (
        _i2c(cols=_z((1, 7, 9)), output_size=(4, 4)),
        ValueError,
        r"`cols` must have C\*KH\*KW rows, a non-zero multiple of KH\*KW=4",
    ),
    "cols-2d": (
        _i2c(cols=_z((8, 9)), output_size=(4, 4)),
        ValueError,
        r"`cols` must be a 3-d array",
    ),
    "output-size-zero": (
        _i2c(cols=_z((1, 8, 9)), output_size=(0, 4)),
        ValueError,
        r"`output_size` must be >= 1",
    ),
    "kernel-too-large": (
        _i2c(cols=_z((1, 8, 9)), output_size=(1, 1)),
        ValueError,
        r"must not exceed the padded input size",
    ),
    "cols-float16": (
        _i2c(cols=_z((1, 8, 9), np.float16), output_size=(4, 4)),
        TypeError,
        r"`cols` must have dtype float32 or float64",
    ),
}


# Pooling: the cases below are overrides of _POOL_BASE (x (2, 3, 6, 6), a 2x2 window,
# defaults elsewhere: a (2, 3, 3, 3) output). Every pooling op that takes all of a
# case's arguments gets it: the backward ops validate hyper-parameters the same way.
POOL_ERRORS = {
    "x-list": (
        dict(x=[[1.0]]),
        TypeError,
        r"`x` must be a numpy.ndarray. Received: x of type list",
    ),
    "x-int": (
        dict(x=_z((1, 1, 4, 4), np.int32)),
        TypeError,
        r"`x` must have dtype float32 or float64. Received: x.dtype=int32",
    ),
    "x-float16": (dict(x=_z((1, 1, 4, 4), np.float16)), TypeError, r"x.dtype=float16"),
    "x-bool": (dict(x=_z((1, 1, 4, 4), bool)), TypeError, r"x.dtype=bool"),
    "x-3d": (
        dict(x=_z((3, 6, 6))),
        ValueError,
        r"`x` must be a 4-d array \(N, C, H, W\). Received: x.shape=\(3, 6, 6\)",
    ),
    "x-5d": (dict(x=_z((1, 1, 1, 6, 6), np.float64)), ValueError, r"`x` must be a 4-d array"),
    "zero-channels": (
        dict(x=_z((2, 0, 6, 6), np.float64)),
        ValueError,
        r"`x` must have non-zero C, H and W. Received: x.shape=\(2, 0, 6, 6\)",
    ),
    "zero-height": (
        dict(x=_z((2, 3, 0, 6), np.float64)),
        ValueError,
        r"`x` must have non-zero C, H and W",
    ),
    "zero-width": (
        dict(x=_z((2, 3, 6, 0), np.float64)),
        ValueError,
        r"`x` must have non-zero C, H and W",
    ),
    "kernel-zero": (
        dict(kernel_size=(2, 0)),
        ValueError,
        r"`kernel_size` must be >= 1. Received: kernel_size=\(2, 0\)",
    ),
    "kernel-float": (
        dict(kernel_size=2.0),
        TypeError,
        r"`kernel_size` must be an int or a pair of ints. Received: kernel_size=2.0",
    ),
    "kernel-triple": (
        dict(kernel_size=(2, 2, 2)),
        ValueError,
        r"`kernel_size` must have 2 elements",
    ),
    "stride-zero": (dict(stride=0), ValueError, r"`stride` must be >= 1. Received: stride=0"),
    "stride-negative": (
        dict(stride=(1, -1)),
        ValueError,
        r"`stride` must be >= 1. Received: stride=\(1, -1\)",
    ),
    "stride-bool": (
        dict(stride=True),
        TypeError,
        r"`stride` must be an int or a pair of ints. Received: stride=True",
    ),
    "dilation-zero": (
        dict(dilation=(0, 1)),
        ValueError,
        r"`dilation` must be >= 1. Received: dilation=\(0, 1\)",
    ),
    "padding-negative": (
        dict(padding=-1),
        ValueError,
        r"`padding` must be >= 0. Received: padding=-1",
    ),
    "padding-negative-pair": (dict(padding=(0, -2)), ValueError, r"`padding` must be >= 0"),
    "padding-over-half": (
        dict(kernel_size=3, padding=2),
        ValueError,
        r"`padding` must be at most half of `kernel_size`. Received: padding=\(2, 2\), kernel_size=\(3, 3\)",
    ),
    # half of the kernel, not of the dilated span, as PyTorch's check
    "padding-over-half-dilated": (
        dict(kernel_size=2, padding=(0, 2), dilation=3),
        ValueError,
        r"Received: padding=\(0, 2\), kernel_size=\(2, 2\)",
    ),
    "padding-over-half-pair": (
        dict(kernel_size=(4, 1), padding=(2, 1)),
        ValueError,
        r"`padding` must be at most half of `kernel_size`. Received: padding=\(2, 1\), kernel_size=\(4, 1\)",
    ),
    "padding-string": (
        dict(padding="same"),
        TypeError,
        r"`padding` must be an int or a pair of ints",
    ),
    "kernel-too-large": (
        dict(kernel_size=(7, 2)),
        ValueError,
        r"`kernel_size` \(dilated\) must not exceed the padded input size. Received: kernel_size=\(7, 2\), dilation=\(1, 1\) spans \(7, 2\), padded input is \(6, 6\)",
    ),
    "kernel-too-large-w": (
        dict(kernel_size=(2, 7)),
        ValueError,
        r"must not exceed the padded input size",
    ),
    "kernel-too-large-stride-1": (
        dict(kernel_size=7, stride=1),
        ValueError,
        r"must not exceed the padded input size",
    ),
    "dilated-kernel-too-large": (
        dict(kernel_size=3, dilation=(1, 3)),
        ValueError,
        r"spans \(3, 7\), padded input is \(6, 6\)",
    ),
    "kernel-too-large-ceil": (
        dict(kernel_size=(8, 2), stride=2, ceil_mode=True),
        ValueError,
        r"`kernel_size` \(dilated\) must not exceed the padded input size by more than `stride` - 1 with ceil_mode=True. Received: kernel_size=\(8, 2\), dilation=\(1, 1\) spans \(8, 2\), padded input is \(6, 6\), stride=\(2, 2\)",
    ),
    "dilation-skips-input": (
        dict(x=_z((1, 1, 2, 5), np.float64), kernel_size=2, padding=1, dilation=3),
        ValueError,
        r"`dilation` must not let a pooling window skip the whole input: a window along H holds no input pixel. Received: kernel_size=\(2, 2\), dilation=\(3, 3\), padding=\(1, 1\), input \(H, W\)=\(2, 5\)",
    ),
    "ceil-mode-int": (
        dict(ceil_mode=1),
        TypeError,
        r"`ceil_mode` must be a bool. Received: ceil_mode=1",
    ),
    "ceil-mode-str": (
        dict(ceil_mode="False"),
        TypeError,
        r"`ceil_mode` must be a bool. Received: ceil_mode='False'",
    ),
    "return-indices-none": (
        dict(return_indices=None),
        TypeError,
        r"`return_indices` must be a bool. Received: return_indices=None",
    ),
    "count-include-pad-int": (
        dict(count_include_pad=0),
        TypeError,
        r"`count_include_pad` must be a bool. Received: count_include_pad=0",
    ),
    "divisor-zero": (
        dict(divisor_override=0),
        ValueError,
        r"`divisor_override` must be >= 1. Received: divisor_override=0",
    ),
    "divisor-negative": (
        dict(divisor_override=-3),
        ValueError,
        r"`divisor_override` must be >= 1. Received: divisor_override=-3",
    ),
    "divisor-float": (
        dict(divisor_override=2.5),
        TypeError,
        r"`divisor_override` must be an int. Received: divisor_override=2.5",
    ),
    "norm-zero": (
        dict(norm_type=0),
        ValueError,
        r"`norm_type` must be a positive finite number. Received: norm_type=0",
    ),
    "norm-negative": (
        dict(norm_type=-2.0),
        ValueError,
        r"`norm_type` must be a positive finite number. Received: norm_type=-2.0",
    ),
    "norm-inf": (dict(norm_type=np.inf), ValueError, r"Received: norm_type=inf"),
    "norm-nan": (dict(norm_type=float("nan")), ValueError, r"Received: norm_type=nan"),
    "norm-string": (
        dict(norm_type="2"),
        TypeError,
        r"`norm_type` must be a real number. Received: norm_type='2'",
    ),
    "norm-bool": (
        dict(norm_type=True),
        TypeError,
        r"`norm_type` must be a real number. Received: norm_type=True",
    ),
    "norm-array": (
        dict(norm_type=np.array([2.0])),
        TypeError,
        r"`norm_type` must be a real number",
    ),
}


def _pool_errors(names, base=None, cases=POOL_ERRORS):
    """The `cases` whose overrides are all arguments of an op taking `names`, as full
    argument sets over _POOL_BASE and `base` (what else the op takes: grad_out,
    indices, input_shape)."""
    full = {**_POOL_BASE, "x": _z((2, 3, 6, 6)), **(base or {})}
    return {
        case: ({k: v for k, v in {**full, **overrides}.items() if k in names}, exc, m)
        for case, (overrides, exc, m) in cases.items()
        if set(overrides) <= set(names)
    }


_G = _z((2, 3, 3, 3))
_IDX = np.zeros((2, 3, 3, 3), np.int64)
_MAXB = dict(grad_out=_G, indices=_IDX, input_shape=(2, 3, 6, 6))
MAX_BACKWARD_ERRORS = {
    "grad-int": (
        dict(_MAXB, grad_out=_z((2, 3, 3, 3), np.int64)),
        TypeError,
        r"`grad_out` must have dtype float32 or float64. Received: grad_out.dtype=int64",
    ),
    "grad-3d": (
        dict(_MAXB, grad_out=_z((3, 3, 3))),
        ValueError,
        r"`grad_out` must be a 4-d array \(N, C, OH, OW\)",
    ),
    "grad-list": (
        dict(_MAXB, grad_out=[[0.0]]),
        TypeError,
        r"`grad_out` must be a numpy.ndarray. Received: grad_out of type list",
    ),
    "indices-list": (
        dict(_MAXB, indices=[[0]]),
        TypeError,
        r"`indices` must be a numpy.ndarray. Received: indices of type list",
    ),
    "indices-int32": (
        dict(_MAXB, indices=_IDX.astype(np.int32)),
        TypeError,
        r"`indices` must have dtype int64. Received: indices.dtype=int32",
    ),
    "indices-float": (
        dict(_MAXB, indices=_IDX.astype(np.float32)),
        TypeError,
        r"`indices` must have dtype int64. Received: indices.dtype=float32",
    ),
    "indices-shape": (
        dict(_MAXB, indices=_IDX[:, :, :2]),
        ValueError,
        r"`indices` must have the shape of `grad_out` \(2, 3, 3, 3\). Received: indices.shape=\(2, 3, 2, 3\)",
    ),
    "indices-out-of-plane": (
        dict(_MAXB, indices=np.full((2, 3, 3, 3), 36, np.int64)),
        ValueError,
        r"`indices` must be flat positions in \[0, H\*W\) = \[0, 36\) of an input plane. Received: values in \[36, 36\]",
    ),
    "shape-3": (
        dict(_MAXB, input_shape=(2, 3, 6)),
        ValueError,
        r"`input_shape` must have 4 elements \(N, C, H, W\). Received: input_shape=\(2, 3, 6\)",
    ),
    "shape-float": (
        dict(_MAXB, input_shape=(2, 3, 6.0, 6)),
        TypeError,
        r"`input_shape` must be a sequence of 4 ints \(N, C, H, W\). Received: input_shape=\(2, 3, 6.0, 6\)",
    ),
    "shape-int": (
        dict(_MAXB, input_shape=6),
        TypeError,
        r"`input_shape` must be a sequence of 4 ints",
    ),
    "shape-zero-h": (
        dict(_MAXB, input_shape=(2, 3, 0, 6)),
        ValueError,
        r"`input_shape` must have N >= 0 and non-zero C, H and W. Received: input_shape=\(2, 3, 0, 6\)",
    ),
    "shape-other-c": (
        dict(_MAXB, input_shape=(2, 4, 6, 6)),
        ValueError,
        r"`input_shape` must have the N and C of `grad_out` \(2, 3\). Received: input_shape=\(2, 4, 6, 6\)",
    ),
    "shape-other-n": (
        dict(_MAXB, input_shape=[1, 3, 6, 6]),
        ValueError,
        r"`input_shape` must have the N and C of `grad_out` \(2, 3\). Received: input_shape=\[1, 3, 6, 6\]",
    ),
    "shape-huge": (
        dict(
            grad_out=_z((1, 1, 1, 2), np.float64),
            indices=np.ones((1, 1, 1, 2), np.int64),
            input_shape=(1, 1, 2**63 - 1, 2),
        ),
        ValueError,
        r"^The input gradient would have 18446744073709551614 elements",
    ),
}

_MAX_NAMES = (
    "x",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "ceil_mode",
    "return_indices",
)
_AVG_NAMES = (
    "x",
    "kernel_size",
    "stride",
    "padding",
    "ceil_mode",
    "count_include_pad",
    "divisor_override",
)
_AVG_BACKWARD_NAMES = ("grad_out", "input_shape") + _AVG_NAMES[1:]
_LP_NAMES = ("x", "norm_type", "kernel_size", "stride", "ceil_mode")
_LP_BACKWARD_NAMES = ("grad_out",) + _LP_NAMES

_AVGB = dict(grad_out=_G, input_shape=(2, 3, 6, 6))
AVG_BACKWARD_ERRORS = {
    **_pool_errors(_AVG_BACKWARD_NAMES, _AVGB),
    **_pool_errors(
        _AVG_BACKWARD_NAMES,
        _AVGB,
        {
            "grad-shape": (
                dict(grad_out=_z((2, 3, 3, 4))),
                ValueError,
                r"`grad_out` must have the forward output's shape \(2, 3, 3, 3\). Received: grad_out.shape=\(2, 3, 3, 4\)",
            ),
            "grad-shape-ceil": (
                dict(ceil_mode=True, stride=4),
                ValueError,
                r"`grad_out` must have the forward output's shape \(2, 3, 2, 2\)",
            ),
            "grad-int32": (
                dict(grad_out=_z((2, 3, 3, 3), np.int32)),
                TypeError,
                r"`grad_out` must have dtype float32 or float64",
            ),
            "grad-3d": (
                dict(grad_out=_z((3, 3, 3))),
                ValueError,
                r"`grad_out` must be a 4-d array",
            ),
            "shape-3": (
                dict(input_shape=(2, 3, 6)),
                ValueError,
                r"`input_shape` must have 4 elements",
            ),
            "shape-too-small": (
                dict(input_shape=(2, 3, 1, 6)),
                ValueError,
                r"must not exceed the padded input size",
            ),
            "shape-huge": (
                dict(grad_out=_z((1, 1, 1, 2), np.float64), input_shape=(1, 1, 2**62, 4)),
                ValueError,
                r"^The input gradient would have 18446744073709551616 elements",
            ),
        },
    ),
}

LP_BACKWARD_ERRORS = {
    **_pool_errors(_LP_BACKWARD_NAMES, dict(grad_out=_G)),
    **_pool_errors(
        _LP_BACKWARD_NAMES,
        dict(grad_out=_G),
        {
            "grad-dtype": (
                dict(grad_out=_z((2, 3, 3, 3), np.float64)),
                TypeError,
                r"`grad_out` must have the same dtype as `x` \(float32\). Received: grad_out.dtype=float64",
            ),
            "grad-shape": (
                dict(grad_out=_z((2, 3, 3, 2))),
                ValueError,
                r"`grad_out` must have the forward output's shape \(2, 3, 3, 3\)",
            ),
            "grad-str": (
                dict(grad_out="grad"),
                TypeError,
                r"`grad_out` must be a numpy.ndarray",
            ),
        },
    ),
}


def _lin(**overrides):
    return {"x": _z((2, 3, 8)), "weight": _z((6, 8)), **overrides}


LINEAR_ERRORS = {
    "x-list": (
        _lin(x=[[1.0]]),
        TypeError,
        r"`x` must be a numpy.ndarray. Received: x of type list",
    ),
    "x-int": (
        _lin(x=_z((2, 3, 8), np.int64)),
        TypeError,
        r"`x` must have dtype float32 or float64. Received: x.dtype=int64",
    ),
    "weight-3d": (
        _lin(weight=_z((6, 8, 1))),
        ValueError,
        r"`weight` must be a 2-d array \(out_features, in_features\). Received: weight.shape=\(6, 8, 1\)",
    ),
    "mixed-dtypes": (
        _lin(weight=_z((6, 8), np.float64)),
        TypeError,
        r"`weight` must have the same dtype as `x` \(float32\). Received: weight.dtype=float64",
    ),
    "in-features": (
        _lin(x=_z((2, 3, 7))),
        ValueError,
        r"`x` must have in_features=8 \(weight.shape\[1\]\) as its last axis. Received: x.shape=\(2, 3, 7\), weight.shape=\(6, 8\)",
    ),
    "x-0d": (_lin(x=_z(())), ValueError, r"`x` must have in_features=8"),
    "bias-shape": (
        _lin(bias=_z(5)),
        ValueError,
        r"`bias` must have out_features=6 entries. Received: bias.shape=\(5,\)",
    ),
    "bias-2d": (
        _lin(bias=_z((6, 1))),
        ValueError,
        r"`bias` must be a 1-d array \(out_features,\)",
    ),
    "bias-dtype": (
        _lin(bias=_z(6, np.float64)),
        TypeError,
        r"`bias` must have the same dtype as `x`",
    ),
}
LINEAR_BACKWARD_ERRORS = {
    **{
        k: (dict(o, grad_out=_z((2, 3, 6))), e, m)
        for k, (o, e, m) in _only(LINEAR_ERRORS, ("x", "weight")).items()
        if k != "x-0d"
    },
    "grad-shape": (
        _lin(grad_out=_z((2, 3, 5))),
        ValueError,
        r"`grad_out` must have shape \(2, 3, 6\) \(x.shape\[:-1\] \+ \(out_features,\)\). Received: grad_out.shape=\(2, 3, 5\)",
    ),
    "grad-2d": (
        _lin(grad_out=_z((6, 6))),
        ValueError,
        r"`grad_out` must be a 3-d array \(\*, out_features\)",
    ),
    "grad-dtype": (
        _lin(grad_out=_z((2, 3, 6), np.float64)),
        TypeError,
        r"`grad_out` must have the same dtype as `x` \(float32\)",
    ),
    "grad-list": (_lin(grad_out=[0.0]), TypeError, r"`grad_out` must be a numpy.ndarray"),
}


def _adapt(**overrides):
    return {"x": _z((2, 3, 6, 6)), "output_size": 3, **overrides}


ADAPTIVE_ERRORS = {
    "x-list": (
        _adapt(x=[[1.0]]),
        TypeError,
        r"`x` must be a numpy.ndarray. Received: x of type list",
    ),
    "x-int": (
        _adapt(x=_z((2, 3, 6, 6), np.int64)),
        TypeError,
        r"`x` must have dtype float32 or float64. Received: x.dtype=int64",
    ),
    "x-3d": (
        _adapt(x=_z((3, 6, 6))),
        ValueError,
        r"`x` must be a 4-d array \(N, C, H, W\). Received: x.shape=\(3, 6, 6\)",
    ),
    "zero-width": (
        _adapt(x=_z((2, 3, 6, 0))),
        ValueError,
        r"`x` must have non-zero C, H and W",
    ),
    "size-zero": (
        _adapt(output_size=0),
        ValueError,
        r"`output_size` must be >= 1. Received: output_size=0",
    ),
    "size-negative-pair": (
        _adapt(output_size=(None, -1)),
        ValueError,
        r"`output_size` must be >= 1. Received: output_size=\(None, -1\)",
    ),
    "size-float": (
        _adapt(output_size=1.5),
        TypeError,
        r"`output_size` must be an int or a pair of ints or None. Received: output_size=1.5",
    ),
    "size-bool": (_adapt(output_size=True), TypeError, r"Received: output_size=True"),
    "size-none": (_adapt(output_size=None), TypeError, r"Received: output_size=None"),
    "size-triple": (
        _adapt(output_size=(1, 2, 3)),
        ValueError,
        r"`output_size` must have 2 elements. Received: output_size=\(1, 2, 3\)",
    ),
    "size-huge": (
        _adapt(output_size=2**31),
        ValueError,
        r"`output_size` must be <= 2147483647",
    ),
    "output-too-large": (
        _adapt(output_size=2**31 - 1),
        ValueError,
        r"^The output would have 27670116084794523654 elements",
    ),
}
ADAPTIVE_MAX_ERRORS = {
    **ADAPTIVE_ERRORS,
    "return-indices-int": (
        _adapt(return_indices=1),
        TypeError,
        r"`return_indices` must be a bool. Received: return_indices=1",
    ),
}
_ADAPTB = dict(grad_out=_G, input_shape=(2, 3, 6, 6), output_size=3)
ADAPTIVE_AVG_BACKWARD_ERRORS = {
    "grad-int": (
        dict(_ADAPTB, grad_out=_z((2, 3, 3, 3), np.int64)),
        TypeError,
        r"`grad_out` must have dtype float32 or float64",
    ),
    "grad-3d": (
        dict(_ADAPTB, grad_out=_z((3, 3, 3))),
        ValueError,
        r"`grad_out` must be a 4-d array \(N, C, OH, OW\)",
    ),
    "grad-shape": (
        dict(_ADAPTB, output_size=(3, None)),
        ValueError,
        r"`grad_out` must have the forward output's shape \(2, 3, 3, 6\). Received: grad_out.shape=\(2, 3, 3, 3\)",
    ),
    "shape-3": (
        dict(_ADAPTB, input_shape=(2, 3, 6)),
        ValueError,
        r"`input_shape` must have 4 elements",
    ),
    "shape-zero-w": (
        dict(_ADAPTB, input_shape=(2, 3, 6, 0)),
        ValueError,
        r"`input_shape` must have N >= 0 and non-zero C, H and W",
    ),
    "size-zero": (dict(_ADAPTB, output_size=(0, 3)), ValueError, r"`output_size` must be >= 1"),
    "size-str": (
        dict(_ADAPTB, output_size="3"),
        TypeError,
        r"`output_size` must be an int or a pair of ints or None",
    ),
    "shape-huge": (
        dict(
            _ADAPTB,
            grad_out=_z((1, 1, 1, 2), np.float64),
            input_shape=(1, 1, 2**62, 4),
            output_size=(1, 2),
        ),
        ValueError,
        r"^The input gradient would have 18446744073709551616 elements",
    ),
}


def _interp(**overrides):
    return {
        "x": _z((2, 3, 6, 6)),
        "scale_factor": 2,
        "size": None,
        "mode": "nearest",
        **overrides,
    }


# overrides of the geometry (scale_factor, size, mode), shared by forward and backward
_INTERP_GEOMETRY_ERRORS: dict = {
    "mode-bilinear": (
        dict(mode="bilinear"),
        NotImplementedError,
        r"`mode`='bilinear' is not implemented: only 'nearest' is",
    ),
    "mode-nearest-exact": (
        dict(mode="nearest-exact"),
        NotImplementedError,
        r"`mode`='nearest-exact' is not implemented",
    ),
    "mode-unknown": (
        dict(mode="cubic"),
        ValueError,
        r"`mode` must be 'nearest'. Received: mode='cubic'",
    ),
    "mode-none": (
        dict(mode=None),
        ValueError,
        r"`mode` must be 'nearest'. Received: mode=None",
    ),
    "both-given": (
        dict(size=4),
        ValueError,
        r"Exactly one of `size` and `scale_factor` must be given. Received: size=4, scale_factor=2",
    ),
    "neither-given": (
        dict(scale_factor=None),
        ValueError,
        r"Exactly one of `size` and `scale_factor` must be given",
    ),
    "size-zero": (
        dict(scale_factor=None, size=(0, 3)),
        ValueError,
        r"`size` must be >= 1. Received: size=\(0, 3\)",
    ),
    "size-float": (
        dict(scale_factor=None, size=2.5),
        TypeError,
        r"`size` must be an int or a pair of ints",
    ),
    "scale-zero": (
        dict(scale_factor=0),
        ValueError,
        r"`scale_factor` must be positive and finite. Received: scale_factor=0",
    ),
    "scale-inf": (
        dict(scale_factor=(1, float("inf"))),
        ValueError,
        r"`scale_factor` must be positive and finite",
    ),
    "scale-nan": (
        dict(scale_factor=float("nan")),
        ValueError,
        r"`scale_factor` must be positive and finite",
    ),
    "scale-str": (
        dict(scale_factor="2"),
        TypeError,
        r"`scale_factor` must be a real number or a pair of them. Received: scale_factor='2'",
    ),
    "scale-bool": (dict(scale_factor=True), TypeError, r"`scale_factor` must be a real number"),
    "scale-triple": (
        dict(scale_factor=(1, 2, 3)),
        ValueError,
        r"`scale_factor` must have 2 elements",
    ),
    "scale-to-nothing": (
        dict(scale_factor=0.1),
        ValueError,
        r"The output would be 0x0: `scale_factor` must leave at least one pixel per axis. Received: scale_factor=0.1, input \(H, W\)=\(6, 6\)",
    ),
    "output-too-large": (
        dict(scale_factor=2.0**40),
        ValueError,
        r"^One image's output would have \d+ elements, more than an array can hold",
    ),
}
INTERPOLATE_ERRORS = {
    # found by the fuzzer: an empty batch made the output's element count 0 and NumPy's
    # own errors (which differ between backends) reached the caller
    "huge-scale-empty-batch": (
        _interp(x=_z((0, 3, 6, 6)), scale_factor=2**63),
        ValueError,
        r"^One image's output would have \d+ elements, more than an array can hold",
    ),
    "x-list": (
        _interp(x=[[1.0]]),
        TypeError,
        r"`x` must be a numpy.ndarray. Received: x of type list",
    ),
    "x-int": (
        _interp(x=_z((2, 3, 6, 6), np.int64)),
        TypeError,
        r"`x` must have dtype float32 or float64",
    ),
    "x-3d": (_interp(x=_z((3, 6, 6))), ValueError, r"`x` must be a 4-d array \(N, C, H, W\)"),
    "zero-height": (
        _interp(x=_z((2, 3, 0, 6))),
        ValueError,
        r"`x` must have non-zero C, H and W",
    ),
    **{k: (_interp(**o), e, m) for k, (o, e, m) in _INTERP_GEOMETRY_ERRORS.items()},
}


def _interpb(**overrides):
    return {
        "grad_out": _z((2, 3, 12, 12)),
        "input_shape": (2, 3, 6, 6),
        "scale_factor": 2,
        "size": None,
        "mode": "nearest",
        **overrides,
    }


INTERPOLATE_BACKWARD_ERRORS = {
    **{
        k: (_interpb(**o), e, m)
        for k, (o, e, m) in _INTERP_GEOMETRY_ERRORS.items()
        if k != "output-too-large"
    },  # there grad_out's shape is wrong first
    "grad-int": (
        _interpb(grad_out=_z((2, 3, 12, 12), np.int64)),
        TypeError,
        r"`grad_out` must have dtype float32 or float64",
    ),
    "grad-shape": (
        _interpb(grad_out=_z((2, 3, 12, 11))),
        ValueError,
        r"`grad_out` must have the forward output's shape \(2, 3, 12, 12\). Received: grad_out.shape=\(2, 3, 12, 11\)",
    ),
    "shape-3": (
        _interpb(input_shape=(2, 3, 6)),
        ValueError,
        r"`input_shape` must have 4 elements",
    ),
    "shape-huge": (
        _interpb(
            grad_out=_z((1, 1, 2, 2)), input_shape=(1, 1, 2**62, 1), scale_factor=None, size=2
        ),
        ValueError,
        r"^The input gradient would have 4611686018427387904 elements",
    ),
}

# --- the table ---------------------------------------------------------------------------

OPS = {
    op.name: op
    for op in [
        Op("im2col", NO_NAIVE, ("x",), _im2col, IM2COL_ERRORS, "im2col_cases"),
        Op("col2im", NO_NAIVE, ("cols",), _col2im, COL2IM_ERRORS, "col2im_cases"),
        Op("conv2d", BACKENDS, ("x", "weight", "bias"), _conv2d, CONV_ERRORS, "conv2d_cases"),
        Op(
            "conv2d_backward",
            BACKENDS,
            ("grad_out", "x", "weight"),
            _conv2d_backward,
            CONV_BACKWARD_ERRORS,
            "conv2d_backward_cases",
        ),
        Op(
            "max_pool2d",
            BACKENDS,
            ("x",),
            _max_pool2d,
            _pool_errors(_MAX_NAMES),
            "max_pool2d_cases",
        ),
        Op(
            "max_pool2d_backward",
            BACKENDS,
            ("grad_out", "indices"),
            _max_pool2d_backward,
            MAX_BACKWARD_ERRORS,
            "max_pool2d_backward_cases",
        ),
        Op(
            "avg_pool2d",
            BACKENDS,
            ("x",),
            _avg_pool2d,
            _pool_errors(_AVG_NAMES),
            "avg_pool2d_cases",
        ),
        Op(
            "avg_pool2d_backward",
            BACKENDS,
            ("grad_out",),
            _avg_pool2d_backward,
            AVG_BACKWARD_ERRORS,
            "avg_pool2d_backward_cases",
        ),
        Op(
            "lp_pool2d",
            NO_NAIVE,
            ("x",),
            _lp_pool2d,
            _pool_errors(_LP_NAMES),
            "lp_pool2d_cases",
        ),
        Op(
            "lp_pool2d_backward",
            NO_NAIVE,
            ("grad_out", "x"),
            _lp_pool2d_backward,
            LP_BACKWARD_ERRORS,
            "lp_pool2d_backward_cases",
        ),
        Op(
            "conv_transpose2d",
            BACKENDS,
            ("x", "weight", "bias"),
            _conv_transpose2d,
            CONV_TRANSPOSE_ERRORS,
        ),
        Op(
            "conv_transpose2d_backward",
            BACKENDS,
            ("grad_out", "x", "weight"),
            _conv_transpose2d_backward,
            CONV_TRANSPOSE_BACKWARD_ERRORS,
        ),
        Op("linear", BACKENDS, ("x", "weight", "bias"), _linear, LINEAR_ERRORS),
        Op(
            "linear_backward",
            BACKENDS,
            ("grad_out", "x", "weight"),
            _linear_backward,
            LINEAR_BACKWARD_ERRORS,
        ),
        Op("adaptive_avg_pool2d", NO_NAIVE, ("x",), _adaptive_avg_pool2d, ADAPTIVE_ERRORS),
        Op(
            "adaptive_avg_pool2d_backward",
            NO_NAIVE,
            ("grad_out",),
            _adaptive_avg_pool2d_backward,
            ADAPTIVE_AVG_BACKWARD_ERRORS,
        ),
        Op("adaptive_max_pool2d", NO_NAIVE, ("x",), _adaptive_max_pool2d, ADAPTIVE_MAX_ERRORS),
        Op(
            "adaptive_max_pool2d_backward",
            NO_NAIVE,
            ("grad_out", "indices"),
            _adaptive_max_pool2d_backward,
            MAX_BACKWARD_ERRORS,
        ),
        Op("interpolate", NO_NAIVE, ("x",), _interpolate, INTERPOLATE_ERRORS),
        Op(
            "interpolate_backward",
            NO_NAIVE,
            ("grad_out",),
            _interpolate_backward,
            INTERPOLATE_BACKWARD_ERRORS,
        ),
    ]
}


def ops_of(backend):
    """Names of the table's ops that `backend` defines, in table order."""
    return [name for name, op in OPS.items() if backend in op.backends]
