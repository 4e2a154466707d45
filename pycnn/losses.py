"""Loss functions: softmax cross-entropy (fused) and mean squared error.

A loss is called as ``loss(input, target)`` (or ``loss.forward``), returns the loss as
a NumPy scalar of the input's dtype, and keeps what ``loss.backward()`` needs to return
d loss / d input, an array of the input's shape and dtype, ready for
``model.backward``.
"""

import numpy as np

from pycnn import _validation as V

__all__ = ["CrossEntropyLoss", "MSELoss"]

REDUCTIONS = ("mean", "sum")


class _Loss:
    def __init__(self, reduction="mean"):
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"`reduction` must be 'mean' or 'sum'. Received: reduction={reduction!r}"
            )
        self.reduction = reduction
        self._grad = None

    def __call__(self, input, target):
        return self.forward(input, target)

    def backward(self):
        """d loss / d input of the last `forward`, in the input's shape and dtype."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._grad

    def __repr__(self):
        args = "" if self.reduction == "mean" else f"reduction={self.reduction!r}"
        return f"{type(self).__name__}({args})"


def _float_target(target, input, name):
    """A float target of `input`'s shape, converted to its dtype."""
    if target.shape != input.shape:
        raise ValueError(
            f"`{name}` must have the shape of the input {input.shape}. "
            f"Received: {name}.shape={target.shape}"
        )
    return target.astype(input.dtype, copy=False)


def check_labels(labels, num_classes, name="target"):
    """Integer class labels of shape (N,) in [0, num_classes); raise a clear error."""
    if labels.dtype.kind not in "iu":
        raise TypeError(
            f"`{name}` must hold integer class labels. Received: {name}.dtype={labels.dtype}"
        )
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"`{name}` labels must be in [0, {num_classes}) for "
                f"{num_classes} classes. "
                f"Received: labels from {low} to {high}"
            )
    return labels


class CrossEntropyLoss(_Loss):
    """Softmax and cross-entropy in one, like ``torch.nn.CrossEntropyLoss``.

    ``loss_i = logsumexp(logits_i) - logits_i[y_i]`` for integer labels, and
    ``-sum_c t_ic * log_softmax(logits_i)_c`` for one-hot or probability targets; the
    mean (default) or sum over the batch. The log-sum-exp subtracts each row's maximum
    first, so logits of any finite size give a finite loss.

    ``backward()`` returns ``softmax(logits) - onehot(y)`` (``softmax * sum(t) - t`` for
    probability targets), divided by N for ``reduction='mean'``.

    Shape
    -----
    logits (N, C) float; target (N,) integer labels in [0, C), or (N, C) float
    probabilities. The loss is a scalar of the logits' dtype.
    """

    def forward(self, logits, target):
        V.check_array(logits, "logits", 2, "(N, C)")
        V.check_nonempty(logits, "logits", (0, 1), "N and C")
        target = np.asarray(target)
        n, c = logits.shape
        if target.dtype.kind in "iu":
            if target.shape != (n,):
                raise ValueError(
                    f"`target` labels must have shape (N,) = ({n},). "
                    f"Received: target.shape={target.shape}"
                )
            check_labels(target, c)
        elif target.dtype.kind == "f":
            target = _float_target(target, logits, "target")
        else:
            raise TypeError(
                "`target` must be integer class labels or float "
                f"probabilities. Received: target.dtype={target.dtype}"
            )
        shifted = logits - logits.max(axis=1, keepdims=True)
        lse = np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        log_p = shifted - lse
        grad = np.exp(log_p)
        if target.ndim == 1:
            rows = np.arange(n)
            loss = -np.sum(log_p[rows, target])
            grad[rows, target] -= 1
        else:
            loss = -np.sum(target * log_p)
            grad *= target.sum(axis=1, keepdims=True)
            grad -= target
        if self.reduction == "mean":
            loss = loss / n
            grad /= n
        self._grad = grad
        return logits.dtype.type(loss)


class MSELoss(_Loss):
    """Mean squared error, like ``torch.nn.MSELoss``: ``mean((input - target)**2)``.

    ``reduction='sum'`` sums instead of averaging over every element.

    Shape
    -----
    input (*) float; target of the same shape (converted to the input's dtype). The
    loss is a scalar of the input's dtype.
    """

    def forward(self, input, target):
        V.check_array(input, "input")
        target = np.asarray(target)
        if target.dtype.kind not in "iuf":
            raise TypeError(
                f"`target` must be a real array. Received: target.dtype={target.dtype}"
            )
        diff = input - _float_target(target, input, "target")
        loss = np.sum(diff * diff)
        grad = 2 * diff
        if self.reduction == "mean" and input.size:
            loss = loss / input.size
            grad /= input.size
        self._grad = grad
        return input.dtype.type(loss)
