"""Gradient clipping, as ``torch.nn.utils.clip_grad_norm_`` and ``clip_grad_value_``.

Both take the model's parameter handles (``model.parameters()``, one handle or an
iterable of them: anything with a ``.grad`` that is an ndarray or None) and change the
gradient arrays **in place**, between the backward pass and the optimizer's step::

    model.backward(loss.backward())
    pycnn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()

Parameters whose ``.grad`` is None are skipped. float32 gradients stay float32.
"""

import math
import numbers
import types
import warnings

import numpy as np

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters):
    """The non-None gradient arrays of a handle or an iterable of handles."""
    if hasattr(parameters, "grad"):
        handles = [parameters]
    else:
        try:
            handles = list(parameters)
        except TypeError:
            raise TypeError(
                "`parameters` must be a parameter or an iterable of parameters (objects "
                f"with a `.grad`). Received: {type(parameters).__name__}"
            ) from None
        if not handles and isinstance(parameters, types.GeneratorType):
            warnings.warn(
                "`parameters` is an empty generator: no gradient is clipped "
                "(was the generator already consumed?)",
                stacklevel=3,
            )
    grads = []
    for i, handle in enumerate(handles):
        if not hasattr(handle, "grad"):
            raise TypeError(
                f"every item of `parameters` must have a `.grad`. Received at index "
                f"{i}: {type(handle).__name__}"
            )
        grad = handle.grad
        if grad is None:
            continue
        if not isinstance(grad, np.ndarray) or grad.dtype not in (np.float32, np.float64):
            what = grad.dtype if isinstance(grad, np.ndarray) else type(grad).__name__
            raise TypeError(
                f"the `.grad` of every item of `parameters` must be None or a float32 or "
                f"float64 ndarray. Received at index {i}: {what}"
            )
        grads.append(grad)
    return grads


def _bound(value, name):
    """A float >= 0, infinity allowed (``max_norm=inf`` measures without clipping)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number. Received: {name}={value!r}")
    result = float(value)
    if not result >= 0:  # NaN too
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value!r}")
    return result


def _norm_type(value):
    if isinstance(value, str) and value.strip().lower() == "inf":
        return math.inf
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`norm_type` must be a real number or 'inf'. Received: norm_type={value!r}"
        )
    result = float(value)
    if not result > 0:
        raise ValueError(f"`norm_type` must be > 0 or inf. Received: norm_type={value!r}")
    return result


def _vector_norm(values, p):
    """The p-norm of a flat float64 array (inf: the largest magnitude)."""
    if values.size == 0:
        return 0.0
    magnitudes = np.abs(values)
    if p == math.inf:
        return float(magnitudes.max())
    if p == 2.0:
        return math.sqrt(float(np.dot(magnitudes, magnitudes)))
    if p == 1.0:
        return float(magnitudes.sum())
    return float(np.sum(magnitudes**p) ** (1.0 / p))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients so that their joint norm is at most `max_norm`.

    The total norm is the `norm_type`-norm of all gradients together, as if they were
    concatenated into one vector: the norm of the per-gradient norms. Every gradient is
    then multiplied in place by ``min(max_norm / (total_norm + 1e-6), 1)``, as in
    PyTorch (the 1e-6 keeps a zero norm finite; gradients are never scaled up).

    Parameters
    ----------
    parameters : parameter or iterable of parameters
        Objects with a ``.grad`` (an ndarray or None); those without a gradient are
        skipped.
    max_norm : float
        Largest allowed total norm, >= 0. ``float("inf")`` only measures the norm.
    norm_type : float or "inf", default 2.0
        The p of the p-norm, > 0; ``inf`` (or ``"inf"``) for the largest magnitude.
    error_if_nonfinite : bool, default False
        Raise instead of scaling when the total norm is NaN or infinite (then the
        scale is 0 or NaN, so the gradients become 0 or NaN, as in PyTorch).

    Returns
    -------
    total_norm : numpy.float32 or numpy.float64
        The total norm *before* clipping, a NumPy scalar (PyTorch returns a 0-d
        tensor) of the gradients' dtype: float64 if any gradient is float64, else
        float32 (also float32, and 0.0, when there is no gradient, like PyTorch's).
        ``float(total_norm)`` gives a Python float.

    Notes
    -----
    Each float32 gradient's norm is accumulated in float64, then rounded to float32:
    PyTorch accumulates in float32, so its norm can differ in the last bits, and
    overflows to inf for float32 gradients whose squares do (values beyond about 1e19
    for the 2-norm) where this one stays finite.

    Raises
    ------
    RuntimeError
        When `error_if_nonfinite` is True and the total norm is NaN or infinite (the
        exception PyTorch raises); the gradients are left unchanged.
    """
    grads = _grads(parameters)
    max_norm = _bound(max_norm, "max_norm")
    p = _norm_type(norm_type)
    if not isinstance(error_if_nonfinite, (bool, np.bool_)):
        raise TypeError(
            f"`error_if_nonfinite` must be a bool. Received: "
            f"error_if_nonfinite={error_if_nonfinite!r}"
        )
    if not grads:
        return np.float32(0.0)
    dtype = np.result_type(*grads)
    # each gradient's norm in its own dtype (accumulated in float64), as PyTorch does,
    # then the norm of those norms in the common dtype
    norms = [g.dtype.type(_vector_norm(g.ravel().astype(np.float64), p)) for g in grads]
    total = dtype.type(_vector_norm(np.array(norms, dtype=np.float64), p))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} of the gradients of `parameters` "
            f"is {float(total)}, so they cannot be clipped; pass "
            f"error_if_nonfinite=False to scale them by it anyway"
        )
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # in the norm's dtype, like PyTorch's 0-d tensor arithmetic
        coef = np.minimum(dtype.type(max_norm) / (total + dtype.type(1e-6)), dtype.type(1))
        for g in grads:
            g *= g.dtype.type(coef)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clip every gradient element to ``[-clip_value, clip_value]``, in place.

    Parameters
    ----------
    parameters : parameter or iterable of parameters
        Objects with a ``.grad`` (an ndarray or None); those without a gradient are
        skipped.
    clip_value : float
        Largest allowed magnitude, >= 0 (``inf`` clips nothing). NaN gradient elements
        stay NaN, as in PyTorch.

    Returns
    -------
    None
    """
    grads = _grads(parameters)
    clip_value = _bound(clip_value, "clip_value")
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)
