"""Optimizers bound to a model's parameters, as ``torch.optim``, and two LR schedules.

The PyTorch loop::

    optimizer = pycnn.optim.Adam(model.parameters(), lr=1e-3)
    for xb, yb in batches:
        optimizer.zero_grad()                 # gradients accumulate over backwards
        loss = loss_fn(model(xb), yb)
        model.backward(loss_fn.backward())
        optimizer.step()

An optimizer holds `pycnn.parameter.Parameter` handles in ``param_groups`` (a list of
dicts, each with ``"params"`` and every option: ``"lr"``, ``"momentum"``, ``"betas"``,
``"weight_decay"``, ...; schedules read and write ``group["lr"]``), its per-parameter
state (momentum buffers, moment estimates, step counts) in ``state``, keyed by the
handle, and ``state_dict()`` / ``load_state_dict()`` in PyTorch's layout, so training
resumes bit for bit. `step()` updates each parameter's array **in place** from its
``.grad``; a parameter whose grad is None is skipped, as PyTorch skips it.

`SGD`, `Adagrad`, `RMSprop`, `Adadelta`, `Adam`, `AdamW`, `Adamax`, `NAdam` and `RAdam`
equal ``torch.optim``'s rules option for option (``maximize`` too; ``foreach``,
``fused``, ``capturable`` and ``differentiable`` do not exist here); the tests compare
them with PyTorch. `RMSpropGraves`, `SMORMS3`, `Eve`, `AdaBound` and `AMSBound` are
rules from the papers that PyTorch lacks. Every optimizer also takes ``l1``, which adds
``l1 * sign(param)`` to the gradient (L1 regularisation, not in PyTorch), after
``weight_decay * param`` (L2, as PyTorch adds it). float32 parameters and state stay
float32: hyper-parameters are Python floats, which do not promote arrays.

Kept from earlier releases:

* ``optimizer.update(params, grads)`` with two dicts of arrays keyed by name (the
  from-scratch form): updates ``params[name]`` in place, state kept per name.
* An optimizer built without parameters (``Adam(lr=1e-3)``, or ``Adam(1e-3)``: a number
  first is the learning rate) is *unbound*. `Sequential.fit` binds it to the model's
  parameters on first use, silently. Deprecated: ``step(model.parameters())`` (handles,
  or the old ``(key, param, grad)`` triples) on any optimizer, with a
  DeprecationWarning; bind the optimizer and call ``step()`` instead. As the loops
  written for it never zero the gradients, this form clears the gradients of the
  handles it steps (``grad = None``), so those loops still train as before.
* `AdaGrad` and `RMSProp`, deprecated spellings of `Adagrad` and `RMSprop`.
"""

import copy
import inspect
import math
import numbers
import warnings

import numpy as np

from pycnn import _validation as V
from pycnn import lr_scheduler
from pycnn.lr_scheduler import *  # noqa: F403  (the schedules, as torch.optim has them)
from pycnn.parameter import Parameter

__all__ = [
    "Optimizer",
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "RMSpropGraves",
    "SMORMS3",
    "Eve",
    "AdaBound",
    "AMSBound",
    "AdaGrad",
    "RMSProp",
    "named_parameters",
    "lr_scheduler",
    *lr_scheduler.__all__,  # the schedules, by name, as in torch.optim
]


def _options(local):
    """A constructor's options, from its ``locals()``: every argument but `params`, in
    the signature's order (which is PyTorch's)."""
    return {k: v for k, v in local.items() if k not in ("self", "params", "__class__")}


def named_parameters(layers):
    """``(key, Parameter)`` pairs of a list of layers, keys ``"<index>.<name>"``; the
    parameters of layers nested in containers too (``"3.body.0.weight"``)."""
    for i, layer in enumerate(layers):
        yield from layer.named_parameters(str(i))


# --- option checks, shared by the constructors and add_param_group ---------------------


def _nonneg(name):
    return lambda value: V.real(value, name, 0)


def _unit(name):
    return lambda value: V.real(value, name, 0, 1)


def _flag(name):
    return lambda value: V.flag(value, name)


def _betas(n=2):
    def check(value):
        try:
            values = tuple(value)
        except TypeError:
            values = ()
        if len(values) != n:
            raise ValueError(
                f"`betas` must be {'a pair' if n == 2 else f'{n} values'} of floats in "
                f"[0, 1). Received: betas={value!r}"
            )
        return tuple(
            V.real(b, f"betas[{i}]", 0, 1, max_open=True) for i, b in enumerate(values)
        )

    return check


_COMMON = {"lr": _nonneg("lr"), "weight_decay": _nonneg("weight_decay"), "l1": _nonneg("l1")}


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


