"""Loss functions with PyTorch's names, arguments and results.

Classification: `CrossEntropyLoss` (log-softmax fused), `NLLLoss`, `BCELoss`,
`BCEWithLogitsLoss`; regression: `MSELoss`, `L1Loss`, `SmoothL1Loss`, `HuberLoss`;
distributions: `KLDivLoss`.

A loss is called as ``loss(input, target)`` (or ``loss.forward``) and keeps what
``loss.backward()`` needs to return d loss / d input, an array of the input's shape and
dtype, ready for ``model.backward``.

``reduction`` picks what ``forward`` returns:

* ``'mean'`` (default) and ``'sum'``: a NumPy scalar of the input's dtype;
  ``backward(grad=None)`` takes the upstream gradient of that scalar (a number; None
  means 1) and returns ``grad * d loss / d input``.
* ``'none'``: the unreduced losses as an array of the input's dtype (one per element,
  or one per sample and position for `CrossEntropyLoss` / `NLLLoss`);
  ``backward(grad=None)`` takes the upstream gradient of that array (an array of its
  shape; None means ones, the gradient of the losses' sum) and returns the
  vector-Jacobian product with respect to the input.
"""

import numpy as np

from pycnn import _validation as V
from pycnn._ext import load_kernels

try:
    _kernels = load_kernels()
except ImportError:  # pure NumPy: CrossEntropyLoss takes its NumPy path
    _kernels = None

__all__ = [
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "KLDivLoss",
]

REDUCTIONS = ("mean", "sum", "none")


class _Loss:
    _reductions: tuple[str, ...] = REDUCTIONS

    def __init__(self, reduction="mean"):
        if not isinstance(reduction, str) or reduction not in self._reductions:
            allowed = ", ".join(repr(r) for r in self._reductions)
            raise ValueError(
                f"`reduction` must be one of {allowed}. Received: reduction={reduction!r}"
            )
        self.reduction = reduction
        self._grad = None
        self._out_shape = ()
        self._class_axis = False
        self._denom = None  # what the last 'mean' divided by (distributed fit reads it)

    def __call__(self, input, target):
        return self.forward(input, target)

    def forward(self, input, target):  # pragma: no cover - every loss defines it
        raise NotImplementedError

    def backward(self, grad=None):
        """d loss / d input of the last `forward`, in the input's shape and dtype.

        Parameters
        ----------
        grad : number or ndarray, optional
            Upstream gradient of what `forward` returned: a number for ``'mean'`` /
            ``'sum'`` (None means 1), an array of the unreduced losses' shape for
            ``'none'`` (None means ones).
        """
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        if grad is None:
            return self._grad
        g = np.asarray(grad)
        if g.dtype.kind not in "iuf":
            raise TypeError(f"`grad` must be real. Received: grad.dtype={g.dtype}")
        g = g.astype(self._grad.dtype, copy=False)
        if self.reduction != "none":
            if g.ndim != 0:
                raise ValueError(
                    f"`grad` must be a scalar for reduction={self.reduction!r}. "
                    f"Received: grad.shape={g.shape}"
                )
            return self._grad * g
        if g.shape != self._out_shape:
            raise ValueError(
                f"`grad` must have the shape of the unreduced loss {self._out_shape}. "
                f"Received: grad.shape={g.shape}"
            )
        return self._grad * (np.expand_dims(g, 1) if self._class_axis else g)

    def _finish(self, per, local, denom, class_axis=False, keep=None):
        """Reduce the losses `per` and keep the input gradient `local` of their sum
        (divided by `denom` for a mean; rows where `keep` is False stay 0, like torch)."""
        self._out_shape = per.shape
        self._class_axis = class_axis
        dtype = local.dtype
        if self.reduction == "none":
            self._grad = local
            return per.astype(dtype, copy=False)
        value = per.sum(dtype=dtype)
        self._denom = denom
        if self.reduction != "sum" and denom != 0:
            value = value / denom
            local = local / denom
        elif self.reduction != "sum":  # every label ignored: torch's nan loss, 0 gradient
            with np.errstate(divide="ignore", invalid="ignore"):
                value = value / denom
                local = local / denom
            if keep is not None:
                local[~np.broadcast_to(np.expand_dims(keep, 1), local.shape)] = 0
        self._grad = local
        return dtype.type(value)

    def _options(self):
        """(name, value, default) of each constructor argument, for `__repr__`."""
        return [("reduction", self.reduction, "mean")]

    def __repr__(self):
        args = []
        for name, value, default in self._options():
            if value is None and default is None:
                continue
            if isinstance(value, np.ndarray):
                args.append(f"{name}={value.tolist()}")
            elif value != default:
                args.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(args)})"


