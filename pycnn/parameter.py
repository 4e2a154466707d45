"""`Parameter`: a handle on one trainable array of a layer, what `parameters()` yields
and what the optimizers of `pycnn.optim` are bound to.

Storage does not move: a layer keeps its arrays in ``layer.params[name]`` and their
gradients in ``layer.grads[name]``. A handle reads both through those dicts every time,
so replacing an array in the dict (converting the model's dtype, loading a state)
keeps every handle, and every optimizer bound to it, valid. There is one handle per
(layer, name), created on first use and cached on the layer, so handles compare and
hash by identity and can key an optimizer's state, as PyTorch's tensors do.
"""

import numpy as np

__all__ = ["Parameter"]


class Parameter:
    """Handle on parameter `name` of `layer`: ``.data`` is ``layer.params[name]``,
    ``.grad`` is ``layer.grads.get(name)``.

    Get handles from ``layer.parameters()`` / ``named_parameters()`` rather than by
    constructing them: those return the one cached handle of each parameter.

    Attributes
    ----------
    data : ndarray
        The live array (read-only attribute: the array itself is updated in place).
    grad : ndarray or None
        The accumulated gradient; None before the first backward and after
        ``zero_grad()``. Settable to None or to an array of the parameter's shape and
        dtype (a copy is stored, so later accumulation never writes into the
        caller's array).
    shape, size, ndim, dtype
        Those of `data`.
    name : str
        The parameter's name in its layer (``"weight"``).
    layer : BaseLayer
        The layer holding it.
    """

    __slots__ = ("_layer", "_name", "__weakref__")

    def __init__(self, layer, name):
        if name not in layer.params:
            raise KeyError(f"{type(layer).__name__} has no parameter {name!r}")
        self._layer = layer
        self._name = name

    @property
    def layer(self):
        return self._layer

    @property
    def name(self):
        return self._name

    @property
    def data(self):
        return self._layer.params[self._name]

    @property
    def grad(self):
        return self._layer.grads.get(self._name)

    @grad.setter
    def grad(self, value):
        if value is None:
            self._layer.grads.pop(self._name, None)
            return
        data = self.data
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"`grad` must be None or a numpy.ndarray. "
                f"Received: grad of type {type(value).__name__}"
            )
        if value.shape != data.shape:
            raise ValueError(
                f"`grad` must have the parameter's shape {data.shape}. "
                f"Received: grad.shape={value.shape}"
            )
        if value.dtype != data.dtype:
            raise TypeError(
                f"`grad` must have the parameter's dtype ({data.dtype}). "
                f"Received: grad.dtype={value.dtype}"
            )
        self._layer.grads[self._name] = np.array(value, copy=True, order="C")

    @property
    def shape(self):
        return self.data.shape

    @property
    def size(self):
        return self.data.size

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self):
        grad = "None" if self.grad is None else "set"
        return (
            f"Parameter({self._name!r} of {type(self._layer).__name__}, "
            f"shape={self.shape}, dtype={self.dtype}, grad={grad})"
        )