class Optimizer:
    """Base class: parameter groups, per-parameter state, the regularised gradient.

    Parameters
    ----------
    params : iterable of `Parameter`, or of dicts
        What to update: ``model.parameters()``, or a list of group dicts such as
        ``{"params": head.parameters(), "lr": 0.01}``, whose missing options take the
        optimizer's. None makes an unbound optimizer (see the module's notes).
    defaults : dict
        The options and their values for groups that do not set them.

    Notes
    -----
    Subclasses define ``_checks`` (option name -> validator) and implement
    ``_update(param, grad, state, group)`` for one parameter's array; `grad` is already
    a private array (negated with ``maximize``, plus the L2 and L1 terms) that may be
    modified in place, and ``state["step"]`` already counts this step.
    """

    _checks = _COMMON
    _takes_loss = False  # Eve: `step` needs the loss

    def __init__(self, params, defaults):
        self.defaults = self._check_options(dict(defaults))
        self.state = {}
        self.param_groups = []
        self._bound = params is not None
        if params is None:  # unbound: one group without parameters, bound by `fit`
            self.param_groups.append({"params": [], **self.defaults})
            return
        if isinstance(params, (Parameter, np.ndarray, dict)):
            raise TypeError(
                "`params` must be an iterable of Parameters or of dicts (parameter "
                f"groups). Received: params of type {type(params).__name__}"
            )
        groups = list(params)
        if not groups:
            raise ValueError("`params` must not be empty. Received: params=[]")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # --- groups -----------------------------------------------------------------------

    def _check_options(self, options):
        for name, value in options.items():
            check = self._checks.get(name)
            if check is not None:
                options[name] = check(value)
        return options

    def add_param_group(self, param_group):
        """Add a group of parameters with its own options (missing ones default to the
        optimizer's), e.g. to train a new head with another learning rate."""
        if not isinstance(param_group, dict):
            raise TypeError(
                "`param_group` must be a dict with a 'params' key. "
                f"Received: param_group of type {type(param_group).__name__}"
            )
        if "params" not in param_group:
            raise ValueError(
                f"`param_group` must have a 'params' key. Received: keys {sorted(param_group)}"
            )
        params = param_group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(
                    "`params` must hold pycnn Parameters (from `model.parameters()`). "
                    f"Received: params[{i}] of type {type(p).__name__}"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError("`params` holds a parameter twice within one group")
        group = {"params": params}
        for key, value in param_group.items():
            if key != "params":
                group[key] = value
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_options(group)
        if not self._bound:  # an unbound optimizer's placeholder group gives way
            self.param_groups = []
            self._bound = True
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self._init_group(group)
        self.param_groups.append(group)

    def _init_group(self, group):
        """Hook for per-group settings (AdaBound's base_lr)."""

    def _bind(self, params):
        """Give an unbound optimizer its parameters (`fit` does it), keeping its one
        group's options (a schedule may already have changed its ``lr``)."""
        group = self.param_groups[0]
        self._bound = True
        self.param_groups = []
        options = {k: v for k, v in group.items() if k != "params"}
        self.add_param_group({"params": list(params), **options})
        # the same dict object, so a schedule made before fit keeps working on it
        group.clear()
        group.update(self.param_groups[0])
        self.param_groups[0] = group

    # --- the step ---------------------------------------------------------------------

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of the optimizer's parameters: remove them (default, as
        PyTorch), or fill them with zeros in place with ``set_to_none=False``."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.fill(0)

    def step(self, closure=None):
        """Update every parameter that has a ``.grad``, in place.

        `closure`, optional, re-evaluates the model and returns the loss (called first,
        its value returned), as in PyTorch. Passing parameters here
        (``step(model.parameters())``) is the deprecated unbound form.
        """
        if closure is not None and not callable(closure):
            return self._step_deprecated(closure)
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is not None:
                    self._step_one(p.data, grad, self.state.setdefault(p, {}), group, p.name)
        return loss

    def _step_deprecated(self, parameters):
        warnings.warn(
            "step(parameters) is deprecated and will be removed in the next release: "
            f"bind the optimizer, `{type(self).__name__}(model.parameters(), lr=...)`, "
            "and call `step()`",
            DeprecationWarning,
            stacklevel=3,
        )
        group = self.param_groups[0]
        count = 0
        for item in parameters:
            if isinstance(item, Parameter):
                key, param, grad = item, item.data, item.grad
            else:
                key, param, grad = item
            if grad is None:
                continue
            _check_pair(key, param, grad)
            self._step_one(param, grad, self.state.setdefault(key, {}), group, key)
            if isinstance(item, Parameter):
                # the old loops never zeroed gradients (backward replaced them); now
                # that they accumulate, this form clears what it used, so they still work
                item.grad = None
            count += 1
        return count

    def update(self, params, grads):
        """The from-scratch form: update the arrays of dict `params` in place from the
        dict `grads` (same names; a missing or None grad is skipped), with the options
        of the first group and state kept per name. Returns the number updated."""
        if not isinstance(params, dict) or not isinstance(grads, dict):
            raise TypeError(
                "`params` and `grads` must be dicts of arrays keyed by name. Received: "
                f"{type(params).__name__} and {type(grads).__name__}"
            )
        count = 0
        for key, param in params.items():
            grad = grads.get(key)
            if grad is None:
                continue
            _check_pair(key, param, grad)
            self._step_one(
                param, grad, self.state.setdefault(key, {}), self.param_groups[0], key
            )
            count += 1
        return count

    def _step_one(self, param, grad, state, group, key):
        if grad.shape != param.shape or grad.dtype != param.dtype:
            _check_pair(key, param, grad)
        # the caller's gradient is only read: `_update` methods never write to `grad`,
        # and the options below replace it by a new array (an array even when 0-d:
        # arithmetic on a 0-d array gives a scalar, and state buffers copy `grad`)
        grad = np.asarray(grad)
        if group.get("maximize", False):
            grad = np.asarray(-grad)
        wd = group.get("weight_decay", 0.0)
        if wd and not group.get("decoupled_weight_decay", False):
            grad = np.asarray(grad + wd * param)
        l1 = group.get("l1", 0.0)
        if l1:
            grad = np.asarray(grad + l1 * np.sign(param))
        state["step"] = state.get("step", 0) + 1
        self._update(param, grad, state, group)

    def _update(self, param, grad, state, group):
        raise NotImplementedError

    def zero_state(self):
        """Forget every momentum buffer, moment estimate and step count."""
        self.state.clear()

    # --- saving and resuming ------------------------------------------------------------

    def state_dict(self):
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``,
        PyTorch's layout: parameters are numbered across the groups in order. The state's
        arrays are the optimizer's own, not copies (``copy.deepcopy`` the result to keep
        it while training goes on)."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        handles = {id(p): p for g in self.param_groups for p in g["params"]}
        state = {
            index[id(key)]: value
            for key, value in self.state.items()
            if isinstance(key, Parameter) and id(key) in handles
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a `state_dict` (copied, never shared) into this optimizer, whose groups
        must have the same sizes; the options of the saved groups replace the current
        ones, the parameters stay this optimizer's."""
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(
                "`state_dict` must be a dict with keys 'state' and 'param_groups' "
                "(from `Optimizer.state_dict()`)"
            )
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(
                "`state_dict` has a different number of parameter groups: "
                f"{len(saved)}, this optimizer has {len(self.param_groups)}"
            )
        lengths = [len(g["params"]) for g in self.param_groups]
        if [len(g["params"]) for g in saved] != lengths:
            raise ValueError(
                "`state_dict` has parameter groups of sizes "
                f"{[len(g['params']) for g in saved]}, this optimizer's are {lengths}"
            )
        by_index = {}
        for group, old in zip(self.param_groups, saved):
            by_index.update(zip(old["params"], group["params"]))
        state = {}
        for index, entries in state_dict["state"].items():
            if index not in by_index:
                raise ValueError(f"`state_dict` has state for unknown parameter {index!r}")
            param = by_index[index]
            state[param] = {k: _load_value(v, param, k) for k, v in entries.items()}
        groups = []
        for group, old in zip(self.param_groups, saved):
            new = copy.deepcopy({k: v for k, v in old.items() if k != "params"})
            groups.append({"params": group["params"], **new})
        self.state = state
        for group, new in zip(self.param_groups, groups):
            group.clear()  # the same dicts, so schedules keep working on them
            group.update(new)

    def __repr__(self):
        group = self.param_groups[0]
        s = ""
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if name in ("self", "params") or name not in group:
                continue
            value = group[name]
            if name == "lr" or value != parameter.default:
                s += f", {name}={value!r}"
        return f"{type(self).__name__}({s[2:]})"


def _check_pair(key, param, grad):
    if not isinstance(param, np.ndarray) or not isinstance(grad, np.ndarray):
        raise TypeError(
            f"`parameters` must yield (key, ndarray, ndarray). Received for key {key!r}: "
            f"param of type {type(param).__name__}, grad of type {type(grad).__name__}"
        )
    if grad.shape != param.shape:
        raise ValueError(
            f"grad of {key!r} must have the parameter's shape {param.shape}. "
            f"Received: grad.shape={grad.shape}"
        )
    if grad.dtype != param.dtype:
        raise TypeError(
            f"grad of {key!r} must have the parameter's dtype ({param.dtype}). "
            f"Received: grad.dtype={grad.dtype}"
        )


def _load_value(value, param, name):
    """One saved state entry as this optimizer's own: arrays copied in the parameter's
    dtype (they must have its shape), anything else deep-copied."""
    if isinstance(value, np.ndarray):
        if value.shape != param.shape:
            raise ValueError(
                f"`state_dict` state {name!r} must have the parameter's shape "
                f"{param.shape}. Received: shape {value.shape}"
            )
        return np.array(value, dtype=param.dtype, copy=True)
    return copy.deepcopy(value)


def _init_args(params, lr, default_lr, name):
    """(params, lr) of a constructor: a number in place of `params` is the old unbound
    form ``SGD(0.1, momentum=0.9)``, where it is the learning rate."""
    if _is_number(params):
        if lr != default_lr:
            raise TypeError(
                f"{name}: with the learning rate first (the unbound form "
                f"`{name}({params!r}, ...)`), pass every other option by keyword. "
                f"Received a second positional value {lr!r}"
            )
        return None, params
    return params, lr


def _lerp_(avg, value, weight):
    """``avg = avg + weight*(value - avg)`` in place, the two branches of torch's lerp."""
    if abs(weight) < 0.5:
        avg += weight * (value - avg)
    else:
        np.subtract(value, (value - avg) * (1 - weight), out=avg)


def _decay(param, group):
    """Decoupled weight decay (AdamW): ``param *= 1 - lr*weight_decay``."""
    if group.get("decoupled_weight_decay") and group["weight_decay"]:
        param *= 1 - group["lr"] * group["weight_decay"]


# --- PyTorch's optimizers ------------------------------------------------------------------


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, ``torch.optim.SGD``.

    ``g = grad + weight_decay*p + l1*sign(p)`` (``-grad`` with `maximize`); with momentum,
    ``buf = g`` on the first step and ``buf = momentum*buf + (1 - dampening)*g`` after,
    and the update is ``g + momentum*buf`` (`nesterov`) or ``buf``; ``p -= lr*update``.
    """

    _checks = {
        **_COMMON,
        "momentum": _nonneg("momentum"),
        "dampening": _unit("dampening"),
        "nesterov": _flag("nesterov"),
        "maximize": _flag("maximize"),
    }

    def __init__(
        self,
        params=None,
        lr=1e-3,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        *,
        maximize=False,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1e-3, "SGD")
        super().__init__(params, _options(locals()))

    def _check_options(self, options):
        options = super()._check_options(options)
        if options.get("nesterov") and (options["momentum"] == 0 or options["dampening"] != 0):
            raise ValueError(
                "`nesterov` requires momentum > 0 and dampening = 0. Received: "
                f"momentum={options['momentum']!r}, dampening={options['dampening']!r}"
            )
        return options

    def _update(self, param, grad, state, group):
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                dampening = group["dampening"]
                buf += (1 - dampening) * grad if dampening else grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        param -= group["lr"] * grad


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), ``torch.optim.Adagrad``.

    ``sum`` starts at `initial_accumulator_value`; at step t
    ``clr = lr / (1 + (t - 1)*lr_decay)``, ``sum += g*g``,
    ``p -= clr * g / (sqrt(sum) + eps)``.
    """

    _checks = {
        **_COMMON,
        "lr_decay": _nonneg("lr_decay"),
        "initial_accumulator_value": _nonneg("initial_accumulator_value"),
        "eps": _nonneg("eps"),
        "maximize": _flag("maximize"),
    }

    def __init__(
        self,
        params=None,
        lr=1e-2,
        lr_decay=0.0,
        weight_decay=0.0,
        initial_accumulator_value=0.0,
        eps=1e-10,
        *,
        maximize=False,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1e-2, type(self).__name__)
        super().__init__(params, _options(locals()))

    def _update(self, param, grad, state, group):
        total = state.get("sum")
        if total is None:
            total = state["sum"] = np.full_like(param, group["initial_accumulator_value"])
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        total += grad * grad
        std = np.sqrt(total)
        std += group["eps"]
        param += (-clr * grad) / std


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), ``torch.optim.RMSprop``.

    ``sq = alpha*sq + (1 - alpha)*g*g``; ``avg = sqrt(sq) + eps`` (`centered`:
    ``mean_g = alpha*mean_g + (1 - alpha)*g``, ``avg = sqrt(sq - mean_g**2) + eps``);
    with momentum ``buf = momentum*buf + g/avg`` and ``p -= lr*buf``, otherwise
    ``p -= lr*g/avg``.
    """

    _checks = {
        **_COMMON,
        "alpha": _unit("alpha"),
        "eps": _nonneg("eps"),
        "momentum": _nonneg("momentum"),
        "centered": _flag("centered"),
        "maximize": _flag("maximize"),
    }

    def __init__(
        self,
        params=None,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0.0,
        momentum=0.0,
        centered=False,
        *,
        maximize=False,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1e-2, type(self).__name__)
        super().__init__(params, _options(locals()))

    def _update(self, param, grad, state, group):
        alpha = group["alpha"]
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(param)
            if group["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(param)
        sq = state["square_avg"]
        sq *= alpha
        sq += (1 - alpha) * grad * grad
        if group["centered"]:
            mean_g = state["grad_avg"]
            _lerp_(mean_g, grad, 1 - alpha)
            avg = np.sqrt(sq + (-1.0) * mean_g * mean_g)
        else:
            avg = np.sqrt(sq)
        avg += group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += grad / avg
            param -= group["lr"] * buf
        else:
            param += (-group["lr"] * grad) / avg


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012), ``torch.optim.Adadelta``.

    ``sq = rho*sq + (1 - rho)*g*g``; ``delta = sqrt(acc + eps) / sqrt(sq + eps) * g``;
    ``acc = rho*acc + (1 - rho)*delta**2``; ``p -= lr*delta`` (lr 1.0 by default).
    """

    _checks = {
        **_COMMON,
        "rho": _unit("rho"),
        "eps": _nonneg("eps"),
        "maximize": _flag("maximize"),
    }

    def __init__(
        self,
        params=None,
        lr=1.0,
        rho=0.9,
        eps=1e-6,
        weight_decay=0.0,
        *,
        maximize=False,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1.0, "Adadelta")
        super().__init__(params, _options(locals()))

    def _update(self, param, grad, state, group):
        rho, eps = group["rho"], group["eps"]
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(param)
            state["acc_delta"] = np.zeros_like(param)
        sq, acc = state["square_avg"], state["acc_delta"]
        sq *= rho
        sq += (1 - rho) * grad * grad
        std = np.sqrt(sq + eps)
        delta = np.sqrt(acc + eps)
        delta /= std
        delta *= grad
        acc *= rho
        acc += (1 - rho) * delta * delta
        param -= group["lr"] * delta


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), ``torch.optim.Adam``.

    ``m = b1*m + (1 - b1)*g``; ``v = b2*v + (1 - b2)*g*g`` (`amsgrad`: the running
    maximum of v is used); at step t
    ``p -= lr/(1 - b1**t) * m / (sqrt(v)/sqrt(1 - b2**t) + eps)``.
    `weight_decay` is L2 (added to g), or with `decoupled_weight_decay` AdamW's
    ``p *= 1 - lr*weight_decay`` before the step.
    """

    _checks = {
        **_COMMON,
        "betas": _betas(),
        "eps": _nonneg("eps"),
        "amsgrad": _flag("amsgrad"),
        "maximize": _flag("maximize"),
        "decoupled_weight_decay": _flag("decoupled_weight_decay"),
    }

    def __init__(
        self,
        params=None,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        *,
        maximize=False,
        decoupled_weight_decay=False,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1e-3, type(self).__name__)
        super().__init__(params, _options(locals()))

    def _update(self, param, grad, state, group):
        _decay(param, group)
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param)
        (b1, b2), t = group["betas"], state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        _lerp_(m, grad, 1 - b1)
        v *= b2
        v += (1 - b2) * grad * grad
        step_size = group["lr"] / (1 - b1**t)
        bc2_sqrt = (1 - b2**t) ** 0.5
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        denom = np.sqrt(v)
        denom /= bc2_sqrt
        denom += group["eps"]
        param += (-step_size * m) / denom


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019), ``torch.optim.AdamW``: Adam with decoupled
    weight decay, ``p *= 1 - lr*weight_decay`` before each step (default 1e-2)."""

    def __init__(
        self,
        params=None,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        maximize=False,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1e-3, "AdamW")
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
            l1=l1,
        )


