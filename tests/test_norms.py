"""LayerNorm and GroupNorm (issue 14) against PyTorch (forward, input gradient and
parameter gradients, float32 and float64, N = 1 and N = 0) and numerical gradients;
Dropout2d, Upsample and interpolate."""
import numpy as np
import pytest
from conftest import assert_close, numerical_gradient

from pycnn.layers import GroupNorm, LayerNorm


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


@pytest.mark.parametrize("make, shape", [
    (lambda: LayerNorm((3, 4), dtype=np.float64), (2, 3, 4)),
    (lambda: GroupNorm(2, 4, dtype=np.float64), (2, 4, 3, 2)),
], ids=["layer", "group"])
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
    layer.backward(g)
    for name, value in layer.params.items():
        np.testing.assert_allclose(layer.grads[name], numerical_gradient(loss, value),
                                   rtol=1e-6, atol=1e-8, err_msg=name)


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
    assert repr(LayerNorm((2, 3), eps=1e-3, elementwise_affine=False, dtype=np.float64)) \
        == "LayerNorm((2, 3), eps=0.001, elementwise_affine=False, dtype=float64)"
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
    with pytest.raises(ValueError, match=r"LayerNorm: `x` must end with normalized_shape"):
        LayerNorm((3, 4))(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"GroupNorm: `x` must be an \(N, C, \*\) array"):
        GroupNorm(2, 4)(np.zeros((2, 6, 3), np.float32))
    with pytest.raises(TypeError, match=r"`x` must have the layer's dtype \(float32\)"):
        GroupNorm(2, 4)(np.zeros((2, 4, 3)))
    with pytest.raises(RuntimeError, match="LayerNorm.backward called before forward"):
        LayerNorm(3).backward(np.zeros((1, 3), np.float32))
