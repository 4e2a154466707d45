"""Optimizers: torch.optim as the oracle for PyTorch's rules (50 steps, several shapes,
options and dtypes), the papers' rules written out on Python scalars for the others,
param groups, state_dict resumption, PyTorch-style loops and gradient accumulation,
deprecations, errors and the two schedules."""

import copy
import inspect
import math
import warnings

import numpy as np
import pytest

import pycnn
from pycnn import optim
from pycnn.layers.base import BaseLayer


class Holder(BaseLayer):
    """A layer that only holds parameters (arrays given, copied)."""

    def __init__(self, *arrays):
        super().__init__()
        for i, arr in enumerate(arrays):
            self.params[f"p{i}"] = np.array(arr, copy=True)


SHAPES = [(), (1,), (4, 3), (2, 3, 2, 2)]

# (pycnn class, torch class, options): every option torch has, in several combinations
TORCH_CASES = [
    ("SGD", "SGD", dict(lr=0.1)),
    ("SGD", "SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", "SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", "SGD", dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.01)),
    ("SGD", "SGD", dict(lr=0.05, momentum=0.8, maximize=True)),
    ("SGD", "SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adagrad", "Adagrad", dict(lr=0.1)),
    (
        "Adagrad",
        "Adagrad",
        dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.3, eps=1e-6, weight_decay=0.1),
    ),
    ("Adagrad", "Adagrad", dict(lr=0.05, maximize=True)),
    ("RMSprop", "RMSprop", dict(lr=0.01)),
    ("RMSprop", "RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.8, weight_decay=0.05)),
    ("RMSprop", "RMSprop", dict(lr=0.01, centered=True, momentum=0.5, eps=1e-6)),
    ("RMSprop", "RMSprop", dict(lr=0.01, alpha=0.3, centered=True, maximize=True)),
    ("Adadelta", "Adadelta", dict()),
    ("Adadelta", "Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True)),
    ("Adam", "Adam", dict(lr=1e-3)),
    ("Adam", "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", "Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("Adam", "Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", "AdamW", dict()),
    ("AdamW", "AdamW", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.2, amsgrad=True)),
    ("AdamW", "AdamW", dict(lr=0.01, maximize=True)),
    ("Adamax", "Adamax", dict()),
    ("Adamax", "Adamax", dict(lr=0.01, betas=(0.7, 0.9), eps=1e-4, weight_decay=0.1)),
    ("Adamax", "Adamax", dict(lr=0.01, maximize=True)),
    ("NAdam", "NAdam", dict()),
    ("NAdam", "NAdam", dict(lr=0.01, betas=(0.8, 0.99), momentum_decay=0.01, weight_decay=0.1)),
    ("NAdam", "NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", "NAdam", dict(lr=0.01, maximize=True)),
    ("RAdam", "RAdam", dict()),
    ("RAdam", "RAdam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("RAdam", "RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", "RAdam", dict(lr=0.01, maximize=True)),
]
TORCH_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(TORCH_CASES)]
TOL = {np.float32: 1e-6, np.float64: 1e-12}


@pytest.fixture
def torch_default_dtype(dtype):
    """torch keeps NAdam's running product in its default dtype: float64 for float64."""
    torch = pytest.importorskip("torch")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == np.float64 else torch.float32)
    yield torch
    torch.set_default_dtype(before)


def _compare(ours, theirs, dtype, err_msg=""):
    want = theirs.detach().numpy()
    assert ours.dtype == dtype and ours.shape == want.shape
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(
        ours, want, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=err_msg
    )


@pytest.mark.parametrize("name, torch_name, options", TORCH_CASES, ids=TORCH_IDS)
def test_equals_torch_over_50_steps(name, torch_name, options, dtype, torch_default_dtype, rng):
    torch = torch_default_dtype
    layer = Holder(*(rng.standard_normal(s).astype(dtype) for s in SHAPES))
    params = list(layer.parameters())
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = getattr(optim, name)(layer.parameters(), **options)
    topt = getattr(torch.optim, torch_name)(tparams, foreach=False, **options)
    for _ in range(50):
        for p, t in zip(params, tparams):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad = g
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    for p, t in zip(params, tparams):
        _compare(p.data, t, dtype, f"{name} {p.shape}")
        for value in opt.state[p].values():  # state stays in the parameter's dtype
            assert not isinstance(value, np.ndarray) or value.dtype == dtype


