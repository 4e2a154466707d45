"""CrossEntropyLoss and MSELoss: values, numerical gradients, stability, PyTorch, errors."""

import numpy as np
import pytest
from conftest import assert_close, numerical_gradient

from pycnn import CrossEntropyLoss, MSELoss


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _targets(kind, rng, n=5, c=4):
    if kind == "labels":
        return rng.integers(0, c, n)
    if kind == "one-hot":
        return np.eye(c)[rng.integers(0, c, n)]
    return _softmax(rng.standard_normal((n, c)))  # probabilities


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["labels", "one-hot", "probabilities"])
def test_cross_entropy_value_and_numerical_gradient(kind, reduction, rng):
    logits = rng.standard_normal((5, 4)) * 3
    target = _targets(kind, rng)
    loss = CrossEntropyLoss(reduction)
    value = loss(logits, target)
    onehot = np.eye(4)[target] if kind == "labels" else target
    per_sample = -np.sum(onehot * np.log(_softmax(logits)), axis=1)
    want = per_sample.mean() if reduction == "mean" else per_sample.sum()
    np.testing.assert_allclose(value, want, rtol=1e-12)
    grad = loss.backward()
    numerical = numerical_gradient(lambda: CrossEntropyLoss(reduction)(logits, target), logits)
    np.testing.assert_allclose(grad, numerical, rtol=1e-6, atol=1e-9)


def test_cross_entropy_labels_equal_one_hot(rng):
    logits = rng.standard_normal((6, 3))
    labels = rng.integers(0, 3, 6)
    a, b = CrossEntropyLoss(), CrossEntropyLoss()
    np.testing.assert_allclose(a(logits, labels), b(logits, np.eye(3)[labels]), rtol=1e-14)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-14, atol=1e-16)


def test_cross_entropy_is_stable_for_large_logits(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [-5e3, 5e3, 5e3 - 2.0], [88.0, 89.0, 90.0]], dtype)
    loss = CrossEntropyLoss()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss(logits, np.array([0, 2, 1]))
        grad = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    # row 0 is certain and right (0), row 1 is off by 2 (~2.127), row 2 ~1.408
    want = (0 + (2 + np.log1p(np.exp(-2.0))) + (np.log(np.exp(-2) + np.exp(-1) + 1) + 1)) / 3
    np.testing.assert_allclose(value, want, rtol=1e-6)


@pytest.mark.parametrize("cls", [CrossEntropyLoss, MSELoss])
def test_loss_keeps_dtype(cls, dtype, rng):
    x = rng.standard_normal((4, 3)).astype(dtype)
    target = rng.integers(0, 3, 4) if cls is CrossEntropyLoss else rng.standard_normal((4, 3))
    loss = cls()
    value = loss(x, target)
    assert value.dtype == dtype and np.ndim(value) == 0
    assert loss.backward().dtype == dtype and loss.backward().shape == x.shape


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_value_and_numerical_gradient(reduction, rng):
    x = rng.standard_normal((3, 2, 4))
    t = rng.standard_normal((3, 2, 4))
    loss = MSELoss(reduction)
    value = loss(x, t)
    sq = (x - t) ** 2
    np.testing.assert_allclose(
        value, sq.mean() if reduction == "mean" else sq.sum(), rtol=1e-13
    )
    numerical = numerical_gradient(lambda: MSELoss(reduction)(x, t), x)
    np.testing.assert_allclose(loss.backward(), numerical, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["labels", "probabilities"])
def test_cross_entropy_matches_torch(kind, reduction, dtype, rng):
    torch = pytest.importorskip("torch")
    logits = (rng.standard_normal((7, 5)) * 10).astype(dtype)
    target = _targets(kind, rng, 7, 5)
    loss = CrossEntropyLoss(reduction)
    value = loss(logits, target)
    lt = torch.from_numpy(logits).requires_grad_()
    tt = torch.from_numpy(target if kind == "labels" else target.astype(dtype))
    want = torch.nn.CrossEntropyLoss(reduction=reduction)(lt, tt)
    want.backward()
    assert_close(value, want.item(), dtype)
    assert_close(loss.backward(), lt.grad.numpy(), dtype)


def test_mse_matches_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 6)).astype(dtype)
    t = rng.standard_normal((4, 6)).astype(dtype)
    loss = MSELoss()
    value = loss(x, t)
    xt = torch.from_numpy(x).requires_grad_()
    want = torch.nn.MSELoss()(xt, torch.from_numpy(t))
    want.backward()
    assert_close(value, want.item(), dtype)
    assert_close(loss.backward(), xt.grad.numpy(), dtype)


@pytest.mark.parametrize(
    "logits, target, exc, match",
    [
        (
            np.zeros((2, 3)),
            np.array([0, 3]),
            ValueError,
            r"`target` labels must be in \[0, 3\) for 3 classes. Received: labels from 0 to 3",
        ),
        (np.zeros((2, 3)), np.array([-1, 0]), ValueError, r"labels from -1 to 0"),
        (
            np.zeros((2, 3)),
            np.array([0.0, 1.0]),
            ValueError,
            r"`target` must have the shape of the input \(2, 3\)",
        ),
        (
            np.zeros((2, 3)),
            np.array([True, False]),
            TypeError,
            r"`target` must be integer class labels or float probabilities. "
            r"Received: target.dtype=bool",
        ),
        (
            np.zeros((2, 3)),
            np.array([0, 1, 2]),
            ValueError,
            r"`target` labels must have shape \(N,\) = \(2,\). Received: target.shape=\(3,\)",
        ),
        (
            np.zeros((2, 3, 1)),
            np.array([0, 1]),
            ValueError,
            r"`logits` must be a 2-d array \(N, C\)",
        ),
        (
            np.zeros((2, 3), np.int64),
            np.array([0, 1]),
            TypeError,
            r"`logits` must have dtype float32 or float64",
        ),
        (
            np.zeros((0, 3)),
            np.array([], np.int64),
            ValueError,
            r"`logits` must have non-zero N and C",
        ),
    ],
)
def test_cross_entropy_errors(logits, target, exc, match):
    with pytest.raises(exc, match=match):
        CrossEntropyLoss()(logits, target)


def test_loss_misuse():
    with pytest.raises(
        ValueError,
        match=r"`reduction` must be 'mean' or 'sum'. "
        r"Received: reduction='none'",
    ):
        CrossEntropyLoss("none")
    with pytest.raises(RuntimeError, match="MSELoss.backward called before forward"):
        MSELoss().backward()
    with pytest.raises(ValueError, match=r"`target` must have the shape of the input"):
        MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))
    assert repr(CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(MSELoss("sum")) == "MSELoss(reduction='sum')"
