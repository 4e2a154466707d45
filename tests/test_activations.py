"""Activation layers and `pycnn.activations`: PyTorch forward and backward on a grid with
large |x|, zeros and the kink points; numerical gradients; no overflow; dtype kept; erf;
reprs; bad arguments (issue 14)."""

import math
import warnings

import numpy as np
import pytest
from conftest import assert_close, numerical_gradient

import pycnn
from pycnn import activations as A
from pycnn import layers

torch = pytest.importorskip("torch")
nn = torch.nn


def _tanhexp_torch(t):
    return t * torch.tanh(torch.exp(t))


# name: (pycnn layer factory, torch oracle factory, kink points)
CASES = {
    "ReLU": (lambda: pycnn.ReLU(), lambda: nn.ReLU(), [0]),
    "LeakyReLU": (lambda: pycnn.LeakyReLU(), lambda: nn.LeakyReLU(), [0]),
    "LeakyReLU-0.2": (lambda: pycnn.LeakyReLU(0.2), lambda: nn.LeakyReLU(0.2), [0]),
    "Sigmoid": (lambda: pycnn.Sigmoid(), lambda: nn.Sigmoid(), []),
    "Tanh": (lambda: pycnn.Tanh(), lambda: nn.Tanh(), []),
    "ELU": (lambda: pycnn.ELU(), lambda: nn.ELU(), [0]),
    "ELU-0.5": (lambda: pycnn.ELU(alpha=0.5), lambda: nn.ELU(alpha=0.5), [0]),
    "SELU": (lambda: pycnn.SELU(), lambda: nn.SELU(), [0]),
    "CELU": (lambda: pycnn.CELU(), lambda: nn.CELU(), [0]),
    "CELU-2": (lambda: pycnn.CELU(alpha=2.0), lambda: nn.CELU(alpha=2.0), [0]),
    "GELU": (lambda: pycnn.GELU(), lambda: nn.GELU(), []),
    "GELU-tanh": (
        lambda: pycnn.GELU(approximate="tanh"),
        lambda: nn.GELU(approximate="tanh"),
        [],
    ),
    "SiLU": (lambda: pycnn.SiLU(), lambda: nn.SiLU(), []),
    "Mish": (lambda: pycnn.Mish(), lambda: nn.Mish(), []),
    "Softplus": (lambda: pycnn.Softplus(), lambda: nn.Softplus(), [20]),
    "Softplus-2-5": (
        lambda: pycnn.Softplus(beta=2, threshold=5),
        lambda: nn.Softplus(beta=2, threshold=5),
        [2.5],
    ),
    "Softsign": (lambda: pycnn.Softsign(), lambda: nn.Softsign(), []),
    "Hardtanh": (lambda: pycnn.Hardtanh(), lambda: nn.Hardtanh(), [-1, 1]),
    "Hardtanh-(-2,3)": (lambda: pycnn.Hardtanh(-2, 3), lambda: nn.Hardtanh(-2, 3), [-2, 3]),
    "ReLU6": (lambda: pycnn.ReLU6(), lambda: nn.ReLU6(), [0, 6]),
    "Hardsigmoid": (lambda: pycnn.Hardsigmoid(), lambda: nn.Hardsigmoid(), [-3, 3]),
    "Hardswish": (lambda: pycnn.Hardswish(), lambda: nn.Hardswish(), [-3, 3]),
    "LogSigmoid": (lambda: pycnn.LogSigmoid(), lambda: nn.LogSigmoid(), []),
    "Tanhshrink": (lambda: pycnn.Tanhshrink(), lambda: nn.Tanhshrink(), []),
    "Softshrink": (lambda: pycnn.Softshrink(), lambda: nn.Softshrink(), [-0.5, 0.5]),
    "Softshrink-1": (lambda: pycnn.Softshrink(1.0), lambda: nn.Softshrink(1.0), [-1, 1]),
    "Hardshrink": (lambda: pycnn.Hardshrink(), lambda: nn.Hardshrink(), [-0.5, 0.5]),
    "Hardshrink-2": (lambda: pycnn.Hardshrink(2), lambda: nn.Hardshrink(2), [-2, 2]),
    "Threshold": (lambda: pycnn.Threshold(0.5, 20.0), lambda: nn.Threshold(0.5, 20.0), [0.5]),
    "Softmax-1": (lambda: pycnn.Softmax(dim=1), lambda: nn.Softmax(dim=1), []),
    "Softmax--1": (lambda: pycnn.Softmax(dim=-1), lambda: nn.Softmax(dim=-1), []),
    "LogSoftmax-1": (lambda: pycnn.LogSoftmax(dim=1), lambda: nn.LogSoftmax(dim=1), []),
    "LogSoftmax-0": (lambda: pycnn.LogSoftmax(0), lambda: nn.LogSoftmax(0), []),
    "TanhExp": (lambda: pycnn.TanhExp(), lambda: _tanhexp_torch, []),
}
ALL_KINKS = sorted({k for *_, kinks in CASES.values() for k in kinks})

