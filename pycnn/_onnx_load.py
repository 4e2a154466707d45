"""The reading half of `pycnn.onnx`: layers rebuilt from the node groups that
`pycnn._onnx_export` writes (pattern by pattern), the containers from the layer keys in
the node names. The `onnx` module comes from the caller; nothing here imports it."""

import ast

import numpy as np

from pycnn._onnx_export import _join, _shortest


class _Context:
    """What the leaf builders read: initializers, inferred shapes, attributes."""

    def __init__(self, onnx, proto, backend):
        self.backend = backend
        self.helper = onnx.helper
        graph = proto.graph
        self.init = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        self.shapes = {}
        for vi in (*graph.input, *graph.value_info, *graph.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = tuple(
                d.dim_value if d.HasField("dim_value") else None for d in dims
            )
        elem = graph.input[0].type.tensor_type.elem_type
        self.dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))

    def attrs(self, node):
        return {a.name: self.helper.get_attribute_value(a) for a in node.attribute}

    def const(self, node, i):
        if i >= len(node.input) or node.input[i] not in self.init:
            raise ValueError(
                f"pycnn.onnx.load: node {node.name!r} ({node.op_type}) must take input "
                f"{i} from an initializer"
            )
        return self.init[node.input[i]]

    def scalar(self, node, i):
        return _shortest_like(self.const(node, i))

    def shape(self, name):
        return self.shapes.get(name)


def _shortest_like(arr):
    value = float(np.asarray(arr).ravel()[0])
    return _shortest(value) if np.asarray(arr).dtype == np.float32 else value


def _set(layer, name, array, shape=None, buffer=False):
    arr = np.array(array, dtype=array.dtype, copy=True)
    if shape is not None:
        arr = arr.reshape(shape)
    (layer.buffers if buffer else layer.params)[name] = np.ascontiguousarray(arr)


def _expect(nodes, ops, cls):
    got = [n.op_type for n in nodes]
    if got != list(ops):
        first = nodes[0]
        raise ValueError(
            f"pycnn.onnx.load: the nodes of {cls} layer {first.name.rsplit('/', 2)[0]!r} "
            f"must be {list(ops)}. Received: {got} (node {first.name!r})"
        )


def _pad_pair(node, pads, cls):
    t, left, b, r = pads
    if (t, left) != (b, r):
        raise ValueError(
            f"pycnn.onnx.load: node {node.name!r} ({node.op_type}) has uneven pads "
            f"{list(pads)}, which {cls} cannot express"
        )
    return (t, left)


def _check_auto_pad(node, a):
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ValueError(
            f"pycnn.onnx.load: node {node.name!r} ({node.op_type}) uses auto_pad="
            f"{a['auto_pad']!r}; only explicit pads are read"
        )


def _load_conv(ctx, nodes, cls):
    import pycnn

    (node,) = nodes
    a = ctx.attrs(node)
    _check_auto_pad(node, a)
    w = ctx.const(node, 1)
    bias = ctx.const(node, 2) if len(node.input) > 2 and node.input[2] else None
    k = tuple(w.shape[2:])
    stride = tuple(a.get("strides", (1, 1)))
    dilation = tuple(a.get("dilations", (1, 1)))
    groups = a.get("group", 1)
    pads = tuple(a.get("pads", (0, 0, 0, 0)))
    common = dict(
        stride=stride,
        dilation=dilation,
        groups=groups,
        bias=bias is not None,
        backend=ctx.backend,
    )
    if node.op_type == "Conv":
        total = [d * (kk - 1) for d, kk in zip(dilation, k)]
        if (
            pads[:2] != pads[2:]
            and stride == (1, 1)
            and list(pads)
            == [
                total[0] // 2,
                total[1] // 2,
                total[0] - total[0] // 2,
                total[1] - total[1] // 2,
            ]
        ):
            padding = "same"
        else:
            padding = _pad_pair(node, pads, "Conv2d")
        layer = pycnn.Conv2d(
            w.shape[1] * groups, w.shape[0], k, padding=padding, dtype=w.dtype, **common
        )
    else:
        if "output_shape" in a:
            raise ValueError(
                f"pycnn.onnx.load: node {node.name!r} (ConvTranspose) sets output_shape; "
                "only output_padding is read"
            )
        layer = pycnn.ConvTranspose2d(
            w.shape[0],
            w.shape[1] * groups,
            k,
            padding=_pad_pair(node, pads, "ConvTranspose2d"),
            output_padding=tuple(a.get("output_padding", (0, 0))),
            dtype=w.dtype,
            **common,
        )
    _set(layer, "weight", w)
    if bias is not None:
        _set(layer, "bias", bias)
    return layer