def test_param_groups_with_their_own_options_equal_torch(torch_default_dtype, rng):
    torch = torch_default_dtype
    first, second = Holder(rng.standard_normal((3, 2))), Holder(rng.standard_normal(4))
    opt = optim.SGD(
        [{"params": first.parameters()}, {"params": second.parameters(), "lr": 0.01}],
        lr=0.1,
        momentum=0.9,
    )
    ta = torch.tensor(first.params["p0"].copy(), requires_grad=True)
    tb = torch.tensor(second.params["p0"].copy(), requires_grad=True)
    topt = torch.optim.SGD(
        [{"params": [ta]}, {"params": [tb], "lr": 0.01}], lr=0.1, momentum=0.9, foreach=False
    )
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)
    for _ in range(20):
        for layer, t in ((first, ta), (second, tb)):
            g = rng.standard_normal(t.shape)
            layer._parameter("p0").grad = g
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    _compare(first.params["p0"], ta, np.float64)
    _compare(second.params["p0"], tb, np.float64)
    # a group added later, as for a new head
    third = Holder(np.ones(2))
    opt.add_param_group({"params": third.parameters(), "momentum": 0.0})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["momentum"] == 0.0
    third._parameter("p0").grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(third.params["p0"], [0.9, 0.9])


# --- the papers' optimizers, each rule written out on Python scalars ----------------------


def _sign(x):
    return (x > 0) - (x < 0)


def _rmsprop_graves(p, grads, lr, alpha=0.95, momentum=0.9, eps=1e-4, **_):
    n = gbar = delta = 0.0
    for g in grads:
        n = alpha * n + (1 - alpha) * g * g
        gbar = alpha * gbar + (1 - alpha) * g
        delta = momentum * delta - lr * g / math.sqrt(n - gbar * gbar + eps)
        p = p + delta
    return p


def _smorms3(p, grads, lr, eps=1e-16, **_):
    mem, g1, g2 = 1.0, 0.0, 0.0
    for g in grads:
        r = 1.0 / (mem + 1.0)
        g1 = (1 - r) * g1 + r * g
        g2 = (1 - r) * g2 + r * g * g
        x = g1 * g1 / (g2 + eps)
        p = p - g * min(lr, x) / (math.sqrt(g2) + eps)
        mem = 1.0 + mem * (1.0 - x)
    return p


def _eve(p, grads, lr, losses, betas=(0.9, 0.999, 0.999), eps=1e-8, thresholds=(0.1, 10.0)):
    b1, b2, b3 = betas
    k, kk = thresholds
    m = v = 0.0
    d, fhat = 1.0, None
    for t, (g, f) in enumerate(zip(grads, losses), 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat, vhat = m / (1 - b1**t), v / (1 - b2**t)
        if t == 1:
            fhat, d = f, 1.0
        else:
            if f >= fhat:
                delta, big_delta = k + 1, kk + 1
            else:
                delta, big_delta = 1 / (kk + 1), 1 / (k + 1)
            c = min(max(delta, f / fhat), big_delta)
            new = c * fhat
            r = abs(new - fhat) / min(new, fhat)
            d = b3 * d + (1 - b3) * r
            fhat = new
        p = p - lr * mhat / (d * math.sqrt(vhat) + eps)
    return p


def _adabound(p, grads, lr, betas=(0.9, 0.999), final_lr=0.1, gamma=1e-3, eps=1e-8, ams=False):
    b1, b2 = betas
    m = v = vmax = 0.0
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = max(vmax, v)
        denom = math.sqrt(vmax if ams else v) + eps
        step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        lower = final_lr * (1 - 1 / (gamma * t + 1))
        upper = final_lr * (1 + 1 / (gamma * t))
        p = p - min(max(step / denom, lower), upper) * m
    return p


PAPER_CASES = [
    ("RMSpropGraves", _rmsprop_graves, dict(lr=1e-2)),
    ("RMSpropGraves", _rmsprop_graves, dict(lr=3e-3, alpha=0.9, momentum=0.5, eps=1e-3)),
    ("SMORMS3", _smorms3, dict(lr=1e-2)),
    ("SMORMS3", _smorms3, dict(lr=0.1, eps=1e-8)),
    ("Eve", _eve, dict(lr=1e-2)),
    ("Eve", _eve, dict(lr=1e-2, betas=(0.8, 0.99, 0.9), eps=1e-6, thresholds=(0.2, 5.0))),
    ("AdaBound", _adabound, dict(lr=1e-2)),
    ("AdaBound", _adabound, dict(lr=1e-2, betas=(0.8, 0.99), final_lr=0.05, gamma=0.05)),
    ("AMSBound", lambda *a, **k: _adabound(*a, ams=True, **k), dict(lr=1e-2, gamma=0.05)),
]
PAPER_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(PAPER_CASES)]


