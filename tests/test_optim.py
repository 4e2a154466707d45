"""Optimizers and schedules: hand-computed steps, scalar re-statements of each rule,
torch.optim as an outside oracle, float32 preservation, errors."""

import math

import numpy as np
import pytest

from pycnn import optim


def _run(opt, params, grads_per_step):
    """Apply `opt` for each list of grads; params is a dict key -> array (in place)."""
    for grads in grads_per_step:
        opt.step((key, params[key], grads[key]) for key in params)
    return params


# --- hand-computed steps (numbers worked out on paper) -----------------------------------


def test_sgd_plain_momentum_and_nesterov_by_hand():
    grads = [{"w": np.array([0.5])}, {"w": np.array([-0.2])}]
    p = _run(optim.SGD(0.1), {"w": np.array([1.0])}, grads)["w"]
    np.testing.assert_allclose(p, [1 - 0.05 + 0.02])
    # momentum 0.9: buf 0.5 -> p 0.95; buf 0.9*0.5 - 0.2 = 0.25 -> p 0.925
    p = _run(optim.SGD(0.1, momentum=0.9), {"w": np.array([1.0])}, grads)["w"]
    np.testing.assert_allclose(p, [0.925])
    # Nesterov: update g + 0.9*buf: 0.95 -> p 0.905; -0.2 + 0.225 = 0.025 -> p 0.9025
    p = _run(optim.SGD(0.1, momentum=0.9, nesterov=True), {"w": np.array([1.0])}, grads)["w"]
    np.testing.assert_allclose(p, [0.9025])


def test_weight_decay_and_l1_by_hand():
    zero = [{"w": np.zeros(3)}]
    p = _run(optim.SGD(0.1, weight_decay=0.5), {"w": np.array([1.0, -2.0, 0.0])}, zero)["w"]
    np.testing.assert_allclose(p, [0.95, -1.9, 0.0])  # p - 0.1*0.5*p
    p = _run(optim.SGD(0.1, l1=0.01), {"w": np.array([1.0, -2.0, 0.0])}, zero)["w"]
    np.testing.assert_allclose(p, [0.999, -1.999, 0.0])  # p - 0.1*0.01*sign(p)


def test_adagrad_by_hand():
    grads = [{"w": np.array([0.5])}, {"w": np.array([-0.2])}]
    p = _run(optim.AdaGrad(0.1, eps=0.0), {"w": np.array([1.0])}, grads)["w"]
    # sum 0.25 -> p = 1 - 0.1*0.5/0.5 = 0.9; sum 0.29 -> p = 0.9 + 0.1*0.2/sqrt(0.29)
    np.testing.assert_allclose(p, [0.9 + 0.02 / math.sqrt(0.29)])


def test_rmsprop_by_hand():
    grads = [{"w": np.array([0.5])}]
    p = _run(optim.RMSProp(0.01, alpha=0.9, eps=0.0), {"w": np.array([1.0])}, grads)["w"]
    # square_avg = 0.1*0.25 = 0.025 -> p = 1 - 0.01*0.5/sqrt(0.025)
    np.testing.assert_allclose(p, [1 - 0.005 / math.sqrt(0.025)])


def test_adam_first_step_is_lr_times_sign():
    p = _run(
        optim.Adam(0.1, eps=0.0),
        {"w": np.array([1.0, 1.0, 1.0])},
        [{"w": np.array([0.5, -3.0, 1e-3])}],
    )["w"]
    np.testing.assert_allclose(p, [0.9, 1.1, 0.9])


# --- each rule re-stated on Python scalars ---------------------------------------------


