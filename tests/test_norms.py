"""LayerNorm and GroupNorm (issue 14) against PyTorch (forward, input gradient and
parameter gradients, float32 and float64, N = 1 and N = 0) and numerical gradients;
Dropout2d, Upsample and interpolate."""

import numpy as np
import pytest
from conftest import assert_close, numerical_gradient

from pycnn import functional, reference
from pycnn.layers import Dropout2d, GroupNorm, LayerNorm, Upsample


def _torch_layer(module, x, grad):
    """Output, input gradient and {name: parameter gradient} of a torch module."""
    torch = pytest.importorskip("torch")
    module = module.to(torch.float64 if x.dtype == np.float64 else torch.float32)
    t = torch.tensor(x, requires_grad=True)
    out = module(t)
    out.backward(torch.tensor(grad))
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return out.detach().numpy(), t.grad.numpy(), grads


def _randomise_params(layer, torch_module, rng):
    """The same random weight and bias in both (ones and zeros would hide a mistake)."""
    torch = pytest.importorskip("torch")
    for name, value in layer.params.items():
        value[...] = rng.standard_normal(value.shape).astype(value.dtype)
        getattr(torch_module, name).data = torch.tensor(value.copy())


def _check_against_torch(layer, module, x, dtype, rng):
    _randomise_params(layer, module, rng)
    out = layer(x)
    grad = rng.standard_normal(out.shape).astype(dtype)
    want, want_dx, want_grads = _torch_layer(module, x, grad)
    assert out.dtype == dtype and out.shape == want.shape
    assert_close(out, want, dtype)
    dx = layer.backward(grad)
    assert dx.dtype == dtype
    assert_close(dx, want_dx, dtype)
    assert set(layer.grads) == set(want_grads)
    for name, g in want_grads.items():
        assert layer.grads[name].dtype == dtype
        assert_close(layer.grads[name], g, dtype, err_msg=name)


LN_CASES = {
    "last-axis": ((4, 7), 7),
    "chw": ((2, 3, 4, 5), (3, 4, 5)),
    "hw": ((2, 3, 4, 5), (4, 5)),
    "sequence": ((2, 5, 6), [6]),
    "n1": ((1, 3, 5), (3, 5)),
    "n0": ((0, 3, 5), (5,)),
}


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("shape, norm", LN_CASES.values(), ids=LN_CASES.keys())
def test_layer_norm_matches_torch(shape, norm, affine, dtype, rng):
    torch = pytest.importorskip("torch")
    x = (3 * rng.standard_normal(shape) + 1).astype(dtype)
    layer = LayerNorm(norm, eps=1e-5, elementwise_affine=affine, dtype=dtype)
    module = torch.nn.LayerNorm(norm, eps=1e-5, elementwise_affine=affine)
    _check_against_torch(layer, module, x, dtype, rng)


GN_CASES = {
    "nchw-2-groups": ((2, 6, 4, 5), 2, 6),
    "one-group": ((2, 4, 3, 3), 1, 4),
    "instance-norm": ((3, 4, 5, 2), 4, 4),
    "odd-groups": ((2, 9, 3, 2), 3, 9),
    "nc": ((4, 6), 3, 6),
    "ncl": ((2, 4, 7), 2, 4),
    "n1": ((1, 4, 5, 5), 2, 4),
    "n0": ((0, 4, 5, 5), 2, 4),
}


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("shape, groups, channels", GN_CASES.values(), ids=GN_CASES.keys())
def test_group_norm_matches_torch(shape, groups, channels, affine, dtype, rng):
    torch = pytest.importorskip("torch")
    x = (2 * rng.standard_normal(shape) - 1).astype(dtype)
    layer = GroupNorm(groups, channels, eps=1e-5, affine=affine, dtype=dtype)
    module = torch.nn.GroupNorm(groups, channels, eps=1e-5, affine=affine)
    _check_against_torch(layer, module, x, dtype, rng)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: LayerNorm((3, 4), dtype=np.float64), (2, 3, 4)),
        (lambda: GroupNorm(2, 4, dtype=np.float64), (2, 4, 3, 2)),
    ],
    ids=["layer", "group"],
)
def test_norm_gradients_are_numerical(make, shape, rng):
    layer = make()
    for value in layer.params.values():
        value[...] = rng.standard_normal(value.shape)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    layer(x)
    dx = layer.backward(g)

    def loss():
        return float(np.sum(layer.forward(x) * g))

    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    layer(x)
    layer.zero_grad()  # gradients accumulate: the first backward's would add up
    layer.backward(g)
    for name, value in layer.params.items():
        np.testing.assert_allclose(
            layer.grads[name],
            numerical_gradient(loss, value),
            rtol=1e-6,
            atol=1e-8,
            err_msg=name,
        )


