"""`pycnn.fuse` folds a 2x2 max pooling at stride 2 into the convolution before it
(`FusedConv2d(..., pool=...)`): on Winograd's path in float32 on AVX2 the output
transform pools each 4x4 tile and never writes the full-size output; elsewhere the layer
runs its `MaxPool2d`. Either way the output must be the bits of the convolution and the
pooling run one after the other."""

import numpy as np
import pytest

import pycnn
from pycnn import fusion
from pycnn._ext import _kernels


def _net(c, f, with_bn, relu, dtype, pool=None):
    layers = [pycnn.Conv2d(c, f, 3, padding=1, dtype=dtype)]
    if with_bn:
        layers.append(pycnn.BatchNorm2d(f, dtype=dtype))
    if relu:
        layers.append(pycnn.ReLU())
    layers.append(pool if pool is not None else pycnn.MaxPool2d(2))
    model = pycnn.Sequential(*layers)
    for layer in model.layers:
        if isinstance(layer, pycnn.BatchNorm2d):
            rng = np.random.default_rng(1)
            layer.running_mean[:] = rng.standard_normal(f) * 0.1
            layer.running_var[:] = rng.uniform(0.5, 2.0, f)
    return model.eval()


# name: (N, C, F, H=W rows, W): Winograd on whole tiles (28x28), partial tiles (14x14,
# 10x9), odd sizes (7x7, pooled to 3x3), and an im2col layer (4 channels)
CASES = {
    "whole-tiles": (2, 16, 16, 28, 28),
    "one-image": (1, 16, 16, 28, 28),
    "partial-tiles": (2, 16, 16, 14, 14),
    "odd-both": (2, 16, 16, 17, 18),
    "seven": (16, 32, 32, 7, 7),
    "im2col": (3, 4, 8, 10, 9),
}


