"""Small planes through tables of positions (pycnn/_ext/_gather.pxi): the columns are
exactly the C im2col's (whole or side by side), a convolution plan gives the same bits with the
table as without it, max pooling matches the reference (values and indices, NaN and
ties) on every instruction set and thread count, and the kernels refuse tables and
arrays that do not fit."""

import numpy as np
import pytest
from conftest import CONV_CASES, assert_close, make_conv

import pycnn
from pycnn import _conv, functional, reference
from pycnn import _validation as V
from pycnn._ext import _kernels

# (C, H, W, KH, KW, stride, padding, dilation)
GEOMETRIES = [
    (3, 4, 4, 3, 3, (1, 1), (1, 1), (1, 1)),
    (2, 7, 5, 3, 2, (2, 1), (1, 0), (1, 1)),
    (4, 6, 9, 2, 3, (1, 3), (2, 1), (2, 1)),
    (1, 8, 8, 5, 5, (1, 1), (2, 2), (1, 1)),
    (2, 3, 3, 3, 3, (2, 2), (0, 0), (1, 1)),
]


def _columns_case(geometry, dtype, rng):
    """x (3, C, H, W), its position table and im2col's columns of it."""
    c, h, w, kh, kw, stride, padding, dilation = geometry
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    geom = (kh, kw, *stride, *padding, *dilation, oh, ow)
    x = rng.standard_normal((3, c, h, w)).astype(dtype)
    table = _conv._column_table(c, h, w, *geom)
    want = np.empty((3, c * kh * kw, oh * ow), dtype)
    _kernels.im2col(x, want, *geom, 1)
    return x, table, want


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_gather_gives_exactly_what_im2col_gives(geometry, dtype, rng):
    x, table, want = _columns_case(geometry, dtype, rng)
    n, rows, blocks = want.shape
    got = np.full((n, rows * blocks), np.nan, dtype)
    _kernels.gather_columns(x.reshape(n, -1), table, got)
    np.testing.assert_array_equal(got.reshape(want.shape), want)


@pytest.fixture
def no_gather(monkeypatch):
    """Plans built while this is active use the C im2col everywhere."""

    def off():
        monkeypatch.setattr(_conv, "GATHER_MAX_OW", 0)
        monkeypatch.setattr(_conv, "BATCHED_WEIGHT_GRAD_MAX_L", 0)

    return off


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_a_plan_gives_the_same_results_with_and_without_its_table(
    name, no_gather, dtype, rng, monkeypatch
):
    """The same bits for the output and the input gradient; the weight gradient as one
    GEMM a chunk (forced on here, however few the rows) adds in another order, so it
    agrees within rounding, and with the reference."""
    monkeypatch.setattr(_conv, "BATCHED_WEIGHT_GRAD_MIN_ROWS", 0)
    x, w, b, kw = make_conv(CONV_CASES[name], dtype, rng)
    args = V.conv2d_args(x, w, b, **kw)
    stride, padding, dilation, groups = args[:4]
    common = (x.shape, w.shape, dtype, stride, padding, dilation, groups, None, False)
    with_table = _conv.ConvPlan(*common)
    no_gather()
    without = _conv.ConvPlan(*common)
    assert without.gather_table is None
    g = rng.standard_normal(with_table.out_shape).astype(dtype)
    np.testing.assert_array_equal(with_table.forward(x, w), without.forward(x, w))
    got, want = with_table.backward(g, x, w), without.backward(g, x, w)
    np.testing.assert_array_equal(got[0], want[0])
    assert_close(got[1], want[1], dtype)
    np.testing.assert_array_equal(got[2], want[2])
    if with_table.batched_weight_grad:
        assert_close(got[1], reference.conv2d_backward(g, x, w, **kw)[1], dtype)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_columns_side_by_side_are_im2col_s_columns_transposed(geometry, dtype, rng):
    x, table, want = _columns_case(geometry, dtype, rng)
    n, rows, blocks = want.shape
    got = np.full((rows, n * blocks), np.nan, dtype)
    _kernels.gather_columns_t(x.reshape(n, -1), table, got)
    np.testing.assert_array_equal(got.reshape(rows, n, blocks), want.transpose(1, 0, 2))