# --- argument checks -------------------------------------------------------------------


def _float_target(target, input, name="target"):
    """A real target of `input`'s shape, converted to its dtype."""
    target = np.asarray(target)
    if target.dtype.kind not in "iuf":
        raise TypeError(f"`{name}` must be a real array. Received: {name}.dtype={target.dtype}")
    if target.shape != input.shape:
        raise ValueError(
            f"`{name}` must have the shape of the input {input.shape}. "
            f"Received: {name}.shape={target.shape}"
        )
    return target.astype(input.dtype, copy=False)


def _weight_array(value, name):
    """None, or a copy of a real array-like as float64 (cast to the input's dtype later)."""
    if value is None:
        return None
    if isinstance(value, str):  # CrossEntropyLoss("sum"): torch's first argument is weight
        raise TypeError(
            f"`{name}` must be an array of weights (pass `reduction` by keyword). "
            f"Received: {name}={value!r}"
        )
    arr = np.array(value, copy=True)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"`{name}` must be a real array. Received: {name}.dtype={arr.dtype}")
    return arr.astype(np.float64)


def _class_weight(weight, c, dtype):
    """The per-class weight (C,) in `dtype` (ones when not given)."""
    if weight is None:
        return np.ones(c, dtype)
    if weight.shape != (c,):
        raise ValueError(
            f"`weight` must have one entry per class, shape ({c},). "
            f"Received: weight.shape={weight.shape}"
        )
    return weight.astype(dtype)


def _broadcast_weight(weight, input, name):
    """An element weight that broadcasts to the input's shape, in its dtype, or None."""
    if weight is None:
        return None
    try:
        fits = np.broadcast_shapes(weight.shape, input.shape) == input.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"`{name}` must broadcast to the input's shape {input.shape}. "
            f"Received: {name}.shape={weight.shape}"
        )
    return weight.astype(input.dtype)


def check_labels(labels, num_classes, name="target", ignore_index=None):
    """Integer class labels in [0, num_classes), or equal to `ignore_index` when given;
    raise a clear error otherwise."""
    if labels.dtype.kind not in "iu":
        raise TypeError(
            f"`{name}` must hold integer class labels. Received: {name}.dtype={labels.dtype}"
        )
    counted = labels if ignore_index is None else labels[labels != ignore_index]
    if counted.size:
        low, high = int(counted.min()), int(counted.max())
        if low < 0 or high >= num_classes:
            besides = "" if ignore_index is None else f" besides ignore_index={ignore_index}"
            raise ValueError(
                f"`{name}` labels must be in [0, {num_classes}) for "
                f"{num_classes} classes. "
                f"Received: labels from {low} to {high}{besides}"
            )
    return labels


def _check_class_input(x, name):
    V.check_array(x, name)
    if x.ndim < 2:
        raise ValueError(
            f"`{name}` must have shape (N, C) or (N, C, d1, ...). "
            f"Received: {name}.shape={x.shape}"
        )
    V.check_nonempty(x, name, (0, 1), "N and C")


def _check_label_shape(target, x):
    want = x.shape[:1] + x.shape[2:]
    if target.shape != want:
        layout = "(N,)" if x.ndim == 2 else "(N, d1, ...)"
        raise ValueError(
            f"`target` labels must have shape {layout} = {want}. "
            f"Received: target.shape={target.shape}"
        )