@pytest.mark.parametrize("name, rule, options", PAPER_CASES, ids=PAPER_IDS)
@pytest.mark.parametrize("l1, weight_decay", [(0.0, 0.0), (0.02, 0.05)], ids=["plain", "reg"])
def test_paper_rule_step_by_step(name, rule, options, l1, weight_decay, rng):
    steps = 25
    p0 = rng.standard_normal(6)
    grads = rng.standard_normal((steps, 6))
    losses = rng.uniform(0.2, 2.0, steps)  # Eve's feedback: a noisy, positive loss
    layer = Holder(p0)
    (param,) = layer.parameters()
    opt = getattr(optim, name)(layer.parameters(), l1=l1, weight_decay=weight_decay, **options)
    for t in range(steps):
        param.grad = grads[t]
        if name == "Eve":
            opt.step(loss=float(losses[t]))
        else:
            opt.step()
    extra = {"losses": [float(f) for f in losses]} if name == "Eve" else {}
    for i in range(6):
        # the rule on one element; L2 and L1 enter the gradient at the parameter's value
        got = float(param.data[i])
        want = _rule_with_regularisation(
            rule, float(p0[i]), grads[:, i], l1, weight_decay, options, extra
        )
        assert math.isclose(got, want, rel_tol=1e-11, abs_tol=1e-13), (i, got, want)


def _rule_with_regularisation(rule, p, grads, l1, wd, options, extra):
    """Run `rule` one step at a time, adding ``wd*p + l1*sign(p)`` to each gradient. The
    rules keep state, so they are re-run from the start on the regularised gradients
    found so far (quadratic in steps, fine for 25)."""
    regularised = []
    q = p
    for g in grads:
        regularised.append(float(g) + wd * q + l1 * _sign(q))
        kwargs = dict(options, **extra)
        if "losses" in kwargs:
            kwargs["losses"] = kwargs["losses"][: len(regularised)]
        q = rule(p, regularised, **kwargs)
    return q


def _quadratic(rng, n=8):
    """f(w) = 0.5 * sum(a*(w - w_star)**2) + 0.1, a in [0.5, 4]: minimum 0.1 at w_star."""
    a = rng.uniform(0.5, 4.0, n)
    w_star = rng.standard_normal(n)
    return a, w_star


@pytest.mark.parametrize(
    "name, options, steps",
    [
        ("SGD", dict(lr=0.1, momentum=0.9), 300),
        ("Adagrad", dict(lr=0.5), 500),
        ("RMSprop", dict(lr=0.01, centered=True), 800),
        ("Adadelta", dict(lr=1.0, eps=1e-4), 1500),
        ("Adam", dict(lr=0.05), 800),
        ("AdamW", dict(lr=0.05, weight_decay=0.0), 800),
        ("Adamax", dict(lr=0.05), 800),
        ("NAdam", dict(lr=0.05), 800),
        ("RAdam", dict(lr=0.05), 800),
        ("RMSpropGraves", dict(lr=1e-2), 800),
        ("SMORMS3", dict(lr=0.05), 800),
        ("Eve", dict(lr=0.05), 1000),
        ("AdaBound", dict(lr=0.05, final_lr=0.1), 800),
        ("AMSBound", dict(lr=0.05, final_lr=0.1), 800),
    ],
)
def test_converges_on_a_quadratic(name, options, steps, rng):
    a, w_star = _quadratic(rng)
    layer = Holder(np.zeros_like(w_star))
    (w,) = layer.parameters()
    opt = getattr(optim, name)(layer.parameters(), **options)
    start = float(np.abs(w.data - w_star).max())
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * float(np.sum(a * (w.data - w_star) ** 2)) + 0.1
        w.grad = a * (w.data - w_star)
        opt.step(loss=loss) if name == "Eve" else opt.step()
    assert float(np.abs(w.data - w_star).max()) < 0.02 * start