def test_kept_columns_give_the_same_batched_weight_gradient(monkeypatch, rng):
    # from the forward's kept columns (transposed) or gathered again: the same bits
    monkeypatch.setattr(_conv, "BATCHED_WEIGHT_GRAD_MIN_ROWS", 0)
    x = rng.standard_normal((5, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    plan = _conv.ConvPlan(x.shape, w.shape, np.float32, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert plan.batched_weight_grad and plan.keeps_columns
    kept = np.empty(plan.columns_shape, np.float32)
    out = plan.forward(x, w, columns=kept)
    before = kept.copy()
    g = rng.standard_normal(out.shape).astype(np.float32)
    from_kept = plan.backward(g, x, w, columns=kept)
    again = plan.backward(g, x, w)
    for a, b in zip(from_kept, again):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(kept, before)


def test_small_convolutions_take_the_table_and_large_ones_do_not():
    small = _conv.ConvPlan(
        (8, 64, 4, 4),
        (32, 64, 3, 3),
        np.float32,
        (1, 1),
        ((1, 1), (1, 1)),
        (1, 1),
        1,
        winograd=False,
    )
    large = _conv.ConvPlan(
        (8, 16, 28, 28),
        (32, 16, 3, 3),
        np.float32,
        (1, 1),
        ((1, 1), (1, 1)),
        (1, 1),
        1,
        winograd=False,
    )
    assert small.gather_table is not None and not small.gather_table.flags.writeable
    assert small.gather_im2col and small.batched_weight_grad
    assert large.gather_table is None
    assert not (large.gather_im2col or large.batched_weight_grad)


# --- max pooling -------------------------------------------------------------------------


# (H, W, kernel, stride, dilation, ceil_mode)
POOLS = [
    (4, 4, 2, 2, 1, False),
    (7, 7, 2, 2, 1, False),
    (7, 7, 3, 2, 1, True),  # ceil mode whose windows all stay inside
    (9, 11, 3, 1, 2, False),
    (5, 6, (2, 3), (1, 2), 1, False),
    (14, 14, 2, 2, 1, False),
]


def _with_nan_and_ties(x):
    x = x.copy()
    x[0, 0, 0, :2] = np.nan  # two NaN in one window: the last one's index wins
    x[0, 1, :2, :2] = 1.0  # a tie: the first maximum's index wins
    x[-1, -1, 1, 1] = np.nan
    x[-1, -1, 0, 0] = np.inf
    return x


@pytest.mark.parametrize("pool", POOLS, ids=str)
def test_max_pool_through_the_table_matches_the_reference(pool, simd, dtype, rng):
    h, w, k, s, d, ceil = pool
    x = _with_nan_and_ties(rng.standard_normal((3, 4, h, w)).astype(dtype))
    before = x.copy()
    args, _, table = functional._max_pool_geometry(x, k, s, 0, d, ceil, True)
    assert table is not None  # the case table exercises the table path
    out, ind = functional.max_pool2d(x, k, s, 0, d, ceil, return_indices=True)
    want, want_ind = reference.max_pool2d(x, k, s, 0, d, ceil, return_indices=True)
    np.testing.assert_array_equal(out, want)  # NaN in the same places
    np.testing.assert_array_equal(ind, want_ind)
    np.testing.assert_array_equal(functional.max_pool2d(x, k, s, 0, d, ceil), want)
    assert out.dtype == dtype
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize(
    "shape, args",
    [
        ((2, 3, 16, 16), (2, 2, 0, 1, False)),  # rows that fill the C kernel's vectors
        ((2, 3, 7, 7), (2, 2, 1, 1, False)),  # padding
        ((2, 3, 7, 7), (2, 2, 0, 1, True)),  # a ceil-mode window reaching past
    ],
)
def test_the_c_kernel_keeps_what_the_table_does_not_cover(shape, args):
    x = np.zeros(shape, np.float32)
    assert functional._max_pool_geometry(x, *args, False)[2] is None


def test_max_pool_through_the_table_does_not_depend_on_the_thread_count(monkeypatch, rng):
    monkeypatch.setattr(functional, "POOL_GRAIN", 1)
    before = pycnn.get_num_threads()
    x = rng.standard_normal((5, 3, 7, 7)).astype(np.float32)
    try:
        results = []
        for threads in (1, 2, 3):
            pycnn.set_num_threads(threads)
            results.append(functional.max_pool2d(x, 2, return_indices=True))
    finally:
        pycnn.set_num_threads(before)
    for out, ind in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(ind, results[0][1])


def test_empty_batches_pool_to_empty_outputs():
    x = np.zeros((0, 3, 7, 7), np.float32)
    out, ind = functional.max_pool2d(x, 2, return_indices=True)
    assert out.shape == ind.shape == (0, 3, 3, 3)


# --- the kernels' own guards -------------------------------------------------------------


def test_the_kernels_refuse_tables_that_point_outside_the_image():
    x = np.zeros((2, 9), np.float32)
    cols = np.zeros((2, 3), np.float32)
    for bad in ([0, 10, 1], [0, -1, 1]):
        with pytest.raises(ValueError, match="table entry"):
            _kernels.gather_columns(x, np.array(bad, np.int32), cols)
    out = np.zeros((2, 1), np.float32)
    with pytest.raises(ValueError, match="table entry"):  # S is padding, not a tap
        _kernels.max_pool_gather(x, np.array([[0], [9]], np.int32), out, None)


def test_the_kernels_refuse_arrays_that_do_not_fit():
    x = np.zeros((2, 9), np.float32)
    table = np.zeros(3, np.int32)
    with pytest.raises(ValueError, match="cols"):
        _kernels.gather_columns(x, table, np.zeros((2, 4), np.float32))
    taps = np.zeros((4, 2), np.int32)
    with pytest.raises(ValueError, match="out"):
        _kernels.max_pool_gather(x, taps, np.zeros((2, 3), np.float32), None)
    with pytest.raises(ValueError, match="indices"):
        _kernels.max_pool_gather(
            x, taps, np.zeros((2, 2), np.float32), np.zeros((1, 2), np.int64)
        )
    with pytest.raises(ValueError, match="cols_t"):
        _kernels.gather_columns_t(x, table, np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="multiple"):
        _kernels.gather_columns_t(x, table, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="table entry"):
        _kernels.gather_columns_t(
            x, np.array([0, 9, 10], np.int32), np.zeros((1, 6), np.float32)
        )
    with pytest.raises(ValueError):  # mixed dtypes
        _kernels.gather_columns(x, table, np.zeros((2, 3), np.float64))