class Adamax(Optimizer):
    """Adamax (Kingma & Ba, 2015, section 7), ``torch.optim.Adamax``.

    ``m = b1*m + (1 - b1)*g``; ``u = max(b2*u, |g| + eps)``;
    ``p -= lr/(1 - b1**t) * m/u``.
    """

    _checks = {
        **_COMMON,
        "betas": _betas(),
        "eps": _nonneg("eps"),
        "maximize": _flag("maximize"),
    }

    def __init__(
        self,
        params=None,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        *,
        maximize=False,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 2e-3, "Adamax")
        super().__init__(params, _options(locals()))

    def _update(self, param, grad, state, group):
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(param)
            state["exp_inf"] = np.zeros_like(param)
        b1, b2 = group["betas"]
        m, u = state["exp_avg"], state["exp_inf"]
        _lerp_(m, grad, 1 - b1)
        u *= b2
        norm = np.abs(grad)
        norm += group["eps"]
        np.maximum(u, norm, out=u)
        clr = group["lr"] / (1 - b1 ** state["step"])
        param += (-clr * m) / u


class NAdam(Optimizer):
    """NAdam (Dozat, 2016), ``torch.optim.NAdam``: Adam with Nesterov momentum whose
    factor ``mu_t = b1*(1 - 0.5*0.96**(t*momentum_decay))`` warms up.

    With ``prod_t = mu_1 ... mu_t`` and ``denom = sqrt(v/(1 - b2**t)) + eps``:
    ``p -= lr*(1 - mu_t)/(1 - prod_t) * g/denom
    + lr*mu_{t+1}/(1 - prod_t*mu_{t+1}) * m/denom``. `decoupled_weight_decay` makes
    `weight_decay` AdamW's (NAdamW).
    """

    _checks = {
        **_COMMON,
        "betas": _betas(),
        "eps": _nonneg("eps"),
        "momentum_decay": _nonneg("momentum_decay"),
        "decoupled_weight_decay": _flag("decoupled_weight_decay"),
        "maximize": _flag("maximize"),
    }

    def __init__(
        self,
        params=None,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        momentum_decay=4e-3,
        decoupled_weight_decay=False,
        *,
        maximize=False,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 2e-3, "NAdam")
        super().__init__(params, _options(locals()))

    def _update(self, param, grad, state, group):
        _decay(param, group)
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
            state["mu_product"] = 1.0
        (b1, b2), t, lr = group["betas"], state["step"], group["lr"]
        decay = group["momentum_decay"]
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * decay))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * decay))
        state["mu_product"] *= mu
        product = state["mu_product"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        _lerp_(m, grad, 1 - b1)
        v *= b2
        v += (1 - b2) * grad * grad
        denom = np.sqrt(v / (1 - b2**t))
        denom += group["eps"]
        param += ((-lr * (1.0 - mu) / (1.0 - product)) * grad) / denom
        param += (((-lr * mu_next) / (1.0 - product * mu_next)) * m) / denom


class RAdam(Optimizer):
    """RAdam (Liu et al., 2020), ``torch.optim.RAdam``: Adam whose adaptive step is
    switched on, and rectified, once the variance of v is tractable.

    ``rho_inf = 2/(1 - b2) - 1``, ``rho_t = rho_inf - 2t*b2**t/(1 - b2**t)``; with
    ``mhat = m/(1 - b1**t)``: if ``rho_t > 5``, ``p -= lr*mhat*r_t*sqrt(1 - b2**t)/
    (sqrt(v) + eps)`` with ``r_t = sqrt((rho_t - 4)(rho_t - 2)rho_inf /
    ((rho_inf - 4)(rho_inf - 2)rho_t))``, else ``p -= lr*mhat`` (SGD with momentum).
    `decoupled_weight_decay` makes `weight_decay` AdamW's (RAdamW).
    """

    _checks = {
        **_COMMON,
        "betas": _betas(),
        "eps": _nonneg("eps"),
        "decoupled_weight_decay": _flag("decoupled_weight_decay"),
        "maximize": _flag("maximize"),
    }

    def __init__(
        self,
        params=None,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        decoupled_weight_decay=False,
        *,
        maximize=False,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1e-3, "RAdam")
        super().__init__(params, _options(locals()))

    def _update(self, param, grad, state, group):
        _decay(param, group)
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        (b1, b2), t, lr = group["betas"], state["step"], group["lr"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        _lerp_(m, grad, 1 - b1)
        v *= b2
        v += (1 - b2) * grad * grad
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        mhat = m / bc1
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * (b2**t) / bc2
        if rho_t > 5.0:
            rect = (
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            ) ** 0.5
            root = np.sqrt(v)
            root += group["eps"]
            adaptive = (bc2**0.5) / root
            param -= mhat * lr * adaptive * rect
        else:
            param -= mhat * lr


# --- the articles' optimizers that PyTorch lacks ------------------------------------------


class RMSpropGraves(Optimizer):
    """RMSprop as Graves writes it, centred and with momentum on the step.

    Graves, A. (2013). Generating sequences with recurrent neural networks.
    arXiv:1308.0850, equations (38)-(41)::

        n = alpha*n + (1 - alpha)*g**2
        gbar = alpha*gbar + (1 - alpha)*g
        delta = momentum*delta - lr*g/sqrt(n - gbar**2 + eps)
        p += delta

    Defaults are the paper's (alpha 0.95, momentum 0.9, lr 1e-4, eps 1e-4); eps sits
    inside the square root, unlike ``RMSprop(centered=True)``.
    """

    _checks = {
        **_COMMON,
        "alpha": _unit("alpha"),
        "momentum": _nonneg("momentum"),
        "eps": _nonneg("eps"),
    }

    def __init__(
        self,
        params=None,
        lr=1e-4,
        alpha=0.95,
        momentum=0.9,
        eps=1e-4,
        weight_decay=0.0,
        *,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1e-4, "RMSpropGraves")
        super().__init__(params, _options(locals()))

    def _update(self, param, grad, state, group):
        alpha = group["alpha"]
        if "square_avg" not in state:
            for key in ("square_avg", "grad_avg", "delta"):
                state[key] = np.zeros_like(param)
        n, gbar, delta = state["square_avg"], state["grad_avg"], state["delta"]
        n *= alpha
        n += (1 - alpha) * grad * grad
        gbar *= alpha
        gbar += (1 - alpha) * grad
        delta *= group["momentum"]
        delta -= group["lr"] * grad / np.sqrt(n - gbar * gbar + group["eps"])
        param += delta


class SMORMS3(Optimizer):
    """SMORMS3: RMSprop whose averaging window follows how steady the gradient is.

    Simon Funk (2015). RMSprop loses to SMORMS3 - Beware the Epsilon!
    https://sifter.org/~simon/journal/20150420.html ::

        r = 1/(mem + 1)
        g1 = (1 - r)*g1 + r*g;  g2 = (1 - r)*g2 + r*g**2
        x = g1**2/(g2 + eps)
        p -= g * min(lr, x) / (sqrt(g2) + eps)
        mem = 1 + mem*(1 - x)

    with ``mem`` starting at 1 and the other state at 0, per element. The post's
    defaults: lr 1e-3, eps 1e-16.
    """

    _checks = {**_COMMON, "eps": _nonneg("eps")}

    def __init__(self, params=None, lr=1e-3, eps=1e-16, weight_decay=0.0, *, l1=0.0):
        params, lr = _init_args(params, lr, 1e-3, "SMORMS3")
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay, l1=l1))

    def _update(self, param, grad, state, group):
        eps = group["eps"]
        if "mem" not in state:
            state["mem"] = np.ones_like(param)
            state["g"] = np.zeros_like(param)
            state["g2"] = np.zeros_like(param)
        mem, g1, g2 = state["mem"], state["g"], state["g2"]
        r = 1 / (mem + 1)
        g1 *= 1 - r
        g1 += r * grad
        g2 *= 1 - r
        g2 += r * grad * grad
        x = g1 * g1 / (g2 + eps)
        param -= grad * np.minimum(x, group["lr"]) / (np.sqrt(g2) + eps)
        mem *= 1 - x
        mem += 1