def test_eve_takes_the_loss_by_keyword_or_closure(rng):
    grads = rng.standard_normal((5, 3))
    results = []
    for how in ("loss", "closure"):
        layer = Holder(np.ones(3))
        (p,) = layer.parameters()
        opt = optim.Eve(layer.parameters(), lr=0.1)
        for t in range(5):
            p.grad = grads[t]
            value = 1.0 / (t + 1)
            if how == "loss":
                assert opt.step(loss=value) == value
            else:
                assert opt.step(lambda v=value: v) == value
        results.append(p.data.copy())
    np.testing.assert_array_equal(results[0], results[1])
    with pytest.raises(TypeError, match=r"Eve.step needs the loss"):
        opt.step()
    with pytest.raises(ValueError, match=r"`loss` must be >= 0. Received: loss=-1.0"):
        opt.step(loss=-1.0)
    with pytest.raises(ValueError, match=r"`loss` must be finite"):
        opt.step(loss=float("nan"))


def test_eve_in_fit_gets_the_loss():
    x, y = pycnn.datasets.load_digits()
    model = _small_net(np.float32, rng=0)
    history = model.fit(
        x[:128],
        y[:128],
        epochs=3,
        batch_size=32,
        optimizer=optim.Eve(model.parameters(), lr=3e-3),
        loss=pycnn.CrossEntropyLoss(),
        rng=0,
        progress=False,
    )
    assert history["loss"][-1] < history["loss"][0]


# --- state_dict: training resumes bit for bit --------------------------------------------


def _small_net(dtype, rng=0):
    rng = np.random.default_rng(rng)
    return pycnn.Sequential(
        pycnn.Conv2d(1, 3, 3, padding=1, dtype=dtype, rng=rng),
        pycnn.ReLU(),
        pycnn.Flatten(),
        pycnn.Linear(3 * 8 * 8, 10, dtype=dtype, rng=rng),
    )


RESUME_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adadelta", dict()),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01)),
    ("RAdam", dict(lr=0.01)),
    ("RMSpropGraves", dict(lr=1e-3)),
    ("SMORMS3", dict(lr=1e-2)),
    ("Eve", dict(lr=1e-2)),
    ("AdaBound", dict(lr=1e-2)),
    ("AMSBound", dict(lr=1e-2)),
]


def _train(model, opt, x, y, steps, start=0):
    loss_fn = pycnn.CrossEntropyLoss()
    for s in range(start, start + steps):
        xb, yb = x[8 * s : 8 * s + 8], y[8 * s : 8 * s + 8]
        opt.zero_grad()
        loss = float(loss_fn(model(xb), yb))
        model.backward(loss_fn.backward())
        opt.step(loss=loss) if opt._takes_loss else opt.step()


@pytest.mark.parametrize("name, options", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_interrupted_training_resumes_bit_for_bit(name, options):
    x, y = pycnn.datasets.load_digits()
    x, y = x[:80].astype(np.float64), y[:80]
    make = getattr(optim, name)
    model = _small_net(np.float64)
    opt = make(model.parameters(), **options)
    _train(model, opt, x, y, 4)
    saved_params = {k: v.copy() for k, v in model.state_dict().items()}
    saved_opt = copy.deepcopy(opt.state_dict())
    _train(model, opt, x, y, 2, start=4)  # work after the save, thrown away
    del model, opt

    resumed = _small_net(np.float64, rng=5)
    for key, arr in resumed.state_dict().items():
        arr[...] = saved_params[key]
    ropt = make(resumed.parameters(), **options)
    ropt.load_state_dict(saved_opt)
    _train(resumed, ropt, x, y, 6, start=4)

    reference = _small_net(np.float64)  # the uninterrupted run
    ref_opt = make(reference.parameters(), **options)
    _train(reference, ref_opt, x, y, 10)
    for key, arr in reference.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[key], arr, err_msg=key)


def test_state_dict_layout_is_pytorchs(rng):
    torch = pytest.importorskip("torch")
    a, b = Holder(rng.standard_normal(3)), Holder(rng.standard_normal((2, 2)))
    opt = optim.Adam([{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.1}])
    ta = torch.zeros(3, requires_grad=True)
    tb = torch.zeros(2, 2, requires_grad=True)
    topt = torch.optim.Adam([{"params": [ta]}, {"params": [tb], "lr": 0.1}])
    for p, t in ((a._parameter("p0"), ta), (b._parameter("p0"), tb)):
        p.grad = np.ones(p.shape)
        t.grad = torch.ones(t.shape)
    opt.step()
    topt.step()
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert set(ours) == set(theirs) == {"state", "param_groups"}
    assert set(ours["state"]) == set(theirs["state"]) == {0, 1}
    assert set(ours["state"][1]) == set(theirs["state"][1])  # step, exp_avg, exp_avg_sq
    for g, tg in zip(ours["param_groups"], theirs["param_groups"]):
        assert g["params"] == tg["params"]
        assert g["lr"] == tg["lr"] and tuple(g["betas"]) == tuple(tg["betas"])


