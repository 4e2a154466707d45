"""PyTorch twins of pycnn models and back: `from_torch` and `to_torch`.

``from_torch(module)`` builds the pycnn layer (or `Sequential`) that computes what a
``torch.nn`` module computes, with its weights, buffers, dtype and train/eval mode;
``to_torch(model)`` builds the PyTorch module of a pycnn model. Both map layers by
class, one for one, with the same constructor arguments, and copy the state by key:
the state dicts of the two twins have the same keys, shapes, dtypes and values.

pycnn's `Residual`, `Concat` and `TanhExp` have no ``torch.nn`` class; `to_torch`
makes them `TorchResidual` (``body(x) + shortcut(x)``), `TorchConcat` (``torch.cat``
of its ``branches``, an ``nn.ModuleList``) and `TorchTanhExp` modules, defined here
with the state-dict keys of their pycnn layers, and `from_torch` takes them back.
Those three classes are made when first asked for (``pycnn.torch_bridge.TorchResidual``),
since PyTorch is imported only when one of these functions runs.
"""

import numpy as np

__all__ = ["from_torch", "to_torch"]

# Layers whose class has the same name in pycnn and in torch.nn, and the constructor
# arguments they share by name (read from one twin's attributes, passed to the other).
_TWINS = {
    # element-wise activations
    "ReLU": (),
    "LeakyReLU": ("negative_slope",),
    "Sigmoid": (),
    "Tanh": (),
    "ELU": ("alpha",),
    "SELU": (),
    "CELU": ("alpha",),
    "GELU": ("approximate",),
    "SiLU": (),
    "Mish": (),
    "Softplus": ("beta", "threshold"),
    "Softsign": (),
    "Hardtanh": ("min_val", "max_val"),
    "ReLU6": (),
    "Hardsigmoid": (),
    "Hardswish": (),
    "LogSigmoid": (),
    "Tanhshrink": (),
    "Softshrink": ("lambd",),
    "Hardshrink": ("lambd",),
    "Threshold": ("threshold", "value"),
    "Softmax": ("dim",),
    "LogSoftmax": ("dim",),
    "PReLU": ("num_parameters", "init"),
    # layers with weights
    "Conv2d": (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
    ),
    "ConvTranspose2d": (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "output_padding",
        "groups",
        "dilation",
    ),
    "Linear": ("in_features", "out_features"),
    "BatchNorm1d": ("num_features", "eps", "momentum", "affine"),
    "BatchNorm2d": ("num_features", "eps", "momentum", "affine"),
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine"),
    "GroupNorm": ("num_groups", "num_channels", "eps", "affine"),
    # pooling, reshaping, regularisation
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "AvgPool2d": (
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
    ),
    "LPPool2d": ("norm_type", "kernel_size", "stride", "ceil_mode"),
    "AdaptiveAvgPool2d": ("output_size",),
    "AdaptiveMaxPool2d": ("output_size", "return_indices"),
    "Flatten": ("start_dim", "end_dim"),
    "Dropout": ("p",),
    "Dropout2d": ("p",),
    "Upsample": ("size", "scale_factor"),
    "Identity": (),
}
_WITH_BIAS = ("Conv2d", "ConvTranspose2d", "Linear")  # bias=True/False
_WITH_DTYPE = _WITH_BIAS + ("BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "PReLU")
_EXTRA = ("TorchResidual", "TorchConcat", "TorchTanhExp")  # made by _torch_classes


def _torch(what):
    try:
        import torch
    except ImportError:
        raise ImportError(f"`{what}` needs PyTorch: pip install torch") from None
    return torch


# --- PyTorch -> pycnn --------------------------------------------------------------------


def from_torch(module):
    """The pycnn twin of a PyTorch module: same layers, arguments, weights, buffers,
    dtype and train/eval mode.

    Parameters
    ----------
    module : torch.nn.Module
        a ``torch.nn.Sequential`` (nested ones included) of supported layers, or one
        supported layer: every layer class pycnn has (`Conv2d`, `ConvTranspose2d`,
        `Linear`, the batch, layer and group norms, the poolings, `Flatten`, `Dropout`,
        `Dropout2d`, `Upsample` (nearest), `Identity`, every activation), and
        `TorchResidual`, `TorchConcat`, `TorchTanhExp` (what `to_torch` makes of
        pycnn's `Residual`, `Concat`, `TanhExp`). Its tensors are float32 or float64.

    Returns
    -------
    pycnn layer
        a `pycnn.Sequential` for a ``torch.nn.Sequential``; its `state_dict` has the
        module's keys, shapes, dtypes and values (copies: the two share no memory).

    Raises
    ------
    TypeError
        naming the path and class of a module pycnn has no twin for
        (``"model.3.body.1: torch.nn.LSTM is not supported"``), or of one whose
        tensors are not float32/float64.
    ValueError
        naming the path of a module with an option pycnn lacks (``padding_mode`` other
        than 'zeros', batch norm without running statistics, ...).
    """
    torch = _torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(
            "`module` must be a torch.nn.Module. "
            f"Received: module of type {type(module).__name__}"
        )
    return _from(module, "model", torch)


def _from(module, path, torch):
    import pycnn

    cls = type(module)
    extra = _torch_classes()
    children = [(name, child) for name, child in module.named_children()]
    if cls is torch.nn.Sequential:
        layer = pycnn.Sequential(*(_from(c, f"{path}.{n}", torch) for n, c in children))
    elif cls is extra["TorchResidual"]:
        body = _from(module.body, f"{path}.body", torch)
        layer = pycnn.Residual(body, _from(module.shortcut, f"{path}.shortcut", torch))
    elif cls is extra["TorchConcat"]:
        branches = [
            _from(b, f"{path}.branches.{i}", torch) for i, b in enumerate(module.branches)
        ]
        layer = pycnn.Concat(*branches, dim=module.dim)
    elif cls is extra["TorchTanhExp"]:
        layer = pycnn.TanhExp()
    elif getattr(torch.nn, cls.__name__, None) is cls and cls.__name__ in _TWINS:
        _check_torch_options(module, path)
        name = cls.__name__
        kwargs = {arg: getattr(module, arg) for arg in _TWINS[name]}
        if name in _WITH_BIAS:
            kwargs["bias"] = module.bias is not None
        if name in _WITH_DTYPE:
            kwargs["dtype"] = _dtype_of(module, path, torch)
        if name == "LayerNorm":
            kwargs["normalized_shape"] = tuple(kwargs["normalized_shape"])
        try:
            layer = getattr(pycnn, name)(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {_name(cls)} cannot be converted: {exc}") from None
        layer.load_state_dict(module.state_dict())
    else:
        raise TypeError(f"{path}: {_name(cls)} is not supported by pycnn.from_torch")
    layer.training = module.training  # this module's mode; its children set their own
    return layer


def _name(cls):
    """``torch.nn.Conv2d`` for a torch.nn class, else the class's module and name."""
    import torch

    if getattr(torch.nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_torch_options(module, path):
    """ValueError for an option of a torch.nn layer that its pycnn twin does not have."""
    name = type(module).__name__
    problems = []
    if getattr(module, "padding_mode", "zeros") != "zeros":
        problems.append(f"padding_mode={module.padding_mode!r} (only 'zeros')")
    if name.startswith("BatchNorm") and not module.track_running_stats:
        problems.append("track_running_stats=False (pycnn keeps running statistics)")
    if name.endswith("Norm") or name.startswith("BatchNorm"):
        if module.weight is not None and module.bias is None:
            problems.append("a weight without a bias (bias=False)")
    if name == "MaxPool2d" and module.return_indices:
        problems.append("return_indices=True")
    if name == "Upsample":
        if module.mode != "nearest":
            problems.append(f"mode={module.mode!r} (only 'nearest')")
        if module.recompute_scale_factor:
            problems.append("recompute_scale_factor=True")
    if name in ("Softmax", "LogSoftmax") and module.dim is None:
        problems.append("dim=None (pycnn needs the axis)")
    if problems:
        raise ValueError(
            f"{path}: {_name(type(module))} has options pycnn does not support: "
            + ", ".join(problems)
        )


def _dtype_of(module, path, torch):
    """np.float32 or np.float64: the dtype of the module's floating tensors."""
    dtypes = {
        t.dtype for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()
    }
    known = {torch.float32: np.float32, torch.float64: np.float64}
    if len(dtypes) != 1 or next(iter(dtypes)) not in known:
        got = ", ".join(sorted(str(d) for d in dtypes)) or "none"
        raise TypeError(
            f"{path}: {_name(type(module))} must hold float32 or float64 tensors of one "
            f"dtype (pycnn computes in those). Received: {got}"
        )
    return known[dtypes.pop()]


# --- pycnn -> PyTorch --------------------------------------------------------------------


def to_torch(model):
    """The PyTorch twin of a pycnn layer or model: same layers, arguments, weights,
    buffers, dtype and train/eval mode.

    `Sequential` becomes ``torch.nn.Sequential``, `Residual` / `Concat` / `TanhExp`
    become `TorchResidual` / `TorchConcat` / `TorchTanhExp` (defined here, with the
    same state-dict keys), every other layer its ``torch.nn`` namesake.

    Returns
    -------
    torch.nn.Module
        whose ``state_dict()`` has the keys, shapes, dtypes and values of
        ``model.state_dict()`` (copies: the two share no memory).

    Raises
    ------
    TypeError
        naming the path and class of a layer without a PyTorch twin (a subclass, a
        layer of your own).
    """
    torch = _torch("to_torch")
    import pycnn

    if not isinstance(model, pycnn.BaseLayer):
        raise TypeError(
            "`model` must be a pycnn layer (a BaseLayer instance). "
            f"Received: model of type {type(model).__name__}"
        )
    return _to(model, "model", torch)


def _to(layer, path, torch):
    import pycnn

    nn = torch.nn
    cls = type(layer)
    name = cls.__name__
    extra = _torch_classes()
    if cls is pycnn.Sequential:
        module = nn.Sequential(
            *(_to(c, f"{path}.{n}", torch) for n, c in layer.named_children())
        )
    elif cls is pycnn.Residual:
        module = extra["TorchResidual"](
            _to(layer.body, f"{path}.body", torch),
            _to(layer.shortcut, f"{path}.shortcut", torch),
        )
    elif cls is pycnn.Concat:
        branches = [_to(b, f"{path}.branches.{i}", torch) for i, b in enumerate(layer.branches)]
        module = extra["TorchConcat"](*branches, dim=layer.dim)
    elif cls is pycnn.TanhExp:
        module = extra["TorchTanhExp"]()
    elif getattr(pycnn, name, None) is cls and name in _TWINS:
        kwargs = {arg: getattr(layer, arg) for arg in _TWINS[name]}
        if name in _WITH_BIAS:
            kwargs["bias"] = "bias" in layer.params
        if name == "Upsample":
            kwargs["mode"] = layer.mode
        module = getattr(nn, name)(**kwargs)
        if name in _WITH_DTYPE:
            module.to(torch.float64 if layer.dtype == np.float64 else torch.float32)
        state = {
            k: torch.from_numpy(np.array(v, copy=True)) for k, v in layer.state_dict().items()
        }
        module.load_state_dict(state, strict=True)
    else:
        raise TypeError(
            f"{path}: {cls.__module__}.{cls.__qualname__} has no PyTorch twin "
            "(pycnn.to_torch converts pycnn's own layer classes)"
        )
    module.training = layer.training  # this layer's mode; its children set their own
    return module


# --- the PyTorch modules of pycnn's containers -------------------------------------------

_CLASSES: dict = {}


def _torch_classes():
    """{name: class} of TorchResidual, TorchConcat and TorchTanhExp, made once."""
    if _CLASSES:
        return _CLASSES
    torch = _torch("pycnn.torch_bridge")
    nn = torch.nn

    class TorchResidual(nn.Module):
        """``body(x) + shortcut(x)``, pycnn's `Residual` (keys ``body.*``,
        ``shortcut.*``); ``shortcut=None`` is the identity."""

        def __init__(self, body, shortcut=None):
            super().__init__()
            self.body = body
            self.shortcut = nn.Identity() if shortcut is None else shortcut

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    class TorchConcat(nn.Module):
        """``torch.cat([b(x) for b in branches], dim)``, pycnn's `Concat` (keys
        ``branches.<i>.*``)."""

        def __init__(self, *branches, dim=1):
            super().__init__()
            self.branches = nn.ModuleList(branches)
            self.dim = dim

        def forward(self, x):
            return torch.cat([branch(x) for branch in self.branches], dim=self.dim)

        def extra_repr(self):
            return f"dim={self.dim}"

    class TorchTanhExp(nn.Module):
        """``x * tanh(exp(x))``, pycnn's `TanhExp`."""

        def forward(self, x):
            return x * torch.tanh(torch.exp(x))

    for cls in (TorchResidual, TorchConcat, TorchTanhExp):
        cls.__module__ = __name__  # pickled by reference: pycnn.torch_bridge.<name>
        cls.__qualname__ = cls.__name__
        _CLASSES[cls.__name__] = cls
    return _CLASSES


def __getattr__(name):
    if name in _EXTRA:
        return _torch_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