PRELU_CASES = {
    "one": (1, 0.25),
    "per-channel": (3, 0.1),
}


def _grid(dtype):
    """Large |x|, zeros, every kink point and its neighbours, and a dense middle."""
    big = [-100.0, -50.0, -30.0, 30.0, 50.0, 100.0] if dtype == np.float64 else [-30.0, 30.0]
    near = [k + d for k in ALL_KINKS for d in (-1e-3, 0.0, 1e-3)]
    return np.array(
        big + near + [0.0, -0.0, -25.0, -19.0, 19.0, 21.0, 25.0] + list(np.linspace(-8, 8, 33)),
        dtype=dtype,
    )


def _input(dtype, rng):
    """(4, 3, L): every row a permutation of the grid (so softmax rows hold +-100 too)."""
    v = _grid(dtype)
    return np.stack([np.stack([rng.permutation(v) for _ in range(3)]) for _ in range(4)])


_NO_OVERFLOW = dict(over="raise", invalid="raise", divide="raise", under="ignore")


def _check_against_torch(layer, oracle, x, dtype, rng):
    g = rng.standard_normal(x.shape).astype(dtype)
    with np.errstate(**_NO_OVERFLOW), warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layer(x)
        gx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = oracle(xt)
    yt.backward(torch.tensor(g))
    assert out.shape == x.shape and out.dtype == dtype
    assert gx.shape == x.shape and gx.dtype == dtype
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(gx))
    assert_close(out, yt.detach().numpy(), dtype, "forward")
    assert_close(gx, xt.grad.numpy(), dtype, "input gradient")
    return xt, yt


@pytest.mark.parametrize("name", CASES.keys())
def test_matches_torch_on_grid(name, dtype, rng):
    make, make_torch, _ = CASES[name]
    oracle = make_torch()
    if isinstance(oracle, nn.Module):
        oracle = oracle.to(torch.float64 if dtype == np.float64 else torch.float32)
    if name == "Hardsigmoid" and dtype == np.float64:
        _check_hardsigmoid_float64(oracle, _input(dtype, rng), rng)
        return
    _check_against_torch(make(), oracle, _input(dtype, rng), dtype, rng)


def _check_hardsigmoid_float64(oracle, x, rng):
    """PyTorch's float64 Hardsigmoid gradient is grad * (1/6 rounded to float32): held
    to the exact grad / 6 at 1e-10 and to PyTorch at 1e-7."""
    layer, g = pycnn.Hardsigmoid(), rng.standard_normal(x.shape)
    out, gx = layer(x), layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    oracle(xt).backward(torch.tensor(g))
    assert_close(out, oracle(torch.tensor(x)).numpy(), np.float64)
    assert_close(gx, np.where((x > -3) & (x < 3), g / 6, 0), np.float64)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", CASES.keys())