def test_load_state_dict_copies_and_checks(rng):
    layer = Holder(rng.standard_normal(3))
    (p,) = layer.parameters()
    opt = optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    p.grad = np.ones(3)
    opt.step()
    saved = opt.state_dict()
    other = optim.SGD(Holder(np.zeros(3)).parameters(), lr=0.5, momentum=0.9)
    other.load_state_dict(saved)
    assert other.param_groups[0]["lr"] == 0.1
    (q,) = other.param_groups[0]["params"]
    assert other.state[q]["momentum_buffer"] is not saved["state"][0]["momentum_buffer"]
    with pytest.raises(ValueError, match=r"different number of parameter groups"):
        optim.SGD(
            [{"params": [q]}, {"params": Holder(np.zeros(1)).parameters()}]
        ).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"parameter groups of sizes \[1\]"):
        optim.SGD(Holder(np.zeros(1), np.zeros(2)).parameters()).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"must have the parameter's shape \(2,\)"):
        optim.SGD(Holder(np.zeros(2)).parameters()).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"keys 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


# --- PyTorch-style loops ---------------------------------------------------------------------


def test_pytorch_style_loop_equals_torch(rng):
    torch = pytest.importorskip("torch")
    model = _small_net(np.float64)
    tmodel = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(3 * 8 * 8, 10),
    ).double()
    with torch.no_grad():
        for key, t in tmodel.state_dict().items():
            t.copy_(torch.from_numpy(model.state_dict()[key]))
    opt = optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.01, weight_decay=1e-3, foreach=False)
    loss_fn = pycnn.CrossEntropyLoss()
    x = rng.standard_normal((40, 1, 8, 8))
    y = rng.integers(0, 10, 40)
    for s in range(5):
        xb, yb = x[8 * s : 8 * s + 8], y[8 * s : 8 * s + 8]
        opt.zero_grad()
        loss_fn(model(xb), yb)
        model.backward(loss_fn.backward())
        opt.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(
            tmodel(torch.from_numpy(xb)), torch.from_numpy(yb)
        ).backward()
        topt.step()
    for key, t in tmodel.state_dict().items():
        _compare(model.state_dict()[key], t, np.float64, key)