def _scalar_rule(name, hp, p, grads):
    """Textbook update of one scalar parameter, written out independently."""
    lr, wd, l1 = hp["lr"], hp.get("weight_decay", 0.0), hp.get("l1", 0.0)
    s = {}
    for t, g in enumerate(grads, 1):
        g = g + wd * p + l1 * math.copysign(p != 0, p)
        if name == "SGD":
            mu, damp = hp.get("momentum", 0.0), hp.get("dampening", 0.0)
            if mu:
                s["b"] = g if t == 1 else mu * s["b"] + (1 - damp) * g
                g = g + mu * s["b"] if hp.get("nesterov") else s["b"]
            p -= lr * g
        elif name == "AdaGrad":
            s["sum"] = s.get("sum", 0.0) + g * g
            p -= lr * g / (math.sqrt(s["sum"]) + hp.get("eps", 1e-10))
        elif name == "RMSProp":
            a, eps, mu = hp.get("alpha", 0.99), hp.get("eps", 1e-8), hp.get("momentum", 0.0)
            s["sq"] = a * s.get("sq", 0.0) + (1 - a) * g * g
            s["ga"] = a * s.get("ga", 0.0) + (1 - a) * g
            var = s["sq"] - s["ga"] ** 2 if hp.get("centered") else s["sq"]
            avg = math.sqrt(var) + eps
            if mu:
                s["b"] = mu * s.get("b", 0.0) + g / avg
                p -= lr * s["b"]
            else:
                p -= lr * g / avg
        else:  # Adam
            (b1, b2), eps = hp.get("betas", (0.9, 0.999)), hp.get("eps", 1e-8)
            s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
            s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
            mhat, vhat = s["m"] / (1 - b1**t), s["v"] / (1 - b2**t)
            p -= lr * mhat / (math.sqrt(vhat) + eps)
    return p


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("AdaGrad", dict(lr=0.1)),
    ("AdaGrad", dict(lr=0.05, eps=1e-6, weight_decay=0.1)),
    ("RMSProp", dict(lr=0.01)),
    ("RMSProp", dict(lr=0.01, alpha=0.9, momentum=0.8, weight_decay=0.05)),
    ("RMSProp", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adam", dict(lr=1e-3)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]
L1_CONFIGS = [(name, dict(hp, l1=0.02)) for name, hp in CONFIGS[::3]]


def _grads(rng, shape, steps=6):
    return [rng.standard_normal(shape) for _ in range(steps)]


@pytest.mark.parametrize(
    "name, hp", CONFIGS + L1_CONFIGS, ids=IDS + [f"{i}-l1" for i in IDS[::3]]
)
def test_matches_scalar_restatement(name, hp, rng):
    p0 = rng.standard_normal(5)
    grads = _grads(rng, 5)
    got = _run(getattr(optim, name)(**hp), {"w": p0.copy()}, [{"w": g} for g in grads])["w"]
    want = [
        _scalar_rule(name, hp, float(p0[i]), [float(g[i]) for g in grads]) for i in range(5)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


TORCH_NAMES = {"SGD": "SGD", "AdaGrad": "Adagrad", "RMSProp": "RMSprop", "Adam": "Adam"}


@pytest.mark.parametrize("name, hp", CONFIGS, ids=IDS)
def test_matches_torch_optim(name, hp, dtype, rng):
    torch = pytest.importorskip("torch")
    shapes = {"0.weight": (4, 3), "0.bias": (4,)}
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = getattr(optim, name)(**hp)
    topt = getattr(torch.optim, TORCH_NAMES[name])(list(tparams.values()), **hp)
    for _ in range(6):
        grads = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
        opt.step((k, params[k], grads[k]) for k in params)
        for k, t in tparams.items():
            t.grad = torch.from_numpy(grads[k].copy())
        topt.step()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for k in params:
        assert params[k].dtype == dtype
        np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), err_msg=k, **tol)


@pytest.mark.parametrize("name, hp", CONFIGS, ids=IDS)
def test_float32_params_and_state_stay_float32(name, hp, rng):
    params = {"w": rng.standard_normal((3, 2)).astype(np.float32)}
    opt = getattr(optim, name)(**dict(hp, l1=1e-3))
    _run(opt, params, [{"w": rng.standard_normal((3, 2)).astype(np.float32)}] * 3)
    assert params["w"].dtype == np.float32
    for value in opt.state["w"].values():
        assert not isinstance(value, np.ndarray) or value.dtype == np.float32


