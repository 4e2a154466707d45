"""Xavier and He initialisers: fans, scales (against the formulas and PyTorch), dtypes."""

import math

import numpy as np
import pytest

from pycnn import init


@pytest.mark.parametrize(
    "shape, want",
    [
        ((10, 20), (20, 10)),  # linear (out, in)
        ((16, 3, 5, 3), (3 * 15, 16 * 15)),  # conv (F, C/groups, KH, KW)
        ((8, 1, 3, 3), (9, 72)),  # depthwise-style conv
        ((4, 6, 7), (42, 28)),  # conv1d
    ],
)
def test_fans(shape, want):
    assert init.fans(shape) == want


# name: (function, std of the distribution for fans (fan_in, fan_out))
SCALES = {
    "xavier_uniform": (
        init.xavier_uniform,
        lambda fi, fo: math.sqrt(6 / (fi + fo)) / math.sqrt(3),
    ),
    "xavier_normal": (init.xavier_normal, lambda fi, fo: math.sqrt(2 / (fi + fo))),
    "he_uniform": (init.he_uniform, lambda fi, fo: math.sqrt(6 / fi) / math.sqrt(3)),
    "he_normal": (init.he_normal, lambda fi, fo: math.sqrt(2 / fi)),
}


@pytest.mark.parametrize("name", SCALES)
@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
def test_scale_dtype_and_seed(name, shape, dtype):
    fn, std = SCALES[name]
    w = fn(shape, rng=0, dtype=dtype)
    assert w.shape == shape and w.dtype == dtype
    assert abs(w.std() / std(*init.fans(shape)) - 1) < 0.02  # >= 60,000 draws
    assert abs(w.mean()) < 0.1 * std(*init.fans(shape))
    np.testing.assert_array_equal(w, fn(shape, rng=0, dtype=dtype))
    if "uniform" in name:
        bound = std(*init.fans(shape)) * math.sqrt(3)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound


def test_gain_and_mode():
    shape = (400, 100)
    assert (
        abs(init.xavier_normal(shape, 0, gain=2.0).std() / (2 * math.sqrt(2 / 500)) - 1) < 0.02
    )
    assert abs(init.he_normal(shape, 0, mode="fan_out").std() / math.sqrt(2 / 400) - 1) < 0.02


@pytest.mark.parametrize(
    "name, torch_call",
    [
        ("xavier_uniform", "xavier_uniform_(t)"),
        ("xavier_normal", "xavier_normal_(t)"),
        ("he_uniform", "kaiming_uniform_(t, nonlinearity='relu')"),
        ("he_normal", "kaiming_normal_(t, nonlinearity='relu')"),
    ],
)
@pytest.mark.parametrize("shape", [(200, 300), (64, 16, 5, 3)])
def test_scale_matches_torch(name, torch_call, shape):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t = torch.empty(shape, dtype=torch.float64)
    eval(f"torch.nn.init.{torch_call}")
    ours = getattr(init, name)(shape, rng=0, dtype=np.float64)
    assert abs(ours.std() / t.std().item() - 1) < 0.03
    if "uniform" in name:  # the same bound, up to sampling
        assert abs(np.abs(ours).max() / t.abs().max().item() - 1) < 0.01


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: init.fans((5,)), ValueError, r"`shape` must have at least 2 dimensions"),
        (lambda: init.fans((5, 0, 3)), ValueError, r"`shape` must have sizes >= 1"),
        (lambda: init.fans((5.0, 2)), TypeError, r"`shape` must be a tuple of ints"),
        (
            lambda: init.he_normal((3, 3), dtype=np.int32),
            TypeError,
            r"`dtype` must be float32 or float64",
        ),
        (lambda: init.he_uniform((3, 3), mode="in"), ValueError, r"`mode` must be 'fan_in' or"),
        (lambda: init.xavier_uniform((3, 3), gain=-1), ValueError, r"`gain` must be >= 0"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