@pytest.mark.parametrize("name, options", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", {})])
def test_gradient_accumulation_over_micro_batches_equals_the_full_batch(name, options, rng):
    x = rng.standard_normal((32, 1, 8, 8))
    y = rng.integers(0, 10, 32)
    full, accumulated = _small_net(np.float64), _small_net(np.float64)
    opt_full = getattr(optim, name)(full.parameters(), **options)
    opt_acc = getattr(optim, name)(accumulated.parameters(), **options)
    mean_loss = pycnn.CrossEntropyLoss()
    for _ in range(3):
        opt_full.zero_grad()
        mean_loss(full(x), y)
        full.backward(mean_loss.backward())
        opt_full.step()

        opt_acc.zero_grad()
        for k in range(4):  # 4 micro-batches of 8; mean loss, so each is scaled by 1/4
            part = slice(8 * k, 8 * k + 8)
            mean_loss(accumulated(x[part]), y[part])
            accumulated.backward(mean_loss.backward() / 4)
        opt_acc.step()
    for key, arr in full.state_dict().items():
        np.testing.assert_allclose(
            accumulated.state_dict()[key], arr, rtol=1e-12, atol=1e-14, err_msg=key
        )


def test_zero_grad_removes_or_zeroes():
    layer = Holder(np.ones(2), np.ones(3))
    p, q = layer.parameters()
    opt = optim.SGD(layer.parameters(), lr=0.1)
    p.grad = np.ones(2)
    q.grad = np.ones(3)
    kept = layer.grads["p0"]
    opt.zero_grad(set_to_none=False)
    assert layer.grads["p0"] is kept and not kept.any()
    opt.zero_grad()
    assert p.grad is None and q.grad is None
    opt.step()  # no gradients: nothing moves
    np.testing.assert_array_equal(p.data, [1, 1])


# --- kept forms and deprecations -------------------------------------------------------------


def test_update_with_dicts_is_the_bound_rule(rng):
    p0, grads = rng.standard_normal((2, 3)), rng.standard_normal((6, 2, 3))
    params = {"w": p0.copy()}
    opt = optim.Adam(lr=0.01, weight_decay=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for g in grads:
            assert opt.update(params, {"w": g, "unused": None}) == 1
    layer = Holder(p0)
    (p,) = layer.parameters()
    bound = optim.Adam(layer.parameters(), lr=0.01, weight_decay=0.1)
    for g in grads:
        p.grad = g
        bound.step()
    np.testing.assert_array_equal(params["w"], p.data)
    assert opt.state["w"]["step"] == 6


def test_old_names_warn_and_are_the_new_ones():
    with pytest.warns(DeprecationWarning, match=r"optim.AdaGrad is deprecated.*optim.Adagrad"):
        opt = optim.AdaGrad(lr=0.1)
    assert isinstance(opt, optim.Adagrad)
    with pytest.warns(DeprecationWarning, match=r"optim.RMSProp is deprecated.*optim.RMSprop"):
        opt = optim.RMSProp(0.01, centered=True)
    assert isinstance(opt, optim.RMSprop) and opt.param_groups[0]["centered"]


def test_unbound_step_with_triples_or_handles_warns_and_still_works(rng):
    p0, grads = rng.standard_normal(4), rng.standard_normal((3, 4))
    layer = Holder(p0)
    (p,) = layer.parameters()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        old = optim.SGD(0.1, momentum=0.9)  # building an unbound optimizer is silent
    for g in grads:
        p.grad = g
        with pytest.warns(DeprecationWarning, match=r"step\(parameters\) is deprecated"):
            assert old.step([("p0", p.data, p.grad)]) == 1
    triples = p.data.copy()
    layer2 = Holder(p0)
    (p2,) = layer2.parameters()
    old2 = optim.SGD(lr=0.1, momentum=0.9)
    for g in grads:
        p2.grad = g
        with pytest.warns(DeprecationWarning):
            old2.step(layer2.parameters())  # handles
    layer3 = Holder(p0)
    (p3,) = layer3.parameters()
    new = optim.SGD(layer3.parameters(), lr=0.1, momentum=0.9)
    for g in grads:
        p3.grad = g
        new.step()
    np.testing.assert_array_equal(triples, p3.data)
    np.testing.assert_array_equal(p2.data, p3.data)
    assert p2.grad is None  # cleared: the old loops never zeroed gradients
    with pytest.raises(TypeError, match=r"pass every other option by keyword"):
        optim.SGD(0.1, 0.9)


def test_an_old_loop_without_zero_grad_still_trains_as_before(rng):
    """``backward; opt.step(model.parameters())`` with no zero_grad: the deprecated form
    clears the gradients it used, so the loop equals the new one."""
    x, y = rng.standard_normal((24, 1, 8, 8)), rng.integers(0, 10, 24)
    old_model, new_model = _small_net(np.float64), _small_net(np.float64)
    old_opt = optim.Adam(lr=0.01)
    new_opt = optim.Adam(new_model.parameters(), lr=0.01)
    loss = pycnn.CrossEntropyLoss()
    for s in range(0, 24, 8):
        loss(old_model(x[s : s + 8]), y[s : s + 8])
        old_model.backward(loss.backward())
        with pytest.warns(DeprecationWarning):
            old_opt.step(old_model.parameters())
        new_opt.zero_grad()
        loss(new_model(x[s : s + 8]), y[s : s + 8])
        new_model.backward(loss.backward())
        new_opt.step()
    for key, arr in new_model.state_dict().items():
        np.testing.assert_array_equal(old_model.state_dict()[key], arr, err_msg=key)


def test_fit_binds_an_unbound_optimizer_silently_and_keeps_its_schedule():
    x, y = pycnn.datasets.load_digits()
    model = _small_net(np.float32)
    opt = optim.SGD(0.05, momentum=0.9)
    sched = optim.StepLR(opt, 1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(
            x[:64],
            y[:64],
            2,
            32,
            opt,
            pycnn.CrossEntropyLoss(),
            rng=0,
            progress=False,
            scheduler=sched,
        )
    group = opt.param_groups[0]
    assert group["params"] == list(model.parameters())
    assert group["lr"] == 0.05 * 0.25 and sched.get_last_lr() == [0.05 * 0.25]
    assert set(opt.state) == set(model.parameters())
    with pytest.raises(ValueError, match=r"bound to parameters of another model"):
        _small_net(np.float32).fit(
            x[:8], y[:8], 1, 8, opt, pycnn.CrossEntropyLoss(), progress=False
        )


# --- schedules ---------------------------------------------------------------------------


def test_schedules_set_every_group():
    a, b = Holder(np.zeros(1)), Holder(np.zeros(1))
    opt = optim.SGD([{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.1}], lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        sched.step()
        lrs.append(sched.get_last_lr())
    assert lrs == [[1.0, 0.1], [0.5, 0.05], [0.5, 0.05], [0.25, 0.025], [0.25, 0.025]]
    assert [g["initial_lr"] for g in opt.param_groups] == [1.0, 0.1]


@pytest.mark.parametrize(
    "make, make_torch",
    [
        (
            lambda o: optim.StepLR(o, 3, 0.5),
            lambda t, o: t.optim.lr_scheduler.StepLR(o, 3, 0.5),
        ),
        (
            lambda o: optim.ExponentialLR(o, 0.8),
            lambda t, o: t.optim.lr_scheduler.ExponentialLR(o, 0.8),
        ),
    ],
)
def test_schedules_match_torch(make, make_torch):
    torch = pytest.importorskip("torch")
    opt = optim.SGD(Holder(np.zeros(1)).parameters(), lr=0.2)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    sched, tsched = make(opt), make_torch(torch, topt)
    for _ in range(10):
        topt.step()
        tsched.step()
        sched.step()
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-12)


# --- errors and reprs ----------------------------------------------------------------------

_P = Holder(np.zeros(2))


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: optim.SGD(_P.parameters(), lr=-0.1), ValueError, r"`lr` must be >= 0"),
        (lambda: optim.SGD(_P.parameters(), lr="0.1"), TypeError, r"`lr` must be a real"),
        (
            lambda: optim.SGD(_P.parameters(), nesterov=True),
            ValueError,
            r"`nesterov` requires momentum > 0 and dampening = 0",
        ),
        (
            lambda: optim.SGD(_P.parameters(), momentum=-1),
            ValueError,
            r"`momentum` must be >= 0",
        ),
        (
            lambda: optim.Adam(_P.parameters(), betas=(0.9, 1.0)),
            ValueError,
            r"`betas\[1\]` must be in \[0, 1\). Received: betas\[1\]=1.0",
        ),
        (lambda: optim.Adam(betas=0.9), ValueError, r"`betas` must be a pair of floats"),
        (lambda: optim.Eve(betas=(0.9, 0.9)), ValueError, r"`betas` must be 3 values"),
        (lambda: optim.RMSprop(alpha=1.5), ValueError, r"`alpha` must be in \[0, 1\]"),
        (lambda: optim.Adagrad(weight_decay=-1), ValueError, r"`weight_decay` must be >= 0"),
        (lambda: optim.SGD(l1=float("inf")), ValueError, r"`l1` must be finite"),
        (lambda: optim.Eve(thresholds=(10, 1)), ValueError, r"with 0 <= k <= K"),
        (lambda: optim.AdaBound(gamma=0), ValueError, r"`gamma` must be > 0"),
        (lambda: optim.SGD([]), ValueError, r"`params` must not be empty"),
        (lambda: optim.SGD(np.zeros(2)), TypeError, r"iterable of Parameters"),
        (lambda: optim.SGD([np.zeros(2)]), TypeError, r"Received: params\[0\] of type ndarray"),
        (
            lambda: optim.SGD([{"params": _P.parameters()}, {"params": _P.parameters()}]),
            ValueError,
            r"more than one parameter group",
        ),
        (
            lambda: optim.SGD([{"params": _P.parameters(), "lr": -1}]),
            ValueError,
            r"`lr` must be >= 0",
        ),
        (lambda: optim.StepLR(optim.SGD(0.1), 0), ValueError, r"`step_size` must be >= 1"),
        (
            lambda: optim.ExponentialLR("sgd", 0.9),
            TypeError,
            r"`optimizer` must have `param_groups`",
        ),
    ],
)
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_step_errors():
    opt = optim.SGD(0.1)
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ValueError, match=r"grad of 'w' must have the parameter's shape"),
    ):
        opt.step([("w", np.zeros(2), np.zeros(3))])
    with pytest.raises(
        TypeError,
        match=r"grad of 'w' must have the parameter's dtype "
        r"\(float32\). Received: grad.dtype=float64",
    ):
        opt.update({"w": np.zeros(2, np.float32)}, {"w": np.zeros(2)})


