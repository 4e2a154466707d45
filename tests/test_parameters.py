"""Parameter handles: identity, live views of the layers' dicts, the grad setter, keys
and counts; gradients accumulating over backward calls in every layer with
parameters, and zero_grad."""

import numpy as np
import pytest

import pycnn
from pycnn import optim
from pycnn.parameter import Parameter


def _net(dtype=np.float64):
    rng = np.random.default_rng(0)
    return pycnn.Sequential(
        pycnn.Conv2d(1, 2, 3, padding=1, dtype=dtype, rng=rng),
        pycnn.Residual(
            pycnn.Sequential(pycnn.Conv2d(2, 2, 3, padding=1, dtype=dtype, rng=rng)),
            shortcut=pycnn.BatchNorm2d(2, dtype=dtype),
        ),
        pycnn.Flatten(),
        pycnn.Linear(2 * 4 * 4, 3, dtype=dtype, rng=rng),
    )


def test_handles_are_cached_and_keyed_like_state_dict():
    model = _net()
    first, second = list(model.parameters()), list(model.parameters())
    assert all(a is b for a, b in zip(first, second)) and len(first) == 8
    assert all(isinstance(p, Parameter) for p in first)
    keys = [k for k, _ in model.named_parameters()]
    assert keys == [
        "0.weight",
        "0.bias",
        "1.body.0.weight",
        "1.body.0.bias",
        "1.shortcut.weight",
        "1.shortcut.bias",
        "3.weight",
        "3.bias",
    ]
    assert [p for _, p in model.named_parameters()] == first
    assert [k for k, _ in model[1].named_parameters("1")] == keys[2:6]
    assert list(model.named_parameters(recurse=False)) == []
    total = (2 * 9 + 2) + (2 * 2 * 9 + 2) + (2 + 2) + (32 * 3 + 3)
    assert sum(p.size for p in model.parameters()) == model.num_parameters() == total


def test_data_is_the_live_array_of_the_layer():
    layer = pycnn.Linear(3, 2, dtype=np.float64, rng=0)
    w = layer._parameter("weight")
    assert w.data is layer.params["weight"]
    assert (w.shape, w.size, w.ndim, w.dtype) == ((2, 3), 6, 2, np.float64)
    assert w.name == "weight" and w.layer is layer
    with pytest.raises(AttributeError):
        w.data = np.zeros((2, 3))
    # the dict's array replaced (a dtype change, a load): the handle follows, and so
    # does an optimizer bound to it
    opt = optim.SGD(layer.parameters(), lr=1.0)
    layer.params["weight"] = np.ones((2, 3))
    assert w.data is layer.params["weight"]
    w.grad = np.full((2, 3), 0.5)
    opt.step()
    np.testing.assert_array_equal(layer.params["weight"], np.full((2, 3), 0.5))
    assert repr(w) == "Parameter('weight' of Linear, shape=(2, 3), dtype=float64, grad=set)"


def test_grad_setter_checks_and_copies():
    layer = pycnn.Linear(3, 2, rng=0)  # float32
    w = layer._parameter("weight")
    assert w.grad is None
    mine = np.ones((2, 3), np.float32)
    w.grad = mine
    assert w.grad is not mine and np.array_equal(w.grad, mine)
    x = np.ones((4, 3), np.float32)
    layer(x)
    layer.backward(np.ones((4, 2), np.float32))  # accumulates into the stored copy
    np.testing.assert_array_equal(mine, np.ones((2, 3)))  # the caller's array untouched
    np.testing.assert_allclose(w.grad, 1 + 4 * np.ones((2, 3)))
    w.grad = None
    assert "weight" not in layer.grads and w.grad is None
    with pytest.raises(ValueError, match=r"`grad` must have the parameter's shape \(2, 3\)"):
        w.grad = np.ones((3, 2), np.float32)
    with pytest.raises(TypeError, match=r"dtype \(float32\). Received: grad.dtype=float64"):
        w.grad = np.ones((2, 3))
    with pytest.raises(TypeError, match=r"`grad` must be None or a numpy.ndarray"):
        w.grad = [[1, 2, 3], [4, 5, 6]]


