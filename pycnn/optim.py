"""Optimizers (SGD with momentum/Nesterov, AdaGrad, RMSProp, Adam) and LR schedules.

The API is small and explicit::

    optimizer = pycnn.optim.Adam(lr=1e-3)
    loss(model(x), y)
    model.backward(loss.backward())
    optimizer.step(model.parameters())      # (key, param, grad) triples

`step(parameters)` takes an iterable of ``(key, param, grad)`` triples (what
`Sequential.parameters()` and `named_parameters(layers)` yield), updates every `param`
**in place** (the layers hold those very arrays) and keeps its state (momentum buffers,
moment estimates, step counts) per `key`, so the same optimizer must always be given
the same keys for the same parameters. A triple whose `grad` is None is skipped, as
PyTorch skips parameters without a gradient.

Each update rule equals ``torch.optim``'s for the same hyper-parameters (the tests
check several steps against PyTorch when it is installed). Regularisation:
``weight_decay`` adds ``weight_decay * param`` to the gradient (L2, as PyTorch does)
and ``l1`` adds ``l1 * sign(param)`` (L1; not in PyTorch). float32 parameters and
state stay float32: hyper-parameters are Python floats, which do not promote arrays.

Schedules (`StepLR`, `ExponentialLR`) set ``optimizer.lr`` from the initial rate;
call their ``step()`` once per epoch, after the epoch's updates.
"""

import math

import numpy as np

from pycnn import _validation as V

__all__ = [
    "Optimizer",
    "SGD",
    "AdaGrad",
    "RMSProp",
    "Adam",
    "StepLR",
    "ExponentialLR",
    "named_parameters",
]


def named_parameters(layers):
    """``(key, param, grad)`` triples of a list of layers, keys ``"<index>.<name>"``;
    the parameters of layers nested in containers too (``"3.body.0.weight"``)."""
    for i, layer in enumerate(layers):
        yield from layer.parameters(str(i))


