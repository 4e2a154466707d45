"""Learning-rate schedules over an optimizer's parameter groups, as in PyTorch.

Every schedule reads and writes ``group["lr"]`` in ``optimizer.param_groups`` (a list of
dicts, one per parameter group), so groups with different learning rates follow the
schedule side by side::

    optimizer = pycnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = pycnn.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(100):
        train_one_epoch(...)            # optimizer.step() after each batch
        scheduler.step()                # once per epoch, after the optimizer's steps

The learning rates equal ``torch.optim.lr_scheduler``'s step for step, including the
schedules PyTorch computes *recursively* from the current ``group["lr"]`` (`StepLR`,
`MultiStepLR`, `ExponentialLR`, `CosineAnnealingLR`, `LinearLR`): another change to a
group's rate between two steps carries over, as in PyTorch. `LambdaLR`,
`CosineAnnealingWarmRestarts` and `OneCycleLR` compute the rate afresh from the group's
``"initial_lr"``, which the constructor sets (``OneCycleLR`` also stores ``"max_lr"``,
``"min_lr"``, ``"max_momentum"`` and ``"base_momentum"`` in each group, and cycles the
group's ``"momentum"`` or the first of its ``"betas"``).

Constructing a schedule (with the default ``last_epoch=-1``) takes its first step: it
stores ``group["initial_lr"]`` and sets each group's rate for epoch 0. When resuming a
run, build the optimizer and the schedule, then load the optimizer's state and the
schedule's `state_dict` (in that order, as in PyTorch).

The deprecated ``epoch`` argument of PyTorch's ``step`` is not supported;
`ReduceLROnPlateau.step` takes the monitored metric.
"""

import copy
import inspect
import math
import numbers
import types
from collections import Counter

import numpy as np

from pycnn import _validation as V

__all__ = [
    "LRScheduler",
    "LambdaLR",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "LinearLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
]


# --- argument checks ----------------------------------------------------------------


def _check_optimizer(optimizer):
    """The optimizer's ``param_groups`` after checking each group is a dict with a
    real ``"lr"``."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not groups:
        raise TypeError(
            "`optimizer` must have `param_groups`, a non-empty list of dicts (a "
            "pycnn.optim optimizer). Received: optimizer of type "
            f"{type(optimizer).__name__}"
        )
    for i, group in enumerate(groups):
        if not isinstance(group, dict) or "lr" not in group:
            raise TypeError(
                f"`optimizer.param_groups[{i}]` must be a dict with an 'lr'. "
                f"Received: {type(group).__name__}"
            )
        lr = group["lr"]
        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real):
            raise TypeError(
                f"`optimizer.param_groups[{i}]['lr']` must be a real number. Received: {lr!r}"
            )
    return groups


def _last_epoch(value):
    result = V.integer(value, "last_epoch")
    if result < -1:
        raise ValueError(f"`last_epoch` must be >= -1. Received: last_epoch={value!r}")
    return result


def _nonnegative_int(value, name):
    result = V.integer(value, name)
    if result < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value!r}")
    return result


def _per_group(value, name, groups, min_value=None, max_value=None):
    """One validated float per group: a number for every group, or a list/tuple with
    one number per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise ValueError(
                f"`{name}` must have one value per parameter group "
                f"({len(groups)}). Received: {name}={value!r}"
            )
        return [V.real(v, name, min_value, max_value) for v in value]
    return [V.real(value, name, min_value, max_value)] * len(groups)


def _choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, choices))}. "
            f"Received: {name}={value!r}"
        )
    return value


# --- the base class -----------------------------------------------------------------