class Eve(Optimizer):
    """Eve: Adam whose step is scaled down when the loss changes a lot ("feedback").

    Koushik, J. & Hayashi, H. (2016). Improving stochastic gradient descent with
    feedback. arXiv:1611.01505v1, Algorithm 1 (later versions of the paper changed the
    rule; this is the first one, defaults included). On top of Adam's ``mhat``, ``vhat``, with
    ``f`` the loss at the current parameters (before the step) and ``k, K =
    thresholds``, from the second step on::

        lo, hi = (k + 1, K + 1) if f >= fhat else (1/(K + 1), 1/(k + 1))
        c = min(max(lo, f/fhat), hi);  fhat_new = c*fhat
        d = b3*d + (1 - b3)*|fhat_new - fhat|/min(fhat_new, fhat);  fhat = fhat_new

    (first step: ``fhat = f``, ``d = 1``), and ``p -= lr*mhat/(d*sqrt(vhat) + eps)``.

    **The loss**: ``step(loss=value)`` with the float loss of the batch the gradients
    came from, or ``step(closure)`` with a closure returning it, as PyTorch's
    closure-taking optimizers; `Sequential.fit` passes it. It must be finite and >= 0
    (the paper assumes a loss bounded below by 0, as cross-entropy and MSE are; one
    departure: while ``fhat`` is 0, which only a first loss of exactly 0 makes,
    ``fhat`` restarts from the next loss and ``d`` is kept).
    ``d`` and ``fhat`` live in each parameter's state, so `state_dict` resumes them.
    """

    _checks = {
        **_COMMON,
        "betas": _betas(3),
        "eps": _nonneg("eps"),
        "thresholds": lambda value: _thresholds(value),
    }
    _takes_loss = True

    def __init__(
        self,
        params=None,
        lr=1e-3,
        betas=(0.9, 0.999, 0.999),
        eps=1e-8,
        thresholds=(0.1, 10.0),
        weight_decay=0.0,
        *,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1e-3, "Eve")
        super().__init__(params, _options(locals()))
        self._loss = None

    def step(self, closure=None, *, loss=None):
        """Update every parameter that has a ``.grad``; needs the loss: `loss` (a float)
        or `closure` (called, its value used and returned)."""
        if closure is not None:
            if not callable(closure):
                raise TypeError(
                    "Eve.step takes a closure returning the loss, or `loss=`; "
                    f"Received: closure of type {type(closure).__name__}"
                )
            loss = closure()
        self._loss = _check_loss(loss)
        try:
            super().step()
        finally:
            self._loss = None
        return loss

    def update(self, params, grads, *, loss):
        """`Optimizer.update` with the loss Eve needs."""
        self._loss = _check_loss(loss)
        try:
            return super().update(params, grads)
        finally:
            self._loss = None

    def _update(self, param, grad, state, group):
        f = self._loss
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        (b1, b2, b3), t = group["betas"], state["step"]
        k, big_k = group["thresholds"]
        if t == 1:
            state["d"], state["loss_hat"] = 1.0, f
        elif state["loss_hat"] == 0:  # only a first loss of 0 gets here: restart fhat
            state["loss_hat"] = f
        else:
            fhat = state["loss_hat"]
            lo, hi = (k + 1, big_k + 1) if f >= fhat else (1 / (big_k + 1), 1 / (k + 1))
            new = min(max(lo, f / fhat), hi) * fhat
            r = abs(new - fhat) / min(new, fhat)
            state["d"] = b3 * state["d"] + (1 - b3) * r
            state["loss_hat"] = new
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        mhat = m / (1 - b1**t)
        vhat = v / (1 - b2**t)
        param -= group["lr"] * mhat / (state["d"] * np.sqrt(vhat) + group["eps"])


