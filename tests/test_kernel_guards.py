"""The private wrappers of pycnn._ext._kernels guard memory themselves (issue 12,
defect 6).

The public functions cap every argument before they call a kernel, but the wrappers
are importable: called directly with hostile sizes (huge, negative, products that
overflow Py_ssize_t, buffers that do not match the geometry) each must raise
ValueError, never write or read outside the arrays it was given. Before the fix, the
first cases here wrote out of bounds (SIGSEGV in a release build, reports under ASan:
run tools/sanitize.sh). Each case also runs on every SIMD variant's entry point, since
the guards sit in front of the dispatch.
"""

import numpy as np
import pytest

from pycnn._ext import _kernels

BIG = 2**62
MAX = 2**63 - 1
# a stride whose (o-1)*stride wraps Py_ssize_t to a small value for o = 3 or 4
WRAP = (2**64 + 2) // 3

f64 = np.float64


def _x(*shape):
    return np.ones(shape, dtype=f64)


def _z(*shape, dtype=f64):
    return np.zeros(shape, dtype=dtype)


# --- im2col / col2im ---------------------------------------------------------------------
# arguments after the two arrays: kh, kw, sh, sw, ph, pw, dh, dw, oh, ow

IM2COL_CASES = {
    # C*KH*KW = 2**64 + 4 wraps to 4 = cols.shape[1]: the example
    "kernel-product-wraps": (
        (1, 1, 4, 4),
        (1, 4, 1),
        (2**62 + 1, 4, 1, 1, 0, 0, 1, 1, 1, 1),
        r"C\*KH\*KW = .* overflows",
    ),
    "kernel-product-wraps-kw": (
        (1, 1, 4, 4),
        (1, 4, 1),
        (4, 2**62 + 1, 1, 1, 0, 0, 1, 1, 1, 1),
        r"C\*KH\*KW = .* overflows",
    ),
    # OH*OW = 2**64 + 2**32 wraps to 2**32... and 2**64 to 0
    "blocks-product-wraps": (
        (1, 1, 4, 4),
        (1, 1, 0),
        (1, 1, 1, 1, 0, 0, 1, 1, 2**32, 2**32),
        r"OH\*OW = .* overflows",
    ),
    "huge-stride": (
        (1, 1, 4, 4),
        (1, 1, 3),
        (1, 1, 1, BIG, 0, 0, 1, 1, 1, 3),
        r"along W.*overflows",
    ),
    "wrapping-stride": (
        (1, 1, 4, 4),
        (1, 1, 4),
        (1, 1, WRAP, 1, 0, 0, 1, 1, 4, 1),
        r"along H.*overflows",
    ),
    "huge-padding": (
        (1, 1, 4, 4),
        (1, 1, 1),
        (1, 1, 1, 1, MAX, 0, 1, 1, 1, 1),
        r"along H.*overflows",
    ),
    "huge-dilation": (
        (1, 1, 4, 4),
        (1, 4, 1),
        (2, 2, 1, 1, 0, 0, MAX, 1, 1, 1),
        r"along H.*overflows",
    ),
    "negative-kernel": (
        (1, 1, 4, 4),
        (1, 1, 1),
        (-1, 1, 1, 1, 0, 0, 1, 1, 1, 1),
        r"invalid geometry",
    ),
    "zero-stride": (
        (1, 1, 4, 4),
        (1, 1, 16),
        (1, 1, 0, 1, 0, 0, 1, 1, 4, 4),
        r"invalid geometry",
    ),
    "negative-padding": (
        (1, 1, 4, 4),
        (1, 1, 16),
        (1, 1, 1, 1, -1, 0, 1, 1, 4, 4),
        r"invalid geometry",
    ),
    "negative-output": ((1, 1, 4, 4), (1, 1, 4), (1, 1, 1, 1, 0, 0, 1, 1, -1, -4), r">= 0"),
    "cols-too-small": (
        (1, 2, 4, 4),
        (1, 1, 16),
        (1, 1, 1, 1, 0, 0, 1, 1, 4, 4),
        r"`cols` has shape \(1, 1, 16\), expected \(1, 2, 16\)",
    ),
    "cols-wrong-rows": (
        (1, 2, 4, 4),
        (1, 4, 9),
        (2, 2, 1, 1, 0, 0, 1, 1, 3, 3),
        r"`cols` has shape \(1, 4, 9\), expected \(1, 8, 9\)",
    ),
    "cols-wrong-batch": (
        (2, 1, 4, 4),
        (1, 4, 9),
        (2, 2, 1, 1, 0, 0, 1, 1, 3, 3),
        r"`cols` has shape \(1, 4, 9\), expected \(2, 4, 9\)",
    ),
    "cols-too-few-blocks": (
        (1, 1, 4, 4),
        (1, 4, 9),
        (2, 2, 1, 1, 0, 0, 1, 1, 5, 2),
        r"`cols` has shape \(1, 4, 9\), expected \(1, 4, 10\)",
    ),
}


