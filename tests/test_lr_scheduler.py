"""Learning-rate schedules (pycnn/lr_scheduler.py) against torch.optim.lr_scheduler.

Each schedule runs side by side with PyTorch's over 50+ steps, on an optimizer with two
parameter groups of different rates, and every group's rate (and, for OneCycleLR, its
momentum or first beta) must agree to 1e-12 relative after every step. Then: the
state_dict round trip (stop, save, rebuild, load, continue == never stopped), resuming
with ``last_epoch``, and bad arguments.

The optimizers are pycnn.optim's SGD and Adam (`make_optimizer`); `StandInOptimizer`, an
object with just the attributes the schedules use, builds optimizers without momentum
or betas for the error tests.
"""

import math

import pytest

import pycnn
from pycnn import lr_scheduler as S

LRS = (0.1, 0.03)  # the two groups' rates
REL = 1e-12


class StandInOptimizer:
    """`param_groups` (a list of dicts), `defaults`, `state_dict`/`load_state_dict`:
    all a schedule touches."""

    def __init__(self, groups, **defaults):
        self.defaults = dict(defaults)
        self.param_groups = [{**self.defaults, **group} for group in groups]

    def state_dict(self):
        return {
            "param_groups": [
                {k: v for k, v in group.items() if k != "params"} for group in self.param_groups
            ]
        }

    def load_state_dict(self, state):
        for group, saved in zip(self.param_groups, state["param_groups"], strict=True):
            group.update(saved)


def make_optimizer(kind, lrs=LRS):
    """A pycnn optimizer with one parameter group per rate in `lrs`: SGD with momentum
    0.9 ("sgd") or Adam ("adam")."""
    layers = [pycnn.Linear(2, 2) for _ in lrs]
    groups = [{"params": list(lay.parameters()), "lr": lr} for lay, lr in zip(layers, lrs)]
    if kind == "sgd":
        return pycnn.optim.SGD(groups, lr=lrs[0], momentum=0.9)
    return pycnn.optim.Adam(groups, lr=lrs[0], betas=(0.9, 0.999))


def torch_optimizer(torch, kind, lrs=LRS):
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)
    return torch.optim.Adam(groups, lr=lrs[0], betas=(0.9, 0.999))


def _momenta(optimizer):
    return [
        (g["betas"][0], g["betas"][1]) if "betas" in g else (g["momentum"],)
        for g in optimizer.param_groups
    ]


def _record(scheduler, optimizer):
    return {
        "last_lr": list(scheduler.get_last_lr()),
        "lr": [g["lr"] for g in optimizer.param_groups],
        "momentum": _momenta(optimizer),
        "epoch": scheduler.last_epoch,
    }


def _assert_same(got, want, where):
    assert got["epoch"] == want["epoch"], where
    for key in ("last_lr", "lr"):
        assert got[key] == pytest.approx(want[key], rel=REL, abs=0), f"{key} at {where}"
    for g, w in zip(got["momentum"], want["momentum"], strict=True):
        assert g == pytest.approx(w, rel=REL, abs=0), f"momentum at {where}"


