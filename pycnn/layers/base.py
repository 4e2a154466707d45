"""The one interface every layer implements."""

import functools
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from pycnn import _validation as V
from pycnn import init
from pycnn.parameter import Parameter


class BaseLayer:
    """A layer with a forward pass, a backward pass and named parameters.

    Subclasses implement `forward(x)` and `backward(grad)`; parameters live in the
    `params` dict and their gradients in `grads` (same keys). `backward` ADDS to
    `grads` (``_accumulate_grad``), as PyTorch accumulates ``.grad``, so gradients of
    several backward passes sum up until `zero_grad()`. `parameters()` yields
    `pycnn.parameter.Parameter` handles on those arrays, for the optimizers.
    State that is saved with the model but not trained (batch-norm running statistics)
    lives in `buffers`. `train()` / `eval()` switch the behaviour of layers such as
    dropout and batch normalisation.

    Threads: a layer instance is not thread-safe. `forward` keeps what `backward` needs
    (its input, a dropout mask, batch statistics) on the instance, `backward` writes
    `grads`, and batch normalisation updates its running statistics, so one instance
    (or a `Sequential` holding it) must not be shared between threads during training:
    one thread's backward would use another thread's forward. Give each thread its own
    layers. The functions in `pycnn.functional` and `pycnn.reference` keep no state and
    may be called from many threads at once on different arrays.
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.training = True

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def _backward_params(self, grad):
        """`backward` when nobody needs the input gradient (the first layer of a network
        whose ``backward(grad, input_grad=False)`` was called): the parameter gradients
        alone. Layers that can skip work for it override this."""
        self.backward(grad)

    def __call__(self, x):
        return self.forward(x)  # not `__call__ = forward`: that binds BaseLayer.forward

    def train(self, mode=True):
        """Set train (`mode` True) or eval mode, on this layer and every nested one."""
        self.training = bool(mode)
        for _, child in self.named_children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    # --- nesting: containers override `named_children`, the rest follows -------------------

    def named_children(self):
        """``(name, layer)`` of the layers this one holds directly; none for a plain
        layer. Containers (`Sequential`, `Residual`, `Concat`) override it, and the
        walks below (`named_layers`, `parameters`, `state_dict`, `train`) follow it."""
        return iter(())

    def named_layers(self, prefix=""):
        """``(key, layer)`` for this layer (key `prefix`) and every layer nested in it,
        depth first, keys joined with dots like PyTorch's ``named_modules``
        (``"3.body.0"``)."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_layers(_join(prefix, name))

    def parameters(self, recurse=True):
        """The `Parameter` handles of this layer's parameters, then (with `recurse`) of
        the layers nested in it, depth first: what an optimizer is bound to
        (``optim.SGD(model.parameters(), lr=0.1)``). Each parameter once, always the
        same handle; ``sum(p.size for p in model.parameters())`` counts them."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_parameters(self, prefix="", recurse=True):
        """``(key, Parameter)`` pairs in the order of `parameters`, keys as in
        `state_dict` and PyTorch (``"0.weight"``, ``"3.body.0.bias"``)."""
        layers = self.named_layers(prefix) if recurse else iter(((prefix, self),))
        seen = set()
        for path, layer in layers:
            for name in layer.params:
                handle = layer._parameter(name)
                if id(handle) not in seen:
                    seen.add(id(handle))
                    yield _join(path, name), handle

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of every parameter, nested layers included: remove them
        (`set_to_none`, the default, as PyTorch), or fill them with zeros in place.
        Gradients accumulate over backward calls, so a training loop calls this (or the
        optimizer's ``zero_grad``) once per step."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.fill(0)

    def _parameter(self, name):
        """The one cached `Parameter` handle of ``self.params[name]``."""
        handles = vars(self).setdefault("_parameter_handles", {})
        handle = handles.get(name)
        if handle is None:
            handle = handles[name] = Parameter(self, name)
        return handle

    def _accumulate_grad(self, name, grad):
        """Add `grad` (a new array from this backward) to the gradient of parameter
        `name`: stored as is when there is none yet, else added in place."""
        current = self.grads.get(name)
        if current is None:
            self.grads[name] = grad
        else:
            current += grad

    def state_dict(self):
        """Parameters and buffers by key, nested layers included, in PyTorch's order
        (a layer's parameters, then its buffers, then its children's); the arrays
        themselves, not copies."""
        state = {}
        for path, layer in self.named_layers():
            for name, arr in (*layer.params.items(), *layer.buffers.items()):
                state[_join(path, name)] = arr
        return state

    def load_state_dict(self, state, strict=True):
        """Copy the arrays of `state` into this layer and the layers nested in it.

        Keys are those of `state_dict` (PyTorch's for the same architecture:
        ``"0.weight"``, ``"1.running_mean"``, ``"3.body.0.bias"``). Values may be
        anything `numpy.asarray` takes, PyTorch tensors included (read through
        ``.detach().cpu().numpy()``, without importing torch); each is copied, cast to
        the dtype of the array it replaces (the model's float dtype; the integer
        ``num_batches_tracked`` stays int64) and must have its shape. The new arrays
        replace the old ones in the layers' `params` / `buffers` dicts, so the caller's
        arrays are never shared with the model.

        As in PyTorch, a state without a batch norm's ``num_batches_tracked`` (files
        from before pycnn had it) loads and leaves the counter as it was.

        Parameters
        ----------
        state : mapping of str to array
        strict : bool, every key of this model must be in `state` and nothing else

        Returns
        -------
        IncompatibleKeys
            named tuple ``(missing_keys, unexpected_keys)``, lists of keys (both empty
            after a strict load).

        Raises
        ------
        ValueError
            listing every missing and unexpected key (with `strict`) and every key whose
            array has the wrong shape (expected and received); nothing is changed then.
        TypeError
            if `state` is not a mapping or a value is not a numeric array.
        """
        if not isinstance(state, Mapping):
            raise TypeError(
                "`state` must be a mapping of keys to arrays (a state dict). "
                f"Received: state of type {type(state).__name__}"
            )
        slots = _state_slots(self)
        missing = [k for k in slots if k not in state and not f".{k}".endswith(_OPTIONAL_KEY)]
        unexpected = [k for k in state if k not in slots]
        new, wrong = {}, []
        for key, (store, name) in slots.items():
            if key not in state:
                continue
            old = store[name]
            arr = _numeric_array(state[key], f"state[{key!r}]")
            if arr.shape != old.shape:
                wrong.append(f"{key!r} expects shape {old.shape}, received {arr.shape}")
                continue
            new[key] = np.array(arr, dtype=old.dtype, order="C", copy=True)
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if wrong:
            problems.append(f"wrong shapes: {'; '.join(wrong)}")
        if problems:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: `state` does not match this "
                "model: " + ", ".join(problems)
            )
        for key, arr in new.items():
            store, name = slots[key]
            store[name] = arr  # replaced in the dict: Parameter handles read through it
        return IncompatibleKeys(missing, unexpected)

    def to(self, dtype):
        """Convert the parameters, buffers and gradients of this layer and of the layers
        nested in it to `dtype` (float32 or float64: a NumPy dtype or its name), in place;
        return the layer.

        The new arrays replace the old ones in the `params`, `buffers` and `grads` dicts
        (integer buffers such as ``num_batches_tracked`` stay integer), every layer's
        `dtype` follows, and per-dtype caches are dropped. Build optimizers after `to`:
        the state they already keep (momentum, moments) stays in the old dtype.
        """
        dtype = V.float_dtype(dtype)
        for _, layer in self.named_layers():
            for store in (layer.params, layer.buffers, layer.grads):
                for name, arr in list(store.items()):
                    if isinstance(arr, np.ndarray) and arr.dtype.kind == "f":
                        if arr.dtype != dtype:
                            store[name] = arr.astype(dtype)
            if hasattr(layer, "dtype"):
                layer.dtype = dtype
            plans = getattr(layer, "_plans", None)
            if isinstance(plans, dict):
                plans.clear()
        return self

    def extra_repr(self):
        """Arguments shown by `repr`; only those that differ from their default."""
        return ""

    def _arguments(self):
        """`extra_repr`, plus ``backend='numpy'`` for a layer built on that backend: the
        arguments `repr` shows. Error messages show `extra_repr` alone, since every
        backend raises the same text."""
        text = self.extra_repr()
        backend = getattr(self, "backend", "compiled")
        if backend == "compiled":
            return text
        return f"{text}, backend={backend!r}" if text else f"backend={backend!r}"

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self._arguments()})"
        # PyTorch's layout: one "(name): repr" line per child, nested reprs indented
        lines = [self.extra_repr()] if self.extra_repr() else []
        lines += [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _join(prefix, name):
    """``"3.body"`` + ``"weight"`` -> ``"3.body.weight"``; no dot after an empty prefix."""
    return f"{prefix}.{name}" if prefix else name


# --- state dicts and checked assignment ------------------------------------------------


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict` did not match, as PyTorch's ``load_state_dict`` returns."""

    missing_keys: list
    unexpected_keys: list


