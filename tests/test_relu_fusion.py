"""`Sequential` runs a Conv2d, batch norm or Linear followed by a ReLU as one call, the
ReLU in the layer's own pass (`_forward_relu`): outputs, input gradients and parameter
gradients must be those of the two layers run one after the other, bit for bit, in
training and in eval mode, on each backend and on each convolution path."""

import numpy as np
import pytest

import pycnn
from pycnn import model as model_module
from pycnn.layers.activation import ReLU

# name: (make the layer, input shape); the Winograd, im2col, direct (first-layer) and
# strided convolution paths, batch norm with and without affine parameters, Linear
LAYERS = {
    "conv-winograd": (
        lambda d, b: pycnn.Conv2d(16, 16, 3, padding=1, dtype=d, backend=b),
        (2, 16, 16, 16),
    ),
    "conv-im2col": (
        lambda d, b: pycnn.Conv2d(4, 8, 3, padding=1, dtype=d, backend=b),
        (3, 4, 9, 7),
    ),
    "conv-direct": (lambda d, b: pycnn.Conv2d(1, 6, 3, dtype=d, backend=b), (5, 1, 18, 18)),
    "conv-strided-nobias": (
        lambda d, b: pycnn.Conv2d(3, 5, 3, stride=2, padding=1, bias=False, dtype=d, backend=b),
        (2, 3, 9, 11),
    ),
    "conv-one-image": (
        lambda d, b: pycnn.Conv2d(4, 8, 3, padding=1, dtype=d, backend=b),
        (1, 4, 8, 8),
    ),
    "bn2d": (lambda d, b: pycnn.BatchNorm2d(6, dtype=d), (4, 6, 5, 5)),
    "bn2d-no-affine": (lambda d, b: pycnn.BatchNorm2d(6, affine=False, dtype=d), (4, 6, 5, 5)),
    "bn1d": (lambda d, b: pycnn.BatchNorm1d(7, dtype=d), (9, 7)),
    "linear": (lambda d, b: pycnn.Linear(12, 9, dtype=d, backend=b), (5, 12)),
    "residual": (
        lambda d, b: pycnn.Residual(
            pycnn.Sequential(pycnn.Conv2d(3, 3, 3, padding=1, dtype=d, backend=b), ReLU())
        ),
        (2, 3, 6, 6),
    ),
    "residual-shortcut": (
        lambda d, b: pycnn.Residual(
            pycnn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=d, backend=b),
            pycnn.Conv2d(3, 4, 1, stride=2, dtype=d, backend=b),
        ),
        (2, 3, 7, 7),
    ),
}


def _models(name, dtype, backend, training):
    """Two models with the same weights: [layer, ReLU] and [layer, ReLU, Identity]
    whose ReLU is called on its own (a forward replaced on the instance stops the
    fusion, as `summary`'s recording does)."""
    make, shape = LAYERS[name]
    pair = []
    for _ in range(2):
        layer = make(dtype, backend)
        pair.append(pycnn.Sequential(layer, ReLU()))
    pair[1].load_state_dict(pair[0].state_dict())
    relu = pair[1].layers[1]
    relu.forward = ReLU.forward.__get__(relu)  # on the instance: not fused
    for m in pair:
        m.train(training)
    return pair, shape


def _path(layer):
    """The convolution path of a compiled Conv2d's last plan."""
    plan = next(reversed(layer._plans.values()))
    return "winograd" if plan.winograd else "direct" if plan.direct else "other"


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("backend", ["compiled", "numpy"])
@pytest.mark.parametrize("name", LAYERS)
def test_fused_pair_equals_the_two_layers(name, backend, training, dtype, rng):
    (fused, apart), shape = _models(name, dtype, backend, training)
    assert model_module._fuses_with_relu(*fused.layers)
    assert not model_module._fuses_with_relu(*apart.layers)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::7] = 0  # exact zeros: the gradient there is 0 in both
    before = x.copy()
    out, want = fused.forward(x), apart.forward(x)
    assert out.dtype == dtype
    assert out.tobytes() == want.tobytes()
    assert (out == 0).any() and (out > 0).any()
    if backend == "compiled" and name in ("conv-winograd", "conv-direct"):
        assert _path(fused.layers[0]) == name[5:]
    grad = rng.standard_normal(out.shape).astype(dtype)
    gx, gx_want = fused.backward(grad), apart.backward(grad)
    assert gx.tobytes() == gx_want.tobytes()
    for (key, g), (_, g_want) in zip(fused.named_parameters(), apart.named_parameters()):
        assert g.grad.tobytes() == g_want.grad.tobytes(), key
    for key, value in fused.state_dict().items():  # running statistics alike
        assert value.tobytes() == apart.state_dict()[key].tobytes(), key
    np.testing.assert_array_equal(x, before)


def test_nan_passes_through_as_in_relu(rng):
    (fused, apart), shape = _models("bn2d", np.float32, "compiled", True)
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 0, 0, 0] = np.nan  # the whole channel's statistics become NaN
    assert fused.forward(x).tobytes() == apart.forward(x).tobytes()
    assert np.isnan(fused.forward(x)[:, 0]).all()


def test_the_pair_takes_one_call(monkeypatch, rng):
    """ReLU's own pass does not run for a fused pair: the convolution's epilogue did
    it (ReLU.forward itself left as it is, so that the pair still fuses)."""

    def refuse(x):
        raise AssertionError("ReLU's pass ran")

    monkeypatch.setattr(ReLU, "_fn", staticmethod(refuse))
    model = pycnn.Sequential(pycnn.Conv2d(2, 4, 3), ReLU(), pycnn.Flatten())
    out = model.forward(rng.standard_normal((2, 2, 5, 5)).astype(np.float32))
    assert out.min() >= 0
    with pytest.raises(AssertionError, match="ReLU's pass ran"):
        pycnn.Sequential(pycnn.Flatten(), ReLU()).forward(np.ones((2, 3), np.float32))


def test_a_subclass_replacing_forward_keeps_it(rng):
    """A subclass of Conv2d with its own forward is not fused: its forward runs."""

    class Doubled(pycnn.Conv2d):
        def forward(self, x):
            return 2 * super().forward(x)

    layer = Doubled(2, 3, 3)
    model = pycnn.Sequential(layer, ReLU())
    assert not model_module._fuses_with_relu(*model.layers)
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    want = np.maximum(2 * pycnn.functional.conv2d(x, layer.weight, layer.bias), 0)
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-6, atol=1e-6)


def test_summary_still_sees_the_relu(capsys):
    model = pycnn.Sequential(pycnn.Conv2d(1, 2, 3), ReLU(), pycnn.Flatten())
    model.summary((1, 5, 5))
    lines = [line for line in capsys.readouterr().out.splitlines() if "ReLU" in line]
    assert lines and "(None, 2, 3, 3)" in lines[0]


def test_a_forward_patched_onto_the_class_is_called(monkeypatch, rng):
    """A wrapper patched onto Conv2d.forward (a profiler's) runs: no fusion then."""
    calls = []
    original = pycnn.Conv2d.forward

    def counted(self, x):
        calls.append(1)
        return original(self, x)

    model = pycnn.Sequential(pycnn.Conv2d(2, 3, 3), ReLU())
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    fused = model.forward(x)
    monkeypatch.setattr(pycnn.Conv2d, "forward", counted)
    assert not model_module._fuses_with_relu(*model.layers)
    assert model.forward(x).tobytes() == fused.tobytes()
    assert calls == [1]
