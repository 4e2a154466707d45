"""Adaptive pooling (issue 14): adaptive_avg_pool2d / adaptive_max_pool2d and their
backward passes, compiled (NumPy fast paths) against reference (one window at a time)
and PyTorch, and the AdaptiveAvgPool2d / AdaptiveMaxPool2d layers against numerical
gradients. Errors, empty batches and layouts come from the table (pycnn/_ops.py)."""

import numpy as np
import pytest
from conftest import assert_close, numerical_gradient

from pycnn import functional, reference
from pycnn.layers import AdaptiveAvgPool2d, AdaptiveMaxPool2d

IMPLS = pytest.mark.parametrize("impl", [functional, reference], ids=["compiled", "numpy"])

# name: (input shape, output_size)
CASES = {
    "global": ((2, 3, 7, 5), 1),
    "global-pair": ((2, 3, 4, 6), (1, 1)),
    "divisible": ((2, 3, 8, 9), (4, 3)),
    "overlapping-odd": ((2, 3, 7, 8), (5, 3)),
    "odd-both": ((2, 2, 10, 11), (3, 4)),
    "larger-than-input": ((2, 2, 3, 4), (5, 7)),
    "none-keeps-h": ((2, 3, 5, 7), (None, 3)),
    "none-keeps-w": ((1, 2, 5, 7), (2, None)),
    "identity": ((2, 2, 4, 5), (4, 5)),
    "n1": ((1, 4, 9, 6), (2, 4)),
    "n0": ((0, 3, 7, 8), (5, 3)),
    "c1-column": ((3, 1, 13, 1), (4, 1)),
}
cases = pytest.mark.parametrize("shape, size", CASES.values(), ids=CASES.keys())


def _torch_adaptive(kind, x, size, grad):
    torch = pytest.importorskip("torch")
    t = torch.tensor(x, requires_grad=True)
    pool = getattr(torch.nn.functional, f"adaptive_{kind}_pool2d")
    out = pool(t, size, return_indices=True) if kind == "max" else pool(t, size)
    out, idx = out if kind == "max" else (out, None)
    out.backward(torch.tensor(grad))
    return (out.detach().numpy(), None if idx is None else idx.numpy(), t.grad.numpy())


def _shape_out(shape, size):
    size = (size, size) if isinstance(size, int) else size
    return shape[:2] + tuple(s if o is None else o for o, s in zip(size, shape[2:]))


@IMPLS
@cases
def test_adaptive_avg_pool2d_matches_torch(impl, shape, size, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    grad = rng.standard_normal(_shape_out(shape, size)).astype(dtype)
    want, _, want_dx = _torch_adaptive("avg", x, size, grad)
    out = impl.adaptive_avg_pool2d(x, size)
    assert out.shape == want.shape and out.dtype == dtype
    assert_close(out, want, dtype)
    dx = impl.adaptive_avg_pool2d_backward(grad, x.shape, size)
    assert dx.shape == x.shape and dx.dtype == dtype
    assert_close(dx, want_dx, dtype)


@IMPLS
@cases
def test_adaptive_max_pool2d_matches_torch(impl, shape, size, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    grad = rng.standard_normal(_shape_out(shape, size)).astype(dtype)
    want, want_idx, want_dx = _torch_adaptive("max", x, size, grad)
    out, idx = impl.adaptive_max_pool2d(x, size, return_indices=True)
    assert out.shape == want.shape and out.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)
    assert_close(impl.adaptive_max_pool2d(x, size), want, dtype)
    dx = impl.adaptive_max_pool2d_backward(grad, idx, x.shape)
    assert_close(dx, want_dx, dtype)


@IMPLS
@pytest.mark.parametrize("size", [1, (2, 2), (3, 2)], ids=["global", "even", "odd"])
def test_adaptive_max_ties_nan_and_inf_match_torch(impl, size, dtype, rng):
    x = rng.integers(-2, 3, size=(2, 3, 4, 5)).astype(dtype)  # many ties
    x[0, 0, 1, 1] = x[0, 0, 2, 3] = np.nan  # several NaN
    x[0, 1, 3, 4] = np.nan
    x[1, 0] = -np.inf  # all -inf plane
    x[1, 1, 0, 0] = np.inf
    grad = rng.standard_normal(_shape_out(x.shape, size)).astype(dtype)
    want, want_idx, _ = _torch_adaptive("max", x, size, grad)
    out, idx = impl.adaptive_max_pool2d(x, size, return_indices=True)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)


@IMPLS
def test_adaptive_avg_nan_stays_in_its_windows(impl, dtype):
    x = np.ones((1, 1, 7, 8), dtype)
    x[0, 0, 0, 0] = np.nan
    out = impl.adaptive_avg_pool2d(x, (5, 3))
    assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out).sum() == 1
    assert_close(out[~np.isnan(out)], np.ones(14), dtype)