def _unfused_pool(model, x):
    """The fused model's convolution without its pooling, then the MaxPool2d."""
    fused = pycnn.fuse(model)
    layer = fused.layers[0]
    pool, layer.pool = layer.pool, None
    return pool.forward(layer.forward(x))


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no-relu"])
@pytest.mark.parametrize("with_bn", [True, False], ids=["bn", "no-bn"])
def test_same_bits_as_convolution_then_pooling(name, relu, with_bn, dtype, rng):
    n, c, f, h, w = CASES[name]
    model = _net(c, f, with_bn, relu, dtype)
    fused = pycnn.fuse(model)
    (layer,) = fused.layers
    assert isinstance(layer, fusion.FusedConv2d) and layer.pool is not None
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    x[0, 0, h // 2, w // 2] = np.nan
    x[-1, 0, :3, :3] = 0.0  # windows of equal values (zeros of either sign after ReLU)
    before = x.copy()
    out = fused.forward(x)
    want = _unfused_pool(model, x)
    assert out.shape == (n, f, h // 2, w // 2) and out.dtype == dtype
    assert np.isnan(out).any()
    assert out.tobytes() == want.tobytes()
    np.testing.assert_array_equal(x, before)
    # which path pooled: the output transform where the plan says it can
    (plan,) = layer._plans.values()
    tile_pooled = plan.pools(pycnn._conv.Epilogue(layer.bias, layer._act, pool=True))
    winograd = name != "im2col" and (n > 1 or dtype == np.float32)  # one image: float32
    avx2 = _kernels.simd_target() != "baseline"
    assert tile_pooled == (winograd and dtype == np.float32 and avx2)
    # and the unfused model's outputs, to the folding's rounding
    ref = model.forward(x)
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    scale = np.max(np.abs(ref[finite]))
    assert (
        np.max(np.abs(out[finite] - ref[finite]))
        <= (1e-5 if dtype == np.float32 else 1e-12) * scale
    )


@pytest.mark.parametrize(
    "pool, fused",
    [
        (lambda: pycnn.MaxPool2d(2), True),
        (lambda: pycnn.MaxPool2d(2, stride=2), True),
        (lambda: pycnn.MaxPool2d(3), False),
        (lambda: pycnn.MaxPool2d(2, stride=1), False),
        (lambda: pycnn.MaxPool2d(2, padding=1), False),
        (lambda: pycnn.MaxPool2d(2, ceil_mode=True), False),
        (lambda: pycnn.MaxPool2d(2, backend="numpy"), False),
        (lambda: pycnn.AvgPool2d(2), False),
    ],
)
def test_fuse_takes_only_2x2_max_pooling_at_stride_2(pool, fused, rng):
    model = _net(4, 8, True, True, np.float32, pool=pool())
    layers = pycnn.fuse(model).layers
    assert (layers[0].pool is not None) == fused
    assert len(layers) == (1 if fused else 2)
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(pycnn.fuse(model).forward(x), model.forward(x), atol=1e-5)


def test_a_pooling_layer_is_named_in_the_repr():
    text = repr(pycnn.fuse(_net(4, 8, True, True, np.float32)))
    assert "+ BatchNorm2d(8) + ReLU() + MaxPool2d(kernel_size=(2, 2))" in text


@pytest.mark.skipif(
    "avx2" not in _kernels.simd_supported(), reason="the pooled transform needs AVX2"
)
@pytest.mark.parametrize("n_chunks", [1, 2, 3])
@pytest.mark.parametrize("hw", [(8, 8), (8, 9), (7, 7), (14, 14), (5, 6), (2, 2)], ids=str)
def test_kernel_pools_like_max_pool_2x2(n_chunks, hw, rng):
    """winograd_forward with pooling against winograd_forward then max_pool_2x2, in any
    chunking: tiles whose pooled rows or columns fall (partly) past the pooled plane."""
    h, w = hw
    x = rng.standard_normal((3, 2, h, w)).astype(np.float32)
    x[1, 1, 0, 0] = np.nan
    u = rng.standard_normal((36, 3, 2)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    for relu in (False, True):
        full = np.empty((3, 3, h, w), np.float32)
        _kernels.winograd_forward(x, u, full, bias, 1, 1, relu, None, 1)
        want = np.empty((9, (h // 2) * (w // 2)), np.float32)
        _kernels.max_pool_2x2(full.reshape(9, h * w), h, w, want, None)
        out = np.full((3, 3, h // 2, w // 2), -7, np.float32)
        _kernels.winograd_forward(x, u, out, bias, 1, 1, relu, None, n_chunks, 2, h, w)
        assert out.tobytes() == want.tobytes()


def test_kernel_refuses_pooling_it_cannot_do():
    x = np.zeros((2, 3, 8, 8), np.float32)
    u = np.zeros((36, 4, 3), np.float32)
    with pytest.raises(ValueError, match="pooled from"):
        _kernels.winograd_forward(
            x, u, np.zeros((2, 4, 3, 4), np.float32), None, 1, 1, False, None, 1, 1, 8, 8
        )
    with pytest.raises(ValueError, match="no residual"):
        _kernels.winograd_forward(
            x,
            u,
            np.zeros((2, 4, 4, 4), np.float32),
            None,
            1,
            1,
            False,
            np.zeros((2, 4, 4, 4), np.float32),
            1,
            1,
            8,
            8,
        )
    with pytest.raises(ValueError, match="float32 and AVX2"):
        _kernels.winograd_forward(
            x.astype(np.float64),
            u.astype(np.float64),
            np.zeros((2, 4, 4, 4)),
            None,
            1,
            1,
            False,
            None,
            1,
            1,
            8,
            8,
        )


def test_plan_refuses_a_pooling_epilogue_it_cannot_take():
    from pycnn import _conv, _validation

    x = np.zeros((2, 4, 8, 8))
    w = np.zeros((8, 4, 3, 3))
    args = _validation.conv2d_args(x, w, None, 1, 1, 1, 1)
    plan = _conv.plan(x.shape, w.shape, x.dtype, args)
    with pytest.raises(ValueError, match="cannot pool"):
        plan.forward(x, w, _conv.Epilogue(pool=True))