def test_norm_train_and_eval_are_the_same(rng):
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    for layer in (LayerNorm((4, 3, 3)), GroupNorm(2, 4)):
        out = layer(x)
        np.testing.assert_array_equal(layer.eval()(x), out)


def test_norm_params_reprs_and_errors():
    ln = LayerNorm(5)
    assert set(ln.params) == {"weight", "bias"} and ln.weight.shape == (5,)
    assert ln.weight.dtype == np.float32 and not ln.bias.any() and (ln.weight == 1).all()
    assert LayerNorm(5, elementwise_affine=False).params == {}
    assert repr(ln) == "LayerNorm((5,))"
    assert (
        repr(LayerNorm((2, 3), eps=1e-3, elementwise_affine=False, dtype=np.float64))
        == "LayerNorm((2, 3), eps=0.001, elementwise_affine=False, dtype=float64)"
    )
    gn = GroupNorm(2, 6)
    assert gn.weight.shape == gn.bias.shape == (6,)
    assert repr(gn) == "GroupNorm(2, 6)"
    assert repr(GroupNorm(3, 6, affine=False)) == "GroupNorm(3, 6, affine=False)"
    with pytest.raises(ValueError, match=r"`num_groups` must divide `num_channels`"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"`eps` must be > 0"):
        LayerNorm(3, eps=0)
    with pytest.raises(TypeError, match=r"`normalized_shape` must be an int or a tuple"):
        LayerNorm(2.5)
    with pytest.raises(
        ValueError, match=r"LayerNorm\(\(3, 4\)\): expected input ending in normalized_shape"
    ):
        LayerNorm((3, 4))(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(
        ValueError,
        match=r"GroupNorm\(2, 4\): expected input with num_channels=4 channels \(N, 4, \*\)",
    ):
        GroupNorm(2, 4)(np.zeros((2, 6, 3), np.float32))
    with pytest.raises(TypeError, match=r"GroupNorm\(2, 4\): expected float32 input"):
        GroupNorm(2, 4)(np.zeros((2, 4, 3)))
    with pytest.raises(RuntimeError, match="LayerNorm.backward called before forward"):
        LayerNorm(3).backward(np.zeros((1, 3), np.float32))


# --- Dropout2d ---------------------------------------------------------------------------


def test_dropout2d_zeroes_whole_channels_and_scales_the_rest(dtype):
    layer = Dropout2d(0.3, rng=0)
    x = np.random.default_rng(1).standard_normal((40, 50, 3, 4)).astype(dtype) + 5
    out = layer(x)
    assert out.dtype == dtype and out.shape == x.shape
    dropped = (out == 0).all(axis=(2, 3))
    kept = ~dropped
    assert ((out == 0).any(axis=(2, 3)) == dropped).all(), "a channel is dropped whole"
    assert_close(out[kept], x[kept] * dtype(1 / 0.7), dtype)
    # 2000 (N, C) draws: the dropped fraction is within 4 sigma of p
    assert abs(dropped.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / dropped.size)
    # masks differ between samples and between channels (one draw per (N, C))
    assert (dropped.any(axis=1) & kept.any(axis=1)).all(), "channels of a sample differ"
    assert len({tuple(row) for row in dropped}) == 40, "samples have their own masks"
    g = np.random.default_rng(2).standard_normal(x.shape).astype(dtype)
    dx = layer.backward(g)
    assert dx.dtype == dtype
    assert (dx[dropped] == 0).all()
    assert_close(dx[kept], g[kept] * dtype(1 / 0.7), dtype)


def test_dropout2d_preserves_the_mean_in_expectation():
    x = np.ones((200, 100, 2, 2))
    out = Dropout2d(0.5, rng=3)(x)
    assert abs(out.mean() - 1) < 4 * np.sqrt(1.0 / (200 * 100))  # std of one draw: 1


def test_dropout2d_eval_is_identity_and_edges(dtype, rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    layer = Dropout2d(0.5, rng=0).eval()
    assert layer(x) is x
    g = rng.standard_normal(x.shape).astype(dtype)
    assert layer.backward(g) is g
    assert not Dropout2d(1.0)(x).any()
    np.testing.assert_array_equal(Dropout2d(0.0)(x), x)
    assert Dropout2d(0.5)(np.zeros((0, 3, 4, 4), dtype)).shape == (0, 3, 4, 4)
    a, b = Dropout2d(0.5, rng=7)(x), Dropout2d(0.5, rng=7)(x)
    np.testing.assert_array_equal(a, b)  # seeded: reproducible
    assert repr(Dropout2d()) == "Dropout2d()" and repr(Dropout2d(0.2)) == "Dropout2d(p=0.2)"
    with pytest.raises(ValueError, match=r"Dropout2d: `x` must be a 4-d array"):
        Dropout2d()(np.zeros((3, 4, 4), dtype))
    with pytest.raises(ValueError, match=r"`p` must be in \[0, 1\]"):
        Dropout2d(1.5)
    with pytest.raises(RuntimeError, match="Dropout2d.backward called before forward"):
        Dropout2d().backward(x)


def test_dropout2d_numerical_gradient(rng):
    layer = Dropout2d(0.4, rng=5)
    x = rng.standard_normal((3, 4, 2, 3))
    g = rng.standard_normal(x.shape)
    layer(x)
    dx = layer.backward(g)
    mask = layer._mask

    def loss():
        return float(np.sum(x * mask * g))  # the same mask for every probe

    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)


# --- interpolate and Upsample -----------------------------------------------------------

IMPLS = pytest.mark.parametrize("impl", [functional, reference], ids=["compiled", "numpy"])
INTERP_CASES = {
    "x2": ((2, 3, 4, 5), dict(scale_factor=2)),
    "x3-x1": ((2, 2, 3, 4), dict(scale_factor=(3, 1))),
    "odd-scale": ((2, 3, 7, 5), dict(scale_factor=(1.7, 2.5))),
    "down-scale": ((2, 2, 9, 8), dict(scale_factor=0.5)),
    "down-odd-scale": ((1, 2, 10, 7), dict(scale_factor=(0.6, 0.45))),
    "size-up-odd": ((2, 3, 7, 5), dict(size=(11, 13))),
    "size-down": ((2, 2, 9, 8), dict(size=(4, 3))),
    "size-int": ((1, 1, 3, 5), dict(size=7)),
    "size-same": ((2, 2, 4, 5), dict(size=(4, 5))),
    "n1": ((1, 3, 5, 6), dict(scale_factor=1.5)),
    "n0": ((0, 3, 5, 6), dict(size=(7, 4))),
}


@IMPLS
@pytest.mark.parametrize("shape, kw", INTERP_CASES.values(), ids=INTERP_CASES.keys())
def test_interpolate_matches_torch(impl, shape, kw, dtype, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(dtype)
    t = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.interpolate(t, mode="nearest", **kw)
    grad = rng.standard_normal(tuple(want.shape)).astype(dtype)
    want.backward(torch.tensor(grad))
    out = impl.interpolate(x, **kw)
    assert out.shape == tuple(want.shape) and out.dtype == dtype
    np.testing.assert_array_equal(out, want.detach().numpy())
    dx = impl.interpolate_backward(grad, x.shape, **kw)
    assert dx.shape == x.shape and dx.dtype == dtype
    assert_close(dx, t.grad.numpy(), dtype)


def test_interpolate_size_follows_floor_of_out_index_times_in_over_out():
    x = np.arange(7.0).reshape(1, 1, 1, 7)
    out = functional.interpolate(x, size=(1, 11))[0, 0, 0]
    np.testing.assert_array_equal(out, [(j * 7) // 11 for j in range(11)])


@pytest.mark.parametrize("backend", ["compiled", "numpy"])
@pytest.mark.parametrize(
    "kw",
    [dict(scale_factor=2), dict(size=(5, 7)), dict(scale_factor=(0.5, 1.5))],
    ids=["x2", "size", "mixed"],
)
def test_upsample_layer_gradient_is_numerical(backend, kw, rng):
    layer = Upsample(backend=backend, **kw)
    x = rng.standard_normal((2, 2, 4, 3))
    out = layer(x)
    g = rng.standard_normal(out.shape)
    dx = layer.backward(g)
    num = numerical_gradient(lambda: float(np.sum(layer.forward(x) * g)), x)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_upsample_repr_dtype_and_errors(rng):
    layer = Upsample(scale_factor=2)
    assert repr(layer) == "Upsample(scale_factor=(2.0, 2.0), mode='nearest')"
    assert (
        repr(Upsample(size=3, backend="numpy"))
        == "Upsample(size=(3, 3), mode='nearest', backend='numpy')"
    )
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    assert layer(x).dtype == np.float32 and layer(x).shape == (1, 2, 6, 6)
    assert layer.params == {}
    with pytest.raises(NotImplementedError, match=r"`mode`='bilinear' is not implemented"):
        Upsample(scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match=r"`mode` must be 'nearest'. Received: mode='foo'"):
        Upsample(scale_factor=2, mode="foo")
    with pytest.raises(ValueError, match=r"Exactly one of `size` and `scale_factor`"):
        Upsample()
    with pytest.raises(TypeError):
        Upsample(2)  # keyword-only: PyTorch's Upsample(2) means size=2
    with pytest.raises(RuntimeError, match="Upsample.backward called before forward"):
        Upsample(size=2).backward(x)