def test_global_average_is_the_mean_of_each_plane(dtype, rng):
    x = rng.standard_normal((4, 5, 9, 7)).astype(dtype)
    assert_close(
        functional.adaptive_avg_pool2d(x, 1), x.mean(axis=(2, 3), keepdims=True), dtype
    )


@pytest.mark.parametrize("seed", range(20))
def test_compiled_and_reference_agree_on_random_geometries(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 12, size=2)
    oh, ow = rng.integers(1, 14, size=2)
    x = rng.standard_normal((2, 2, h, w))
    g = rng.standard_normal((2, 2, oh, ow))
    for name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        assert_close(
            getattr(functional, name)(x, (oh, ow)),
            getattr(reference, name)(x, (oh, ow)),
            np.float64,
        )
    np.testing.assert_array_equal(
        functional.adaptive_max_pool2d(x, (oh, ow), True)[1],
        reference.adaptive_max_pool2d(x, (oh, ow), True)[1],
    )
    assert_close(
        functional.adaptive_avg_pool2d_backward(g, x.shape, (oh, ow)),
        reference.adaptive_avg_pool2d_backward(g, x.shape, (oh, ow)),
        np.float64,
    )


# --- layers -----------------------------------------------------------------------------

LAYERS = pytest.mark.parametrize("cls", [AdaptiveAvgPool2d, AdaptiveMaxPool2d])
BACKENDS = pytest.mark.parametrize("backend", ["compiled", "numpy"])


@LAYERS
@BACKENDS
@pytest.mark.parametrize("size", [1, (3, 2), (None, 4)], ids=["global", "odd", "none"])
def test_layer_gradient_is_numerical(cls, backend, size, rng):
    x = rng.standard_normal((2, 2, 5, 7))  # distinct values: max is differentiable
    layer = cls(size, backend=backend)
    out = layer(x)
    g = rng.standard_normal(out.shape)
    dx = layer.backward(g)
    num = numerical_gradient(lambda: float(np.sum(layer.forward(x) * g)), x)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


@BACKENDS
def test_max_layer_return_indices(backend, rng):
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    out, idx = AdaptiveMaxPool2d((2, 3), return_indices=True, backend=backend)(x)
    want, want_idx = reference.adaptive_max_pool2d(x, (2, 3), return_indices=True)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)


@LAYERS
def test_layer_keeps_float32_and_has_no_params(cls, rng):
    layer = cls(2)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    assert layer(x).dtype == np.float32
    assert layer.backward(np.ones((1, 2, 2, 2), np.float32)).dtype == np.float32
    assert layer.params == {} and layer.grads == {}


def test_layer_reprs_and_errors():
    assert repr(AdaptiveAvgPool2d(1)) == "AdaptiveAvgPool2d(output_size=(1, 1))"
    assert (
        repr(AdaptiveMaxPool2d((None, 3), return_indices=True, backend="numpy"))
        == "AdaptiveMaxPool2d(output_size=(None, 3), return_indices=True, backend='numpy')"
    )
    with pytest.raises(ValueError, match=r"`output_size` must be >= 1"):
        AdaptiveAvgPool2d(0)
    with pytest.raises(TypeError, match=r"`return_indices` must be a bool"):
        AdaptiveMaxPool2d(1, return_indices="yes")
    with pytest.raises(RuntimeError, match="AdaptiveMaxPool2d.backward called before"):
        AdaptiveMaxPool2d(1).backward(np.zeros((1, 1, 1, 1)))
    with pytest.raises(ValueError, match="`backend` must be"):
        AdaptiveAvgPool2d(1, backend="torch")


@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (2, 4), (3, 3), (8, 8), (13, 11)], ids=str)
def test_global_average_pooling_sums_each_plane(hw, dtype, rng):
    """Global pooling's compiled pass (`_kernels.plane_means`, 8 running sums in double)
    against the mean in float64: planes of 1 to 143 values (the running sums' tails),
    NaN and infinities kept, a non-contiguous input, the input untouched."""
    h, w = hw
    x = rng.standard_normal((3, 4, w, h)).astype(dtype).transpose(0, 1, 3, 2)
    x[0, 1, 0, 0] = np.nan
    x[1, 2, -1, -1] = np.inf
    before = x.copy()
    out = functional.adaptive_avg_pool2d(x, 1)
    assert out.shape == (3, 4, 1, 1) and out.dtype == dtype
    want = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    assert out[1, 2, 0, 0] == np.inf
    finite = np.isfinite(want)
    assert_close(out[finite], want[finite], dtype)
    np.testing.assert_array_equal(x, before)


def test_plane_means_refuses_mismatched_sizes():
    from pycnn._ext import _kernels

    with pytest.raises(ValueError, match="`out` has 3 entries, expected 2"):
        _kernels.plane_means(np.zeros((2, 5)), np.zeros(3))
    with pytest.raises(ValueError, match="no values"):
        _kernels.plane_means(np.zeros((2, 0)), np.zeros(2))