# name: (builder taking the module (pycnn's or torch's) and the optimizer, optimizer kind,
#        steps, external change of the rates after step 20 or None)
CASES = {
    "step-3-half": (lambda m, o: m.StepLR(o, 3, gamma=0.5), "sgd", 55, None),
    "step-1-default": (lambda m, o: m.StepLR(o, step_size=1), "adam", 50, None),
    "step-7-external": (lambda m, o: m.StepLR(o, 7, 0.9), "sgd", 60, 0.5),
    "multistep": (lambda m, o: m.MultiStepLR(o, [5, 10, 10, 30], 0.5), "sgd", 55, None),
    "multistep-unsorted": (lambda m, o: m.MultiStepLR(o, (40, 4), gamma=0.3), "adam", 50, None),
    "exponential": (lambda m, o: m.ExponentialLR(o, 0.95), "sgd", 60, None),
    "exponential-external": (lambda m, o: m.ExponentialLR(o, gamma=0.8), "adam", 50, 3.0),
    "cosine-10": (lambda m, o: m.CosineAnnealingLR(o, 10), "sgd", 65, None),
    "cosine-7-eta": (lambda m, o: m.CosineAnnealingLR(o, 7, eta_min=1e-3), "adam", 60, None),
    "cosine-50-external": (lambda m, o: m.CosineAnnealingLR(o, T_max=50), "sgd", 55, 0.25),
    "warm-restarts": (lambda m, o: m.CosineAnnealingWarmRestarts(o, 5), "sgd", 55, None),
    "warm-restarts-mult": (
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=1e-3),
        "adam",
        60,
        None,
    ),
    "linear-default": (lambda m, o: m.LinearLR(o), "sgd", 50, None),
    "linear-up": (lambda m, o: m.LinearLR(o, 0.1, 1.0, total_iters=10), "sgd", 50, 0.5),
    "linear-to-zero": (
        lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=20),
        "adam",
        50,
        None,
    ),
    "linear-down": (lambda m, o: m.LinearLR(o, 0.5, 0.25, 30), "sgd", 50, None),
    "onecycle": (
        lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.1], total_steps=60),
        "sgd",
        60,
        None,
    ),
    "onecycle-linear-adam": (
        lambda m, o: m.OneCycleLR(
            o, 0.5, epochs=6, steps_per_epoch=10, anneal_strategy="linear", pct_start=0.4
        ),
        "adam",
        60,
        None,
    ),
    "onecycle-three-phase": (
        lambda m, o: m.OneCycleLR(
            o,
            0.2,
            total_steps=80,
            pct_start=0.25,
            div_factor=10.0,
            final_div_factor=100.0,
            three_phase=True,
        ),
        "sgd",
        80,
        None,
    ),
    "onecycle-momentum-lists": (
        lambda m, o: m.OneCycleLR(
            o, [0.3, 0.6], 55, base_momentum=[0.8, 0.7], max_momentum=[0.9, 0.95]
        ),
        "adam",
        55,
        None,
    ),
    "onecycle-no-momentum": (
        lambda m, o: m.OneCycleLR(o, 1.0, total_steps=50, cycle_momentum=False),
        "sgd",
        50,
        None,
    ),
    "lambda": (lambda m, o: m.LambdaLR(o, lambda e: 0.9**e), "sgd", 50, None),
    "lambda-per-group": (
        lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: e % 3 + 1]),
        "adam",
        50,
        2.0,
    ),
}


def _run(module, build, optimizer, steps, external, optimizer_step=None):
    scheduler = build(module, optimizer)
    records = [_record(scheduler, optimizer)]
    for i in range(steps):
        if optimizer_step is not None:
            optimizer_step()
        scheduler.step()
        if external is not None and i == 20:  # a change of the rates from outside
            for group in optimizer.param_groups:
                group["lr"] *= external
        records.append(_record(scheduler, optimizer))
    return records


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_schedule_equals_torch(case):
    torch = pytest.importorskip("torch")
    build, kind, steps, external = case
    topt = torch_optimizer(torch, kind)
    want = _run(torch.optim.lr_scheduler, build, topt, steps, external, lambda: topt.step())
    opt = make_optimizer(kind)
    got = _run(S, build, opt, steps, external)
    assert len(got) == steps + 1
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        _assert_same(g, w, f"step {i}")
    for group, tgroup in zip(opt.param_groups, topt.param_groups, strict=True):
        for key in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"):
            assert (key in group) == (key in tgroup), key
            if key in group:
                assert group[key] == pytest.approx(tgroup[key], rel=REL, abs=0), key


def test_onecycle_cycles_the_rate_and_momentum_inversely():
    """The rule written out: two-phase cosine 1cycle, momentum mirrors the rate."""
    opt = make_optimizer("sgd", [0.4])
    sched = S.OneCycleLR(opt, max_lr=0.4, total_steps=100, pct_start=0.3)
    lrs, moms = [], []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        sched.step()
    assert lrs[0] == pytest.approx(0.4 / 25) and moms[0] == pytest.approx(0.95)
    peak = lrs.index(max(lrs))
    assert peak == 29 and lrs[29] == pytest.approx(0.4) and moms[29] == pytest.approx(0.85)
    assert lrs[99] == pytest.approx(0.4 / 25 / 1e4) and moms[99] == pytest.approx(0.95)
    pct = (60 - 29) / (99 - 29)
    assert lrs[60] == pytest.approx(
        0.4 / 25e4 + (0.4 - 0.4 / 25e4) * (1 + math.cos(math.pi * pct)) / 2
    )
    with pytest.raises(ValueError, match="total_steps=100"):
        sched.step()  # the 101st step: past the cycle


