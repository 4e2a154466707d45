"""conv_transpose2d and ConvTranspose2d: compiled vs reference vs naive, numerical
gradients, the adjoint of conv2d, PyTorch when installed, and bad arguments."""

import numpy as np
import pytest
from conftest import assert_close, numerical_gradient

import pycnn
from pycnn import functional, naive, reference

IMPLS = {"compiled": functional, "reference": reference, "naive": naive}

# name: (N, C_in, H, W, C_out, (KH, KW), stride, padding, output_padding, groups, dilation)
CASES = {
    "3x3": (2, 4, 5, 6, 3, (3, 3), 1, 0, 0, 1, 1),
    "stride2-pad-outpad": (2, 4, 5, 6, 6, (3, 2), 2, 1, 1, 2, 1),
    "unequal": (1, 6, 4, 4, 4, (2, 3), (2, 3), (1, 0), (1, 2), 2, (1, 2)),
    "1x1": (2, 3, 3, 3, 2, (1, 1), 1, 0, 0, 1, 1),
    "outpad-below-dilation": (1, 2, 3, 4, 2, (3, 3), 1, 1, 1, 1, 2),
    "upsample-x2": (3, 1, 7, 7, 3, (4, 4), 2, 1, 0, 1, 1),
    "one-image-wide": (1, 3, 9, 10, 5, (3, 3), 2, 1, 1, 1, 1),
    "depthwise": (2, 4, 5, 5, 4, (3, 3), 2, 1, 0, 4, 1),
}


def make(case, dtype, rng):
    n, c_in, h, w, c_out, k, stride, padding, output_padding, groups, dilation = case
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = rng.standard_normal((c_in, c_out // groups) + k).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    kwargs = dict(
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        dilation=dilation,
    )
    return x, weight, bias, kwargs


cases = pytest.mark.parametrize("name", CASES)


@cases
def test_backends_agree_forward_and_backward(name, dtype, rng):
    x, w, b, kw = make(CASES[name], dtype, rng)
    outs = {k: m.conv_transpose2d(x, w, b, **kw) for k, m in IMPLS.items()}
    g = rng.standard_normal(outs["reference"].shape).astype(dtype)
    grads = {k: m.conv_transpose2d_backward(g, x, w, **kw) for k, m in IMPLS.items()}
    for k in ("compiled", "naive"):
        assert outs[k].dtype == dtype and outs[k].shape == outs["reference"].shape
        assert_close(outs[k], outs["reference"], dtype, err_msg=k)
        for got, want, what in zip(grads[k], grads["reference"], ("x", "weight", "bias")):
            assert got.dtype == dtype and got.shape == want.shape
            assert_close(got, want, dtype, err_msg=f"{k} grad_{what}")


@cases
def test_is_the_adjoint_of_conv2d(name, rng):
    """<conv2d(y, w), x> == <y, conv_transpose2d(x, w)> for y of the transposed output's
    shape: the definition, independent of any of the three implementations' formulas."""
    x, w, _, kw = make(CASES[name], np.float64, rng)
    y = rng.standard_normal(reference.conv_transpose2d(x, w, **kw).shape)
    conv_kw = dict(
        stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"], groups=kw["groups"]
    )
    forward = functional.conv2d(y, w, **conv_kw)  # may have more rows than x
    h, wd = x.shape[2:]
    lhs = np.vdot(forward[:, :, :h, :wd], x)
    rhs = np.vdot(y, functional.conv_transpose2d(x, w, **kw))
    assert np.isclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["stride2-pad-outpad", "outpad-below-dilation", "1x1"])
def test_numerical_gradient(name, rng):
    x, w, b, kw = make(CASES[name], np.float64, rng)
    x = x[:1]
    g = rng.standard_normal(functional.conv_transpose2d(x, w, b, **kw).shape)
    grads = functional.conv_transpose2d_backward(g, x, w, **kw)
    for arr, got in zip((x, w, b), grads):
        want = numerical_gradient(
            lambda: np.sum(functional.conv_transpose2d(x, w, b, **kw) * g), arr
        )
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@cases
def test_matches_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(CASES[name], dtype, rng)
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    out_t = torch.nn.functional.conv_transpose2d(xt, wt, bt, **kw)
    out = functional.conv_transpose2d(x, w, b, **kw)
    assert_close(out, out_t.detach().numpy(), dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    out_t.backward(torch.from_numpy(g))
    for got, want in zip(
        functional.conv_transpose2d_backward(g, x, w, **kw), (xt.grad, wt.grad, bt.grad)
    ):
        assert_close(got, want.numpy(), dtype)


@pytest.mark.parametrize("impl", IMPLS.values(), ids=IMPLS.keys())
@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (
            dict(output_padding=2, stride=2),
            ValueError,
            r"^`output_padding` must be smaller than the stride or the dilation",
        ),
        (dict(padding=5), ValueError, r"^The output would be -3x-2: `padding` removes more"),
        (dict(stride=0), ValueError, r"^`stride` must be >= 1"),
        (dict(groups=3), ValueError, r"^`groups` must divide the input channels"),
        (dict(output_padding=-1), ValueError, r"^`output_padding` must be >= 0"),
    ],
)
def test_bad_arguments_give_one_message_from_every_backend(impl, kwargs, exc, match, rng):
    x, w, b, _ = make(CASES["3x3"], np.float32, rng)
    with pytest.raises(exc, match=match):
        impl.conv_transpose2d(x, w, b, **kwargs)


@pytest.mark.parametrize("impl", IMPLS.values(), ids=IMPLS.keys())
def test_weight_of_the_wrong_orientation_is_named(impl, rng):
    x = rng.standard_normal((1, 4, 3, 3)).astype(np.float32)
    w = rng.standard_normal((3, 4, 3, 3)).astype(np.float32)  # conv2d's (F, C, ...)
    with pytest.raises(ValueError, match=r"^`weight` must have C_in = 4 rows"):
        impl.conv_transpose2d(x, w)