def _labelled_loss(log_p, target, weight, ignore_index, smoothing=0.0):
    """For integer labels and log-probabilities `log_p` (N, C, d1, ...): the losses
    (N, d1, ...), the coefficients A of `log_p` in them (``loss_i = -sum_c A_ic *
    log_p_ic``, so A is minus their gradient), the mask of counted labels and the weight
    total a mean divides by (torch's rule, label smoothing included).

    The label's term is picked, not summed over the classes, so a log-probability of
    -inf in another class (a probability of 0) costs nothing, as in torch."""
    c = log_p.shape[1]
    w = _class_weight(weight, c, log_p.dtype)
    keep = target != ignore_index
    labels = np.where(keep, target, 0)
    w_target = w[labels] * keep  # (N, d1, ...)
    coef = np.zeros(log_p.shape, log_p.dtype)
    if log_p.ndim == 2:  # (N, C): plain fancy indexing, a fraction of the *_along_axis cost
        rows = np.arange(log_p.shape[0])
        picked = log_p[rows, labels]
        coef[rows, labels] = w_target
    else:
        index = np.expand_dims(labels, 1)
        picked = np.take_along_axis(log_p, index, axis=1)[:, 0]
        np.put_along_axis(coef, index, np.expand_dims(w_target, 1), axis=1)
    per = np.where(keep, -w_target * picked, 0).astype(log_p.dtype, copy=False)
    if smoothing:
        w_classes = w.reshape((1, c) + (1,) * (log_p.ndim - 2))
        uniform = np.where(keep, -np.sum(w_classes * log_p, axis=1), 0)
        per = (1 - smoothing) * per + (smoothing / c) * uniform.astype(log_p.dtype)
        coef *= 1 - smoothing
        coef += (smoothing / c) * w_classes * np.expand_dims(keep, 1)
    return per, coef, keep, w_target.sum(dtype=log_p.dtype)


# --- classification ---------------------------------------------------------------------