class LRScheduler:
    """Base class of the schedules: the step counter, the write to the groups, the
    state.

    Subclasses implement `get_lr`, which returns the new learning rate of every
    parameter group for the epoch ``self.last_epoch`` (already advanced). It may read
    ``self.base_lrs`` (each group's ``"initial_lr"``) and the groups' current ``"lr"``.

    Parameters
    ----------
    optimizer : optimizer
        Anything with ``param_groups``, a list of dicts each holding a real ``"lr"``
        (every `pycnn.optim` optimizer).
    last_epoch : int, default -1
        Index of the last epoch seen. Leave at -1 to start a schedule: the constructor
        stores each group's ``"lr"`` as its ``"initial_lr"`` (unless the group has one
        already) and takes the first step. A value >= 0 resumes a schedule and needs
        ``"initial_lr"`` in every group.

    Attributes
    ----------
    optimizer : optimizer
    base_lrs : list of float
        The groups' ``"initial_lr"``.
    last_epoch : int
        The epoch of the current learning rates (0 right after construction).
    """

    # True only during the constructor's first step (PyTorch's `_is_initial`): the
    # recursive schedules then keep the groups' rates as they are.
    _initial = False
    # attributes that are not part of `state_dict`
    _unsaved: tuple[str, ...] = ("optimizer",)

    def __init__(self, optimizer, last_epoch=-1):
        groups = _check_optimizer(optimizer)
        last_epoch = _last_epoch(last_epoch)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(groups):
                if "initial_lr" not in group:
                    raise ValueError(
                        f"`last_epoch` >= 0 resumes a schedule, and needs 'initial_lr' "
                        f"in every parameter group (load the optimizer's state first); "
                        f"`optimizer.param_groups[{i}]` has none. "
                        f"Received: last_epoch={last_epoch}"
                    )
        self.base_lrs = [group["initial_lr"] for group in groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._initial = True
        try:
            self.step()
        finally:
            del self._initial  # back to the class's False

    def get_lr(self):
        """The learning rate of every group for epoch ``last_epoch``."""
        raise NotImplementedError

    def step(self):
        """Advance one epoch (or batch, for the per-batch schedules) and set every
        group's ``"lr"``. Call it after the optimizer's `step`."""
        self._step_count += 1
        self.last_epoch += 1
        self._set_lrs(self.get_lr())

    def _set_lrs(self, lrs):
        groups = self.optimizer.param_groups
        if len(lrs) != len(groups):
            raise RuntimeError(
                f"the optimizer has {len(groups)} parameter groups, {len(lrs)} when "
                f"the schedule was built; build the schedule after adding groups"
            )
        for group, lr in zip(groups, lrs, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in groups]

    def _current_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The learning rates the last `step` set, one per group (a new list)."""
        return list(self._last_lr)

    def state_dict(self):
        """The schedule's state: a dict of its attributes except the optimizer (copies,
        so later steps do not change it). Save the optimizer's state with it."""
        return {
            key: copy.deepcopy(value)
            for key, value in self.__dict__.items()
            if key not in self._unsaved
        }

    def load_state_dict(self, state_dict):
        """Restore a state that `state_dict` returned from a schedule of this class."""
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"`state_dict` must be a dict. Received: {type(state_dict).__name__}"
            )
        expected = {key for key in self.__dict__ if key not in self._unsaved}
        missing = sorted(expected - state_dict.keys())
        unexpected = sorted(state_dict.keys() - expected)
        if missing or unexpected:
            raise ValueError(
                f"`state_dict` is not the state of a {type(self).__name__}: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
        for key, value in state_dict.items():
            setattr(self, key, copy.deepcopy(value))

    def __repr__(self):
        # the constructor's options that differ from their defaults, e.g.
        # "StepLR(step_size=2, gamma=0.5)"
        shown = []
        for name, p in inspect.signature(type(self).__init__).parameters.items():
            if name in ("self", "optimizer", "last_epoch") or not hasattr(self, name):
                continue
            value = getattr(self, name)
            if p.default is p.empty or value != p.default:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


# --- schedules ------------------------------------------------------------------------


class LambdaLR(LRScheduler):
    """``lr = initial_lr * lr_lambda(epoch)`` for each group.

    Parameters
    ----------
    optimizer : optimizer
    lr_lambda : callable or list of callables
        ``f(epoch) -> factor``; one for all groups or one per group.
    last_epoch : int, default -1

    Notes
    -----
    As in PyTorch, `state_dict` does not save plain functions and lambdas (their
    entries are None); for a callable *object*, its ``__dict__`` is saved and loaded.
    """

    _unsaved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        groups = _check_optimizer(optimizer)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(groups):
                raise ValueError(
                    f"`lr_lambda` must be a callable or one callable per parameter group "
                    f"({len(groups)}). Received: {len(lr_lambda)} callables"
                )
            lambdas = list(lr_lambda)
        else:
            lambdas = [lr_lambda] * len(groups)
        for fn in lambdas:
            if not callable(fn):
                raise TypeError(f"`lr_lambda` must be callable. Received: lr_lambda={fn!r}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [
            base_lr * fn(self.last_epoch)
            for fn, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)
        ]

    def state_dict(self):
        state = super().state_dict()
        state["lr_lambdas"] = [
            None if isinstance(fn, types.FunctionType) else copy.deepcopy(fn.__dict__)
            for fn in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict):
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"`state_dict` must be a dict. Received: {type(state_dict).__name__}"
            )
        state = dict(state_dict)  # the caller's dict stays whole
        saved = state.pop("lr_lambdas", None)
        if not isinstance(saved, list) or len(saved) != len(self.lr_lambdas):
            raise ValueError(
                f"`state_dict` must hold 'lr_lambdas', a list of {len(self.lr_lambdas)} "
                f"entries. Received: {saved!r}"
            )
        super().load_state_dict(state)
        for fn, attrs in zip(self.lr_lambdas, saved, strict=True):
            if attrs is not None:
                fn.__dict__.update(copy.deepcopy(attrs))