@pytest.fixture(params=_kernels.SIMD_TARGETS)
def simd(request):
    if request.param not in _kernels.simd_supported():
        pytest.skip(f"{request.param} is not supported on this CPU")
    before = _kernels.simd_target()
    _kernels.set_simd_target(request.param)
    yield request.param
    _kernels.set_simd_target(before)


@pytest.mark.parametrize("name", IM2COL_CASES)
def test_im2col_refuses_hostile_sizes(simd, name):
    x_shape, cols_shape, args, match = IM2COL_CASES[name]
    x, cols = _x(*x_shape), _z(*cols_shape)
    with pytest.raises(ValueError, match=match):
        _kernels.im2col(x, cols, *args)
    assert np.all(cols == 0)


@pytest.mark.parametrize("name", IM2COL_CASES)
def test_col2im_refuses_hostile_sizes(simd, name):
    x_shape, cols_shape, args, match = IM2COL_CASES[name]
    x, cols = _z(*x_shape), _x(*cols_shape)
    with pytest.raises(ValueError, match=match.replace("im2col", "col2im")):
        _kernels.col2im(cols, x, *args)
    assert np.all(x == 0)


def test_im2col_of_an_empty_plane_is_padding():
    # H = 0 with padding: every tap is padding (was: `cols` left uninitialised)
    cols = np.full((1, 1, 3), np.nan)
    _kernels.im2col(_x(1, 1, 0, 3), cols, 1, 1, 1, 1, 1, 0, 1, 1, 1, 3)
    assert np.all(cols == 0)


def test_im2col_guards_accept_the_largest_valid_geometry():
    # a stride as large as the public API allows, with one output: fine
    cols = _z(1, 1, 1)
    _kernels.im2col(_x(1, 1, 4, 4), cols, 1, 1, 2**31 - 1, 2**31 - 1, 0, 0, 1, 1, 1, 1)
    assert cols[0, 0, 0] == 1


# --- conv2d_direct ------------------------------------------------------------------------


def _direct(x_shape, w_shape, out_shape, groups=1, sh=1, sw=1, dh=1, dw=1, bias=None):
    _kernels.conv2d_direct(
        _x(*x_shape), _x(*w_shape), bias, _z(*out_shape), groups, sh, sw, dh, dw
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        # (OH-1)*SH wraps Py_ssize_t: the example
        (dict(out_shape=(1, 1, 3, 1), sh=WRAP), r"along H.*overflows"),
        (dict(out_shape=(1, 1, 1, 4), sw=WRAP), r"along W.*overflows"),
        (dict(out_shape=(1, 1, 2, 1), sh=2**40), r"does not fit input"),
        (dict(out_shape=(1, 1, 2, 1), sh=BIG), r"along H.*overflows"),
        (dict(out_shape=(1, 1, 2, 2), w_shape=(1, 1, 2, 2), dh=MAX), r"along H.*overflows"),
        (dict(out_shape=(1, 1, 2, 2), w_shape=(1, 1, 2, 2), dw=2**40), r"does not fit input"),
        (dict(out_shape=(1, 1, 5, 4)), r"`out` of shape \(1, 1, 5, 4\) does not fit"),
        (dict(out_shape=(1, 1, 4, 5)), r"`out` of shape \(1, 1, 4, 5\) does not fit"),
        (dict(out_shape=(1, 1, 3, 3), w_shape=(1, 1, 2, 3)), r"does not fit input"),
        (dict(out_shape=(2, 1, 4, 4)), r"`out` of shape \(2, 1, 4, 4\) does not fit"),
        (dict(out_shape=(1, 2, 4, 4)), r"`out` of shape \(1, 2, 4, 4\) does not fit"),
        (dict(out_shape=(1, 1, 4, 4), sh=0), r"invalid geometry"),
        (dict(out_shape=(1, 1, 4, 4), dw=-1), r"invalid geometry"),
        (dict(out_shape=(1, 1, 4, 4), groups=0), r"does not fit 1 input channels in 0 groups"),
        (dict(out_shape=(1, 1, 4, 4), groups=-1), r"groups"),
        (
            dict(x_shape=(1, 2, 4, 4), w_shape=(2, 1, 1, 1), out_shape=(1, 2, 4, 4), groups=3),
            r"groups",
        ),
        (dict(out_shape=(1, 1, 4, 4), bias=np.ones(2)), r"`bias` has 2 entries, expected 1"),
    ],
)
def test_conv2d_direct_refuses_hostile_sizes(simd, kwargs, match):
    kwargs = {"x_shape": (1, 1, 4, 4), "w_shape": (1, 1, 1, 1), **kwargs}
    with pytest.raises(ValueError, match=match):
        _direct(**kwargs)