def _load_linear(ctx, nodes, cls):
    import pycnn

    ops = [n.op_type for n in nodes]
    if ops[0] == "Gemm":
        (node,) = nodes
        a = ctx.attrs(node)
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise ValueError(
                f"pycnn.onnx.load: node {node.name!r} (Gemm) has transA, alpha or beta "
                "that a Linear layer cannot express"
            )
        w = ctx.const(node, 1)
        w = w if a.get("transB", 0) else w.T
        bias = ctx.const(node, 2) if len(node.input) > 2 and node.input[2] else None
    else:
        _expect(nodes[:2], ["Transpose", "MatMul"], "Linear")
        w = ctx.const(nodes[0], 0)
        bias = None
        if len(nodes) == 3:
            _expect(nodes, ["Transpose", "MatMul", "Add"], "Linear")
            bias = ctx.const(nodes[2], 1)
    layer = pycnn.Linear(
        w.shape[1], w.shape[0], bias=bias is not None, dtype=w.dtype, backend=ctx.backend
    )
    _set(layer, "weight", w)
    if bias is not None:
        _set(layer, "bias", bias.reshape(-1))
    return layer


def _load_flatten(ctx, nodes, cls):
    import pycnn

    (node,) = nodes
    if node.op_type == "Flatten":
        axis = ctx.attrs(node).get("axis", 1)
        if axis != 1:
            raise ValueError(
                f"pycnn.onnx.load: node {node.name!r} (Flatten) has axis={axis}; "
                "only axis=1 is a pycnn Flatten"
            )
        return pycnn.Flatten()
    target = [int(v) for v in ctx.const(node, 1)]
    start = target.index(-1)
    return pycnn.Flatten(start_dim=start, end_dim=-(len(target) - start))


def _pool_args(ctx, node, cls, with_pads=True):
    a = ctx.attrs(node)
    _check_auto_pad(node, a)
    k = tuple(a["kernel_shape"])
    args = dict(kernel_size=k, stride=tuple(a.get("strides", (1, 1))))
    if args["stride"] == k:
        args["stride"] = None
    if with_pads:
        args["padding"] = _pad_pair(node, tuple(a.get("pads", (0, 0, 0, 0))), cls)
    args["ceil_mode"] = bool(a.get("ceil_mode", 0))
    return a, args


def _load_max_pool(ctx, nodes, cls):
    import pycnn

    if cls == "AdaptiveMaxPool2d" and nodes[0].op_type == "Gather":
        _expect(nodes, ["Gather", "ReduceMax", "Gather", "ReduceMax"], cls)
        size = (len(ctx.const(nodes[0], 1)), len(ctx.const(nodes[2], 1)))
        return pycnn.AdaptiveMaxPool2d(size, backend=ctx.backend)
    (node,) = nodes
    if node.op_type == "GlobalMaxPool" or cls == "AdaptiveMaxPool2d":
        return pycnn.AdaptiveMaxPool2d(_adaptive_size(ctx, node), backend=ctx.backend)
    a, args = _pool_args(ctx, node, "MaxPool2d")
    return pycnn.MaxPool2d(
        dilation=tuple(a.get("dilations", (1, 1))), backend=ctx.backend, **args
    )


def _adaptive_size(ctx, node):
    if node.op_type.startswith("Global"):
        return 1
    shape = ctx.shape(node.output[0])
    if not shape or None in shape[2:]:
        raise ValueError(
            f"pycnn.onnx.load: node {node.name!r} ({node.op_type}) of an adaptive pooling "
            "needs a known output size (shape inference could not give it)"
        )
    return tuple(shape[2:])