def _thresholds(value):
    try:
        k, big_k = value
    except (TypeError, ValueError):
        raise ValueError(
            "`thresholds` must be a pair (k, K) with 0 <= k <= K. "
            f"Received: thresholds={value!r}"
        ) from None
    k, big_k = V.real(k, "thresholds[0]", 0), V.real(big_k, "thresholds[1]", 0)
    if k > big_k:
        raise ValueError(
            "`thresholds` must be a pair (k, K) with 0 <= k <= K. "
            f"Received: thresholds={value!r}"
        )
    return (k, big_k)


def _check_loss(loss):
    if loss is None:
        raise TypeError("Eve.step needs the loss: step(loss=value) or step(closure)")
    return V.real(loss if _is_number(loss) else _as_float(loss), "loss", 0)


def _as_float(loss):
    try:
        return float(loss)
    except (TypeError, ValueError):
        raise TypeError(f"`loss` must be a real number. Received: loss={loss!r}") from None


class AdaBound(Optimizer):
    """AdaBound: Adam whose per-element step size is clipped to bounds that close in on
    an SGD learning rate, `final_lr`, as training goes on.

    Luo, L., Xiong, Y., Liu, Y. & Sun, X. (2019). Adaptive gradient methods with
    dynamic bound of learning rate. ICLR 2019 (Algorithm 2 / 3 with ``amsbound``), as
    in the authors' implementation: at step t, with Adam's ``m``, ``v``::

        step = lr*sqrt(1 - b2**t)/(1 - b1**t)
        final = final_lr*lr/base_lr
        lower = final*(1 - 1/(gamma*t + 1));  upper = final*(1 + 1/(gamma*t))
        p -= clip(step/(sqrt(v) + eps), lower, upper) * m

    ``amsbound`` uses the running maximum of v (AMSBound). `base_lr` is the group's lr
    when the group was added, so `final_lr` follows a schedule's changes to lr.
    """

    _checks = {
        **_COMMON,
        "betas": _betas(),
        "final_lr": _nonneg("final_lr"),
        "gamma": lambda value: V.real(value, "gamma", 0, min_open=True),
        "eps": _nonneg("eps"),
        "amsbound": _flag("amsbound"),
        "base_lr": lambda value: V.real(value, "base_lr", 0, min_open=True),
    }

    def __init__(
        self,
        params=None,
        lr=1e-3,
        betas=(0.9, 0.999),
        final_lr=0.1,
        gamma=1e-3,
        eps=1e-8,
        weight_decay=0.0,
        amsbound=False,
        *,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1e-3, type(self).__name__)
        super().__init__(params, _options(locals()))

    def _init_group(self, group):
        group.setdefault("base_lr", group["lr"])

    def _update(self, param, grad, state, group):
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
            if group["amsbound"]:
                state["max_exp_avg_sq"] = np.zeros_like(param)
        (b1, b2), t, lr = group["betas"], state["step"], group["lr"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        if group["amsbound"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        final = group["final_lr"] * lr / group["base_lr"]
        lower = final * (1 - 1 / (group["gamma"] * t + 1))
        upper = final * (1 + 1 / (group["gamma"] * t))
        eta = np.clip(step / (np.sqrt(v) + group["eps"]), lower, upper)
        param -= eta * m


class AMSBound(AdaBound):
    """AMSBound (Luo et al., 2019, ICLR): `AdaBound` on the running maximum of the
    second moment (``AdaBound(..., amsbound=True)``)."""

    def __init__(
        self,
        params=None,
        lr=1e-3,
        betas=(0.9, 0.999),
        final_lr=0.1,
        gamma=1e-3,
        eps=1e-8,
        weight_decay=0.0,
        *,
        l1=0.0,
    ):
        params, lr = _init_args(params, lr, 1e-3, "AMSBound")
        super().__init__(params, lr, betas, final_lr, gamma, eps, weight_decay, True, l1=l1)


# --- deprecated spellings (one release) ---------------------------------------------------


class AdaGrad(Adagrad):
    """Deprecated spelling of `Adagrad` (PyTorch's); warns on construction."""

    def __init__(self, *args, **kwargs):
        warnings.warn(
            "optim.AdaGrad is deprecated and will be removed in the next release; "
            "use optim.Adagrad",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)


class RMSProp(RMSprop):
    """Deprecated spelling of `RMSprop` (PyTorch's); warns on construction."""

    def __init__(self, *args, **kwargs):
        warnings.warn(
            "optim.RMSProp is deprecated and will be removed in the next release; "
            "use optim.RMSprop",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)