def test_conv2d_direct_refuses_groups_whose_product_wraps():
    # weight.shape[1] * groups = 4 * 2**62 wraps to 0 = C
    x = _x(1, 0, 4, 4)
    with pytest.raises(ValueError, match="groups"):
        _kernels.conv2d_direct(x, _x(0, 4, 1, 1), None, _z(1, 0, 4, 4), 2**62, 1, 1, 1, 1)


# --- pooling --------------------------------------------------------------------------------
# arguments after the arrays: kh, kw, sh, sw, ph, pw, dh, dw (max) / kh, kw, sh, sw, ph, pw
# (avg); x is (1, 4, 4) unless said otherwise

POOL_CASES = {
    # the example: ox*SW wraps for ox = 2
    "huge-stride": ((1, 1, 3), (1, 1, 1, BIG, 0, 0), r"along W.*overflows"),
    "wrapping-stride": ((1, 3, 1), (1, 1, WRAP, 1, 0, 0), r"along H.*overflows"),
    "huge-padding": ((1, 1, 1), (2, 2, 1, 1, BIG, 0), r"along H.*overflows"),
    "max-padding": ((1, 1, 1), (2, 2, 1, 1, 0, MAX), r"along W.*overflows"),
    "huge-kernel": ((1, 1, 1), (MAX, 1, 1, 1, 0, 0), r"along H.*overflows"),
    "out-too-tall": ((1, 3, 2), (2, 2, 2, 2, 0, 0), r"last window starts past the input"),
    "out-too-wide": ((1, 2, 5), (1, 1, 1, 1, 0, 0), r"last window starts past the input"),
    "out-far-too-big": ((1, 64, 64), (2, 2, 2, 2, 0, 0), r"last window starts past"),
    "out-planes": ((2, 2, 2), (2, 2, 2, 2, 0, 0), r"has 2 planes, expected 1"),
    "negative-kernel": ((1, 2, 2), (-2, 2, 2, 2, 0, 0), r"invalid geometry"),
    "zero-stride": ((1, 2, 2), (2, 2, 0, 2, 0, 0), r"invalid geometry"),
    "negative-padding": ((1, 2, 2), (2, 2, 2, 2, 0, -1), r"invalid geometry"),
}


@pytest.mark.parametrize("name", POOL_CASES)
def test_max_pool2d_forward_refuses_hostile_sizes(simd, name):
    out_shape, args, match = POOL_CASES[name]
    out, idx = _z(*out_shape), _z(*out_shape, dtype=np.int64)
    with pytest.raises(ValueError, match=match):
        _kernels.max_pool2d_forward(_x(1, 4, 4), out, idx, *args, 1, 1)
    with pytest.raises(ValueError, match=match):
        _kernels.max_pool2d_forward(_x(1, 4, 4), out, None, *args, 1, 1)
    assert np.all(out == 0) and np.all(idx == 0)