# --- ReduceLROnPlateau --------------------------------------------------------------

# a loss that falls, then plateaus with tiny improvements and noise, then falls again
METRICS = (
    [10.0 - i for i in range(8)]
    + [3.0, 3.0, 2.9999, 3.1, 3.0, 3.0, 2.99999, 3.0, 3.2, 3.0] * 3
    + [2.0, 1.5, 1.5, 1.5, 1.5, 1.4, 1.4, 1.4, 1.4, 1.4, 1.4, 1.4, 1.4, 1.4, 1.4]
)


def _loss(m):
    return m


def _accuracy(m):  # rises while the loss falls: for mode="max"
    return 20.0 - m


PLATEAU_CASES = {
    "default": ({}, _loss),
    "min-rel-patience-2": (dict(patience=2, factor=0.5), _loss),
    "min-abs-cooldown": (
        dict(patience=1, threshold=0.05, threshold_mode="abs", cooldown=3),
        _loss,
    ),
    "max-rel": (dict(mode="max", patience=2, factor=0.3), _accuracy),
    "max-abs-min-lr-list": (
        dict(mode="max", threshold=0.5, threshold_mode="abs", patience=0, min_lr=[0.01, 0.02]),
        _accuracy,
    ),
    "min-lr-floor-eps": (dict(patience=0, factor=0.5, min_lr=0.02, eps=1e-3), _loss),
    # group 1's first reduction (0.03 -> 0.015) equals eps: skipped, as in torch
    "eps-equal-to-the-reduction": (dict(patience=0, factor=0.5, eps=0.015), _loss),
    "patience-0-threshold-0": (dict(patience=0, threshold=0.0, factor=0.9), _loss),
    "negative-metric-abs": (
        dict(patience=3, threshold=1e-3, threshold_mode="abs"),
        lambda m: m - 12.0,
    ),
}


@pytest.mark.parametrize("case", PLATEAU_CASES.values(), ids=PLATEAU_CASES.keys())
def test_reduce_lr_on_plateau_equals_torch(case):
    torch = pytest.importorskip("torch")
    kwargs, metric_of = case
    assert len(METRICS) >= 50
    topt = torch_optimizer(torch, "sgd")
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    opt = make_optimizer("sgd")
    ours = S.ReduceLROnPlateau(opt, **kwargs)
    assert ours.get_last_lr() == list(LRS)
    changes = 0
    for i, loss in enumerate(METRICS):
        topt.step()
        theirs.step(metric_of(loss))
        before = ours.get_last_lr()
        ours.step(metric_of(loss))
        changes += ours.get_last_lr() != before
        _assert_same(_record(ours, opt), _record(theirs, topt), f"step {i}")
        assert ours.num_bad_epochs == theirs.num_bad_epochs
        assert ours.cooldown_counter == theirs.cooldown_counter
        assert ours.best == theirs.best
    assert changes >= 1  # the sequence does plateau


def test_reduce_lr_on_plateau_rule_written_out():
    """patience=2: the third bad epoch in a row reduces; cooldown=1 skips one epoch."""
    opt = make_optimizer("sgd", [1.0])
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, threshold=0.0)
    seen = []
    for metric in [5, 4, 4, 4, 4, 4, 4, 4, 3]:
        sched.step(metric)
        seen.append(opt.param_groups[0]["lr"])
    # bad epochs after the best 4: 3rd at index 4 -> reduce; index 5 cooldown; then the
    # count restarts: indices 6, 7 are bad (2 <= patience), 3 improves
    assert seen == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]


def test_reduce_lr_on_plateau_takes_numpy_metrics():
    np = pytest.importorskip("numpy")
    opt = make_optimizer("sgd")
    sched = S.ReduceLROnPlateau(opt, patience=0)
    sched.step(np.float32(2.0))
    sched.step(np.array(3.0))
    assert sched.get_last_lr() == pytest.approx([lr * 0.1 for lr in LRS])


# --- state_dict round trip, resuming ----------------------------------------------------


class Warmup:
    """A callable object: LambdaLR saves its __dict__ (as PyTorch does)."""

    def __init__(self, length):
        self.length = length

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.length)