LAYERS = {
    "conv2d": (lambda: pycnn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, rng=0), (2, 2, 5, 5)),
    "conv2d-numpy": (
        lambda: pycnn.Conv2d(2, 3, 3, dtype=np.float64, rng=0, backend="numpy"),
        (2, 2, 5, 5),
    ),
    "conv_transpose2d": (
        lambda: pycnn.ConvTranspose2d(2, 3, 3, stride=2, dtype=np.float64, rng=0),
        (2, 2, 3, 3),
    ),
    "linear": (lambda: pycnn.Linear(4, 3, dtype=np.float64, rng=0), (5, 4)),
    "prelu": (lambda: pycnn.PReLU(3, dtype=np.float64), (4, 3, 2)),
    "batchnorm1d": (lambda: pycnn.BatchNorm1d(3, dtype=np.float64), (6, 3)),
    "batchnorm2d": (lambda: pycnn.BatchNorm2d(2, dtype=np.float64), (3, 2, 3, 3)),
    "layernorm": (lambda: pycnn.LayerNorm((3, 4), dtype=np.float64), (2, 3, 4)),
    "groupnorm": (lambda: pycnn.GroupNorm(2, 4, dtype=np.float64), (2, 4, 3, 3)),
    "residual": (
        lambda: pycnn.Residual(pycnn.Linear(3, 3, dtype=np.float64, rng=1)),
        (4, 3),
    ),
    "concat": (
        lambda: pycnn.Concat(
            pycnn.Linear(3, 2, dtype=np.float64, rng=1),
            pycnn.Linear(3, 1, dtype=np.float64, rng=2),
        ),
        (4, 3),
    ),
    "sequential": (lambda: _net(), (2, 1, 4, 4)),
}


@pytest.mark.parametrize("make, shape", LAYERS.values(), ids=LAYERS.keys())
def test_backward_accumulates_until_zero_grad(make, shape, rng):
    layer = make()
    xs = [rng.standard_normal(shape) for _ in range(2)]
    outs = [layer(x) for x in xs]
    gs = [rng.standard_normal(out.shape) for out in outs]
    alone = []
    for x, g in zip(xs, gs):  # each backward on its own
        layer.zero_grad()
        layer(x)
        layer.backward(g)
        alone.append({k: p.grad.copy() for k, p in layer.named_parameters()})
    assert alone[0]  # the layer has parameters, and backward gave them gradients
    layer.zero_grad()
    assert all(p.grad is None for p in layer.parameters())
    for x, g in zip(xs, gs):
        layer(x)
        layer.backward(g)
    for key, p in layer.named_parameters():
        np.testing.assert_allclose(
            p.grad, alone[0][key] + alone[1][key], rtol=1e-12, atol=1e-12, err_msg=key
        )
    kept = {k: p.grad for k, p in layer.named_parameters()}
    layer.zero_grad(set_to_none=False)
    for key, p in layer.named_parameters():
        assert p.grad is kept[key] and not p.grad.any(), key
    layer(xs[0])
    layer.backward(gs[0])  # onto zeros: the first gradient again
    for key, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, alone[0][key], rtol=1e-12, atol=1e-12, err_msg=key)


def test_fit_zeroes_gradients_every_step():
    """fit's steps equal a hand-written loop that zeroes the gradients each step (an
    accumulating fit would add the previous batches' gradients)."""
    x, y = pycnn.datasets.load_digits()
    x, y = x[:48].astype(np.float64), y[:48]

    def net():
        return pycnn.Sequential(pycnn.Flatten(), pycnn.Linear(64, 10, dtype=np.float64, rng=0))

    fitted = net()
    fitted.fit(
        x,
        y,
        1,
        16,
        optim.SGD(fitted.parameters(), lr=0.1),
        pycnn.CrossEntropyLoss(),
        shuffle=False,
        progress=False,
    )
    manual = net()
    opt = optim.SGD(manual.parameters(), lr=0.1)
    loss = pycnn.CrossEntropyLoss()
    for s in range(0, 48, 16):
        opt.zero_grad()
        loss(manual(x[s : s + 16]), y[s : s + 16])
        manual.backward(loss.backward())
        opt.step()
    for key, arr in manual.state_dict().items():
        np.testing.assert_array_equal(fitted.state_dict()[key], arr, err_msg=key)