@pytest.mark.parametrize(
    "dilation, match",
    [
        ((MAX, 1), r"along H.*overflows"),
        ((1, BIG), r"along W.*overflows"),
        ((0, 1), r"invalid geometry"),
    ],
)
def test_max_pool2d_forward_refuses_hostile_dilation(simd, dilation, match):
    with pytest.raises(ValueError, match=match):
        _kernels.max_pool2d_forward(_x(1, 4, 4), _z(1, 1, 1), None, 2, 2, 1, 1, 0, 0, *dilation)


@pytest.mark.parametrize("idx_shape", [(1, 2, 3), (1, 3, 2), (2, 2, 2), (0, 2, 2)])
def test_max_pool2d_forward_refuses_mismatched_indices(simd, idx_shape):
    with pytest.raises(ValueError, match=r"`indices` has shape .*, expected \(1, 2, 2\)"):
        _kernels.max_pool2d_forward(
            _x(1, 4, 4), _z(1, 2, 2), _z(*idx_shape, dtype=np.int64), 2, 2, 2, 2, 0, 0, 1, 1
        )


def test_pool2d_forward_of_an_empty_plane_writes_the_kernels_values():
    # W = 0 with padding: no window holds an input pixel (was: `out` left uninitialised)
    out, idx = np.full((1, 2, 1), np.nan), np.full((1, 2, 1), 7, dtype=np.int64)
    _kernels.max_pool2d_forward(_x(1, 4, 0), out, idx, 2, 2, 2, 2, 0, 1, 1, 1)
    assert np.all(out == -np.inf) and np.all(idx == -1)
    out = np.full((1, 2, 1), np.nan)
    _kernels.avg_pool2d_forward(_x(1, 4, 0), out, 2, 2, 2, 2, 0, 1, True, 0)
    assert np.all(out == 0)


@pytest.mark.parametrize(
    "grad_shape, idx_shape, match",
    [
        ((2, 2, 2), (1, 2, 2), r"`grad_out` has 2 planes, expected 1"),
        ((1, 2, 2), (1, 2, 3), r"`indices` has shape \(1, 2, 3\), expected \(1, 2, 2\)"),
        ((1, 2, 2), (2, 2, 2), r"`indices` has shape \(2, 2, 2\), expected \(1, 2, 2\)"),
        ((1, 3, 3), (1, 2, 2), r"`indices` has shape \(1, 2, 2\), expected \(1, 3, 3\)"),
    ],
)
def test_max_pool2d_backward_refuses_mismatched_buffers(simd, grad_shape, idx_shape, match):
    grad_x = _z(1, 4, 4)
    with pytest.raises(ValueError, match=match):
        _kernels.max_pool2d_backward(_x(*grad_shape), _z(*idx_shape, dtype=np.int64), grad_x)


def test_max_pool2d_backward_skips_indices_outside_the_plane(simd):
    idx = np.array([[[-1, 16], [2**62, -(2**63)]]], dtype=np.int64)
    grad_x = _z(1, 4, 4)
    assert _kernels.max_pool2d_backward(_x(1, 2, 2), idx, grad_x) == 4
    assert np.all(grad_x == 0)


@pytest.mark.parametrize("name", POOL_CASES)
def test_avg_pool2d_refuses_hostile_sizes(simd, name):
    out_shape, args, match = POOL_CASES[name]
    out = _z(*out_shape)
    with pytest.raises(ValueError, match=match):
        _kernels.avg_pool2d_forward(_x(1, 4, 4), out, *args, True, 0)
    assert np.all(out == 0)
    grad_x = _z(1, 4, 4)
    with pytest.raises(ValueError, match=match):
        _kernels.avg_pool2d_backward(_x(*out_shape), grad_x, *args, False, 0)
    assert np.all(grad_x == 0)


def test_avg_pool2d_refuses_a_window_size_that_overflows(simd):
    # KH*KW = 2**64 would wrap the divisor; the reach alone does not overflow
    with pytest.raises(ValueError, match=r"KH\*KW = .* overflows"):
        _kernels.avg_pool2d_forward(_x(1, 4, 4), _z(1, 1, 1), 2**32, 2**32, 1, 1, 0, 0, True, 0)
    with pytest.raises(ValueError, match=r"KH\*KW = .* overflows"):
        _kernels.avg_pool2d_backward(
            _x(1, 1, 1), _z(1, 4, 4), 2**32, 2**32, 1, 1, 0, 0, True, 0
        )