ROUND_TRIP = {
    **{name: (build, kind, steps) for name, (build, kind, steps, _) in CASES.items()},
    "lambda-object": (lambda m, o: m.LambdaLR(o, Warmup(10)), "sgd", 50),
}


@pytest.mark.parametrize("stop", [1, 17])
@pytest.mark.parametrize("case", ROUND_TRIP.values(), ids=ROUND_TRIP.keys())
def test_state_dict_round_trip_continues_the_sequence(case, stop):
    build, kind, steps = case
    opt = make_optimizer(kind)
    straight = _run(S, build, opt, steps, None)

    opt = make_optimizer(kind)
    sched = build(S, opt)
    for _ in range(stop):
        sched.step()
    opt_state, state = opt.state_dict(), sched.state_dict()
    sched.step()  # later steps must not change the saved state
    assert sched.state_dict() != state

    new_opt = make_optimizer(kind)
    new_sched = build(S, new_opt)  # as in PyTorch: build both, then load both
    new_opt.load_state_dict(opt_state)
    new_sched.load_state_dict(state)
    resumed = [_record(new_sched, new_opt)]
    for _ in range(steps - stop):
        new_sched.step()
        resumed.append(_record(new_sched, new_opt))
    assert resumed == straight[stop:]


@pytest.mark.parametrize("stop", [3, 20, 40])
def test_reduce_lr_on_plateau_state_dict_round_trip(stop):
    kwargs = dict(patience=1, factor=0.5, cooldown=2, min_lr=[0.001, 0.002])
    opt = make_optimizer("sgd")
    sched = S.ReduceLROnPlateau(opt, **kwargs)
    straight = []
    for m in METRICS:
        sched.step(m)
        straight.append(_record(sched, opt))
    opt = make_optimizer("sgd")
    sched = S.ReduceLROnPlateau(opt, **kwargs)
    for m in METRICS[:stop]:
        sched.step(m)
    opt_state, state = opt.state_dict(), sched.state_dict()
    new_opt = make_optimizer("sgd")
    new_sched = S.ReduceLROnPlateau(new_opt, **kwargs)
    new_opt.load_state_dict(opt_state)
    new_sched.load_state_dict(state)
    resumed = []
    for m in METRICS[stop:]:
        new_sched.step(m)
        resumed.append(_record(new_sched, new_opt))
    assert resumed == straight[stop:]
    assert len({tuple(r["lr"]) for r in straight}) > 2  # reduced more than once