def test_empty_batch(name, dtype):
    make, make_torch, _ = CASES[name]
    layer, x = make(), np.zeros((0, 3, 5), dtype=dtype)
    out = layer(x)
    gx = layer.backward(np.zeros_like(out))
    assert out.shape == gx.shape == x.shape and out.dtype == gx.dtype == dtype


@pytest.mark.parametrize("case", PRELU_CASES.values(), ids=PRELU_CASES.keys())
@pytest.mark.parametrize("shape", [(4, 3, 50), (2, 3, 5, 7), (0, 3, 4)])
def test_prelu_matches_torch(case, shape, dtype, rng):
    num_parameters, init = case
    layer = pycnn.PReLU(num_parameters, init, dtype=dtype)
    oracle = nn.PReLU(num_parameters, init).to(
        torch.float64 if dtype == np.float64 else torch.float32
    )
    with torch.no_grad():  # torch rounds `init` to float32 first
        oracle.weight.copy_(torch.tensor(layer.weight))
    x = rng.standard_normal(shape).astype(dtype) * 10
    x.reshape(-1)[: min(x.size, 5)] = 0.0  # the kink
    _check_against_torch(layer, oracle, x, dtype, rng)
    assert layer.grads["weight"].shape == (num_parameters,)
    assert layer.grads["weight"].dtype == dtype
    assert_close(layer.grads["weight"], oracle.weight.grad.numpy(), dtype, "weight gradient")


def test_prelu_single_slope_on_1d_input(rng):
    layer = pycnn.PReLU()
    x = rng.standard_normal(10).astype(np.float32)
    assert_close(layer(x), np.where(x > 0, x, 0.25 * x), np.float32)


def _away_from_kinks(shape, kinks, rng):
    x = rng.uniform(-6, 6, size=shape)
    for k in kinks:
        x[np.abs(x - k) < 1e-2] += 0.05
    return x


@pytest.mark.parametrize("name", CASES.keys())
def test_numerical_gradient(name, rng):
    make, _, kinks = CASES[name]
    layer = make()
    x = _away_from_kinks((2, 3, 4), kinks, rng)
    g = rng.standard_normal(x.shape)
    layer(x)
    gx = layer.backward(g)
    num = numerical_gradient(lambda: float(np.sum(layer(x) * g)), x)
    np.testing.assert_allclose(gx, num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("num_parameters", [1, 3])
def test_prelu_numerical_gradient(num_parameters, rng):
    layer = pycnn.PReLU(num_parameters, dtype=np.float64)
    layer.params["weight"][:] = rng.uniform(-1, 1, num_parameters)
    x = _away_from_kinks((2, 3, 4), [0], rng)
    g = rng.standard_normal(x.shape)
    layer(x)
    gx = layer.backward(g)
    f = lambda: float(np.sum(layer(x) * g))  # noqa: E731
    np.testing.assert_allclose(gx, numerical_gradient(f, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        layer.grads["weight"],
        numerical_gradient(f, layer.params["weight"]),
        rtol=1e-6,
        atol=1e-7,
    )


# --- TanhExp (PyTorch has no layer: its formula, by hand) -----------------------------


def test_tanhexp_formula(dtype):
    x = np.linspace(-30, 30, 601).astype(dtype)
    with np.errstate(over="ignore"):
        want = x.astype(np.float64) * np.tanh(np.exp(x.astype(np.float64)))
    with np.errstate(**_NO_OVERFLOW):
        out = A.tanhexp(x)
    assert out.dtype == dtype
    assert_close(out, want, dtype)
    assert np.all(A.tanhexp(np.array([100.0, 700.0, 1e300])) == [100.0, 700.0, 1e300])


def test_tanhexp_backward_formula():
    x = np.linspace(-10, 5, 151)  # cosh(e^x)^2 overflows beyond
    e = np.exp(x)
    want = np.tanh(e) + x * e / np.cosh(e) ** 2
    assert_close(A.tanhexp_backward(np.ones_like(x), x), want, np.float64)
    big = np.array([6.0, 20.0, 100.0, 1e300])  # tanh(e^x) = 1, sech^2 = 0
    np.testing.assert_array_equal(A.tanhexp_backward(np.ones_like(big), big), 1.0)


# --- no overflow for any finite input -------------------------------------------------


@pytest.mark.parametrize("name", CASES.keys())
def test_no_overflow_at_extremes(name, dtype):
    make, _, _ = CASES[name]
    big = np.finfo(dtype).max / 4
    x = np.array([[-big, -1e4, -100.0, 0.0, 100.0, 1e4, big]], dtype=dtype)
    if name.startswith(("Softmax", "LogSoftmax")):
        x = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4]], dtype=dtype)  # differences finite
    layer = make()
    with np.errstate(**_NO_OVERFLOW):
        out = layer(x)
        gx = layer.backward(np.ones_like(out))
    assert out.dtype == gx.dtype == dtype
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(gx))