class Optimizer:
    """Base class: validation, per-key state and the regularised gradient.

    Subclasses implement ``_update(param, grad, state)`` for one parameter; `grad`
    already includes the L1 and L2 terms and may be modified in place.
    """

    def __init__(self, lr, weight_decay=0.0, l1=0.0):
        self.lr = V.real(lr, "lr", 0)
        self.weight_decay = V.real(weight_decay, "weight_decay", 0)
        self.l1 = V.real(l1, "l1", 0)
        self.state = {}

    def step(self, parameters):
        """Update each ``(key, param, grad)`` in place; return the number updated."""
        count = 0
        for key, param, grad in parameters:
            if grad is None:
                continue
            if not isinstance(param, np.ndarray) or not isinstance(grad, np.ndarray):
                raise TypeError(
                    f"`parameters` must yield (key, ndarray, ndarray). "
                    f"Received for key {key!r}: param of type "
                    f"{type(param).__name__}, "
                    f"grad of type {type(grad).__name__}"
                )
            if grad.shape != param.shape:
                raise ValueError(
                    f"grad of {key!r} must have the parameter's shape "
                    f"{param.shape}. Received: grad.shape={grad.shape}"
                )
            if grad.dtype != param.dtype:
                raise TypeError(
                    f"grad of {key!r} must have the parameter's dtype "
                    f"({param.dtype}). Received: grad.dtype={grad.dtype}"
                )
            grad = grad.copy()  # the layer's gradient is left as it was
            if self.weight_decay:
                grad += self.weight_decay * param
            if self.l1:
                grad += self.l1 * np.sign(param)
            state = self.state.setdefault(key, {"step": 0})
            state["step"] += 1
            self._update(param, grad, state)
            count += 1
        return count

    def zero_state(self):
        """Forget every momentum buffer, moment estimate and step count."""
        self.state.clear()

    def _update(self, param, grad, state):
        raise NotImplementedError

    def _defaults(self):
        """Hyper-parameters and their defaults, for `repr` (lr is always shown)."""
        return {"weight_decay": 0.0, "l1": 0.0}

    def __repr__(self):
        s = f"lr={self.lr!r}"
        for name, default in self._defaults().items():
            value = getattr(self, name)
            if value != default:
                s += f", {name}={value!r}"
        return f"{type(self).__name__}({s})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum, like torch.

    ``g = grad + weight_decay*p + l1*sign(p)``; with momentum, ``buf = g`` on the first
    step and ``buf = momentum*buf + (1 - dampening)*g`` after, and the update uses
    ``g + momentum*buf`` (Nesterov) or ``buf``; ``p -= lr * update``.
    """

    def __init__(
        self, lr, momentum=0.0, nesterov=False, weight_decay=0.0, *, dampening=0.0, l1=0.0
    ):
        super().__init__(lr, weight_decay, l1)
        self.momentum = V.real(momentum, "momentum", 0)
        self.dampening = V.real(dampening, "dampening", 0, 1)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError(
                "`nesterov` requires momentum > 0 and dampening = 0. "
                f"Received: momentum={momentum!r}, dampening={dampening!r}"
            )

    def _update(self, param, grad, state):
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * grad
            if self.nesterov:
                grad += self.momentum * buf
            else:
                grad = buf
        param -= self.lr * grad

    def _defaults(self):
        return {"momentum": 0.0, "nesterov": False, "dampening": 0.0, **super()._defaults()}


class AdaGrad(Optimizer):
    """AdaGrad, like ``torch.optim.Adagrad``.

    ``sum += g*g``; ``p -= lr * g / (sqrt(sum) + eps)``.
    """

    def __init__(self, lr=1e-2, eps=1e-10, weight_decay=0.0, *, l1=0.0):
        super().__init__(lr, weight_decay, l1)
        self.eps = V.real(eps, "eps", 0)

    def _update(self, param, grad, state):
        total = state.get("sum")
        if total is None:
            total = state["sum"] = np.zeros_like(param)
        total += grad * grad
        param -= self.lr * grad / (np.sqrt(total) + self.eps)

    def _defaults(self):
        return {"eps": 1e-10, **super()._defaults()}


class RMSProp(Optimizer):
    """RMSProp, like ``torch.optim.RMSprop``.

    ``sq = alpha*sq + (1 - alpha)*g*g``; ``avg = sqrt(sq) + eps`` (with ``centered``,
    ``sqrt(sq - mean_g**2) + eps``); with momentum ``buf = momentum*buf + g/avg`` and
    ``p -= lr*buf``, otherwise ``p -= lr*g/avg``.
    """

    def __init__(
        self,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        momentum=0.0,
        weight_decay=0.0,
        *,
        centered=False,
        l1=0.0,
    ):
        super().__init__(lr, weight_decay, l1)
        self.alpha = V.real(alpha, "alpha", 0, 1)
        self.eps = V.real(eps, "eps", 0)
        self.momentum = V.real(momentum, "momentum", 0)
        self.centered = bool(centered)

    def _update(self, param, grad, state):
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(param)
            if self.centered:
                state["grad_avg"] = np.zeros_like(param)
            if self.momentum:
                state["momentum_buffer"] = np.zeros_like(param)
        sq = state["square_avg"]
        sq *= self.alpha
        sq += (1 - self.alpha) * grad * grad
        if self.centered:
            mean_g = state["grad_avg"]
            mean_g *= self.alpha
            mean_g += (1 - self.alpha) * grad
            avg = np.sqrt(sq - mean_g * mean_g) + self.eps
        else:
            avg = np.sqrt(sq) + self.eps
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += grad / avg
            param -= self.lr * buf
        else:
            param -= self.lr * grad / avg

    def _defaults(self):
        return {
            "alpha": 0.99,
            "eps": 1e-8,
            "momentum": 0.0,
            "centered": False,
            **super()._defaults(),
        }


class Adam(Optimizer):
    """Adam, like ``torch.optim.Adam`` (L2 `weight_decay` added to the gradient).

    ``m = b1*m + (1 - b1)*g``; ``v = b2*v + (1 - b2)*g*g``; at step t
    ``p -= lr/(1 - b1**t) * m / (sqrt(v)/sqrt(1 - b2**t) + eps)``.
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, l1=0.0):
        super().__init__(lr, weight_decay, l1)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(
                f"`betas` must be a pair of floats in [0, 1). Received: betas={betas!r}"
            ) from None
        self.betas = (
            V.real(b1, "betas[0]", 0, 1, max_open=True),
            V.real(b2, "betas[1]", 0, 1, max_open=True),
        )
        self.eps = V.real(eps, "eps", 0)

    def _update(self, param, grad, state):
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        b1, b2 = self.betas
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        step_size = self.lr / (1 - b1**t)
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + self.eps
        param -= step_size * m / denom

    def _defaults(self):
        return {"betas": (0.9, 0.999), "eps": 1e-8, **super()._defaults()}


# --- learning-rate schedules ----------------------------------------------------------


class _Schedule:
    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"`optimizer` must be a pycnn.optim.Optimizer. "
                f"Received: optimizer of type {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def step(self):
        """Advance one epoch and set the optimizer's learning rate; return it."""
        self.last_epoch += 1
        self.optimizer.lr = self._lr(self.last_epoch)
        return self.optimizer.lr

    def get_last_lr(self):
        return self.optimizer.lr


class StepLR(_Schedule):
    """``lr = base_lr * gamma ** (epoch // step_size)``, like torch's ``StepLR``."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size = V.positive_int(step_size, "step_size")
        self.gamma = V.real(gamma, "gamma", 0)

    def _lr(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def __repr__(self):
        gamma = "" if self.gamma == 0.1 else f", gamma={self.gamma!r}"
        return f"StepLR(step_size={self.step_size}{gamma})"


class ExponentialLR(_Schedule):
    """``lr = base_lr * gamma ** epoch``, like torch's ``ExponentialLR``."""

    def __init__(self, optimizer, gamma):
        super().__init__(optimizer)
        self.gamma = V.real(gamma, "gamma", 0)

    def _lr(self, epoch):
        return self.base_lr * self.gamma**epoch

    def __repr__(self):
        return f"ExponentialLR(gamma={self.gamma!r})"