def test_lambda_state_dict_saves_callable_objects_not_functions():
    opt = make_optimizer("sgd")
    sched = S.LambdaLR(opt, [Warmup(4), lambda e: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"length": 4}, None]
    other = S.LambdaLR(make_optimizer("sgd"), [Warmup(99), lambda e: 2.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].length == 4
    assert "lr_lambdas" in state  # the caller's dict is left whole


def test_load_state_dict_refuses_another_schedules_state():
    state = S.StepLR(make_optimizer("sgd"), 3).state_dict()
    with pytest.raises(ValueError, match=r"`state_dict` is not the state of a ExponentialLR"):
        S.ExponentialLR(make_optimizer("sgd"), 0.9).load_state_dict(state)
    with pytest.raises(TypeError, match="`state_dict` must be a dict"):
        S.StepLR(make_optimizer("sgd"), 3).load_state_dict([1, 2])


RESUMABLE = {
    "step": lambda m, o, e: m.StepLR(o, 4, 0.5, last_epoch=e),
    "multistep": lambda m, o, e: m.MultiStepLR(o, [6, 12], last_epoch=e),
    "exponential": lambda m, o, e: m.ExponentialLR(o, 0.9, last_epoch=e),
    "cosine": lambda m, o, e: m.CosineAnnealingLR(o, 9, 1e-3, last_epoch=e),
    "warm-restarts": lambda m, o, e: m.CosineAnnealingWarmRestarts(o, 4, 2, last_epoch=e),
    "linear": lambda m, o, e: m.LinearLR(o, 0.2, total_iters=10, last_epoch=e),
    "lambda": lambda m, o, e: m.LambdaLR(o, lambda k: 0.5 ** (k / 5), last_epoch=e),
}


@pytest.mark.parametrize("last_epoch", [0, 5, 8])
@pytest.mark.parametrize("build", RESUMABLE.values(), ids=RESUMABLE.keys())
def test_last_epoch_resumes_like_torch(build, last_epoch):
    torch = pytest.importorskip("torch")
    topt, opt = torch_optimizer(torch, "sgd"), make_optimizer("sgd")
    for optimizer in (topt, opt):
        for group, initial in zip(optimizer.param_groups, (0.2, 0.05), strict=True):
            group["initial_lr"] = initial
    want = _run(
        torch.optim.lr_scheduler,
        lambda m, o: build(m, o, last_epoch),
        topt,
        50,
        None,
        lambda: topt.step(),
    )
    got = _run(S, lambda m, o: build(m, o, last_epoch), opt, 50, None)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        _assert_same(g, w, f"step {i}")


def test_last_epoch_needs_initial_lr():
    with pytest.raises(ValueError, match=r"`last_epoch` >= 0 resumes.*param_groups\[0\]"):
        S.StepLR(make_optimizer("sgd"), 3, last_epoch=4)
    with pytest.raises(ValueError, match=r"`last_epoch` >= 0 resumes.*'max_lr'"):
        S.OneCycleLR(make_optimizer("sgd"), 1.0, 10, last_epoch=3)


def test_construction_sets_initial_lr_and_keeps_an_existing_one():
    opt = make_optimizer("sgd")
    S.ExponentialLR(opt, 0.5)
    assert [g["initial_lr"] for g in opt.param_groups] == list(LRS)
    opt.param_groups[0]["lr"] = 7.0
    sched = S.StepLR(opt, 2)  # a second schedule keeps the first one's initial_lr
    assert sched.base_lrs == list(LRS)
    assert sched.get_last_lr() == [7.0, LRS[1]]


def test_get_last_lr_is_a_copy():
    opt = make_optimizer("sgd")
    sched = S.StepLR(opt, 2)
    sched.get_last_lr()[0] = 99.0
    assert sched.get_last_lr() == list(LRS)


# --- bad arguments ----------------------------------------------------------------------

BAD = [
    (lambda o: S.StepLR(o, 0), ValueError, r"`step_size` must be >= 1\. Received: step_size=0"),
    (lambda o: S.StepLR(o, 2.5), TypeError, r"`step_size` must be an int"),
    (lambda o: S.StepLR(o, 2, gamma=-0.1), ValueError, r"`gamma` must be >= 0"),
    (lambda o: S.StepLR(o, 2, gamma="0.1"), TypeError, r"`gamma` must be a real number"),
    (lambda o: S.StepLR(o, 2, last_epoch=-2), ValueError, r"`last_epoch` must be >= -1"),
    (lambda o: S.StepLR(o, 2, last_epoch=1.0), TypeError, r"`last_epoch` must be an int"),
    (lambda o: S.MultiStepLR(o, [2, 3.5]), TypeError, r"`milestones` must be an iterable"),
    (lambda o: S.MultiStepLR(o, 5), TypeError, r"`milestones` must be an iterable"),
    (lambda o: S.ExponentialLR(o, float("nan")), ValueError, r"`gamma` must be finite"),
    (lambda o: S.CosineAnnealingLR(o, 0), ValueError, r"`T_max` must be >= 1"),
    (lambda o: S.CosineAnnealingLR(o, 10, eta_min=-1), ValueError, r"`eta_min` must be >= 0"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, 0), ValueError, r"`T_0` must be >= 1"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, 5, 1.5), TypeError, r"`T_mult` must be an int"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, 5, 0), ValueError, r"`T_mult` must be >= 1"),
    (
        lambda o: S.LinearLR(o, start_factor=0),
        ValueError,
        r"`start_factor` must be in \(0, 1\]",
    ),
    (lambda o: S.LinearLR(o, end_factor=1.5), ValueError, r"`end_factor` must be in \[0, 1\]"),
    (lambda o: S.LinearLR(o, total_iters=0), ValueError, r"`total_iters` must be >= 1"),
    (lambda o: S.LambdaLR(o, 0.5), TypeError, r"`lr_lambda` must be callable"),
    (
        lambda o: S.LambdaLR(o, [lambda e: 1]),
        ValueError,
        r"`lr_lambda` must be .* per parameter",
    ),
    (lambda o: S.OneCycleLR(o, 1.0), ValueError, r"Give `total_steps`, or both `epochs`"),
    (lambda o: S.OneCycleLR(o, 1.0, 0), ValueError, r"`total_steps` must be >= 1"),
    (
        lambda o: S.OneCycleLR(o, 1.0, epochs=2, steps_per_epoch=0),
        ValueError,
        r"`steps_per_epoch`",
    ),
    (lambda o: S.OneCycleLR(o, [1.0], 10), ValueError, r"`max_lr` must have one value per"),
    (lambda o: S.OneCycleLR(o, -1.0, 10), ValueError, r"`max_lr` must be >= 0"),
    (lambda o: S.OneCycleLR(o, 1.0, 10, pct_start=1.5), ValueError, r"`pct_start` must be in"),
    (
        lambda o: S.OneCycleLR(o, 1.0, 10, pct_start=0.1),
        ValueError,
        r"`pct_start` leaves a phase",
    ),
    (
        lambda o: S.OneCycleLR(o, 1.0, 10, pct_start=1.0),
        ValueError,
        r"`pct_start` leaves a phase",
    ),
    (
        lambda o: S.OneCycleLR(o, 1.0, 10, anneal_strategy="exp"),
        ValueError,
        r"`anneal_strategy` must be one of 'cos', 'linear'\. Received: anneal_strategy='exp'",
    ),
    (lambda o: S.OneCycleLR(o, 1.0, 10, cycle_momentum=1), TypeError, r"`cycle_momentum` must"),
    (lambda o: S.OneCycleLR(o, 1.0, 10, three_phase="yes"), TypeError, r"`three_phase` must"),
    (lambda o: S.OneCycleLR(o, 1.0, 10, div_factor=0), ValueError, r"`div_factor` must be > 0"),
    (
        lambda o: S.OneCycleLR(o, 1.0, 10, final_div_factor=-1.0),
        ValueError,
        r"`final_div_factor`",
    ),
    (lambda o: S.OneCycleLR(o, 1.0, 10, base_momentum=1.5), ValueError, r"`base_momentum`"),
    (
        lambda o: S.ReduceLROnPlateau(o, mode="avg"),
        ValueError,
        r"`mode` must be one of 'min', 'max'",
    ),
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), ValueError, r"`factor` must be in \[0, 1\)"),
    (lambda o: S.ReduceLROnPlateau(o, patience=-1), ValueError, r"`patience` must be >= 0"),
    (lambda o: S.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, r"`threshold_mode`"),
    (lambda o: S.ReduceLROnPlateau(o, cooldown=0.5), TypeError, r"`cooldown` must be an int"),
    (
        lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1]),
        ValueError,
        r"`min_lr` must have one value",
    ),
    (lambda o: S.ReduceLROnPlateau(o, eps=-1e-8), ValueError, r"`eps` must be >= 0"),
    (
        lambda o: S.ReduceLROnPlateau(o).step("low"),
        TypeError,
        r"`metrics` must be a real number",
    ),
    (
        lambda o: S.ReduceLROnPlateau(o).step(None),
        TypeError,
        r"`metrics` must be a real number",
    ),
]