# --- erf -------------------------------------------------------------------------------


def test_erf_matches_math_erf():
    x = np.concatenate(
        [
            np.linspace(-30, 30, 300001),
            np.linspace(-1, 1, 20001),
            [
                0.46875,
                -0.46875,
                4.0,
                -4.0,
                26.5,
                27.3,
                1e-300,
                -1e-300,
                5e-324,
                0.0,
                -0.0,
                1e300,
                -1e300,
            ],
        ]
    )
    want = np.array([math.erf(v) for v in x])
    got = A.erf(x)
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)) < 1e-15
    assert np.all(np.signbit(A.erf(np.array([-0.0]))))


def test_erfc_matches_math_erfc():
    x = np.concatenate(
        [
            np.linspace(-30, 30, 300001),
            [0.46875, -0.46875, 4.0, -4.0, 26.5, 27.3, 1e300, -1e300],
        ]
    )
    want = np.array([math.erfc(v) for v in x])
    with np.errstate(under="ignore"):
        got = A.erfc(x)
    normal = want >= np.finfo(np.float64).tiny
    assert np.max(np.abs(got - want)[normal] / want[normal]) < 1e-15
    assert np.max(np.abs(got - want)[~normal]) < 1e-307  # subnormal tail


def test_erf_keeps_float32():
    x = np.linspace(-5, 5, 101).astype(np.float32)
    assert A.erf(x).dtype == A.erfc(x).dtype == np.float32
    assert_close(A.erf(x), [math.erf(v) for v in x.astype(np.float64)], np.float32)


# --- functional forms -----------------------------------------------------------------


