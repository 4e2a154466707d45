"""Weighted layers, Conv2d and Linear: both backends, parameters and gradients,
numerical gradients, repr. (The other layers: test_net_layers.py.)"""

import numpy as np
import pytest
from conftest import CONV_CASES, assert_close, make_conv, numerical_gradient

import pycnn
from pycnn import functional, naive, reference


def test_conv2d_layer_wraps_functional(dtype, rng):
    n, c, h, w, f, kh, kw, stride, padding, dilation, groups = CONV_CASES["mixed"]
    layer = pycnn.Conv2d(c, f, (kh, kw), stride, padding, dilation, groups, dtype=dtype, rng=0)
    assert layer.weight.shape == (f, c // groups, kh, kw) and layer.weight.dtype == dtype
    assert layer.bias.shape == (f,) and layer.bias.dtype == dtype
    layer.params["bias"] = rng.standard_normal(f).astype(dtype)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    out = layer(x)
    assert out.dtype == dtype
    assert_close(out, functional.conv2d(x, layer.weight, layer.bias, **kwargs), dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    grad_x = layer.backward(g)
    want = functional.conv2d_backward(g, x, layer.weight, **kwargs)
    for got, ref in zip((grad_x, layer.grads["weight"], layer.grads["bias"]), want):
        assert got.dtype == dtype
        assert_close(got, ref, dtype)


@pytest.mark.parametrize("name", ["mixed", "same-even-dilated", "depthwise"])
def test_conv2d_layer_backends_agree(name, dtype, rng):
    x, w, b, kw = make_conv(CONV_CASES[name], dtype, rng)
    c, f = x.shape[1], w.shape[0]
    layers = [
        pycnn.Conv2d(c, f, w.shape[2:], dtype=dtype, rng=7, backend=backend, **kw)
        for backend in ("compiled", "numpy")
    ]
    np.testing.assert_array_equal(layers[0].weight, layers[1].weight)  # same seed
    outs = [layer(x) for layer in layers]
    assert_close(outs[0], outs[1], dtype)
    g = rng.standard_normal(outs[0].shape).astype(dtype)
    grads = [layer.backward(g) for layer in layers]
    assert_close(grads[0], grads[1], dtype)
    for key in ("weight", "bias"):
        assert_close(layers[0].grads[key], layers[1].grads[key], dtype)


def test_conv2d_layer_numerical_gradient(rng):
    layer = pycnn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=1, dtype=np.float64, rng=1)
    layer.params["bias"] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 5, 4))
    g = rng.standard_normal(layer(x).shape)
    grad_x = layer.backward(g)

    def numerical(arr):
        return numerical_gradient(lambda: np.sum(layer.forward(x) * g), arr)

    grad_w, grad_b = layer.grads["weight"], layer.grads["bias"]
    np.testing.assert_allclose(grad_x, numerical(x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_w, numerical(layer.params["weight"]), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_b, numerical(layer.params["bias"]), rtol=1e-6, atol=1e-8)


def test_conv2d_layer_he_initialisation():
    layer = pycnn.Conv2d(16, 64, 3, rng=0)
    std = np.sqrt(2.0 / (16 * 9))
    assert abs(layer.weight.std() / std - 1) < 0.05  # 9,216 draws
    assert not layer.bias.any()
    no_bias = pycnn.Conv2d(16, 8, 3, bias=False)
    assert "bias" not in no_bias.params and no_bias.bias is None


def test_conv2d_layer_without_bias_has_no_bias_grad(rng):
    layer = pycnn.Conv2d(2, 3, 3, bias=False, rng=0)
    out = layer(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    layer.backward(np.ones_like(out))
    assert set(layer.grads) == {"weight"}


def test_conv2d_layer_misuse():
    layer = pycnn.Conv2d(2, 3, 3)
    with pytest.raises(RuntimeError, match="Conv2d.backward called before forward"):
        layer.backward(np.zeros((1, 3, 1, 1), np.float32))
    with pytest.raises(ValueError, match="`backend` must be 'compiled' or 'numpy'"):
        pycnn.Conv2d(2, 3, 3, backend="torch")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        pycnn.Conv2d(2, 3, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="`groups` must divide in_channels and out_channels"):
        pycnn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(TypeError, match="`dtype` must be float32 or float64"):
        pycnn.Conv2d(2, 3, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="`in_channels` must be >= 1"):
        pycnn.Conv2d(0, 3, 3)


def test_conv2d_layer_repr_shows_non_defaults():
    assert repr(pycnn.Conv2d(3, 8, 3)) == "Conv2d(3, 8, kernel_size=(3, 3))"
    assert repr(
        pycnn.Conv2d(
            4,
            8,
            (3, 1),
            stride=2,
            padding=1,
            groups=2,
            bias=False,
            dtype=np.float64,
            backend="numpy",
        )
    ) == (
        "Conv2d(4, 8, kernel_size=(3, 1), stride=(2, 2), padding=(1, 1), groups=2, "
        "bias=False, dtype=float64, backend='numpy')"
    )
    assert "padding='same'" in repr(pycnn.Conv2d(3, 8, 3, padding="same"))


def test_train_eval_switch():
    layer = pycnn.Conv2d(1, 1, 1)
    assert layer.training
    assert layer.eval() is layer and not layer.training
    assert layer.train().training


# --- Linear ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(5, 7), (2, 3, 7), (7,), (0, 7)], ids=["2d", "3d", "1d", "empty"]
)
def test_linear_op_backends_agree(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((4, 7)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    g = rng.standard_normal(shape[:-1] + (4,)).astype(dtype)
    want = x @ w.T + b
    for impl in (functional, reference, naive):
        out = impl.linear(x, w, b)
        assert out.dtype == dtype and out.shape == want.shape
        assert_close(out, want, dtype)
        grad_x, grad_w, grad_b = impl.linear_backward(g, x, w)
        assert grad_x.dtype == grad_w.dtype == grad_b.dtype == dtype
        assert_close(grad_x, g @ w, dtype)
        assert_close(grad_w, g.reshape(-1, 4).T @ x.reshape(-1, 7), dtype)
        assert_close(grad_b, g.reshape(-1, 4).sum(axis=0), dtype)


@pytest.mark.parametrize("backend", ["compiled", "numpy"])
def test_linear_layer_numerical_gradient(backend, rng):
    layer = pycnn.Linear(5, 3, dtype=np.float64, rng=1, backend=backend)
    layer.params["bias"] = rng.standard_normal(3)
    x = rng.standard_normal((4, 5))
    g = rng.standard_normal((4, 3))
    layer(x)
    grad_x = layer.backward(g)

    def numerical(arr):
        return numerical_gradient(lambda: np.sum(layer.forward(x) * g), arr)

    np.testing.assert_allclose(grad_x, numerical(x), rtol=1e-6, atol=1e-8)
    for key in ("weight", "bias"):
        np.testing.assert_allclose(
            layer.grads[key], numerical(layer.params[key]), rtol=1e-6, atol=1e-8
        )


def test_linear_layer_backends_agree_and_repr(dtype, rng):
    layers = [pycnn.Linear(6, 2, dtype=dtype, rng=3, backend=b) for b in ("compiled", "numpy")]
    assert repr(layers[1]).endswith("backend='numpy')")
    assert "backend" not in repr(layers[0])
    x = rng.standard_normal((3, 6)).astype(dtype)
    g = rng.standard_normal((3, 2)).astype(dtype)
    outs = [layer(x) for layer in layers]
    assert_close(outs[0], outs[1], dtype)
    grads = [layer.backward(g) for layer in layers]
    assert_close(grads[0], grads[1], dtype)
    for key in ("weight", "bias"):
        assert_close(layers[0].grads[key], layers[1].grads[key], dtype)
    with pytest.raises(ValueError, match="`backend` must be 'compiled' or 'numpy'"):
        pycnn.Linear(6, 2, backend="torch")