class StepLR(LRScheduler):
    """Multiply each group's rate by `gamma` every `step_size` epochs.

    Epoch e has ``lr = initial_lr * gamma ** (e // step_size)`` when nothing else
    changes the rates (the rule is applied to the current rate, as in PyTorch).

    Parameters
    ----------
    optimizer : optimizer
    step_size : int
        Period of the decay, >= 1.
    gamma : float, default 0.1
        Multiplicative factor, >= 0.
    last_epoch : int, default -1
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = V.positive_int(step_size, "step_size")
        self.gamma = V.real(gamma, "gamma", 0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]


class MultiStepLR(LRScheduler):
    """Multiply each group's rate by `gamma` at each milestone epoch.

    Parameters
    ----------
    optimizer : optimizer
    milestones : iterable of int
        Epochs at which to decay; an epoch listed k times decays by ``gamma ** k``.
    gamma : float, default 0.1
        Multiplicative factor, >= 0.
    last_epoch : int, default -1
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        try:
            epochs = [V.integer(m, "milestones") for m in milestones]
        except TypeError:
            raise TypeError(
                f"`milestones` must be an iterable of ints. Received: milestones={milestones!r}"
            ) from None
        self.milestones = Counter(epochs)
        self.gamma = V.real(gamma, "gamma", 0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        count = self.milestones.get(self.last_epoch, 0)
        if count == 0:
            return self._current_lrs()
        return [lr * self.gamma**count for lr in self._current_lrs()]


class ExponentialLR(LRScheduler):
    """Multiply each group's rate by `gamma` every epoch.

    Parameters
    ----------
    optimizer : optimizer
    gamma : float
        Multiplicative factor, >= 0.
    last_epoch : int, default -1
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = V.real(gamma, "gamma", 0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from each group's initial rate down to `eta_min` in `T_max`
    epochs (and back up over the next `T_max`, as in PyTorch: no restarts).

    Left alone, epoch e has ``eta_min + (initial_lr - eta_min) * (1 + cos(pi * e /
    T_max)) / 2``. Like PyTorch, each step scales the current rate's distance to
    `eta_min` by the ratio of consecutive cosine terms, so a rate changed between
    steps carries over.

    Parameters
    ----------
    optimizer : optimizer
    T_max : int
        Half period in epochs, >= 1.
    eta_min : float, default 0.0
        Lowest rate, >= 0.
    last_epoch : int, default -1
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = V.positive_int(T_max, "T_max")
        self.eta_min = V.real(eta_min, "eta_min", 0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._initial:
            return self._current_lrs()
        e, t, eta_min = self.last_epoch, self.T_max, self.eta_min
        if (e - 1 - t) % (2 * t) == 0:  # leaving the minimum: the ratio would be 0/0
            rise = (1 - math.cos(math.pi / t)) / 2
            return [
                lr + (base_lr - eta_min) * rise
                for lr, base_lr in zip(self._current_lrs(), self.base_lrs, strict=True)
            ]
        ratio = (1 + math.cos(math.pi * e / t)) / (1 + math.cos(math.pi * (e - 1) / t))
        return [ratio * (lr - eta_min) + eta_min for lr in self._current_lrs()]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing with warm restarts (SGDR): ``eta_min + (initial_lr - eta_min)
    * (1 + cos(pi * T_cur / T_i)) / 2``, where ``T_cur`` counts the steps since the
    last restart and the period ``T_i`` starts at `T_0` and is multiplied by `T_mult`
    at each restart.

    Parameters
    ----------
    optimizer : optimizer
    T_0 : int
        Steps until the first restart, >= 1.
    T_mult : int, default 1
        Growth of the period at each restart, >= 1.
    eta_min : float, default 0.0
        Lowest rate, >= 0.
    last_epoch : int, default -1
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        self.T_0 = V.positive_int(T_0, "T_0")
        self.T_i = self.T_0
        self.T_mult = V.positive_int(T_mult, "T_mult")
        self.eta_min = V.real(eta_min, "eta_min", 0)
        self.T_cur = _last_epoch(last_epoch)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        cosine = 1 + math.cos(math.pi * self.T_cur / self.T_i)
        return [self.eta_min + (b - self.eta_min) * cosine / 2 for b in self.base_lrs]

    def step(self):
        if self.last_epoch < 0:  # the constructor's step: epoch 0 of the first period
            self.T_i, self.T_cur = self.T_0, 0
        else:
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur %= self.T_i
                self.T_i *= self.T_mult
        self._step_count += 1
        self.last_epoch += 1
        self._set_lrs(self.get_lr())


class LinearLR(LRScheduler):
    """Scale each group's rate by a factor going linearly from `start_factor` to
    `end_factor` over `total_iters` epochs, then keep it.

    Parameters
    ----------
    optimizer : optimizer
    start_factor : float, default 1/3
        Factor at epoch 0, in (0, 1].
    end_factor : float, default 1.0
        Factor from epoch `total_iters` on, in [0, 1].
    total_iters : int, default 5
        Length of the ramp in epochs, >= 1.
    last_epoch : int, default -1
    """

    def __init__(
        self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1
    ):
        self.start_factor = V.real(start_factor, "start_factor", 0, 1, min_open=True)
        self.end_factor = V.real(end_factor, "end_factor", 0, 1)
        self.total_iters = V.positive_int(total_iters, "total_iters")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in self._current_lrs()]
        if self._initial or self.last_epoch > self.total_iters:
            return self._current_lrs()
        # factor(e) / factor(e - 1), written as PyTorch writes it
        slope = self.end_factor - self.start_factor
        scale = 1.0 + slope / (
            self.total_iters * self.start_factor + (self.last_epoch - 1) * slope
        )
        return [lr * scale for lr in self._current_lrs()]


def _anneal_cos(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start, end, pct):
    return (end - start) * pct + start


class OneCycleLR(LRScheduler):
    """The 1cycle policy: the rate rises from ``max_lr / div_factor`` to `max_lr`, then
    falls to ``max_lr / div_factor / final_div_factor``; momentum moves the other way.
    Step it after every batch.

    Each group stores ``"initial_lr"``, ``"max_lr"`` and ``"min_lr"`` (and, when
    cycling momentum, ``"max_momentum"`` and ``"base_momentum"``), as in PyTorch.

    Parameters
    ----------
    optimizer : optimizer
    max_lr : float or list of float
        Peak rate, for all groups or one per group, > 0.
    total_steps : int, optional
        Steps in the cycle, >= 1. Without it, ``epochs * steps_per_epoch``.
    epochs, steps_per_epoch : int, optional
        Used when `total_steps` is None, both >= 1.
    pct_start : float, default 0.3
        Share of the cycle spent raising the rate, in [0, 1].
    anneal_strategy : {"cos", "linear"}, default "cos"
    cycle_momentum : bool, default True
        Cycle each group's ``"momentum"`` (or the first of its ``"betas"`` when the
        optimizer's ``defaults`` has ``"betas"``) between `max_momentum` and
        `base_momentum`; the optimizer's ``defaults`` must have one of the two.
    base_momentum, max_momentum : float or list of float, default 0.85, 0.95
        Momentum at the peak rate and at the ends of the cycle.
    div_factor : float, default 25.0
        ``initial_lr = max_lr / div_factor``, > 0.
    final_div_factor : float, default 1e4
        ``min_lr = initial_lr / final_div_factor``, > 0.
    three_phase : bool, default False
        Rise, fall back to ``initial_lr`` symmetrically, then anneal to ``min_lr``
        (the original paper) instead of rising then annealing (fastai).
    last_epoch : int, default -1
        Index of the last *batch* when resuming.

    Raises
    ------
    ValueError
        After ``total_steps`` steps, on the next `step` (as PyTorch); at construction
        when `pct_start` leaves the first or the last phase no length
        (``pct_start * total_steps == 1``, or ``pct_start == 1`` with two phases),
        where PyTorch divides by zero.
    """

    def __init__(
        self,
        optimizer,
        max_lr,
        total_steps=None,
        epochs=None,
        steps_per_epoch=None,
        pct_start=0.3,
        anneal_strategy="cos",
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor=25.0,
        final_div_factor=1e4,
        three_phase=False,
        last_epoch=-1,
    ):
        groups = _check_optimizer(optimizer)
        if total_steps is not None:
            self.total_steps = V.positive_int(total_steps, "total_steps")
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = V.positive_int(epochs, "epochs") * V.positive_int(
                steps_per_epoch, "steps_per_epoch"
            )
        else:
            raise ValueError(
                "Give `total_steps`, or both `epochs` and `steps_per_epoch`. Received: "
                f"total_steps=None, epochs={epochs!r}, steps_per_epoch={steps_per_epoch!r}"
            )
        pct_start = V.real(pct_start, "pct_start", 0, 1)
        self.anneal_strategy = _choice(anneal_strategy, "anneal_strategy", ("cos", "linear"))
        self.cycle_momentum = V.flag(cycle_momentum, "cycle_momentum")
        div_factor = V.real(div_factor, "div_factor", 0, min_open=True)
        final_div_factor = V.real(final_div_factor, "final_div_factor", 0, min_open=True)
        three_phase = V.flag(three_phase, "three_phase")
        max_lrs = _per_group(max_lr, "max_lr", groups, 0)
        last_epoch = _last_epoch(last_epoch)

        # (end step, start key, end key, start momentum key, end momentum key)
        rise_end = float(pct_start * self.total_steps) - 1
        last = self.total_steps - 1
        if three_phase:
            self._phases = [
                (rise_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (
                    float(2 * pct_start * self.total_steps) - 2,
                    "max_lr",
                    "initial_lr",
                    "base_momentum",
                    "max_momentum",
                ),
                (last, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._phases = [
                (rise_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (last, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        if rise_end == 0 or self._phases[-1][0] == self._phases[-2][0]:
            raise ValueError(
                f"`pct_start` leaves a phase of the cycle without steps "
                f"(total_steps={self.total_steps}, three_phase={three_phase}). "
                f"Received: pct_start={pct_start!r}"
            )

        if self.cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if not isinstance(defaults, dict) or not (
                "momentum" in defaults or "betas" in defaults
            ):
                raise ValueError(
                    "`cycle_momentum=True` needs an optimizer with 'momentum' or 'betas' "
                    "in its `defaults`; pass cycle_momentum=False for this one. "
                    f"Received: optimizer of type {type(optimizer).__name__}"
                )
            self.use_beta1 = "betas" in defaults
            max_moms = _per_group(max_momentum, "max_momentum", groups, 0, 1)
            base_moms = _per_group(base_momentum, "base_momentum", groups, 0, 1)

        if last_epoch == -1:
            for group, peak in zip(groups, max_lrs, strict=True):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
            if self.cycle_momentum:
                for group, top, bottom in zip(groups, max_moms, base_moms, strict=True):
                    self._set_momentum(group, top)
                    group["max_momentum"] = top
                    group["base_momentum"] = bottom
        else:
            keys = ["initial_lr", "max_lr", "min_lr"]
            if self.cycle_momentum:
                keys += ["max_momentum", "base_momentum"]
            for i, group in enumerate(groups):
                absent = [key for key in keys if key not in group]
                if absent:
                    raise ValueError(
                        f"`last_epoch` >= 0 resumes a schedule, and needs {absent} in "
                        f"`optimizer.param_groups[{i}]` (load the optimizer's state "
                        f"first). Received: last_epoch={last_epoch}"
                    )
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"OneCycleLR was stepped {step} times; its cycle has "
                f"total_steps={self.total_steps}"
            )
        anneal = _anneal_cos if self.anneal_strategy == "cos" else _anneal_linear
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr0, lr1, mom0, mom1) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    pct = (step - start) / (end - start)
                    lrs.append(anneal(group[lr0], group[lr1], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, anneal(group[mom0], group[mom1], pct))
                    break
                start = end
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """Multiply each group's rate by `factor` when a metric stops improving.

    Call ``step(metric)`` once per epoch with the monitored value (a validation loss,
    say). A value better than the best so far by more than the threshold resets the
    count of bad epochs; after more than `patience` bad epochs in a row the rates are
    reduced (never below `min_lr`, and only by more than `eps`), then `cooldown`
    epochs pass before bad epochs count again.

    Unlike the other schedules (and as in PyTorch) the constructor changes no rate and
    sets no ``"initial_lr"``.

    Parameters
    ----------
    optimizer : optimizer
    mode : {"min", "max"}, default "min"
        Whether lower or higher values of the metric are better.
    factor : float, default 0.1
        ``new_lr = lr * factor``, in [0, 1).
    patience : int, default 10
        Bad epochs tolerated before a reduction, >= 0.
    threshold : float, default 1e-4
        Least significant improvement, >= 0.
    threshold_mode : {"rel", "abs"}, default "rel"
        "rel": better than ``best * (1 - threshold)`` ("min") or ``best * (1 +
        threshold)`` ("max"); "abs": better than ``best -/+ threshold``.
    cooldown : int, default 0
        Epochs after a reduction during which bad epochs are not counted, >= 0.
    min_lr : float or list of float, default 0
        Lower bound of the rate, for all groups or one per group, >= 0.
    eps : float, default 1e-8
        A reduction smaller than this is skipped, >= 0.
    """

    def __init__(
        self,
        optimizer,
        mode="min",
        factor=0.1,
        patience=10,
        threshold=1e-4,
        threshold_mode="rel",
        cooldown=0,
        min_lr=0,
        eps=1e-8,
    ):
        groups = _check_optimizer(optimizer)
        self.optimizer = optimizer
        self.mode = _choice(mode, "mode", ("min", "max"))
        self.factor = V.real(factor, "factor", 0, 1, max_open=True)
        self.patience = _nonnegative_int(patience, "patience")
        self.threshold = V.real(threshold, "threshold", 0)
        self.threshold_mode = _choice(threshold_mode, "threshold_mode", ("rel", "abs"))
        self.cooldown = _nonnegative_int(cooldown, "cooldown")
        self.min_lrs = _per_group(min_lr, "min_lr", groups, 0)
        self.eps = V.real(eps, "eps", 0)
        self.last_epoch = 0
        self._step_count = 0
        self._last_lr = self._current_lrs()
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, value):
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return value < (
                self.best * (1 - self.threshold) if rel else self.best - self.threshold
            )
        return value > (self.best * (1 + self.threshold) if rel else self.best + self.threshold)

    def step(self, metrics):
        """Record the epoch's value of the monitored metric (a real number or a 0-d
        array) and reduce the rates if it has not improved for too long."""
        try:
            if isinstance(metrics, (bool, np.bool_, str, bytes)):
                raise TypeError
            current = float(metrics)
        except (TypeError, ValueError):
            raise TypeError(
                f"`metrics` must be a real number. Received: metrics={metrics!r}"
            ) from None
        self._step_count += 1
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    def _reduce(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            raise RuntimeError(
                f"the optimizer has {len(groups)} parameter groups, {len(self.min_lrs)} "
                f"when the schedule was built; build the schedule after adding groups"
            )
        for group, floor in zip(groups, self.min_lrs, strict=True):
            old = float(group["lr"])
            new = max(old * self.factor, floor)
            if old - new > self.eps:
                group["lr"] = new

    @property
    def in_cooldown(self):
        """Whether the last reduction's cooldown is still running."""
        return self.cooldown_counter > 0
