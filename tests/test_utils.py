"""Gradient clipping (pycnn/utils.py) against torch.nn.utils.clip_grad_norm_ and
clip_grad_value_, plus the rule written out, edge cases and bad arguments.

The parameters are stand-in handles (anything with a ``.grad``, the contract of
brief-params.md). When pycnn.parameter lands, replace the body of `make_handles` by real
`pycnn.parameter.Parameter` handles (the comment in it shows how); nothing else changes.
"""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from pycnn.layers.base import BaseLayer
from pycnn.parameter import Parameter
from pycnn.utils import clip_grad_norm_, clip_grad_value_

RTOL = {np.float32: 2e-6, np.float64: 1e-12}


class Handle:
    """A stand-in parameter handle: only ``.grad`` (an ndarray or None)."""

    def __init__(self, grad):
        self.grad = grad


def make_handles(grads):
    """One parameter handle per entry of `grads` (an ndarray or None), whose ``.grad``
    is that very array."""
    layer = BaseLayer()
    handles = []
    for i, g in enumerate(grads):
        shape = (1,) if g is None else g.shape
        dtype = np.float32 if g is None else g.dtype
        layer.params[f"p{i}"] = np.zeros(shape, dtype)
        if g is not None:
            layer.grads[f"p{i}"] = g
        handles.append(Parameter(layer, f"p{i}"))
    return handles


SHAPES = [(3, 4), (7,), (2, 3, 4, 5), (1,), None, (5, 1, 2)]  # None: no gradient


def _grads(rng, dtype, shapes=SHAPES, scale=1.0):
    return [
        None if s is None else (scale * rng.standard_normal(s)).astype(dtype) for s in shapes
    ]


def _torch_clip_norm(torch, grads, *args, **kwargs):
    params = []
    for g in grads:
        data = np.zeros((1,) if g is None else g.shape, np.float64 if g is None else g.dtype)
        p = torch.from_numpy(data).requires_grad_()
        p.grad = None if g is None else torch.from_numpy(g.copy())
        params.append(p)
    total = torch.nn.utils.clip_grad_norm_(params, *args, **kwargs)
    return total, [None if p.grad is None else p.grad.numpy() for p in params]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, 1.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6, math.inf, 0.0])
def test_clip_grad_norm_equals_torch(norm_type, max_norm, dtype, rng):
    torch = pytest.importorskip("torch")
    grads = _grads(rng, dtype)
    want_total, want = _torch_clip_norm(torch, grads, max_norm, norm_type)
    arrays = [None if g is None else g for g in grads]
    total = clip_grad_norm_(make_handles(grads), max_norm, norm_type)
    assert isinstance(total, np.floating) and total.dtype == dtype
    assert_allclose(float(total), want_total.item(), rtol=RTOL[dtype])
    for g, a, w in zip(grads, arrays, want, strict=True):
        if g is None:
            assert w is None
            continue
        assert g is a and g.dtype == dtype  # changed in place, dtype kept
        assert_allclose(g, w, rtol=RTOL[dtype], atol=0)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_grad_norm_mixed_dtypes_equals_torch(norm_type, rng):
    torch = pytest.importorskip("torch")
    grads = [
        rng.standard_normal((4, 3)).astype(np.float32),
        rng.standard_normal(6),
        rng.standard_normal((2, 2)).astype(np.float32),
    ]
    want_total, want = _torch_clip_norm(torch, grads, 0.3, norm_type)
    total = clip_grad_norm_(make_handles(grads), 0.3, norm_type)
    assert total.dtype == np.float64 == want_total.numpy().dtype
    assert_allclose(float(total), want_total.item(), rtol=1e-6)
    for g, w in zip(grads, want, strict=True):
        assert g.dtype == w.dtype
        # the float32 gradients' norms are float32 (as in torch), so the common scale
        # is as exact as float32 even for the float64 gradient
        assert_allclose(g, w, rtol=RTOL[np.float32])


