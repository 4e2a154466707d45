"""The fixed-order matrix product of Winograd's convolution (`_kernels.matmul_fixed`):
its values, and the property it exists for, that an element's bits do not depend on the
call it is in nor on the instruction-set variant."""

import numpy as np
import pytest

from pycnn._ext import _kernels

# (M, N, K): rows by 4 and less, columns by 2 vectors, 1 vector, masked lanes and none
SHAPES = [
    (1, 1, 1),
    (3, 7, 5),
    (4, 16, 16),
    (5, 17, 9),
    (8, 33, 32),
    (9, 40, 3),
    (6, 3, 64),
    (4, 8, 0),  # K = 0: zeros
]


def _sequential(a, b):
    """a @ b summed in the order of K in a's dtype, one rounding per product and sum."""
    out = np.zeros(a.shape[:2] + b.shape[2:], a.dtype)
    for p in range(a.shape[2]):
        out = out + a[:, :, p : p + 1] * b[:, p : p + 1, :]
    return out


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_each_element_is_summed_in_order(shape, simd, dtype, rng):
    m, n, k = shape
    a = rng.standard_normal((3, m, k)).astype(dtype)
    b = rng.standard_normal((3, k, n)).astype(dtype)
    before = a.copy(), b.copy()
    c = np.full((3, m, n), np.nan, dtype)
    _kernels.matmul_fixed(a, b, c)
    np.testing.assert_array_equal(c, _sequential(a, b))  # the bits, in any variant
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])


def test_a_column_gets_the_same_bits_in_any_call(dtype, rng):
    """What lets one call take a whole chunk of images: the columns of b (an image's
    tiles) get the same result whatever columns share the call."""
    a = rng.standard_normal((2, 13, 24)).astype(dtype)
    b = rng.standard_normal((2, 24, 50)).astype(dtype)
    whole = np.empty((2, 13, 50), dtype)
    _kernels.matmul_fixed(a, b, whole)
    for lo, hi in [(0, 1), (3, 20), (17, 50), (5, 37)]:
        part = np.empty((2, 13, hi - lo), dtype)
        _kernels.matmul_fixed(a, np.ascontiguousarray(b[:, :, lo:hi]), part)
        np.testing.assert_array_equal(part, whole[:, :, lo:hi])


def test_nan_and_infinities_propagate(rng):
    a = rng.standard_normal((1, 4, 3))
    b = rng.standard_normal((1, 3, 9))
    a[0, 1, 2], b[0, 0, 4] = np.nan, np.inf
    c = np.empty((1, 4, 9))
    _kernels.matmul_fixed(a, b, c)
    np.testing.assert_array_equal(c, _sequential(a, b))
    want = a @ b
    np.testing.assert_array_equal(np.isnan(c), np.isnan(want))  # where NumPy has them
    np.testing.assert_array_equal(np.isinf(c), np.isinf(want))
    assert np.isnan(c).any() and np.isinf(c).any()


@pytest.mark.parametrize(
    "a, b, c",
    [
        ((2, 3, 4), (2, 5, 6), (2, 3, 6)),  # K differs
        ((2, 3, 4), (1, 4, 6), (2, 3, 6)),  # batch differs
        ((2, 3, 4), (2, 4, 6), (2, 3, 5)),  # c too narrow
    ],
)
def test_refuses_shapes_that_do_not_fit(a, b, c):
    with pytest.raises(ValueError, match="matmul_fixed"):
        _kernels.matmul_fixed(np.ones(a), np.ones(b), np.empty(c))


def test_refuses_mixed_dtypes():
    with pytest.raises(ValueError, match="dtype mismatch"):
        _kernels.matmul_fixed(
            np.ones((1, 2, 2), np.float32), np.ones((1, 2, 2)), np.empty((1, 2, 2))
        )