def test_updates_in_place_per_key_and_skips_missing_grads():
    w, b = np.ones(2), np.ones(2)
    opt = optim.SGD(0.5, momentum=0.9)
    assert opt.step([("a", w, np.ones(2)), ("b", b, None)]) == 1
    np.testing.assert_array_equal(w, [0.5, 0.5])  # the caller's array itself
    np.testing.assert_array_equal(b, [1, 1])
    assert set(opt.state) == {"a"} and opt.state["a"]["step"] == 1
    grad = np.ones(2)
    optim.SGD(0.1, weight_decay=1.0, l1=1.0).step([("a", w, grad)])
    np.testing.assert_array_equal(grad, [1, 1])  # the layer's grad is not modified
    opt.zero_state()
    assert opt.state == {}


# --- schedules ---------------------------------------------------------------------------


def test_schedules_by_hand():
    opt = optim.SGD(1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    assert [sched.step() for _ in range(5)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    assert opt.lr == sched.get_last_lr() == 0.25
    opt = optim.Adam(0.1)
    sched = optim.ExponentialLR(opt, gamma=0.9)
    np.testing.assert_allclose([sched.step() for _ in range(3)], [0.09, 0.081, 0.0729])


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
    opt = optim.SGD(0.2)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    sched, tsched = make(opt), make_torch(torch, topt)
    for _ in range(10):
        topt.step()
        tsched.step()
        np.testing.assert_allclose(sched.step(), tsched.get_last_lr()[0], rtol=1e-12)


# --- errors and reprs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: optim.SGD(-0.1), ValueError, r"`lr` must be >= 0. Received: lr=-0.1"),
        (lambda: optim.SGD("0.1"), TypeError, r"`lr` must be a real number"),
        (
            lambda: optim.SGD(0.1, nesterov=True),
            ValueError,
            r"`nesterov` requires momentum > 0 and dampening = 0",
        ),
        (lambda: optim.SGD(0.1, momentum=-1), ValueError, r"`momentum` must be >= 0"),
        (
            lambda: optim.Adam(betas=(0.9, 1.0)),
            ValueError,
            r"`betas\[1\]` must be in \[0, 1\). Received: betas\[1\]=1.0",
        ),
        (lambda: optim.Adam(betas=0.9), ValueError, r"`betas` must be a pair of floats"),
        (lambda: optim.RMSProp(alpha=1.5), ValueError, r"`alpha` must be in \[0, 1\]"),
        (lambda: optim.AdaGrad(weight_decay=-1), ValueError, r"`weight_decay` must be >= 0"),
        (lambda: optim.SGD(0.1, l1=float("inf")), ValueError, r"`l1` must be finite"),
        (lambda: optim.StepLR(optim.SGD(0.1), 0), ValueError, r"`step_size` must be >= 1"),
        (
            lambda: optim.ExponentialLR("sgd", 0.9),
            TypeError,
            r"`optimizer` must be a pycnn.optim.Optimizer",
        ),
    ],
)
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_step_errors():
    opt = optim.SGD(0.1)
    with pytest.raises(ValueError, match=r"grad of 'w' must have the parameter's shape"):
        opt.step([("w", np.zeros(2), np.zeros(3))])
    with pytest.raises(
        TypeError,
        match=r"grad of 'w' must have the parameter's dtype "
        r"\(float32\). Received: grad.dtype=float64",
    ):
        opt.step([("w", np.zeros(2, np.float32), np.zeros(2))])


def test_reprs():
    assert repr(optim.SGD(0.1)) == "SGD(lr=0.1)"
    assert (
        repr(optim.SGD(0.1, momentum=0.9, nesterov=True))
        == "SGD(lr=0.1, momentum=0.9, nesterov=True)"
    )
    assert repr(optim.Adam()) == "Adam(lr=0.001)"
    assert (
        repr(optim.Adam(weight_decay=1e-4, l1=1e-5))
        == "Adam(lr=0.001, weight_decay=0.0001, l1=1e-05)"
    )
    assert repr(optim.StepLR(optim.SGD(1.0), 5)) == "StepLR(step_size=5)"