def _load_avg_pool(ctx, nodes, cls):
    import pycnn

    node = nodes[0]
    if cls == "AdaptiveAvgPool2d" and node.op_type == "MatMul":
        _expect(nodes, ["MatMul", "MatMul"], cls)
        size = (ctx.const(nodes[0], 0).shape[0], ctx.const(nodes[1], 1).shape[1])
        return pycnn.AdaptiveAvgPool2d(size, backend=ctx.backend)
    if node.op_type == "GlobalAveragePool" or cls == "AdaptiveAvgPool2d":
        _expect(nodes, [node.op_type], cls)
        return pycnn.AdaptiveAvgPool2d(_adaptive_size(ctx, node), backend=ctx.backend)
    a, args = _pool_args(ctx, node, "AvgPool2d")
    if tuple(a.get("dilations", (1, 1))) != (1, 1):
        raise ValueError(f"pycnn.onnx.load: node {node.name!r} (AveragePool) has dilations")
    include = bool(a.get("count_include_pad", 0))
    divisor = None
    if len(nodes) > 1:
        _expect(nodes, ["AveragePool", "Mul"], "AvgPool2d")
        k = args["kernel_size"]
        divisor = int(round(k[0] * k[1] / ctx.scalar(nodes[1], 1)))
        include = True
    return pycnn.AvgPool2d(
        count_include_pad=include, divisor_override=divisor, backend=ctx.backend, **args
    )


def _load_lp_pool(ctx, nodes, cls):
    import pycnn

    _expect(nodes, ["Pow", "AveragePool", "Mul", "Pow"], "LPPool2d")
    _, args = _pool_args(ctx, nodes[1], "LPPool2d", with_pads=False)
    return pycnn.LPPool2d(ctx.scalar(nodes[0], 1), backend=ctx.backend, **args)


def _affine(ctx, node, first):
    """(weight, bias) initializers of a normalisation node, None if they are constants."""
    if node.input[first].rsplit("/", 1)[-1].startswith("const"):
        return None
    return ctx.const(node, first), ctx.const(node, first + 1)


def _load_batch_norm(ctx, nodes, cls):
    import pycnn

    (node,) = nodes
    a = ctx.attrs(node)
    mean, var = ctx.const(node, 3), ctx.const(node, 4)
    rank = len(ctx.shape(node.input[0]) or ())
    if cls not in ("BatchNorm1d", "BatchNorm2d"):
        cls = "BatchNorm2d" if rank == 4 else "BatchNorm1d"
    affine = _affine(ctx, node, 1)
    layer = getattr(pycnn, cls)(
        mean.size,
        eps=_shortest(a.get("epsilon", 1e-5)),
        momentum=_shortest(1.0 - _shortest(a.get("momentum", 0.9))),
        affine=affine is not None,
        dtype=mean.dtype,
    )
    if affine is not None:
        _set(layer, "weight", affine[0])
        _set(layer, "bias", affine[1])
    _set(layer, "running_mean", mean, buffer=True)
    _set(layer, "running_var", var, buffer=True)
    return layer


def _load_layer_norm(ctx, nodes, cls):
    import pycnn

    (node,) = nodes
    a = ctx.attrs(node)
    scale = ctx.const(node, 1)
    affine = _affine(ctx, node, 1)
    layer = pycnn.LayerNorm(
        scale.shape,
        eps=_shortest(a.get("epsilon", 1e-5)),
        elementwise_affine=affine is not None,
        dtype=scale.dtype,
    )
    if affine is not None:
        _set(layer, "weight", affine[0])
        _set(layer, "bias", affine[1])
    return layer


def _load_group_norm(ctx, nodes, cls):
    import pycnn

    ops = ["Reshape", "LayerNormalization", "Reshape"]
    affine = len(nodes) == 5
    _expect(nodes, ops + ["Mul", "Add"] if affine else ops, "GroupNorm")
    groups = int(ctx.const(nodes[0], 1)[1])
    channels = int(ctx.const(nodes[2], 1)[1])
    eps = _shortest(ctx.attrs(nodes[1]).get("epsilon", 1e-5))
    layer = pycnn.GroupNorm(groups, channels, eps=eps, affine=affine, dtype=ctx.dtype)
    if affine:
        _set(layer, "weight", ctx.const(nodes[3], 1), (channels,))
        _set(layer, "bias", ctx.const(nodes[4], 1), (channels,))
    return layer


def _load_dropout(ctx, nodes, cls):
    import pycnn

    (node,) = nodes
    p = ctx.scalar(node, 1) if len(node.input) > 1 and node.input[1] else 0.5
    return (pycnn.Dropout2d if cls == "Dropout2d" else pycnn.Dropout)(p)