class CrossEntropyLoss(_Loss):
    """Softmax and cross-entropy in one, like ``torch.nn.CrossEntropyLoss``.

    For integer labels ``y`` the loss of sample ``i`` is
    ``-w[y_i] * log_softmax(logits_i)[y_i]`` (0 where ``y_i == ignore_index``); for
    float class probabilities ``t`` it is ``-sum_c w[c] * t_ic * log_softmax(logits_i)_c``.
    With ``label_smoothing=eps`` the label (or the probabilities) is mixed with the
    uniform distribution: ``(1 - eps) * onehot + eps / C``. ``'mean'`` divides the sum by
    the weights ``w[y_i]`` of the counted labels (by the number of samples for
    probabilities), like torch. The log-sum-exp subtracts each row's maximum first, so
    logits of any finite size give a finite loss.

    ``backward()`` returns ``softmax(logits) * sum_c(a_c) - a`` per sample, where ``a``
    are the coefficients of ``log_softmax`` in the loss above, scaled by the reduction.

    Parameters
    ----------
    weight : array-like (C,), optional
        A weight per class.
    ignore_index : int
        Integer labels equal to it contribute nothing (nor to the mean's divisor).
    reduction : {'mean', 'sum', 'none'}
    label_smoothing : float in [0, 1]

    Shape
    -----
    logits (N, C) or (N, C, d1, ...) float; target (N,) or (N, d1, ...) integer labels in
    [0, C), or float probabilities of the logits' shape. The loss is a scalar of the
    logits' dtype, or (N, d1, ...) for ``reduction='none'``.
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.weight = _weight_array(weight, "weight")
        self.ignore_index = V.integer(ignore_index, "ignore_index")
        self.label_smoothing = V.real(label_smoothing, "label_smoothing", 0, 1)

    def _options(self):
        return [
            ("weight", self.weight, None),
            ("ignore_index", self.ignore_index, -100),
            *super()._options(),
            ("label_smoothing", self.label_smoothing, 0.0),
        ]

    def forward(self, logits, target):
        _check_class_input(logits, "logits")
        target = np.asarray(target)
        c = logits.shape[1]
        eps = self.label_smoothing
        if (
            (target.dtype.kind == "i" or (target.dtype.kind == "u" and target.itemsize < 8))
            and logits.ndim == 2
            and self.weight is None
            and not eps
            and self.reduction != "none"
            and _kernels is not None
            and -(2**63) <= self.ignore_index < 2**63
        ):  # int64 holds every label and the ignored one
            _check_label_shape(target, logits)
            return self._compiled_labels(logits, target)
        if target.dtype.kind in "iu":
            _check_label_shape(target, logits)
            check_labels(target, c, ignore_index=self.ignore_index)
        elif target.dtype.kind == "f":
            target = _float_target(target, logits)
        else:
            raise TypeError(
                "`target` must be integer class labels or float "
                f"probabilities. Received: target.dtype={target.dtype}"
            )
        shifted = logits - logits.max(axis=1, keepdims=True)
        if (
            target.dtype.kind in "iu"
            and logits.ndim == 2
            and self.weight is None
            and not eps
            and self.reduction != "none"
        ):
            return self._plain_labels(shifted, target)
        lse = np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        log_p = shifted - lse
        if target.dtype.kind == "f":
            if eps:
                target = target * (1 - eps) + eps / c
            w = _class_weight(self.weight, c, logits.dtype)
            coef = target * w.reshape((1, c) + (1,) * (logits.ndim - 2))
            per = -np.sum(coef * log_p, axis=1)
            keep, denom = None, logits.dtype.type(logits.size // c)
        else:
            per, coef, keep, denom = _labelled_loss(
                log_p, target, self.weight, self.ignore_index, eps
            )
        local = np.exp(log_p)
        local *= coef.sum(axis=1, keepdims=True)
        local -= coef
        return self._finish(per, local, denom, class_axis=True, keep=keep)

    def _compiled_labels(self, logits, target):
        """`_plain_labels` in one compiled pass over the rows (the sums of exponentials
        in double); the labels are checked on the way."""
        logits = np.ascontiguousarray(logits)
        labels = np.ascontiguousarray(target, dtype=np.int64)
        per = np.empty(logits.shape[0], logits.dtype)
        local = np.empty_like(logits)
        counted = _kernels.cross_entropy_labels(logits, labels, self.ignore_index, per, local)
        if counted < 0:  # a label out of range: the same error as the other paths
            check_labels(target, logits.shape[1], ignore_index=self.ignore_index)
            raise AssertionError(f"cross_entropy_labels refused label {-1 - counted}")
        keep = None if counted else target != self.ignore_index
        return self._finish(per, local, logits.dtype.type(counted), class_axis=True, keep=keep)

    def _plain_labels(self, shifted, target):
        """The common case in a few passes: (N, C) logits less their row maxima,
        integer labels, no class weights, no smoothing, a reduced loss. The same loss
        and gradient as the general path (softmax minus the one-hot label, rows of
        ignored labels 0)."""
        keep = target != self.ignore_index
        kept_all = keep.all()
        labels = target if kept_all else np.where(keep, target, 0)
        rows = np.arange(shifted.shape[0])
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        per = np.log(total[:, 0]) - shifted[rows, labels]
        local = exp
        local /= total
        local[rows, labels] -= 1
        if not kept_all:
            per[~keep] = 0
            local[~keep] = 0
        denom = shifted.dtype.type(np.count_nonzero(keep))
        return self._finish(per, local, denom, class_axis=True, keep=keep)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities, like ``torch.nn.NLLLoss``.

    The loss of sample ``i`` is ``-w[y_i] * input[i, y_i]`` (0 where
    ``y_i == ignore_index``); ``'mean'`` divides the sum by the weights of the counted
    labels. ``backward()`` returns ``-w[y_i]`` at ``[i, y_i]`` and 0 elsewhere, scaled by
    the reduction.

    Parameters
    ----------
    weight : array-like (C,), optional
    ignore_index : int
    reduction : {'mean', 'sum', 'none'}

    Shape
    -----
    input (N, C) or (N, C, d1, ...) float (log-probabilities, e.g. from ``LogSoftmax``);
    target (N,) or (N, d1, ...) integer labels in [0, C).
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.weight = _weight_array(weight, "weight")
        self.ignore_index = V.integer(ignore_index, "ignore_index")

    def _options(self):
        return [
            ("weight", self.weight, None),
            ("ignore_index", self.ignore_index, -100),
            *super()._options(),
        ]

    def forward(self, input, target):
        _check_class_input(input, "input")
        target = np.asarray(target)
        if target.dtype.kind not in "iu":
            raise TypeError(
                "`target` must hold integer class labels. "
                f"Received: target.dtype={target.dtype}"
            )
        _check_label_shape(target, input)
        check_labels(target, input.shape[1], ignore_index=self.ignore_index)
        per, coef, keep, denom = _labelled_loss(input, target, self.weight, self.ignore_index)
        return self._finish(per, -coef, denom, class_axis=True, keep=keep)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities, like ``torch.nn.BCELoss``.

    ``loss = -w * (t * log(x) + (1 - t) * log(1 - x))`` per element, each log clamped at
    -100 like torch so that ``x = 0`` or ``1`` gives a finite loss. ``backward()``
    returns torch's ``w * (x - t) / max(x * (1 - x), 1e-12)``, scaled by the reduction.

    Parameters
    ----------
    weight : array-like, optional
        A weight per element, broadcast to the input's shape.
    reduction : {'mean', 'sum', 'none'}

    Shape
    -----
    input (*) float probabilities in [0, 1]; target of the same shape.
    """

    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.weight = _weight_array(weight, "weight")

    def _options(self):
        return [("weight", self.weight, None), *super()._options()]

    def forward(self, input, target):
        V.check_array(input, "input")
        target = _float_target(target, input)
        if input.size and not (input.min() >= 0 and input.max() <= 1):
            raise ValueError(
                "`input` must hold probabilities in [0, 1]. "
                f"Received: values from {input.min()} to {input.max()}"
            )
        weight = _broadcast_weight(self.weight, input, "weight")
        with np.errstate(divide="ignore"):
            log_x = np.maximum(np.log(input), -100)
            log_1mx = np.maximum(np.log1p(-input), -100)
        per = -(target * log_x + (1 - target) * log_1mx)
        # torch's floor of x * (1 - x) is 1e-12 rounded to float32, in either dtype
        floor = input.dtype.type(np.float32(1e-12))
        local = (input - target) / np.maximum(input * (1 - input), floor)
        if weight is not None:
            per *= weight
            local *= weight
        return self._finish(per, local, input.size)