def test_functional_forms_match_layers(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    pairs = [
        (pycnn.GELU("tanh"), A.gelu, A.gelu_backward, dict(approximate="tanh")),
        (pycnn.Softplus(2, 5), A.softplus, A.softplus_backward, dict(beta=2, threshold=5)),
        (pycnn.Softmax(1), A.softmax, A.softmax_backward, dict(dim=1)),
        (
            pycnn.Threshold(0.1, 3),
            A.threshold,
            A.threshold_backward,
            dict(threshold=0.1, value=3),
        ),
    ]
    for layer, fwd, bwd, kwargs in pairs:
        np.testing.assert_array_equal(layer(x), fwd(x, **kwargs))
        bkw = {k: v for k, v in kwargs.items() if k != "value"}
        np.testing.assert_allclose(layer.backward(g), bwd(g, x, **bkw), rtol=1e-6)
    assert set(A.__all__) <= set(dir(A))


def test_softmax_of_0d_and_rows_sum_to_one(rng):
    assert A.softmax(np.array(3.0), 0) == 1.0 and A.log_softmax(np.array(3.0), -1) == 0.0
    x = rng.standard_normal((5, 7)) * 100
    np.testing.assert_allclose(A.softmax(x, 1).sum(axis=1), 1.0, rtol=1e-12)


# --- repr -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, text",
    [
        (pycnn.ReLU(), "ReLU()"),
        (pycnn.ELU(), "ELU()"),
        (pycnn.ELU(0.5), "ELU(alpha=0.5)"),
        (pycnn.GELU(), "GELU()"),
        (pycnn.GELU("tanh"), "GELU(approximate='tanh')"),
        (pycnn.Softplus(), "Softplus()"),
        (pycnn.Softplus(threshold=5), "Softplus(threshold=5.0)"),
        (pycnn.Hardtanh(), "Hardtanh()"),
        (pycnn.Hardtanh(-2, 3), "Hardtanh(min_val=-2.0, max_val=3.0)"),
        (pycnn.Softshrink(), "Softshrink()"),
        (pycnn.Hardshrink(1), "Hardshrink(lambd=1.0)"),
        (pycnn.Threshold(0.1, 20), "Threshold(threshold=0.1, value=20.0)"),
        (pycnn.Softmax(1), "Softmax(dim=1)"),
        (pycnn.LogSoftmax(-1), "LogSoftmax(dim=-1)"),
        (pycnn.PReLU(), "PReLU()"),
        (pycnn.PReLU(3, 0.1), "PReLU(num_parameters=3, init=0.1)"),
        (pycnn.PReLU(dtype=np.float64), "PReLU(dtype=float64)"),
        (pycnn.LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)"),
        (pycnn.TanhExp(), "TanhExp()"),
    ],
)
def test_repr_shows_non_default_arguments(layer, text):
    assert repr(layer) == text


def test_exported():
    names = [
        "ELU",
        "SELU",
        "CELU",
        "GELU",
        "SiLU",
        "Mish",
        "Softplus",
        "Softsign",
        "Hardtanh",
        "ReLU6",
        "Hardsigmoid",
        "Hardswish",
        "LogSigmoid",
        "Tanhshrink",
        "Softshrink",
        "Hardshrink",
        "Threshold",
        "PReLU",
        "Softmax",
        "LogSoftmax",
        "TanhExp",
        "ReLU",
        "LeakyReLU",
        "Sigmoid",
        "Tanh",
    ]
    for name in names:
        assert name in pycnn.__all__ and name in layers.__all__
        assert getattr(pycnn, name) is getattr(layers, name)
    assert "activations" in pycnn.__all__ and pycnn.activations is A