def _load_upsample(ctx, nodes, cls):
    import pycnn

    if nodes[0].op_type == "Resize":
        (node,) = nodes
        a = ctx.attrs(node)
        modes = [a.get(k, b"") for k in ("mode", "coordinate_transformation_mode")]
        modes = [m.decode() if isinstance(m, bytes) else m for m in modes]
        if modes != ["nearest", "asymmetric"] or len(node.input) < 3:
            raise ValueError(
                f"pycnn.onnx.load: node {node.name!r} (Resize) must be a nearest, "
                f"asymmetric resize by scales. Received: mode, coordinate "
                f"transformation mode {modes}"
            )
        factors = [float(v) for v in ctx.const(node, 2)[2:]]
        return pycnn.Upsample(scale_factor=tuple(factors), backend=ctx.backend)
    _expect(nodes, ["Gather", "Gather"], "Upsample")
    doc = nodes[0].doc_string
    if doc.startswith("scale_factor="):
        return pycnn.Upsample(
            scale_factor=ast.literal_eval(doc.split("=", 1)[1]), backend=ctx.backend
        )
    return pycnn.Upsample(
        size=(len(ctx.const(nodes[0], 1)), len(ctx.const(nodes[1], 1))), backend=ctx.backend
    )


def _load_prelu(ctx, nodes, cls):
    import pycnn

    (node,) = nodes
    slope = ctx.const(node, 1)
    layer = pycnn.PReLU(slope.size, dtype=slope.dtype)
    _set(layer, "weight", slope, (slope.size,))
    return layer


def _load_clip(ctx, nodes, cls):
    import pycnn

    (node,) = nodes
    lo, hi = ctx.scalar(node, 1), ctx.scalar(node, 2)
    if cls == "ReLU6" and (lo, hi) == (0.0, 6.0):
        return pycnn.ReLU6()
    return pycnn.Hardtanh(lo, hi)


def _load_shrink(ctx, nodes, cls):
    import pycnn

    (node,) = nodes
    a = ctx.attrs(node)
    lambd, bias = _shortest(a.get("lambd", 0.5)), _shortest(a.get("bias", 0.0))
    if bias == 0.0 and cls != "Softshrink":
        return pycnn.Hardshrink(lambd)
    if bias != lambd:
        raise ValueError(
            f"pycnn.onnx.load: node {node.name!r} (Shrink) has bias={bias} and "
            f"lambd={lambd}; only bias 0 (Hardshrink) or lambd (Softshrink) are read"
        )
    return pycnn.Softshrink(lambd)


def _load_softmax(ctx, nodes, cls):
    import pycnn

    (node,) = nodes
    return getattr(pycnn, node.op_type)(ctx.attrs(node).get("axis", -1))


def _load_activation(ctx, nodes, cls):
    """Activations by their ops, attributes and constants."""
    import pycnn

    ops = [n.op_type for n in nodes]
    node = nodes[0]
    a = ctx.attrs(node)
    single = {
        "Relu": "ReLU",
        "Sigmoid": "Sigmoid",
        "Tanh": "Tanh",
        "Softsign": "Softsign",
        "HardSwish": "Hardswish",
        "Mish": "Mish",
    }
    if len(nodes) == 1 and node.op_type in single:
        return getattr(pycnn, single[node.op_type])()
    if ops == ["LeakyRelu"]:
        return pycnn.LeakyReLU(_shortest(a.get("alpha", 0.01)))
    if ops == ["Elu"]:
        return pycnn.ELU(_shortest(a.get("alpha", 1.0)))
    if ops == ["Celu"]:
        return pycnn.CELU(_shortest(a.get("alpha", 1.0)))
    if ops == ["Selu"]:
        return pycnn.SELU()
    if ops == ["HardSigmoid"]:
        return pycnn.Hardsigmoid()
    if ops == ["Softplus"]:
        return pycnn.Softplus()
    if ops == ["Gelu"]:
        approximate = a.get("approximate", "none")
        approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
        return pycnn.GELU(approximate)
    if cls == "GELU":
        return pycnn.GELU("none" if "Erf" in ops else "tanh")
    patterns = {
        "SiLU": (["Sigmoid", "Mul"], pycnn.SiLU),
        "Mish": (["Softplus", "Tanh", "Mul"], pycnn.Mish),
        "TanhExp": (["Exp", "Tanh", "Mul"], pycnn.TanhExp),
        "Tanhshrink": (["Tanh", "Sub"], pycnn.Tanhshrink),
        "LogSigmoid": (["Neg", "Softplus", "Neg"], pycnn.LogSigmoid),
    }
    if cls in patterns:
        expected, make = patterns[cls]
        _expect(nodes, expected, cls)
        return make()
    if cls == "Softplus":
        _expect(nodes, ["Mul", "Softplus", "Div", "Greater", "Where"], cls)
        return pycnn.Softplus(ctx.scalar(nodes[0], 1), ctx.scalar(nodes[3], 1))
    if cls == "Threshold":
        _expect(nodes, ["Greater", "Where"], cls)
        return pycnn.Threshold(ctx.scalar(nodes[0], 1), ctx.scalar(nodes[1], 2))
    raise _unknown(node)