_OPTIONAL_KEY = ".num_batches_tracked"  # a state may lack it (older files, as in PyTorch)


def _state_slots(layer):
    """``{key: (dict, name)}``: where each array of ``layer.state_dict()`` lives."""
    slots = {}
    for path, sub in layer.named_layers():
        for store in (sub.params, sub.buffers):
            for name in store:
                slots[_join(path, name)] = (store, name)
    return slots


def _numeric_array(value, what):
    """`value` as an ndarray of booleans, integers or floats (not necessarily a copy).

    A PyTorch tensor (anything with ``detach``) is read through
    ``.detach().cpu().numpy()``; bfloat16, which NumPy lacks, through float32."""
    if not isinstance(value, np.ndarray) and callable(getattr(value, "detach", None)):
        tensor = value.detach()
        if callable(getattr(tensor, "cpu", None)):
            tensor = tensor.cpu()
        try:
            value = tensor.numpy()
        except TypeError:  # bfloat16: no NumPy dtype
            value = tensor.float().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"`{what}` must be an array of numbers. Received: a {type(value).__name__} "
            f"that numpy.asarray refuses ({exc})"
        ) from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"`{what}` must be an array of numbers. Received: {what}.dtype={arr.dtype}"
        )
    return arr


class _Slot:
    """A layer attribute backed by ``layer.params[name]`` (or ``layer.buffers``).

    Reading gives the live array (None if the layer has none, like a bias of a layer
    built with ``bias=False``). Assigning (``conv.weight = w``) copies the value,
    casts it to the array's dtype and checks its shape, then replaces the array in the
    dict, as `load_state_dict` does; writing ``layer.params["weight"] = w`` directly
    skips those checks."""

    def __init__(self, store="params"):
        self.store = store

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, layer, owner=None):
        if layer is None:
            return self
        return getattr(layer, self.store).get(self.name)

    def __set__(self, layer, value):
        store = getattr(layer, self.store)
        old = store.get(self.name)
        if old is None:
            raise ValueError(
                f"{layer!r}: has no `{self.name}` to assign (built without it). "
                f"Received: {self.name} of type {type(value).__name__}"
            )
        try:
            arr = _numeric_array(value, self.name)
        except TypeError as exc:
            raise TypeError(f"{layer!r}: {exc}") from None
        if arr.shape != old.shape:
            raise ValueError(
                f"{layer!r}: `{self.name}` must have shape {old.shape} (dtype {old.dtype}). "
                f"Received: {self.name}.shape={arr.shape} (dtype {arr.dtype})"
            )
        store[self.name] = np.array(arr, dtype=old.dtype, order="C", copy=True)


