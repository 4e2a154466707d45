"""The writing half of `pycnn.onnx`: one emitter per layer class, the containers, the
float64 forms and the naming conventions `pycnn._onnx_load` reads back. The `onnx`
module comes from the caller; nothing here imports it."""

import numpy as np

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _shortest(value):
    """A float32 attribute back as the shortest decimal that rounds to it (1e-05, not
    9.999999747378752e-06), so hyper-parameters survive the trip through ONNX."""
    return float(str(np.float32(value)))


class _Graph:
    """The nodes and initializers being written, and the naming conventions."""

    def __init__(self, onnx, dtype, opset):
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.dtype, self.opset = dtype, opset
        self.run_dtype = dtype  # the model's, for the dry runs that give shapes
        self.nodes, self.initializers, self.written = [], [], set()
        self._tensors = 0
        self._count = {}

    def param(self, key, array, shape=None):
        """An initializer holding a parameter or buffer, named by its state_dict key, in
        the file's dtype."""
        arr = np.asarray(array, dtype=self.dtype)
        if shape is not None:
            arr = arr.reshape(shape)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(arr), key))
        self.written.add(key)
        return key

    def const(self, path, value, dtype=None):
        """An initializer holding a constant of the graph (not a parameter)."""
        k = self._count[("const", path)] = self._count.get(("const", path), -1) + 1
        name = f"{path}/const{k}"
        arr = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        self.initializers.append(self.numpy_helper.from_array(arr, name))
        return name

    def node(self, op, inputs, path, cls, doc=None, **attrs):
        """Append one node of layer `path` (class `cls`); return its output's name."""
        k = self._count[path] = self._count.get(path, -1) + 1
        self._tensors += 1
        out = f"t{self._tensors}"
        node = self.helper.make_node(op, list(inputs), [out], name=f"{path}/{cls}/{k}", **attrs)
        if doc:
            node.doc_string = doc
        self.nodes.append(node)
        return out


def _pads(p):
    return [p[0], p[1], p[0], p[1]]


def _conv2d(g, layer, x, shape, path):
    kh, kw = layer.kernel_size
    if layer.padding == "same":
        total = [d * (k - 1) for d, k in zip(layer.dilation, layer.kernel_size)]
        pads = [
            total[0] // 2,
            total[1] // 2,
            total[0] - total[0] // 2,
            total[1] - total[1] // 2,
        ]
    elif layer.padding == "valid":
        pads = [0, 0, 0, 0]
    else:
        pads = _pads(layer.padding)
    inputs = [x, g.param(_join(path, "weight"), layer.weight)]
    if layer.bias is not None:
        inputs.append(g.param(_join(path, "bias"), layer.bias))
    return g.node(
        "Conv",
        inputs,
        path,
        "Conv2d",
        kernel_shape=[kh, kw],
        strides=list(layer.stride),
        pads=pads,
        dilations=list(layer.dilation),
        group=layer.groups,
    )


def _conv_transpose2d(g, layer, x, shape, path):
    inputs = [x, g.param(_join(path, "weight"), layer.weight)]
    if layer.bias is not None:
        inputs.append(g.param(_join(path, "bias"), layer.bias))
    return g.node(
        "ConvTranspose",
        inputs,
        path,
        "ConvTranspose2d",
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=_pads(layer.padding),
        output_padding=list(layer.output_padding),
        dilations=list(layer.dilation),
        group=layer.groups,
    )


def _linear(g, layer, x, shape, path):
    w = g.param(_join(path, "weight"), layer.weight)
    b = None if layer.bias is None else g.param(_join(path, "bias"), layer.bias)
    if len(shape) == 1:  # (N, in_features): one Gemm
        return g.node("Gemm", [x, w] + ([b] if b else []), path, "Linear", transB=1)
    wt = g.node("Transpose", [w], path, "Linear", perm=[1, 0])
    out = g.node("MatMul", [x, wt], path, "Linear")
    return g.node("Add", [out, b], path, "Linear") if b else out