# --- bad arguments --------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (
            lambda: pycnn.ELU(alpha="1"),
            TypeError,
            r"`alpha` must be a real number. Received: alpha='1'",
        ),
        (lambda: pycnn.CELU(alpha=0), ValueError, r"`alpha` must be > 0. Received: alpha=0"),
        (
            lambda: pycnn.GELU(approximate="erf"),
            ValueError,
            r"`approximate` must be 'none' or 'tanh'. Received: approximate='erf'",
        ),
        (
            lambda: pycnn.Softplus(beta=0),
            ValueError,
            r"`beta` must be nonzero. Received: beta=0",
        ),
        (
            lambda: pycnn.Softplus(threshold=float("nan")),
            ValueError,
            r"`threshold` must be finite",
        ),
        (
            lambda: pycnn.Hardtanh(1, -1),
            ValueError,
            r"`max_val` must be greater than `min_val`. Received: min_val=1, max_val=-1",
        ),
        (
            lambda: pycnn.Softshrink(-0.1),
            ValueError,
            r"`lambd` must be >= 0. Received: lambd=-0.1",
        ),
        (lambda: pycnn.Hardshrink(None), TypeError, r"`lambd` must be a real number"),
        (lambda: pycnn.Threshold(0.1, "x"), TypeError, r"`value` must be a real number"),
        (lambda: pycnn.LeakyReLU(True), TypeError, r"`negative_slope` must be a real number"),
        (
            lambda: pycnn.PReLU(0),
            ValueError,
            r"`num_parameters` must be >= 1. Received: num_parameters=0",
        ),
        (lambda: pycnn.PReLU(2.5), TypeError, r"`num_parameters` must be an int"),
        (lambda: pycnn.PReLU(init=float("inf")), ValueError, r"`init` must be finite"),
        (lambda: pycnn.Softmax(None), TypeError, r"`dim` is required"),
        (lambda: pycnn.Softmax(1.5), TypeError, r"`dim` must be an int. Received: dim=1.5"),
        (lambda: pycnn.LogSoftmax("1"), TypeError, r"`dim` must be an int"),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_softmax_requires_dim():
    with pytest.raises(TypeError, match="dim"):
        pycnn.Softmax()
    with pytest.raises(TypeError, match="dim"):
        A.softmax(np.zeros(3))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda x: pycnn.Softmax(2)(x),
            ValueError,
            r"`dim` must be in \[-2, 1\] for a 2-d `x`. Received: dim=2",
        ),
        (lambda x: pycnn.LogSoftmax(-3)(x), ValueError, r"`dim` must be in \[-2, 1\]"),
        (
            lambda x: pycnn.PReLU(4)(x),
            ValueError,
            r"`x` must have 4 channels on axis 1 to match `weight` of shape \(4,\). "
            r"Received: x.shape=\(2, 3\)",
        ),
        (lambda x: pycnn.PReLU(dtype=np.float64)(x), TypeError, r"dtype"),
        (
            lambda x: pycnn.GELU()(x.astype(np.int64)),
            TypeError,
            r"GELU: `x` must have dtype float32 or float64. Received: x.dtype=int64",
        ),
        (lambda x: pycnn.ReLU()(x.tolist()), TypeError, r"`x` must be a numpy.ndarray"),
        (
            lambda x: pycnn.Mish().backward(x),
            RuntimeError,
            r"Mish.backward called before forward",
        ),
        (lambda x: A.gelu(x, approximate="exact"), ValueError, r"`approximate` must be"),
        (lambda x: A.softmax(x, dim=5), ValueError, r"`dim` must be in"),
        (
            lambda x: A.relu_backward(x.astype(np.float64), x),
            TypeError,
            r"`grad` must have the dtype of `x` \(float32\). Received: grad.dtype=float64",
        ),
        (lambda x: A.silu_backward(x[:1], x), ValueError, r"`grad` must have the shape of `x`"),
        (
            lambda x: A.prelu(x, np.ones((1, 1), np.float32)),
            ValueError,
            r"`weight` must be a 1-d",
        ),
    ],
)
def test_bad_inputs(call, exc, match, rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    with pytest.raises(exc, match=match):
        call(x)


@pytest.mark.parametrize("name", ["ReLU", "GELU", "Softmax-1", "Hardswish"])
def test_bad_grad(name, rng):
    layer = CASES[name][0]()
    x = rng.standard_normal((2, 3)).astype(np.float32)
    layer(x)
    with pytest.raises(ValueError, match="`grad` must have the forward output's shape"):
        layer.backward(np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match="`grad` must have the forward output's dtype"):
        layer.backward(np.ones((2, 3), np.float64))


def test_prelu_in_sequential_trains_and_saves(tmp_path, rng):
    model = pycnn.Sequential(
        pycnn.Linear(4, 3),
        pycnn.PReLU(3),
        pycnn.GELU(),
        pycnn.Linear(3, 2),
        pycnn.LogSoftmax(1),
    )
    x = rng.standard_normal((5, 4)).astype(np.float32)
    out = model(x)
    model.backward(np.ones_like(out))
    before = model[1].weight.copy()
    pycnn.optim.SGD(model.parameters(), lr=0.1).step()
    assert not np.array_equal(model[1].weight, before)
    assert model[1].weight.dtype == np.float32
    model.save(tmp_path / "m.npz")
    saved = model[1].weight.copy()
    model[1].params["weight"][:] = 0
    model.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(model[1].weight, saved)