def _check_input(x, layer, name="x"):
    """`x` must be a float32/float64 ndarray (the message names the layer)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{layer}: `{name}` must be a numpy.ndarray. "
            f"Received: {name} of type {type(x).__name__}"
        )
    if x.dtype not in V.FLOAT_DTYPES:
        raise TypeError(
            f"{layer}: `{name}` must have dtype float32 or float64. "
            f"Received: {name}.dtype={x.dtype}"
        )
    return x


def _check_grad(grad, shape, dtype, layer):
    """`grad` must be an array with the forward output's `shape` and `dtype`."""
    _check_input(grad, layer, "grad")
    if grad.shape != tuple(shape):
        raise ValueError(
            f"{layer}: `grad` must have the forward output's shape "
            f"{tuple(shape)}. Received: grad.shape={grad.shape}"
        )
    if grad.dtype != dtype:
        raise TypeError(
            f"{layer}: `grad` must have the forward output's dtype "
            f"({np.dtype(dtype)}). Received: grad.dtype={grad.dtype}"
        )
    return grad


class _WeightedLayer(BaseLayer):
    """A layer with a He-initialised `weight` and an optional zero `bias`.

    Both can be assigned: ``conv.weight = w`` copies `w`, casts it to the layer's dtype
    and checks its shape (see `_Slot`); ``conv.params["weight"] = w`` does not check.
    """

    def _init_params(self, weight_shape, bias, rng):
        self.params["weight"] = init.he_normal(weight_shape, rng, self.dtype)
        if bias:
            self.params["bias"] = np.zeros(weight_shape[0], dtype=self.dtype)
        self._x = None

    weight = _Slot()
    bias = _Slot()


def _backend(name):
    """The op module behind `backend=`: compiled `functional` or NumPy `reference`."""
    if name == "compiled":
        from pycnn import functional

        return functional
    if name == "numpy":
        from pycnn import reference

        return reference
    raise ValueError(f"`backend` must be 'compiled' or 'numpy'. Received: backend={name!r}")


