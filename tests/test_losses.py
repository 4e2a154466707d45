"""Losses: values, numerical gradients, stability, PyTorch (a case table of every loss x
reduction x dtype x option), errors."""

import numpy as np
import pytest
from conftest import assert_close, numerical_gradient

from pycnn import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
    losses,
)


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
    loss = CrossEntropyLoss(reduction=reduction)
    value = loss(logits, target)
    onehot = np.eye(4)[target] if kind == "labels" else target
    per_sample = -np.sum(onehot * np.log(_softmax(logits)), axis=1)
    want = per_sample.mean() if reduction == "mean" else per_sample.sum()
    np.testing.assert_allclose(value, want, rtol=1e-12)
    grad = loss.backward()
    numerical = numerical_gradient(
        lambda: CrossEntropyLoss(reduction=reduction)(logits, target), logits
    )
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
    loss = CrossEntropyLoss(reduction=reduction)
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
            r"`target` labels must have shape \(N, d1, ...\) = \(2, 1\). "
            r"Received: target.shape=\(2,\)",
        ),
        (
            np.zeros(3),
            np.array(0),
            ValueError,
            r"`logits` must have shape \(N, C\) or \(N, C, d1, ...\). "
            r"Received: logits.shape=\(3,\)",
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
        match=r"`reduction` must be one of 'mean', 'sum', 'none'. "
        r"Received: reduction='batchmean'",
    ):
        CrossEntropyLoss(reduction="batchmean")
    with pytest.raises(RuntimeError, match="MSELoss.backward called before forward"):
        MSELoss().backward()
    with pytest.raises(ValueError, match=r"`target` must have the shape of the input"):
        MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))
    assert repr(CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(MSELoss("sum")) == "MSELoss(reduction='sum')"


# --- every loss against PyTorch: one case table ------------------------------------------

N, C = 6, 4
W_CLASS = [0.5, 2.0, 1.0, 3.0]  # a weight per class
W_ELEM = [[1.5], [0.0], [2.0], [0.5], [1.0], [3.0]]  # (N, 1): broadcasts over the columns
POS_WEIGHT = [0.5, 1.0, 2.0, 4.0]  # (C,): broadcasts over the rows


def _log_softmax(z, axis=1):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _labels(rng, shape, ignore=None, c=C):
    """Integer labels in [0, c), with `ignore` at a third of the places when given."""
    labels = rng.integers(0, c, shape)
    if ignore is not None:
        labels[rng.random(shape) < 1 / 3] = ignore
        labels.flat[0] = ignore  # at least one ignored, at least one counted
        labels.flat[-1] = 1 if ignore != 1 else 0
    return labels


def _make_data(kind, rng):
    """float64 input and target for a data `kind` of the case table."""
    if kind == "logits-labels":
        return rng.standard_normal((N, C)) * 3, _labels(rng, N)
    if kind == "logits-ignored":
        return rng.standard_normal((N, C)) * 3, _labels(rng, N, ignore=-100)
    if kind == "logits-ignored-1":  # ignore_index inside [0, C)
        return rng.standard_normal((N, C)) * 3, _labels(rng, N, ignore=1)
    if kind == "logits-spatial":  # (N, C, d1, d2) and labels (N, d1, d2)
        return rng.standard_normal((3, C, 2, 5)) * 3, _labels(rng, (3, 2, 5), ignore=-100)
    if kind == "logits-neg-inf":  # a class with probability 0, not the label
        x, y = rng.standard_normal((N, C)) * 3, _labels(rng, N, ignore=-100)
        x[np.arange(N), (y + 1) % C] = -np.inf
        return x, y
    if kind == "logprobs-zero-prob":
        x, y = _make_data("logits-neg-inf", rng)
        return _log_softmax(x), y
    if kind == "logits-probs":
        return rng.standard_normal((N, C)) * 3, _softmax(rng.standard_normal((N, C)))
    if kind == "logits-probs-spatial":
        t = np.exp(_log_softmax(rng.standard_normal((2, C, 3, 2))))
        return rng.standard_normal((2, C, 3, 2)) * 3, t
    if kind == "logprobs-labels":
        return _log_softmax(rng.standard_normal((N, C)) * 2), _labels(rng, N, ignore=-100)
    if kind == "logprobs-spatial":
        x = _log_softmax(rng.standard_normal((2, C, 3, 4)) * 2)
        return x, _labels(rng, (2, 3, 4), ignore=-100)
    if kind == "probs":  # BCE: probabilities inside (0, 1), soft and hard targets
        x = 1 / (1 + np.exp(-2 * rng.standard_normal((N, C))))
        t = rng.random((N, C))
        t[::2] = rng.integers(0, 2, (N // 2, C))
        return x, t
    if kind == "probs-edges":  # BCE at x = 0 and 1: torch clamps the log at -100
        x = rng.random((N, C))
        x[0, :] = [0.0, 1.0, 0.0, 1.0]
        t = rng.integers(0, 2, (N, C)).astype(float)
        t[0, :] = [0.0, 1.0, 1.0, 0.0]
        return x, t
    if kind == "logits-binary":
        x = rng.standard_normal((N, C)) * 4
        x[0, :] = [40.0, -40.0, 300.0, -300.0]  # where a naive log(sigmoid) breaks
        t = rng.random((N, C))
        t[1::2] = rng.integers(0, 2, (N // 2, C))
        return x, t
    if kind == "regression":  # some differences exactly 0, some tiny, some large
        x = rng.standard_normal((N, C, 2)) * 2
        t = x + rng.standard_normal((N, C, 2)) * 1.5
        t[0, 0] = x[0, 0]
        t[1, :, 0] = x[1, :, 0] + rng.standard_normal(C) * 1e-9
        return x, t
    if kind == "kl":
        x = _log_softmax(rng.standard_normal((N, C)))
        t = np.exp(_log_softmax(rng.standard_normal((N, C))))
        t[0, 1] = 0.0  # 0 * log 0 = 0
        return x, t
    if kind == "kl-log":
        return _log_softmax(rng.standard_normal((N, C))), _log_softmax(
            rng.standard_normal((N, C))
        )
    raise AssertionError(kind)


# name: (class name, constructor keywords, data kind); reductions are added by the test
LOSS_CASES = {
    "ce": ("CrossEntropyLoss", {}, "logits-labels"),
    "ce-weight": ("CrossEntropyLoss", {"weight": W_CLASS}, "logits-labels"),
    "ce-ignored": ("CrossEntropyLoss", {}, "logits-ignored"),
    "ce-ignore-1": ("CrossEntropyLoss", {"ignore_index": 1}, "logits-ignored-1"),
    "ce-smoothing": ("CrossEntropyLoss", {"label_smoothing": 0.1}, "logits-labels"),
    "ce-weight-ignored-smoothing": (
        "CrossEntropyLoss",
        {"weight": W_CLASS, "label_smoothing": 0.1},
        "logits-ignored",
    ),
    "ce-spatial-weight-smoothing": (
        "CrossEntropyLoss",
        {"weight": W_CLASS, "label_smoothing": 0.1},
        "logits-spatial",
    ),
    "ce-neg-inf": ("CrossEntropyLoss", {"weight": W_CLASS}, "logits-neg-inf"),
    "ce-probs": ("CrossEntropyLoss", {}, "logits-probs"),
    "ce-probs-weight-smoothing": (
        "CrossEntropyLoss",
        {"weight": W_CLASS, "label_smoothing": 0.1},
        "logits-probs",
    ),
    "ce-probs-spatial": ("CrossEntropyLoss", {"weight": W_CLASS}, "logits-probs-spatial"),
    "nll": ("NLLLoss", {}, "logprobs-labels"),
    "nll-weight": ("NLLLoss", {"weight": W_CLASS}, "logprobs-labels"),
    "nll-spatial-weight": ("NLLLoss", {"weight": W_CLASS}, "logprobs-spatial"),
    "nll-zero-prob": ("NLLLoss", {}, "logprobs-zero-prob"),
    "bce": ("BCELoss", {}, "probs"),
    "bce-weight": ("BCELoss", {"weight": W_ELEM}, "probs"),
    "bce-edges": ("BCELoss", {}, "probs-edges"),
    "bce-logits": ("BCEWithLogitsLoss", {}, "logits-binary"),
    "bce-logits-weight": ("BCEWithLogitsLoss", {"weight": W_ELEM}, "logits-binary"),
    "bce-logits-pos-weight": ("BCEWithLogitsLoss", {"pos_weight": POS_WEIGHT}, "logits-binary"),
    "bce-logits-both": (
        "BCEWithLogitsLoss",
        {"weight": W_ELEM, "pos_weight": POS_WEIGHT},
        "logits-binary",
    ),
    "mse": ("MSELoss", {}, "regression"),
    "l1": ("L1Loss", {}, "regression"),
    "smooth-l1": ("SmoothL1Loss", {}, "regression"),
    "smooth-l1-beta-2.5": ("SmoothL1Loss", {"beta": 2.5}, "regression"),
    "smooth-l1-beta-tiny": ("SmoothL1Loss", {"beta": 1e-8}, "regression"),
    "smooth-l1-beta-0": ("SmoothL1Loss", {"beta": 0.0}, "regression"),
    "huber": ("HuberLoss", {}, "regression"),
    "huber-delta-0.3": ("HuberLoss", {"delta": 0.3}, "regression"),
    "huber-delta-tiny": ("HuberLoss", {"delta": 1e-8}, "regression"),
    "kl": ("KLDivLoss", {}, "kl"),
    "kl-log-target": ("KLDivLoss", {"log_target": True}, "kl-log"),
}

TORCH_TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _torch_close(got, want, dtype, what):
    """Relative to the largest magnitude of `want`, like conftest.assert_close."""
    want = np.asarray(want)
    assert np.asarray(got).shape == want.shape, what
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    tol = TORCH_TOL[dtype]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


def _reductions(cls_name):
    return ["mean", "sum", "none"] + (["batchmean"] if cls_name == "KLDivLoss" else [])


LOSS_PARAMS = [
    pytest.param(name, reduction, id=f"{name}-{reduction}")
    for name, (cls_name, _, _) in LOSS_CASES.items()
    for reduction in _reductions(cls_name)
]


def _case(name, reduction, dtype, rng):
    """(pycnn loss, torch loss, input, target) of a case, the arrays in `dtype`."""
    import torch

    cls_name, kwargs, kind = LOSS_CASES[name]
    x, t = _make_data(kind, rng)
    x = x.astype(dtype)
    if t.dtype.kind == "f":
        t = t.astype(dtype)
    ours = getattr(losses, cls_name)(reduction=reduction, **kwargs)
    torch_kwargs = {
        k: torch.tensor(np.asarray(v, dtype)) if isinstance(v, list) else v
        for k, v in kwargs.items()
    }
    theirs = getattr(torch.nn, cls_name)(reduction=reduction, **torch_kwargs)
    return ours, theirs, x, t


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")  # KLDivLoss
@pytest.mark.parametrize("name, reduction", LOSS_PARAMS)
def test_loss_matches_torch(name, reduction, dtype, rng):
    torch = pytest.importorskip("torch")
    loss, torch_loss, x, t = _case(name, reduction, dtype, rng)
    x_before, t_before = x.copy(), t.copy()
    value = loss(x, t)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    want = torch_loss(xt, torch.from_numpy(t.copy()))
    # the value: a NumPy scalar of the input's dtype, or an array for 'none'
    _torch_close(value, want.detach().numpy(), dtype, "value")
    assert np.asarray(value).dtype == dtype
    assert isinstance(value, np.ndarray) if reduction == "none" else np.ndim(value) == 0
    # backward() without an upstream gradient: that of the value (of the sum for 'none')
    (want_grad,) = torch.autograd.grad(want.sum(), xt, retain_graph=True)
    grad = loss.backward()
    assert grad.dtype == dtype and grad.shape == x.shape
    _torch_close(grad, want_grad.numpy(), dtype, "backward()")
    # backward(grad) with an upstream gradient: a number, or an array of the losses' shape
    upstream = rng.standard_normal(want.shape).astype(dtype) if want.ndim else dtype(-0.75)
    (want_grad,) = torch.autograd.grad(want, xt, torch.from_numpy(np.asarray(upstream)))
    grad = loss.backward(upstream)
    assert grad.dtype == dtype
    _torch_close(grad, want_grad.numpy(), dtype, "backward(grad)")
    np.testing.assert_array_equal(x, x_before)  # the caller's arrays are not modified
    np.testing.assert_array_equal(t, t_before)


# --- numerical gradients, without torch --------------------------------------------------

NUMERICAL_CASES = [
    ("ce-weight-ignored-smoothing", "mean"),
    ("ce-spatial-weight-smoothing", "none"),
    ("ce-probs-weight-smoothing", "sum"),
    ("nll-spatial-weight", "mean"),
    ("bce-weight", "none"),
    ("bce-logits-both", "mean"),
    ("mse", "none"),
    ("smooth-l1-beta-2.5", "mean"),
    ("huber-delta-0.3", "sum"),
    ("kl", "batchmean"),
    ("kl-log-target", "none"),
]


@pytest.mark.parametrize("name, reduction", NUMERICAL_CASES, ids=lambda v: str(v))
def test_loss_numerical_gradient(name, reduction, rng):
    cls_name, kwargs, kind = LOSS_CASES[name]
    x, t = _make_data(kind, rng)
    make = lambda: getattr(losses, cls_name)(reduction=reduction, **kwargs)  # noqa: E731
    loss = make()
    value = loss(x, t)
    upstream = rng.standard_normal(np.shape(value)) if reduction == "none" else 0.6
    grad = loss.backward(upstream)
    # the scalar whose gradient backward(upstream) is: <upstream, loss(x)>
    numerical = numerical_gradient(lambda: np.sum(upstream * make()(x, t)), x)
    np.testing.assert_allclose(grad, numerical, rtol=1e-6, atol=1e-8)


def test_cross_entropy_label_smoothing_formula(rng):
    """Written out: (1 - eps) * nll + eps / C * sum_c w_c * (-log p_c), over sum w[y]."""
    x, y = _make_data("logits-ignored", rng)
    w, eps = np.array(W_CLASS), 0.1
    log_p = _log_softmax(x)
    counted = y != -100
    yc = y[counted]
    nll = -w[yc] * log_p[counted, yc]
    smooth = -(log_p[counted] * w).sum(axis=1) / C
    want = ((1 - eps) * nll + eps * smooth).sum() / w[yc].sum()
    got = CrossEntropyLoss(weight=w, label_smoothing=eps)(x, y)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_bce_with_logits_is_stable_for_large_logits(dtype):
    x = np.array([[1e4, -1e4, 80.0, -80.0]], dtype)
    t = np.array([[1.0, 0.0, 0.0, 1.0]], dtype)
    loss = BCEWithLogitsLoss(reduction="none")
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss(x, t)
        grad = loss.backward()
    # right and certain: 0; wrong by 80: 80 (+ log1p(e^-80), far below the precision)
    np.testing.assert_allclose(value, [[0.0, 0.0, 80.0, 80.0]], rtol=1e-6)
    np.testing.assert_allclose(grad, [[0.0, 0.0, 1.0, -1.0]], rtol=1e-6)


def test_all_targets_ignored_gives_nan_and_zero_gradient_like_torch(rng):
    x = rng.standard_normal((3, 4))
    for loss in (CrossEntropyLoss(), CrossEntropyLoss(label_smoothing=0.1), NLLLoss()):
        value = loss(x, np.full(3, -100))
        assert np.isnan(value)
        np.testing.assert_array_equal(loss.backward(), np.zeros((3, 4)))
        assert loss.backward().dtype == np.float64


def test_reduction_none_backward_defaults_to_ones(rng):
    x, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    loss = CrossEntropyLoss(reduction="none")
    per = loss(x, y)
    assert per.shape == (5,)
    np.testing.assert_array_equal(loss.backward(), loss.backward(np.ones(5)))
    summed = CrossEntropyLoss(reduction="sum")
    np.testing.assert_allclose(summed(x, y), per.sum(), rtol=1e-14)
    np.testing.assert_allclose(summed.backward(), loss.backward(), rtol=1e-14)


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (
            lambda: MSELoss("average"),
            ValueError,
            r"`reduction` must be one of 'mean', 'sum', 'none'. Received: reduction='average'",
        ),
        (
            lambda: L1Loss(reduction="batchmean"),
            ValueError,
            r"`reduction` must be one of .* Received: reduction='batchmean'",
        ),
        (
            lambda: KLDivLoss(reduction="max"),
            ValueError,
            r"`reduction` must be one of 'mean', 'batchmean', 'sum', 'none'. "
            r"Received: reduction='max'",
        ),
        (
            lambda: CrossEntropyLoss("sum"),
            TypeError,
            r"`weight` must be an array of weights \(pass `reduction` by keyword\). "
            r"Received: weight='sum'",
        ),
        (
            lambda: CrossEntropyLoss(label_smoothing=1.5),
            ValueError,
            r"`label_smoothing` must be in \[0, 1\]. Received: label_smoothing=1.5",
        ),
        (
            lambda: CrossEntropyLoss(ignore_index=1.0),
            TypeError,
            r"`ignore_index` must be an int. Received: ignore_index=1.0",
        ),
        (
            lambda: NLLLoss(weight=["a", "b"]),
            TypeError,
            r"`weight` must be a real array. Received: weight.dtype=<U1",
        ),
        (
            lambda: SmoothL1Loss(beta=-1),
            ValueError,
            r"`beta` must be >= 0. Received: beta=-1",
        ),
        (
            lambda: HuberLoss(delta=0.0),
            ValueError,
            r"`delta` must be > 0. Received: delta=0.0",
        ),
        (
            lambda: KLDivLoss(log_target="yes"),
            TypeError,
            r"`log_target` must be a bool. Received: log_target='yes'",
        ),
    ],
)
def test_loss_rejects_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


X23 = np.full((2, 3), 0.5)


@pytest.mark.parametrize(
    "loss, x, target, exc, match",
    [
        (
            CrossEntropyLoss(weight=[1.0, 2.0]),
            X23,
            np.array([0, 1]),
            ValueError,
            r"`weight` must have one entry per class, shape \(3,\). "
            r"Received: weight.shape=\(2,\)",
        ),
        (
            NLLLoss(weight=np.ones((3, 1))),
            X23,
            np.array([0, 1]),
            ValueError,
            r"`weight` must have one entry per class, shape \(3,\). "
            r"Received: weight.shape=\(3, 1\)",
        ),
        (
            CrossEntropyLoss(),
            X23,
            np.array([-100, 5]),
            ValueError,
            r"`target` labels must be in \[0, 3\) for 3 classes. "
            r"Received: labels from 5 to 5 besides ignore_index=-100",
        ),
        (
            NLLLoss(ignore_index=-1),
            X23,
            np.array([-1, -2]),
            ValueError,
            r"Received: labels from -2 to -2 besides ignore_index=-1",
        ),
        (
            NLLLoss(),
            X23,
            np.array([0.0, 1.0]),
            TypeError,
            r"`target` must hold integer class labels. Received: target.dtype=float64",
        ),
        (
            NLLLoss(),
            np.zeros((2, 3, 4)),
            np.zeros((2, 3), np.int64),
            ValueError,
            r"`target` labels must have shape \(N, d1, ...\) = \(2, 4\). "
            r"Received: target.shape=\(2, 3\)",
        ),
        (
            CrossEntropyLoss(),
            np.zeros((2, 3, 4)),
            np.zeros((2, 3, 5)),
            ValueError,
            r"`target` must have the shape of the input \(2, 3, 4\). "
            r"Received: target.shape=\(2, 3, 5\)",
        ),
        (
            BCELoss(),
            np.array([[0.5, 1.25], [-0.5, 0.0]]),
            np.zeros((2, 2)),
            ValueError,
            r"`input` must hold probabilities in \[0, 1\]. Received: values from -0.5 to 1.25",
        ),
        (
            BCELoss(weight=[1.0, 2.0]),
            X23,
            np.zeros((2, 3)),
            ValueError,
            r"`weight` must broadcast to the input's shape \(2, 3\). "
            r"Received: weight.shape=\(2,\)",
        ),
        (
            BCEWithLogitsLoss(pos_weight=np.ones((3, 3))),
            X23,
            np.zeros((2, 3)),
            ValueError,
            r"`pos_weight` must broadcast to the input's shape \(2, 3\). "
            r"Received: pos_weight.shape=\(3, 3\)",
        ),
        (
            HuberLoss(),
            X23,
            np.zeros((3, 2)),
            ValueError,
            r"`target` must have the shape of the input \(2, 3\). "
            r"Received: target.shape=\(3, 2\)",
        ),
        (
            KLDivLoss(),
            X23,
            np.array([["a"] * 3] * 2),
            TypeError,
            r"`target` must be a real array. Received: target.dtype=<U1",
        ),
        (
            L1Loss(),
            X23.astype(np.float16),
            X23,
            TypeError,
            r"`input` must have dtype float32 or float64. Received: input.dtype=float16",
        ),
        (
            SmoothL1Loss(),
            [[0.5]],
            X23,
            TypeError,
            r"`input` must be a numpy.ndarray. Received: input of type list",
        ),
    ],
)
def test_loss_rejects_bad_inputs(loss, x, target, exc, match):
    with pytest.raises(exc, match=match):
        loss(x, target)


def test_backward_rejects_bad_upstream_gradients():
    x = np.zeros((2, 3))
    loss = MSELoss(reduction="none")
    loss(x, x)
    with pytest.raises(
        ValueError,
        match=r"`grad` must have the shape of the unreduced loss \(2, 3\). "
        r"Received: grad.shape=\(3,\)",
    ):
        loss.backward(np.ones(3))
    with pytest.raises(TypeError, match=r"`grad` must be real. Received: grad.dtype=<U1"):
        loss.backward(np.array([["a"] * 3] * 2))
    ce = CrossEntropyLoss()
    ce(x, np.array([0, 1]))
    with pytest.raises(
        ValueError,
        match=r"`grad` must be a scalar for reduction='mean'. Received: grad.shape=\(2,\)",
    ):
        ce.backward(np.ones(2))
    with pytest.raises(RuntimeError, match="KLDivLoss.backward called before forward"):
        KLDivLoss().backward()


def test_loss_reprs_show_non_default_arguments():
    assert repr(NLLLoss()) == "NLLLoss()"
    assert (
        repr(CrossEntropyLoss(weight=[1, 2], ignore_index=0, label_smoothing=0.1))
        == "CrossEntropyLoss(weight=[1.0, 2.0], ignore_index=0, label_smoothing=0.1)"
    )
    assert repr(BCEWithLogitsLoss(pos_weight=[3.0])) == "BCEWithLogitsLoss(pos_weight=[3.0])"
    assert repr(SmoothL1Loss(beta=0.5)) == "SmoothL1Loss(beta=0.5)"
    assert repr(HuberLoss("sum", 2.0)) == "HuberLoss(reduction='sum', delta=2.0)"
    assert repr(KLDivLoss("batchmean", True)) == (
        "KLDivLoss(reduction='batchmean', log_target=True)"
    )


def test_weight_is_copied_at_construction():
    w = np.array([1.0, 2.0, 3.0])
    loss = CrossEntropyLoss(weight=w)
    w[:] = 0.0
    x = np.zeros((1, 3))
    np.testing.assert_allclose(loss(x, np.array([2])), np.log(3), rtol=1e-14)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("ignored", ["none", "some", "all"])
def test_cross_entropy_2d_fast_path_equals_the_general_path(
    reduction, ignored, compiled, dtype, rng, monkeypatch
):
    # (N, C) logits with plain labels take a shorter path (compiled, or NumPy without
    # the extension); (N, C, 1) takes the general one, which must give the same loss and
    # gradient
    if not compiled:
        monkeypatch.setattr(losses, "_kernels", None)
    x = (rng.standard_normal((7, 5)) * 3).astype(dtype)
    x[1, 2] = 40  # one class far ahead
    y = rng.integers(0, 5, 7).astype(np.int32)
    if ignored == "some":
        y[[0, 3]] = -100
    elif ignored == "all":
        y[:] = -100
    fast, general = CrossEntropyLoss(reduction=reduction), CrossEntropyLoss(reduction=reduction)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = fast(x, y)
        b = general(x[:, :, None], y[:, None])
    tol = dict(rtol=1e-13, atol=1e-16) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-7)
    assert a.dtype == fast.backward().dtype == dtype
    np.testing.assert_allclose(a, b, equal_nan=True, **tol)
    np.testing.assert_allclose(fast.backward(), general.backward()[:, :, 0], **tol)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize(
    "labels",
    [[0, 5, 1], [0, -1, 1], np.array([0, 2**64 - 100, 1], dtype=np.uint64)],
    ids=["past-c", "negative", "uint64-wrapping-to-ignore-index"],
)
def test_cross_entropy_fast_paths_refuse_bad_labels_alike(labels, compiled, monkeypatch):
    if not compiled:
        monkeypatch.setattr(losses, "_kernels", None)
    with pytest.raises(ValueError, match=r"`target` labels must be in \[0, 5\)"):
        CrossEntropyLoss()(np.zeros((3, 5)), np.asarray(labels))