def _unknown(node):
    return ValueError(
        f"pycnn.onnx.load: cannot read node {node.name!r} of op type {node.op_type!r}: "
        "it is not one of the patterns pycnn.onnx.export writes"
    )


# op type of a layer's first node -> builder (for nodes without pycnn's names too)
_LOADERS = {
    "Conv": _load_conv,
    "ConvTranspose": _load_conv,
    "Gemm": _load_linear,
    "Flatten": _load_flatten,
    "MaxPool": _load_max_pool,
    "GlobalMaxPool": _load_max_pool,
    "AveragePool": _load_avg_pool,
    "GlobalAveragePool": _load_avg_pool,
    "BatchNormalization": _load_batch_norm,
    "LayerNormalization": _load_layer_norm,
    "Dropout": _load_dropout,
    "PRelu": _load_prelu,
    "Clip": _load_clip,
    "Shrink": _load_shrink,
    "Softmax": _load_softmax,
    "LogSoftmax": _load_softmax,
    "Resize": _load_upsample,
}
for _op in (
    "Relu",
    "Sigmoid",
    "Tanh",
    "Softsign",
    "HardSwish",
    "Mish",
    "LeakyRelu",
    "Elu",
    "Celu",
    "Selu",
    "HardSigmoid",
    "Softplus",
    "Gelu",
):
    _LOADERS[_op] = _load_activation

# pycnn class (from the node names) -> builder, where the first op does not decide it
_BY_CLASS = {
    "Linear": _load_linear,
    "Flatten": _load_flatten,
    "LPPool2d": _load_lp_pool,
    "GroupNorm": _load_group_norm,
    "Upsample": _load_upsample,
    "AvgPool2d": _load_avg_pool,
    "AdaptiveAvgPool2d": _load_avg_pool,
    "AdaptiveMaxPool2d": _load_max_pool,
    **{
        cls: _load_activation
        for cls in (
            "GELU",
            "SiLU",
            "Mish",
            "TanhExp",
            "Tanhshrink",
            "LogSigmoid",
            "Softplus",
            "Threshold",
        )
    },
}


_SOFTPLUS = ["Abs", "Neg", "Exp", "Add", "Log", "Relu", "Add"]  # _stable_softplus
_FLOAT64_PATTERNS = {
    "LeakyReLU": ["Mul", "Greater", "Where"],
    "PReLU": ["Mul", "Greater", "Where"],
    "ELU": ["Exp", "Sub", "Mul", "Greater", "Where"],
    "CELU": ["Div", "Exp", "Sub", "Mul", "Greater", "Where"],
    "SELU": ["Exp", "Sub", "Mul", "Greater", "Where", "Mul"],
    "Softsign": ["Abs", "Add", "Div"],
    "Hardsigmoid": ["Add", "Clip", "Div"],
    "Hardswish": ["Add", "Clip", "Div", "Mul"],
    "Hardshrink": ["Abs", "Greater", "Where"],
    "Softshrink": ["Abs", "Greater", "Sign", "Mul", "Sub", "Where"],
    "Softplus": ["Mul", *_SOFTPLUS, "Div", "Greater", "Where"],
    "Mish": [*_SOFTPLUS, "Tanh", "Mul"],
    "LogSigmoid": ["Neg", *_SOFTPLUS, "Neg"],
}


def _load_float64_form(ctx, nodes, cls):
    """A layer from its float64 form (see `pycnn._onnx_export._FLOAT64_FORMS`)."""
    import pycnn

    if cls == "PReLU":
        return _load_prelu(ctx, nodes[:1], cls)
    if cls == "LeakyReLU":
        return pycnn.LeakyReLU(ctx.scalar(nodes[0], 1))
    if cls in ("ELU", "CELU"):
        return getattr(pycnn, cls)(ctx.scalar(nodes[0 if cls == "CELU" else 2], 1))
    if cls in ("Hardshrink", "Softshrink"):
        return getattr(pycnn, cls)(ctx.scalar(nodes[1], 1))
    if cls == "Softplus":
        return pycnn.Softplus(ctx.scalar(nodes[0], 1), ctx.scalar(nodes[-2], 1))
    return getattr(pycnn, cls)()  # no arguments: SELU, Softsign, Hardsigmoid, ...