def test_reprs():
    assert repr(optim.SGD(0.1)) == "SGD(lr=0.1)"
    assert (
        repr(optim.SGD(_P.parameters(), lr=0.1, momentum=0.9, nesterov=True))
        == "SGD(lr=0.1, momentum=0.9, nesterov=True)"
    )
    assert repr(optim.Adam()) == "Adam(lr=0.001)"
    assert repr(optim.AdamW(weight_decay=0.1)) == "AdamW(lr=0.001, weight_decay=0.1)"
    assert (
        repr(optim.Adam(weight_decay=1e-4, l1=1e-5))
        == "Adam(lr=0.001, weight_decay=0.0001, l1=1e-05)"
    )
    assert repr(optim.StepLR(optim.SGD(1.0), 5)) == "StepLR(step_size=5)"


ALL_NAMES = [name for name, _ in RESUME_CASES]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_float32_parameters_and_state_stay_float32(name, rng):
    layer = Holder(rng.standard_normal((3, 2)).astype(np.float32), np.float32(0.5))
    opt = getattr(optim, name)(layer.parameters(), weight_decay=1e-3, l1=1e-3)
    for t in range(3):
        for p in layer.parameters():
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        opt.step(loss=1.0 / (t + 1)) if name == "Eve" else opt.step()
    for p in layer.parameters():
        assert p.data.dtype == np.float32 and p.data.shape == p.shape
        for key, value in opt.state[p].items():
            assert not isinstance(value, np.ndarray) or value.dtype == np.float32, key
            assert not isinstance(value, np.generic), key  # no NumPy scalars in the state