# --- errors that name the layer (issue 19) ---------------------------------------------------


def _short_repr(layer):
    """A layer's name and arguments on one line, for error messages: without a
    container's children, and without the backend (every backend raises the same
    text)."""
    return f"{type(layer).__name__}({layer.extra_repr()})"


def _check_layer_input(layer, x, ok, expected, dtype=None, channels=None):
    """Check the input of `layer`'s forward; the messages start with the layer's repr.

    `ok` is whether `x`'s shape fits (called once `x` is known to be a float array),
    `expected` says what fits, e.g. ``"input with 3 channels (N, 3, H, W)"``. With
    `channels`, a 4-d input whose last axis has that size (and whose axis 1 has not) is
    said to look channels-last. With `dtype`, `x` must have it: TypeError with the two
    conversions that fix it.
    """
    if not isinstance(x, np.ndarray) or x.dtype not in V.FLOAT_DTYPES:
        _check_input(x, _short_repr(layer))  # raises
    if ok(x) and (dtype is None or x.dtype == dtype):
        return x  # the common case, without building the repr
    name = _short_repr(layer)
    if not ok(x):
        hint = ""
        if channels is not None and x.ndim == 4 and x.shape[3] == channels != x.shape[1]:
            hint = "; input looks channels-last: use x.transpose(0, 3, 1, 2)"
        raise ValueError(f"{name}: expected {expected}; got x.shape={x.shape}{hint}")
    if dtype is not None and x.dtype != dtype:
        want, got = np.dtype(dtype).name, x.dtype.name
        raise TypeError(
            f"{name}: expected {want} input (the dtype of the layer's parameters); got "
            f"x.dtype={got}. Convert the model, model.to(np.{got}), or the input, "
            f"x.astype(np.{want}) (fit, evaluate and predict convert their input; "
            "forward does not)"
        )
    return x


def _call_child(name, child, method, *args):
    """``child.<method>(*args)`` for a container, `name` being the child's key in it.

    An exception from the child is raised again, of the same type, as
    ``"layer <path> (<repr>): <message>"``, chained to the original one (``raise ...
    from``). `path` is the key path from the outermost container that calls this, so
    nested containers give one message, ``"layer 3.body.0 (Conv2d(...)): ..."``, not
    one prefix per level. An exception type that cannot be built from one message is
    raised unchanged.
    """
    try:
        return getattr(child, method)(*args)
    except Exception as err:
        located = _located(err, name, child)
        if located is None:
            raise
        raise located from located.__dict__["_pycnn_where"][0]


def _runs_fused(layer, method):
    """Whether a container may call ``layer.<method>``, a fused form of its `forward`
    (`_forward_relu`, `_forward_add`), in place of `forward`: the method comes from the
    class `forward` comes from, and that `forward` is the one the class was written
    with. A subclass replacing `forward` alone, a `forward` patched onto the class (a
    profiler's wrapper) or onto the instance (`summary` records shapes that way) keeps
    its forward, so that it is still called."""
    cls = type(layer)
    return "forward" not in vars(layer) and _class_runs_fused(cls, cls.forward, method)


@functools.cache
def _class_runs_fused(cls, forward, method):
    # keyed on the `forward` function too, so that a later patch is seen
    owner = [
        next((k for k in cls.__mro__ if name in vars(k)), None) for name in (method, "forward")
    ]
    return (
        owner[0] is not None
        and owner[0] is owner[1]
        and getattr(forward, "__qualname__", "") == f"{owner[1].__qualname__}.forward"
    )


def _located(err, name, child):
    """`err` (from `child`, key `name`) as a new exception naming the layer, or None."""
    # (original exception, path, layer, text) when a nested container located it
    where = getattr(err, "__dict__", {}).get("_pycnn_where")
    if where is None:  # raised by `child` itself or by a plain layer inside it
        origin, path, layer = err, name, child
        message = str(err)
        # the layer's own prefix ("Conv2d(...): " or "Linear: ") would repeat the repr
        for prefix in (_short_repr(layer) + ": ", type(layer).__name__ + ": "):
            if message.startswith(prefix):
                message = message[len(prefix) :]
                break
    else:  # already located by a container nested in `child`: extend its path
        origin, path, layer, message = where
        path = f"{name}.{path}"
    try:
        located = type(origin)(f"layer {path} ({_short_repr(layer)}): {message}")
    except Exception:
        return None
    located.__dict__["_pycnn_where"] = (origin, path, layer, message)
    return located