def test_clip_grad_norm_rule_written_out():
    g1, g2 = np.array([3.0, 0.0]), np.array([[0.0], [4.0]])
    total = clip_grad_norm_(make_handles([g1, g2]), max_norm=1.0)
    assert total == 5.0
    coef = 1.0 / (5.0 + 1e-6)
    assert_array_equal(g1, [3.0 * coef, 0.0])
    assert_array_equal(g2, [[0.0], [4.0 * coef]])
    g = np.array([-2.0, 1.0, 0.5])
    assert clip_grad_norm_(make_handles([g]), 1.0, norm_type="inf") == 2.0
    assert_array_equal(g, np.array([-2.0, 1.0, 0.5]) * (1.0 / (2.0 + 1e-6)))
    g = np.array([1.0, -2.0])
    assert clip_grad_norm_(make_handles([g]), 10.0, norm_type=1) == 3.0
    assert_array_equal(g, [1.0, -2.0])  # coefficient clamped at 1: never scaled up


def test_clip_grad_norm_leaves_small_gradients_bit_for_bit(dtype, rng):
    grads = _grads(rng, dtype)
    before = [None if g is None else g.copy() for g in grads]
    total = clip_grad_norm_(make_handles(grads), 1e3)
    assert 0 < total < 1e3
    for g, b in zip(grads, before, strict=True):
        if g is not None:
            assert_array_equal(g, b)


def test_clip_grad_norm_single_handle_and_generator(rng):
    g = rng.standard_normal((3, 3))
    norm = np.sqrt(np.sum(g * g))
    want = g * (0.1 / (norm + 1e-6))
    total = clip_grad_norm_(Handle(g), 0.1)  # one handle, not in a list
    assert_allclose(float(total), norm, rtol=1e-12)
    assert_allclose(g, want, rtol=1e-12)
    h = rng.standard_normal(5)
    norm = np.sqrt(np.sum(h * h))
    want = h * (0.1 / (norm + 1e-6))
    total = clip_grad_norm_((Handle(x) for x in [h, None]), 0.1)  # consumed once
    assert_allclose(float(total), norm, rtol=1e-12)
    assert_allclose(h, want, rtol=1e-12)


def test_clip_grad_norm_without_gradients():
    total = clip_grad_norm_(make_handles([None, None]), 1.0)
    assert total == 0.0 and total.dtype == np.float32  # torch.tensor(0.0)
    assert clip_grad_norm_([], 1.0) == 0.0
    with pytest.warns(UserWarning, match="`parameters` is an empty generator"):
        clip_grad_norm_((h for h in []), 1.0)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_clip_grad_norm_nonfinite(bad, dtype, rng):
    torch = pytest.importorskip("torch")
    grads = _grads(rng, dtype, shapes=[(3, 2), (4,)])
    grads[1][2] = bad
    before = [g.copy() for g in grads]
    with pytest.raises(RuntimeError, match=r"total norm of order 2\.0 .* is (inf|nan)"):
        clip_grad_norm_(make_handles(grads), 1.0, error_if_nonfinite=True)
    for g, b in zip(grads, before, strict=True):
        assert_array_equal(g, b)  # nothing scaled
    with pytest.raises(RuntimeError):  # torch raises the same
        _torch_clip_norm(torch, before, 1.0, error_if_nonfinite=True)
    want_total, want = _torch_clip_norm(torch, before, 1.0)
    with np.errstate(all="raise"):  # no NumPy warning leaks from the scaling
        total = clip_grad_norm_(make_handles(grads), 1.0)
    assert_array_equal(float(total), want_total.item())
    for g, w in zip(grads, want, strict=True):
        assert_array_equal(g, w)  # zeros and NaNs where torch has them


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 1.0, 10.0, math.inf])
def test_clip_grad_value_equals_torch(clip_value, dtype, rng):
    torch = pytest.importorskip("torch")
    grads = _grads(rng, dtype, scale=2.0)
    grads[0][0, 0] = np.nan
    want = [None if g is None else torch.from_numpy(g.copy()) for g in grads]
    params = []
    for w in want:
        p = torch.zeros(1 if w is None else w.shape, dtype=w.dtype if w is not None else None)
        p.requires_grad_()
        p.grad = w
        params.append(p)
    torch.nn.utils.clip_grad_value_(params, clip_value)
    arrays = list(grads)
    assert clip_grad_value_(make_handles(grads), clip_value) is None
    for g, a, w in zip(grads, arrays, want, strict=True):
        if g is None:
            continue
        assert g is a and g.dtype == dtype
        assert_array_equal(g, w.numpy())