@pytest.mark.parametrize(
    "name",
    ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "RAdam"],
)
def test_every_torch_option_with_its_default(name):
    """The constructor has torch's options, in torch's order, with torch's defaults
    (less foreach/fused/capturable/differentiable, which have no meaning here; plus l1)."""
    torch = pytest.importorskip("torch")
    skip = {"self", "foreach", "fused", "capturable", "differentiable"}

    def options(cls):
        return [
            (p.name, p.default)
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name not in skip
        ]

    theirs = options(getattr(torch.optim, name))
    ours = options(getattr(optim, name))
    assert ours[-1] == ("l1", 0.0)
    assert [n for n, _ in ours[:-1]] == [n for n, _ in theirs]
    for (n, mine), (_, want) in zip(ours[1:-1], theirs[1:]):  # params has no default here
        assert mine == want, n


def test_a_custom_optimizer_on_the_base_class(rng):
    """A PyTorch-style subclass: options through `defaults`, the rule in `_update` (or
    in its own `step`, over `param_groups`, writing ``p.data`` in place)."""

    class SignSGD(optim.Optimizer):
        def __init__(self, params, lr=0.01):
            super().__init__(params, dict(lr=lr))

        def _update(self, param, grad, state, group):
            param -= group["lr"] * np.sign(grad)

    class OwnStep(optim.Optimizer):
        def __init__(self, params, lr=0.01):
            super().__init__(params, dict(lr=lr))

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    p.data[...] -= group["lr"] * np.sign(p.grad)

    p0, g = rng.standard_normal(4), rng.standard_normal(4)
    for cls in (SignSGD, OwnStep):
        layer = Holder(p0)
        (p,) = layer.parameters()
        opt = cls(layer.parameters(), lr=0.5)
        p.grad = g
        opt.step()
        np.testing.assert_array_equal(p.data, p0 - 0.5 * np.sign(g))
        assert opt.param_groups[0]["lr"] == 0.5 and opt.defaults == {"lr": 0.5}


@pytest.mark.parametrize("name, torch_name, options", TORCH_CASES, ids=TORCH_IDS)
def test_step_reads_the_gradients_without_writing_them(name, torch_name, options, rng):
    # optimizers work on the caller's gradient arrays without copying them first: every
    # option (maximize, weight decay, nesterov) must make a new array instead
    layer = Holder(*(rng.standard_normal(s) for s in SHAPES))
    params = list(layer.parameters())
    opt = getattr(optim, name)(layer.parameters(), **options)
    for _ in range(3):
        grads = [rng.standard_normal(p.shape) for p in params]
        for p, g in zip(params, grads):
            p.grad = g
        before = [p.grad.copy() for p in params]
        opt.step()
        for p, b in zip(params, before):
            np.testing.assert_array_equal(p.grad, b)