def _leaf(ctx, cls, nodes):
    import pycnn

    if [n.op_type for n in nodes] == _FLOAT64_PATTERNS.get(cls):
        return _load_float64_form(ctx, nodes, cls)
    if cls == "Identity" or (cls is None and nodes[0].op_type == "Identity"):
        _expect(nodes, ["Identity"], "Identity")
        return pycnn.Identity()
    build = _BY_CLASS.get(cls) or _LOADERS.get(nodes[0].op_type)
    if build is None:
        raise _unknown(nodes[0])
    if cls is None and len(nodes) > 1:
        raise _unknown(nodes[1])
    return build(ctx, nodes, cls)


def _parse_name(name):
    parts = name.rsplit("/", 2)
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1]


def _groups(graph):
    """{layer key: (class, [nodes])} in graph order, from pycnn's node names; a graph
    without them becomes a chain of one-node layers keyed "0", "1", ..."""
    parsed = [_parse_name(node.name) for node in graph.node]
    groups = {}
    if all(parsed) and graph.node:
        for node, (path, cls) in zip(graph.node, parsed):
            groups.setdefault(path, (cls, []))[1].append(node)
        return groups
    current = graph.input[0].name
    for i, node in enumerate(graph.node):
        if not node.input or node.input[0] != current or len(node.output) < 1:
            raise ValueError(
                f"pycnn.onnx.load: node {node.name!r} ({node.op_type}) does not continue "
                "a chain of layers: only graphs that pycnn.onnx.export writes, or plain "
                "chains of one-op layers, can be read"
            )
        groups[str(i)] = (None, [node])
        current = node.output[0]
    return groups


def _within(key, path):
    """Whether layer key `key` is `path` or nested in it ("" holds every key)."""
    return not path or key == path or key.startswith(path + ".")


def _build(ctx, groups, path):
    """The layer at key `path`, from the groups at and under it."""
    import pycnn

    own = groups.get(path)
    if own is not None and own[0] not in ("Residual", "Concat", "Sequential"):
        return _leaf(ctx, own[0], own[1])
    under = [k for k in groups if _within(k, path)]
    if own is not None and own[0] == "Residual":
        body = _build(ctx, groups, _join(path, "body"))
        has_shortcut = any(_within(k, _join(path, "shortcut")) for k in under)
        shortcut = _build(ctx, groups, _join(path, "shortcut")) if has_shortcut else None
        return pycnn.Residual(body, shortcut)
    if own is not None and own[0] == "Concat":
        n = 0
        while any(_within(k, _join(path, f"branches.{n}")) for k in under):
            n += 1
        branches = [_build(ctx, groups, _join(path, f"branches.{i}")) for i in range(n)]
        return pycnn.Concat(*branches, dim=ctx.attrs(own[1][0]).get("axis", 1))
    # a Sequential: children keyed by the next segment, which must be an index
    prefix = _join(path, "") if path else ""
    indices = set()
    for key in under:
        head = key[len(prefix) :].split(".", 1)[0]
        if not head.isdigit():
            raise ValueError(
                f"pycnn.onnx.load: layer key {key!r} does not fit the nesting of a "
                "Sequential, Residual or Concat"
            )
        indices.add(int(head))
    count = max(indices) + 1 if indices else 0
    # an index without nodes was an empty Sequential: the identity
    return pycnn.Sequential(
        *(
            _build(ctx, groups, _join(path, str(i))) if i in indices else pycnn.Sequential()
            for i in range(count)
        )
    )


def _restore_other_state(proto, model):
    layers = dict(model.named_layers())
    for entry in proto.metadata_props:
        if not entry.key.startswith("pycnn.state."):
            continue
        key = entry.key[len("pycnn.state.") :]
        path, _, name = key.rpartition(".")
        layer = layers.get(path)
        if layer is None:
            continue
        dtype, shape, values = ast.literal_eval(entry.value)
        arr = np.array(values, dtype=np.dtype(dtype)).reshape(shape)
        for store in (layer.params, layer.buffers):
            if name in store:
                store[name] = arr
