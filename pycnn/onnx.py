"""Models out to ONNX and back: `export` writes a network as an ONNX graph, `load`
rebuilds a `Sequential` from a file `export` wrote.

The `onnx` package is imported only inside these functions (``pip install onnx``);
running the file needs a runtime such as onnxruntime (``pip install onnxruntime``).

The graph has eval semantics: dropout is the identity (an inference-mode ``Dropout``
node, kept so that `load` gives the layer back) and batch normalisation uses the
running statistics. The batch axis is dynamic; the other input axes are the
`input_shape` given to `export`, and some layers are written for that size only
(`Upsample` by a fractional factor or to a `size` as index tables, adaptive pooling as
fixed windows).

Each node is named ``"<layer key>/<layer class>/<i>"`` (``"3.body.0/Conv2d/0"``, keys
as in `state_dict`) and parameters are initializers named by their `state_dict` key, so
`load` can tell where each layer starts and how the containers nest; inside a layer it
reads the hyper-parameters back from the ops and their attributes. A graph with other
node names is read as a plain chain of one-op layers.

Some layers become several ops (ONNX has no such operator, or not with PyTorch's
semantics): SiLU, Tanhshrink, TanhExp, LogSigmoid, Softplus (`beta`, `threshold`),
Threshold, GELU (before opset 20), Mish (before opset 18), GroupNorm (a reshape around
LayerNormalization), LPPool2d (PyTorch's ``(K * avg_pool(x**p)) ** (1/p)``),
AvgPool2d with `divisor_override`, AdaptiveAvgPool2d with unequal windows (two MatMuls
with averaging matrices), AdaptiveMaxPool2d with unequal windows (Gather and ReduceMax
along each axis) and Linear on more than 2-d inputs (Transpose, MatMul, Add).

Float hyper-parameters that ONNX keeps as attributes (eps, slopes) are float32 there,
which moves float64 results by about 1e-10; `load` reads them back as the shortest
decimal that rounds to them (1e-05, not 9.999999747378752e-06).

float64: onnxruntime's CPU provider has no float64 kernel for many ops (see
`NO_FLOAT64_KERNEL`). A float64 file spells the activations among them with ops it has
(ELU as Exp, Sub, Mul, Greater, Where; Softplus as max(z, 0) + log(1 + exp(-|z|)); see
`_FLOAT64_FORMS`; adaptive pooling as MatMuls or MaxPool), but convolutions,
AvgPool2d, LPPool2d and GELU's erf have no such spelling: `export` of a float64 model
with one raises a ValueError naming the layers, so a float64 file always runs there.
``dtype=numpy.float32`` writes such a model in float32.
"""

import ast

import numpy as np

__all__ = ["export", "load"]

DEFAULT_OPSET = 17
MIN_OPSET = 17  # LayerNormalization

# ONNX ops that onnxruntime (1.2x) runs on CPU in float32 only (no float64 kernel, or
# Shrink's, which rounds through float32): checked by `export`.
NO_FLOAT64_KERNEL = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Elu",
        "Selu",
        "Celu",
        "Softplus",
        "Softsign",
        "HardSigmoid",
        "HardSwish",
        "Gelu",
        "Erf",
        "Mish",
        "LeakyRelu",
        "PRelu",
        "Shrink",
    }
)

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("pycnn.onnx needs the onnx package: pip install onnx") from None
    return onnx


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _shortest(value):
    """A float32 attribute back as the shortest decimal that rounds to it (1e-05, not
    9.999999747378752e-06), so hyper-parameters survive the trip through ONNX."""
    return float(str(np.float32(value)))


# --- export ---------------------------------------------------------------------------


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