def _softplus(z):
    """log(1 + exp(z)) without overflow."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _sigmoid(z):
    """1 / (1 + exp(-z)) without overflow."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


class BCEWithLogitsLoss(_Loss):
    """Sigmoid and binary cross-entropy in one, like ``torch.nn.BCEWithLogitsLoss``.

    ``loss = w * (p * t * softplus(-x) + (1 - t) * softplus(x))`` per element, where
    ``softplus(z) = log(1 + exp(z))`` is evaluated without overflow (so logits of any
    finite size give a finite loss) and ``p`` is `pos_weight`. ``backward()`` returns
    ``w * (p * t * (sigmoid(x) - 1) + (1 - t) * sigmoid(x))``, scaled by the reduction.

    Parameters
    ----------
    weight : array-like, optional
        A weight per element, broadcast to the input's shape.
    reduction : {'mean', 'sum', 'none'}
    pos_weight : array-like, optional
        A weight of the positive term, broadcast to the input's shape (one per class
        along the last axis, like torch).

    Shape
    -----
    input (*) float logits; target of the same shape.
    """

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self.weight = _weight_array(weight, "weight")
        self.pos_weight = _weight_array(pos_weight, "pos_weight")

    def _options(self):
        return [
            ("weight", self.weight, None),
            *super()._options(),
            ("pos_weight", self.pos_weight, None),
        ]

    def forward(self, input, target):
        V.check_array(input, "input")
        target = _float_target(target, input)
        weight = _broadcast_weight(self.weight, input, "weight")
        pos = _broadcast_weight(self.pos_weight, input, "pos_weight")
        positive = target if pos is None else pos * target
        sig = _sigmoid(input)
        per = positive * _softplus(-input) + (1 - target) * _softplus(input)
        local = positive * (sig - 1) + (1 - target) * sig
        if weight is not None:
            per *= weight
            local *= weight
        return self._finish(per, local, input.size)


# --- regression -------------------------------------------------------------------------


class _Elementwise(_Loss):
    """A loss of ``input - target`` element by element, mean over every element."""

    def forward(self, input, target):
        V.check_array(input, "input")
        diff = input - _float_target(target, input)
        per, local = self._pointwise(diff)
        # an empty input has mean 0 (torch: nan), as before the reductions grew
        return self._finish(per, local, input.size or 1)

    def _pointwise(self, diff):  # pragma: no cover - every subclass defines it
        raise NotImplementedError


class MSELoss(_Elementwise):
    """Mean squared error, like ``torch.nn.MSELoss``: ``mean((input - target)**2)``.

    ``backward()`` returns ``2 * (input - target)``, divided by the number of elements
    for ``reduction='mean'``.

    Shape
    -----
    input (*) float; target of the same shape (converted to the input's dtype). The
    loss is a scalar of the input's dtype, or of the input's shape for ``'none'``.
    """

    def __init__(self, reduction="mean"):
        super().__init__(reduction)

    def _pointwise(self, diff):
        return diff * diff, 2 * diff