def _flatten(g, layer, x, shape, path):
    nd = len(shape) + 1
    start = layer.start_dim % nd
    end = layer.end_dim % nd
    if start == 1 and end == nd - 1:
        return g.node("Flatten", [x], path, "Flatten", axis=1)
    if start == 0:
        raise TypeError(
            f"pycnn.onnx.export: layer {path!r} (Flatten) flattens the batch axis "
            f"(start_dim={layer.start_dim}), which has no fixed size in the file"
        )
    # keep the axes before `start` (0 copies them, the batch among them), -1 for the
    # flattened run, then the trailing axes' sizes
    target = [0] * start + [-1] + [int(s) for s in shape[end:]]
    return g.node("Reshape", [x, g.const(path, target, np.int64)], path, "Flatten")


def _max_pool2d(g, layer, x, shape, path):
    return g.node(
        "MaxPool",
        [x],
        path,
        "MaxPool2d",
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride or layer.kernel_size),
        pads=_pads(layer.padding),
        dilations=list(layer.dilation),
        ceil_mode=int(layer.ceil_mode),
    )


def _avg_pool2d(g, layer, x, shape, path):
    k = layer.kernel_size
    stride = layer.stride or k
    include = layer.count_include_pad or layer.divisor_override is not None
    out = g.node(
        "AveragePool",
        [x],
        path,
        "AvgPool2d",
        kernel_shape=list(k),
        strides=list(stride),
        pads=_pads(layer.padding),
        ceil_mode=int(layer.ceil_mode),
        count_include_pad=int(include),
    )
    if layer.divisor_override is None:
        return out
    # the window sum over `divisor_override`: exact while every window is whole
    floor = [
        (n + 2 * p - kk) // s + 1 for n, p, kk, s in zip(shape[1:], layer.padding, k, stride)
    ]
    ceil = [
        -(-(n + 2 * p - kk) // s) + 1
        for n, p, kk, s in zip(shape[1:], layer.padding, k, stride)
    ]
    if layer.ceil_mode and floor != ceil:
        raise TypeError(
            f"pycnn.onnx.export: layer {path!r} (AvgPool2d with divisor_override and "
            f"ceil_mode) has partial windows for the input {tuple(shape)}, which ONNX "
            "cannot divide by divisor_override"
        )
    scale = g.const(path, k[0] * k[1] / layer.divisor_override)
    return g.node("Mul", [out, scale], path, "AvgPool2d")


def _lp_pool2d(g, layer, x, shape, path):
    k = layer.kernel_size
    p = layer.norm_type
    powered = g.node("Pow", [x, g.const(path, p)], path, "LPPool2d")
    mean = g.node(
        "AveragePool",
        [powered],
        path,
        "LPPool2d",
        kernel_shape=list(k),
        strides=list(layer.stride or k),
        ceil_mode=int(layer.ceil_mode),
        count_include_pad=0,
    )
    total = g.node("Mul", [mean, g.const(path, k[0] * k[1])], path, "LPPool2d")
    return g.node("Pow", [total, g.const(path, 1.0 / p)], path, "LPPool2d")


def _adaptive(g, layer, x, shape, path, op, cls):
    h, w = shape[1:]
    oh, ow = (n if s is None else s for s, n in zip(layer.output_size, (h, w)))
    f64 = g.dtype == np.float64  # no float64 Global*Pool or AveragePool kernels
    if (oh, ow) == (1, 1) and not f64:
        return g.node(f"Global{op}", [x], path, cls)
    if (h % oh or w % ow or f64) and op == "AveragePool":
        # unequal windows: the mean over a rectangle is a mean over its rows, then over
        # its columns, so two products with averaging matrices (OH, H) and (W, OW)
        rows = g.const(path, _averaging(h, oh))
        cols = g.const(path, _averaging(w, ow).T)
        x = g.node("MatMul", [rows, x], path, cls)
        return g.node("MatMul", [x, cols], path, cls)
    if h % oh or w % ow:
        # unequal windows: the max over a rectangle is a max over its rows, then over
        # its columns; each axis gathers its windows, padded by repeating their last
        # index (harmless for a max), (N, C, OH, K, W), and reduces them
        for axis, n, m in ((2, h, oh), (3, w, ow)):
            x = g.node(
                "Gather", [x, g.const(path, _windows(n, m), np.int64)], path, cls, axis=axis
            )
            if g.opset >= 18:
                axes = g.const(path, [axis + 1], np.int64)
                x = g.node("ReduceMax", [x, axes], path, cls, keepdims=0)
            else:
                x = g.node("ReduceMax", [x], path, cls, axes=[axis + 1], keepdims=0)
        return x
    kernel = [h // oh, w // ow]
    return g.node(op, [x], path, cls, kernel_shape=kernel, strides=kernel)


def _windows(n, m):
    """(m, K) indices of PyTorch's adaptive windows of n inputs (window i: floor(i*n/m)
    .. ceil((i+1)*n/m) - 1), each padded to the widest K by repeating its last index."""
    spans = [range(i * n // m, -(-(i + 1) * n // m)) for i in range(m)]
    k = max(len(span) for span in spans)
    return [list(span) + [span[-1]] * (k - len(span)) for span in spans]


def _averaging(n, m):
    """(m, n) matrix whose row i averages PyTorch's adaptive window i of n inputs:
    floor(i*n/m) .. ceil((i+1)*n/m) - 1."""
    a = np.zeros((m, n))
    for i in range(m):
        lo, hi = i * n // m, -(-(i + 1) * n // m)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def _adaptive_avg(g, layer, x, shape, path):
    return _adaptive(g, layer, x, shape, path, "AveragePool", "AdaptiveAvgPool2d")


def _adaptive_max(g, layer, x, shape, path):
    if layer.return_indices:
        raise TypeError(
            f"pycnn.onnx.export: layer {path!r} (AdaptiveMaxPool2d) has "
            "return_indices=True; only a layer returning one array can be exported"
        )
    return _adaptive(g, layer, x, shape, path, "MaxPool", "AdaptiveMaxPool2d")


def _affine_inputs(g, layer, path, shape, ones_shape):
    """weight and bias initializers, or constant ones and zeros without them."""
    if layer.params.get("weight") is not None:
        return [
            g.param(_join(path, "weight"), layer.params["weight"], ones_shape),
            g.param(_join(path, "bias"), layer.params["bias"], ones_shape),
        ]
    return [g.const(path, np.ones(shape)), g.const(path, np.zeros(shape))]


def _batch_norm(g, layer, x, shape, path):
    cls = type(layer).__name__
    n = layer.num_features
    inputs = [x, *_affine_inputs(g, layer, path, n, None)]
    inputs += [
        g.param(_join(path, "running_mean"), layer.running_mean),
        g.param(_join(path, "running_var"), layer.running_var),
    ]
    return g.node(
        "BatchNormalization",
        inputs,
        path,
        cls,
        epsilon=layer.eps,
        momentum=1.0 - layer.momentum,  # ONNX weighs the running value, PyTorch the batch
    )


def _layer_norm(g, layer, x, shape, path):
    ns = layer.normalized_shape
    inputs = [x, *_affine_inputs(g, layer, path, ns, None)]
    return g.node(
        "LayerNormalization", inputs, path, "LayerNorm", axis=-len(ns), epsilon=layer.eps
    )


def _group_norm(g, layer, x, shape, path):
    # (N, C, *) -> (N, G, rest), normalise the last axis, back to (N, C, *), then the
    # per-channel affine; ONNX's GroupNormalization changed meaning at opset 21
    grouped = g.node(
        "Reshape", [x, g.const(path, [0, layer.num_groups, -1], np.int64)], path, "GroupNorm"
    )
    one, zero = g.const(path, [1.0]), g.const(path, [0.0])
    normed = g.node(
        "LayerNormalization", [grouped, one, zero], path, "GroupNorm", axis=2, epsilon=layer.eps
    )
    target = [0] + [int(s) for s in shape]
    out = g.node("Reshape", [normed, g.const(path, target, np.int64)], path, "GroupNorm")
    if not layer.affine:
        return out
    cshape = (layer.num_channels,) + (1,) * (len(shape) - 1)
    weight, bias = _affine_inputs(g, layer, path, None, cshape)
    out = g.node("Mul", [out, weight], path, "GroupNorm")
    return g.node("Add", [out, bias], path, "GroupNorm")


def _dropout(g, layer, x, shape, path):
    # inference mode (no training_mode input): the identity, with the rate kept
    return g.node("Dropout", [x, g.const(path, layer.p)], path, type(layer).__name__)


def _identity(g, layer, x, shape, path):
    return g.node("Identity", [x], path, "Identity")


def _upsample(g, layer, x, shape, path):
    from pycnn.reference import _nearest_source

    h, w = shape[1:]
    out_hw = layer.forward(np.zeros((1, 1, h, w), dtype=np.float32)).shape[2:]
    scales = layer.scale_factor or (None, None)
    tables = [
        [_nearest_source(i, n, m, s) for i in range(m)]
        for n, m, s in ((h, out_hw[0], scales[0]), (w, out_hw[1], scales[1]))
    ]
    # Resize (float32 only in onnxruntime) for whole scale factors, where its source
    # pixel floor(i / s) is exactly pycnn's (PyTorch's)
    if (
        g.dtype == np.float32
        and layer.scale_factor is not None
        and all(float(s).is_integer() for s in scales)
        and all(t == [i // int(s) for i in range(len(t))] for t, s in zip(tables, scales))
    ):
        factors = g.const(path, [1.0, 1.0, *scales], np.float32)
        return g.node(
            "Resize",
            [x, "", factors],
            path,
            "Upsample",
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
    # otherwise index tables by pycnn's rule: Resize computes the source pixel in its
    # own float arithmetic, which differs for some sizes and fractional factors
    doc = None if layer.scale_factor is None else f"scale_factor={layer.scale_factor!r}"
    for axis, index in zip((2, 3), tables):
        x = g.node(
            "Gather", [x, g.const(path, index, np.int64)], path, "Upsample", doc, axis=axis
        )
    return x


def _simple(op, **attrs):
    """An activation that is one ONNX op; `attrs` maps attribute -> layer attribute or
    a constant."""

    def emit(g, layer, x, shape, path):
        values = {k: (getattr(layer, v) if isinstance(v, str) else v) for k, v in attrs.items()}
        return g.node(op, [x], path, type(layer).__name__, **values)

    return emit


def _clip(g, layer, x, shape, path):
    lo, hi = (0.0, 6.0) if type(layer).__name__ == "ReLU6" else (layer.min_val, layer.max_val)
    return g.node("Clip", [x, g.const(path, lo), g.const(path, hi)], path, type(layer).__name__)


def _shrink(g, layer, x, shape, path):
    cls = type(layer).__name__
    bias = layer.lambd if cls == "Softshrink" else 0.0
    return g.node("Shrink", [x], path, cls, lambd=layer.lambd, bias=bias)


def _x_times(op):
    """x * op(x) (SiLU: Sigmoid)."""

    def emit(g, layer, x, shape, path):
        cls = type(layer).__name__
        return g.node("Mul", [x, g.node(op, [x], path, cls)], path, cls)

    return emit


def _tanhexp(g, layer, x, shape, path):
    t = g.node("Tanh", [g.node("Exp", [x], path, "TanhExp")], path, "TanhExp")
    return g.node("Mul", [x, t], path, "TanhExp")


def _tanhshrink(g, layer, x, shape, path):
    return g.node("Sub", [x, g.node("Tanh", [x], path, "Tanhshrink")], path, "Tanhshrink")


def _logsigmoid(g, layer, x, shape, path):
    neg = g.node("Neg", [x], path, "LogSigmoid")
    return g.node("Neg", [_softplus_op(g, neg, path, "LogSigmoid")], path, "LogSigmoid")


def _softplus_op(g, z, path, cls):
    """ONNX Softplus, or its spelled-out form in float64."""
    if g.dtype == np.float64:
        return _stable_softplus(g, z, path, cls)
    return g.node("Softplus", [z], path, cls)


def _softplus(g, layer, x, shape, path):
    # log(1 + exp(beta x)) / beta, and x itself where beta x > threshold
    bx = g.node("Mul", [x, g.const(path, layer.beta)], path, "Softplus")
    soft = _softplus_op(g, bx, path, "Softplus")
    soft = g.node("Div", [soft, g.const(path, layer.beta)], path, "Softplus")
    above = g.node("Greater", [bx, g.const(path, layer.threshold)], path, "Softplus")
    return g.node("Where", [above, x, soft], path, "Softplus")


def _threshold(g, layer, x, shape, path):
    above = g.node("Greater", [x, g.const(path, layer.threshold)], path, "Threshold")
    return g.node("Where", [above, x, g.const(path, layer.value)], path, "Threshold")


def _mish(g, layer, x, shape, path):
    if g.opset >= 18 and g.dtype == np.float32:
        return g.node("Mish", [x], path, "Mish")
    soft = _softplus_op(g, x, path, "Mish")
    return g.node("Mul", [x, g.node("Tanh", [soft], path, "Mish")], path, "Mish")


def _gelu(g, layer, x, shape, path):
    if g.opset >= 20:
        return g.node("Gelu", [x], path, "GELU", approximate=layer.approximate)
    c = lambda v: g.const(path, v)  # noqa: E731
    node = lambda op, *ins: g.node(op, list(ins), path, "GELU")  # noqa: E731
    if layer.approximate == "none":  # x * (1 + erf(x / sqrt 2)) / 2
        inner = node("Erf", node("Mul", x, c(1 / np.sqrt(2.0))))
    else:  # x * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2
        cube = node("Mul", node("Mul", x, x), x)
        arg = node("Add", x, node("Mul", cube, c(0.044715)))
        inner = node("Tanh", node("Mul", arg, c(np.sqrt(2 / np.pi))))
    return node("Mul", node("Mul", x, node("Add", inner, c(1.0))), c(0.5))


def _prelu_slope(g, layer, shape, path):
    """The slopes as an initializer that broadcasts over (N, C, *): (C, 1, ...)."""
    slope_shape = (layer.num_parameters,) + (1,) * max(len(shape) - 1, 0)
    if layer.num_parameters == 1:
        slope_shape = (1,)
    return g.param(_join(path, "weight"), layer.weight, slope_shape)


def _prelu(g, layer, x, shape, path):
    return g.node("PRelu", [x, _prelu_slope(g, layer, shape, path)], path, "PReLU")


def _softmax(g, layer, x, shape, path):
    cls = type(layer).__name__
    return g.node(cls, [x], path, cls, axis=layer.dim)


# --- float64 forms: onnxruntime has no float64 kernel for these layers' ops, so a
# float64 file spells them with ops it has (Where, Exp, Log, Abs, Clip, ...)


def _where_positive(g, x, negative, path, cls):
    """x where x > 0, `negative` elsewhere."""
    above = g.node("Greater", [x, g.const(path, 0.0)], path, cls)
    return g.node("Where", [above, x, negative], path, cls)


def _stable_softplus(g, z, path, cls):
    """log(1 + exp(z)) as max(z, 0) + log(1 + exp(-|z|)): no overflow."""
    tail = g.node("Exp", [g.node("Neg", [g.node("Abs", [z], path, cls)], path, cls)], path, cls)
    tail = g.node("Log", [g.node("Add", [tail, g.const(path, 1.0)], path, cls)], path, cls)
    return g.node("Add", [g.node("Relu", [z], path, cls), tail], path, cls)


def _f64_leaky_relu(g, layer, x, shape, path):
    cls = type(layer).__name__
    if cls == "PReLU":
        slope = _prelu_slope(g, layer, shape, path)
    else:
        slope = g.const(path, layer.negative_slope)
    return _where_positive(g, x, g.node("Mul", [x, slope], path, cls), path, cls)


def _f64_elu(g, layer, x, shape, path):
    # ELU: alpha (exp(x) - 1); CELU: alpha (exp(x / alpha) - 1); SELU: scale * ELU
    cls = type(layer).__name__
    alpha = SELU_ALPHA if cls == "SELU" else layer.alpha
    z = g.node("Div", [x, g.const(path, alpha)], path, cls) if cls == "CELU" else x
    e = g.node("Sub", [g.node("Exp", [z], path, cls), g.const(path, 1.0)], path, cls)
    out = _where_positive(g, x, g.node("Mul", [e, g.const(path, alpha)], path, cls), path, cls)
    if cls == "SELU":
        out = g.node("Mul", [out, g.const(path, SELU_SCALE)], path, cls)
    return out


def _f64_softsign(g, layer, x, shape, path):
    d = g.node(
        "Add", [g.node("Abs", [x], path, "Softsign"), g.const(path, 1.0)], path, "Softsign"
    )
    return g.node("Div", [x, d], path, "Softsign")


def _f64_hardsigmoid(g, layer, x, shape, path):
    # relu6(x + 3) / 6 (Hardswish: times x)
    cls = type(layer).__name__
    y = g.node("Add", [x, g.const(path, 3.0)], path, cls)
    y = g.node("Clip", [y, g.const(path, 0.0), g.const(path, 6.0)], path, cls)
    y = g.node("Div", [y, g.const(path, 6.0)], path, cls)
    return g.node("Mul", [x, y], path, cls) if cls == "Hardswish" else y


def _f64_shrink(g, layer, x, shape, path):
    # where |x| > lambd: x (Hardshrink) or x - lambd sign(x) (Softshrink); 0 elsewhere
    cls = type(layer).__name__
    above = g.node(
        "Greater", [g.node("Abs", [x], path, cls), g.const(path, layer.lambd)], path, cls
    )
    kept = x
    if cls == "Softshrink":
        step = g.node(
            "Mul", [g.node("Sign", [x], path, cls), g.const(path, layer.lambd)], path, cls
        )
        kept = g.node("Sub", [x, step], path, cls)
    return g.node("Where", [above, kept, g.const(path, 0.0)], path, cls)


_FLOAT64_FORMS = {
    "LeakyReLU": _f64_leaky_relu,
    "PReLU": _f64_leaky_relu,
    "ELU": _f64_elu,
    "CELU": _f64_elu,
    "SELU": _f64_elu,
    "Softsign": _f64_softsign,
    "Hardsigmoid": _f64_hardsigmoid,
    "Hardswish": _f64_hardsigmoid,
    "Softshrink": _f64_shrink,
    "Hardshrink": _f64_shrink,
}


_EXPORTERS = {
    "Conv2d": _conv2d,
    "ConvTranspose2d": _conv_transpose2d,
    "Linear": _linear,
    "Flatten": _flatten,
    "MaxPool2d": _max_pool2d,
    "AvgPool2d": _avg_pool2d,
    "LPPool2d": _lp_pool2d,
    "AdaptiveAvgPool2d": _adaptive_avg,
    "AdaptiveMaxPool2d": _adaptive_max,
    "BatchNorm1d": _batch_norm,
    "BatchNorm2d": _batch_norm,
    "LayerNorm": _layer_norm,
    "GroupNorm": _group_norm,
    "Dropout": _dropout,
    "Dropout2d": _dropout,
    "Identity": _identity,
    "Upsample": _upsample,
    "ReLU": _simple("Relu"),
    "LeakyReLU": _simple("LeakyRelu", alpha="negative_slope"),
    "Sigmoid": _simple("Sigmoid"),
    "Tanh": _simple("Tanh"),
    "ELU": _simple("Elu", alpha="alpha"),
    "SELU": _simple("Selu", alpha=SELU_ALPHA, gamma=SELU_SCALE),
    "CELU": _simple("Celu", alpha="alpha"),
    "GELU": _gelu,
    "SiLU": _x_times("Sigmoid"),
    "Mish": _mish,
    "TanhExp": _tanhexp,
    "Softplus": _softplus,
    "Softsign": _simple("Softsign"),
    "Hardtanh": _clip,
    "ReLU6": _clip,
    "Hardsigmoid": _simple("HardSigmoid", alpha=1 / 6, beta=0.5),
    "Hardswish": _simple("HardSwish"),
    "LogSigmoid": _logsigmoid,
    "Tanhshrink": _tanhshrink,
    "Softshrink": _shrink,
    "Hardshrink": _shrink,
    "Threshold": _threshold,
    "PReLU": _prelu,
    "Softmax": _softmax,
    "LogSoftmax": _softmax,
}


def _emit(g, layer, x, shape, path):
    """Write `layer` (input `x` of per-sample `shape`); return (output, its shape)."""
    from pycnn.layers import Concat, Identity, Residual
    from pycnn.model import Sequential

    if isinstance(layer, Sequential):
        for i, child in enumerate(layer.layers):
            x, shape = _emit(g, child, x, shape, _join(path, str(i)))
        return x, shape
    if isinstance(layer, Residual):
        a, shape_a = _emit(g, layer.body, x, shape, _join(path, "body"))
        if type(layer.shortcut) is Identity:  # the default shortcut: no node
            b, shape_b = x, shape
        else:
            b, shape_b = _emit(g, layer.shortcut, x, shape, _join(path, "shortcut"))
        if shape_a != shape_b:
            raise ValueError(
                f"pycnn.onnx.export: layer {path!r} (Residual): body and shortcut give "
                f"{shape_a} and {shape_b} for an input of {shape}"
            )
        return g.node("Add", [a, b], path, "Residual"), shape_a
    if isinstance(layer, Concat):
        outs = [
            _emit(g, b, x, shape, _join(path, f"branches.{i}"))[0]
            for i, b in enumerate(layer.branches)
        ]
        out = g.node("Concat", outs, path, "Concat", axis=layer.dim)
        return out, tuple(layer.forward(np.zeros((1,) + shape, dtype=g.run_dtype)).shape[1:])
    name = type(layer).__name__
    emit = _EXPORTERS.get(name)
    if g.dtype == np.float64 and name in _FLOAT64_FORMS:
        emit = _FLOAT64_FORMS[name]
    if emit is None or type(layer).__module__.split(".")[0] != "pycnn":
        raise TypeError(
            f"pycnn.onnx.export: layer {path!r} of type {name} has no ONNX export. "
            f"Supported: {', '.join(sorted(_EXPORTERS))}, Sequential, Residual, Concat"
        )
    try:  # the output's shape, from a dry run (eval mode: no side effects)
        y = layer.forward(np.zeros((1,) + shape, dtype=g.run_dtype))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"pycnn.onnx.export: layer {path!r} ({name}) cannot take one sample of shape "
            f"{shape}, which `input_shape` gives it: {err}"
        ) from err
    out = emit(g, layer, x, shape, path)  # raises for what it cannot write
    return out, tuple(y.shape[1:])


def _model_dtype(model, dtype):
    from pycnn import _validation as V

    dtypes = {a.dtype for a in model.state_dict().values() if a.dtype.kind == "f"}
    if len(dtypes) > 1:
        raise TypeError(
            "pycnn.onnx.export: `model` must hold parameters of one dtype. Received: "
            + ", ".join(sorted(d.name for d in dtypes))
        )
    held = dtypes.pop() if dtypes else None
    dtype = (held or np.dtype(np.float32)) if dtype is None else V.float_dtype(dtype)
    return dtype, held or dtype  # the file's, and the one the model computes in


def _is_seq(model):
    from pycnn.model import Sequential

    return isinstance(model, Sequential)


def _check_float64(nodes):
    from pycnn.onnx import NO_FLOAT64_KERNEL

    bad = {}
    for node in nodes:
        if node.op_type in NO_FLOAT64_KERNEL:
            path, cls, _ = node.name.rsplit("/", 2)
            bad.setdefault(f"{path!r} ({cls})", set()).add(node.op_type)
    if bad:
        which = "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in bad.items())
        raise ValueError(
            "pycnn.onnx.export: a float64 model needs ONNX ops that onnxruntime runs "
            f"in float32 only. Layers: {which}. Pass dtype=numpy.float32 to write the "
            "file in float32"
        )


def _keep_other_state(onnx, proto, model, written):
    """Parameters and buffers the graph does not use (a step counter): kept as
    metadata, "pycnn.state.<key>" -> the array as a Python literal, for `load`."""
    for key, arr in model.state_dict().items():
        if key not in written:
            entry = proto.metadata_props.add()
            entry.key = f"pycnn.state.{key}"
            entry.value = repr((arr.dtype.str, arr.shape, arr.ravel().tolist()))