def test_empty_batch_and_inputs_untouched(dtype, rng):
    x, w, b, kw = make(CASES["stride2-pad-outpad"], dtype, rng)
    empty = functional.conv_transpose2d(x[:0], w, b, **kw)
    assert empty.shape == (0,) + reference.conv_transpose2d(x, w, b, **kw).shape[1:]
    before = x.tobytes(), w.tobytes()
    functional.conv_transpose2d(
        x[:, :, ::-1], w.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2), b, **kw
    )
    assert (x.tobytes(), w.tobytes()) == before


@pytest.mark.parametrize("backend", ["compiled", "numpy"])
def test_layer_round_trips_a_strided_conv2d_shape(backend, rng):
    """ConvTranspose2d with Conv2d's arguments maps the conv's output shape back."""
    conv = pycnn.Conv2d(3, 8, 3, stride=2, padding=1, rng=0)
    up = pycnn.ConvTranspose2d(
        8, 3, 3, stride=2, padding=1, output_padding=1, rng=0, backend=backend
    )
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    y = up(conv(x))
    assert y.shape == x.shape and y.dtype == np.float32
    grad = up.backward(np.ones_like(y))
    assert grad.shape == (2, 8, 8, 8)
    assert up.grads["weight"].shape == (8, 3, 3, 3) and up.grads["bias"].shape == (3,)
    assert repr(up).startswith(
        "ConvTranspose2d(8, 3, kernel_size=(3, 3), stride=(2, 2), "
        "padding=(1, 1), output_padding=(1, 1)"
    )


def test_layer_backends_agree(dtype, rng):
    layers = [
        pycnn.ConvTranspose2d(
            4, 6, (3, 2), stride=2, padding=1, groups=2, rng=5, dtype=dtype, backend=b
        )
        for b in ("compiled", "numpy")
    ]
    for layer in layers:
        layer.params["bias"] = np.arange(6, dtype=dtype)
    x = rng.standard_normal((2, 4, 5, 5)).astype(dtype)
    outs = [layer(x) for layer in layers]
    assert_close(outs[0], outs[1], dtype)
    g = rng.standard_normal(outs[0].shape).astype(dtype)
    assert_close(layers[0].backward(g), layers[1].backward(g), dtype)
    for key in ("weight", "bias"):
        assert_close(layers[0].grads[key], layers[1].grads[key], dtype)


def test_layer_rejects_bad_construction():
    with pytest.raises(ValueError, match="`output_padding` must be smaller"):
        pycnn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="`groups` must divide in_channels"):
        pycnn.ConvTranspose2d(3, 2, 3, groups=2)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        pycnn.ConvTranspose2d(2, 2, 3).backward(np.zeros((1, 2, 3, 3), np.float32))


@pytest.mark.parametrize("impl", [functional, reference], ids=["compiled", "reference"])
def test_nan_and_inf_land_where_pytorch_puts_them(impl):
    """Regression (fuzzer): with inf in an input whose rows overlap in memory and zeros
    in the weight, the reference's einsum summed before multiplying and lost the NaN
    of inf * 0."""
    torch = pytest.importorskip("torch")
    from fuzz_cases import ArraySpec

    x = ArraySpec((1, 4, 5, 6), np.float32, "overlap", "inf", 1258).build()
    w = ArraySpec((4, 3, 3, 2), np.float32, "fortran", "mixed", 2977).build()
    kw = dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 1), groups=2, dilation=(1, 2))
    want = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(np.ascontiguousarray(x)),
        torch.from_numpy(np.ascontiguousarray(w)),
        **kw,
    ).numpy()
    with np.errstate(invalid="ignore"):
        got = impl.conv_transpose2d(x, w, **kw)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))


@pytest.mark.parametrize("backend", ["compiled", "numpy"])
def test_layer_numerical_gradient(backend, rng):
    layer = pycnn.ConvTranspose2d(
        4,
        6,
        (3, 2),
        stride=2,
        padding=1,
        output_padding=1,
        groups=2,
        dtype=np.float64,
        rng=3,
        backend=backend,
    )
    layer.params["bias"] = rng.standard_normal(6)
    x = rng.standard_normal((2, 4, 3, 4))
    g = rng.standard_normal(layer(x).shape)
    grad_x = layer.backward(g)

    def numerical(arr):
        return numerical_gradient(lambda: np.sum(layer.forward(x) * g), arr)

    np.testing.assert_allclose(grad_x, numerical(x), rtol=1e-6, atol=1e-8)
    for key in ("weight", "bias"):
        np.testing.assert_allclose(
            layer.grads[key], numerical(layer.params[key]), rtol=1e-6, atol=1e-8
        )


@pytest.mark.parametrize("name", ["stride2-pad-outpad", "outpad-below-dilation"])
def test_empty_batch_matches_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(CASES[name], dtype, rng)
    x = x[:0]
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    out_t = torch.nn.functional.conv_transpose2d(xt, wt, torch.from_numpy(b), **kw)
    out_t.sum().backward()
    out = functional.conv_transpose2d(x, w, b, **kw)
    assert out.shape == tuple(out_t.shape) and out.dtype == dtype
    grad_x, grad_w, grad_b = functional.conv_transpose2d_backward(
        np.ones(out.shape, dtype), x, w, **kw
    )
    assert grad_x.shape == x.shape
    np.testing.assert_array_equal(grad_w, wt.grad.numpy())  # zeros
    np.testing.assert_array_equal(grad_b, np.zeros(b.shape, dtype))