@pytest.mark.parametrize("make, exc, match", BAD)
def test_bad_arguments_name_the_argument(make, exc, match):
    with pytest.raises(exc, match=match):
        make(make_optimizer("sgd"))


def test_bad_optimizers():
    with pytest.raises(TypeError, match=r"`optimizer` must have `param_groups`"):
        S.StepLR(object(), 2)
    with pytest.raises(TypeError, match=r"`optimizer` must have `param_groups`"):
        S.ReduceLROnPlateau([{"lr": 0.1}])
    opt = make_optimizer("sgd")
    opt.param_groups[1]["lr"] = "0.1"
    with pytest.raises(
        TypeError, match=r"`optimizer.param_groups\[1\]\['lr'\]` must be a real"
    ):
        S.ExponentialLR(opt, 0.9)
    no_momentum = StandInOptimizer([{"params": [], "lr": 0.1}], lr=0.1)
    with pytest.raises(ValueError, match=r"`cycle_momentum=True` needs an optimizer"):
        S.OneCycleLR(no_momentum, 1.0, 10)
    S.OneCycleLR(no_momentum, 1.0, 10, cycle_momentum=False)  # fine without momentum


def test_public_names():
    import pycnn

    assert pycnn.lr_scheduler is S and "lr_scheduler" in pycnn.__all__
    for name in S.__all__:
        assert isinstance(getattr(S, name), type) and issubclass(
            getattr(S, name), S.LRScheduler
        )