def export(model, path, input_shape, opset=None, *, dtype=None):
    """Write `model` to an ONNX file at `path`, in eval semantics, for inputs of
    `input_shape` (no batch axis) and any batch size.

    Parameters
    ----------
    model : a pycnn layer, usually a `Sequential` (containers `Residual` and `Concat`
        nest in it); its train/eval modes are left as they were
    path : str or path-like, the file to write
    input_shape : tuple of ints, one sample's shape, e.g. ``(1, 28, 28)``
    opset : int >= 17 or None for 17 (the default: LayerNormalization needs 17; 18
        writes Mish, 20 GELU as single ops)
    dtype : float32, float64 or None for the model's (that of its parameters; float32
        for a model without any): the dtype of the file's input, output and weights
        (float32 writes a float64 model's weights rounded to float32)

    The file's input is ``"input"`` of shape ``(N, *input_shape)`` with N dynamic, its
    output ``"output"``, of the model's dtype (float32 or float64).

    Raises
    ------
    ImportError : without the onnx package
    TypeError : a layer that has no ONNX form, named with its key (``"3.body.1"``)
    ValueError : a layer that cannot take the shape `input_shape` gives it; a float64
        model with a layer onnxruntime cannot run in float64 (`NO_FLOAT64_KERNEL`)
    """
    onnx = _onnx()
    from pycnn import _validation as V
    from pycnn.layers.base import BaseLayer

    if not isinstance(model, BaseLayer):
        raise TypeError(
            "`model` must be a pycnn layer (a Sequential or another BaseLayer). "
            f"Received: model of type {type(model).__name__}"
        )
    try:
        shape = tuple(V.positive_int(s, "input_shape") for s in input_shape)
    except (TypeError, ValueError):
        raise TypeError(
            "`input_shape` must be a tuple of positive ints (no batch axis). "
            f"Received: input_shape={input_shape!r}"
        ) from None
    top = onnx.defs.onnx_opset_version()
    if opset is None:
        opset = DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"`opset` must be an int or None. Received: opset={opset!r}")
    if not MIN_OPSET <= opset <= top:
        raise ValueError(
            f"`opset` must be in [{MIN_OPSET}, {top}] (the installed onnx's newest). "
            f"Received: opset={opset}"
        )
    dtype, run_dtype = _model_dtype(model, dtype)
    g = _Graph(onnx, dtype, int(opset))
    g.run_dtype = run_dtype
    modes = [(layer, layer.training) for _, layer in model.named_layers()]
    model.eval()
    try:
        out, out_shape = _emit(g, model, "input", shape, "" if _is_seq(model) else "0")
    finally:
        for layer, mode in modes:
            layer.training = mode
    if out == "input":  # a model without nodes: ONNX needs one
        out = g.node("Identity", [out], "", "Sequential")
    if dtype == np.float64:
        _check_float64(g.nodes)
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    # the outputs of the last node is named "output"
    g.nodes[-1].output[0] = "output"
    graph = onnx.helper.make_graph(
        g.nodes,
        "pycnn",
        [onnx.helper.make_tensor_value_info("input", elem, ["N", *shape])],
        [onnx.helper.make_tensor_value_info("output", elem, ["N", *out_shape])],
        g.initializers,
    )
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", int(opset))],
        producer_name="pycnn",
    )
    _keep_other_state(onnx, proto, model, g.written)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, path)


def _is_seq(model):
    from pycnn.model import Sequential

    return isinstance(model, Sequential)


def _check_float64(nodes):
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


# --- load -----------------------------------------------------------------------------


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
    """A layer from its float64 form (see `_FLOAT64_FORMS`)."""
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


def load(path, *, backend="compiled"):
    """Rebuild a `Sequential` from an ONNX file `export` wrote, with its weights, in eval
    mode.

    Nested `Sequential`, `Residual` and `Concat` come back from the layer keys in the
    node names; each layer from its ops (a Conv node with its attributes and weights is
    a `Conv2d`, and so on). Hyper-parameters that ONNX stores as float32 attributes
    (eps, slopes) come back as the shortest decimal that rounds to them. A graph whose
    node names are not pycnn's is read as a chain of one-op layers.

    Parameters
    ----------
    path : str or path-like, an ONNX file
    backend : 'compiled' or 'numpy', the `backend` of the rebuilt layers that have one

    Raises
    ------
    ImportError : without the onnx package
    ValueError : a node that is not part of a pattern `export` writes, named with its
        op type
    """
    onnx = _onnx()
    from pycnn.layers.base import _backend

    _backend(backend)  # a bad name raises before the file is read
    proto = onnx.load(path)
    if len(proto.graph.input) != 1 or len(proto.graph.output) != 1:
        raise ValueError(
            "pycnn.onnx.load: the graph must have one input and one output. Received: "
            f"{len(proto.graph.input)} inputs, {len(proto.graph.output)} outputs"
        )
    proto = onnx.shape_inference.infer_shapes(proto)
    ctx = _Context(onnx, proto, backend)
    groups = _groups(proto.graph)
    if list(groups) == [""] and groups[""][0] == "Sequential":  # the empty model's node
        groups = {}
    root = _build(ctx, groups, "")
    from pycnn.model import Sequential

    model = root if isinstance(root, Sequential) else Sequential(root)
    _restore_other_state(proto, model)
    return model.eval()