class L1Loss(_Elementwise):
    """Mean absolute error, like ``torch.nn.L1Loss``: ``mean(|input - target|)``.

    ``backward()`` returns ``sign(input - target)`` (0 where they are equal, like torch),
    divided by the number of elements for ``reduction='mean'``.

    Shape
    -----
    input (*) float; target of the same shape.
    """

    def __init__(self, reduction="mean"):
        super().__init__(reduction)

    def _pointwise(self, diff):
        return np.abs(diff), np.sign(diff)


class SmoothL1Loss(_Elementwise):
    """Like ``torch.nn.SmoothL1Loss``: with ``d = input - target``,
    ``0.5 * d**2 / beta`` where ``|d| < beta`` and ``|d| - 0.5 * beta`` elsewhere
    (``beta = 0`` is `L1Loss`).

    ``backward()`` returns ``d / beta`` where ``|d| < beta`` and ``sign(d)`` elsewhere.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}
    beta : float >= 0

    Shape
    -----
    input (*) float; target of the same shape.
    """

    def __init__(self, reduction="mean", beta=1.0):
        super().__init__(reduction)
        self.beta = V.real(beta, "beta", 0)

    def _options(self):
        return [*super()._options(), ("beta", self.beta, 1.0)]

    def _pointwise(self, diff):
        a = np.abs(diff)
        if self.beta == 0:
            return a, np.sign(diff)
        inside = a < self.beta
        per = np.where(inside, 0.5 * diff * diff / self.beta, a - 0.5 * self.beta)
        local = np.where(inside, diff / self.beta, np.sign(diff))
        return per.astype(diff.dtype, copy=False), local.astype(diff.dtype, copy=False)


class HuberLoss(_Elementwise):
    """Like ``torch.nn.HuberLoss``: with ``d = input - target``, ``0.5 * d**2`` where
    ``|d| < delta`` and ``delta * (|d| - 0.5 * delta)`` elsewhere.

    ``backward()`` returns ``d`` where ``|d| < delta`` and ``delta * sign(d)`` elsewhere.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}
    delta : float > 0

    Shape
    -----
    input (*) float; target of the same shape.
    """

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        self.delta = V.real(delta, "delta", 0, min_open=True)

    def _options(self):
        return [*super()._options(), ("delta", self.delta, 1.0)]

    def _pointwise(self, diff):
        a = np.abs(diff)
        inside = a < self.delta
        per = np.where(inside, 0.5 * diff * diff, self.delta * (a - 0.5 * self.delta))
        local = np.where(inside, diff, self.delta * np.sign(diff))
        return per.astype(diff.dtype, copy=False), local.astype(diff.dtype, copy=False)


# --- distributions ----------------------------------------------------------------------


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence, like ``torch.nn.KLDivLoss``.

    `input` holds log-probabilities; the loss per element is ``t * (log(t) - input)``
    (0 where ``t = 0``), or ``exp(t) * (t - input)`` with ``log_target=True``.
    ``'batchmean'`` divides the sum by N, the mathematically correct KL divergence;
    ``'mean'`` (torch's default) by the number of elements. ``backward()`` returns
    ``-t`` (``-exp(t)``), scaled by the reduction.

    Parameters
    ----------
    reduction : {'mean', 'batchmean', 'sum', 'none'}
    log_target : bool

    Shape
    -----
    input (*) float log-probabilities; target of the same shape.
    """

    _reductions = ("mean", "batchmean", "sum", "none")

    def __init__(self, reduction="mean", log_target=False):
        super().__init__(reduction)
        self.log_target = V.flag(log_target, "log_target")

    def _options(self):
        return [*super()._options(), ("log_target", self.log_target, False)]

    def forward(self, input, target):
        V.check_array(input, "input")
        target = _float_target(target, input)
        if self.log_target:
            t = np.exp(target)
            per = t * (target - input)
        else:
            t = target
            with np.errstate(divide="ignore", invalid="ignore"):
                xlogx = np.where(t == 0, 0, t * np.log(t)).astype(input.dtype, copy=False)
            per = xlogx - t * input
        if self.reduction == "batchmean":
            denom = input.shape[0] if input.ndim else 1
        else:
            denom = input.size or 1
        return self._finish(per, -t, denom)