def test_clip_grad_value_rule_written_out():
    g = np.array([-3.0, -0.5, 0.0, 0.5, 3.0], dtype=np.float32)
    clip_grad_value_(Handle(g), 1.0)
    assert_array_equal(g, np.array([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=np.float32))
    assert g.dtype == np.float32


class NoGrad:
    pass


BAD = [
    (
        lambda h: clip_grad_norm_(h, -1.0),
        ValueError,
        r"`max_norm` must be >= 0\. Received: max_norm=-1\.0",
    ),
    (lambda h: clip_grad_norm_(h, float("nan")), ValueError, r"`max_norm` must be >= 0"),
    (lambda h: clip_grad_norm_(h, "1"), TypeError, r"`max_norm` must be a real number"),
    (lambda h: clip_grad_norm_(h, 1.0, 0), ValueError, r"`norm_type` must be > 0 or inf"),
    (
        lambda h: clip_grad_norm_(h, 1.0, -math.inf),
        ValueError,
        r"`norm_type` must be > 0 or inf",
    ),
    (
        lambda h: clip_grad_norm_(h, 1.0, "two"),
        TypeError,
        r"`norm_type` must be a real number or 'inf'",
    ),
    (lambda h: clip_grad_norm_(h, 1.0, None), TypeError, r"`norm_type` must be a real number"),
    (
        lambda h: clip_grad_norm_(h, 1.0, error_if_nonfinite="no"),
        TypeError,
        r"`error_if_nonfinite` must be a bool",
    ),
    (
        lambda h: clip_grad_norm_(5, 1.0),
        TypeError,
        r"`parameters` must be a parameter or an iterable",
    ),
    (
        lambda h: clip_grad_norm_([np.ones(3)], 1.0),
        TypeError,
        r"every item of `parameters` must have a `\.grad`",
    ),
    (
        lambda h: clip_grad_value_([NoGrad()], 1.0),
        TypeError,
        r"every item of `parameters` must have a `\.grad`",
    ),
    (
        lambda h: clip_grad_norm_([Handle([1.0, 2.0])], 1.0),
        TypeError,
        r"`\.grad` .* must be None or a float32 or float64 ndarray\. Received at index 0: list",
    ),
    (
        lambda h: clip_grad_value_([Handle(np.ones(2, int))], 1.0),
        TypeError,
        r"Received at index 0: int64",
    ),
    (lambda h: clip_grad_value_(h, -0.1), ValueError, r"`clip_value` must be >= 0"),
    (lambda h: clip_grad_value_(h, True), TypeError, r"`clip_value` must be a real number"),
]


@pytest.mark.parametrize("call, exc, match", BAD)
def test_bad_arguments_name_the_argument(call, exc, match):
    g = np.array([3.0, 4.0])
    with pytest.raises(exc, match=match):
        call(make_handles([g]))
    assert_array_equal(g, [3.0, 4.0])


def test_public_names():
    import pycnn

    assert pycnn.utils.clip_grad_norm_ is clip_grad_norm_ and "utils" in pycnn.__all__
    assert sorted(pycnn.utils.__all__) == ["clip_grad_norm_", "clip_grad_value_"]
