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
(ELU as Exp, Sub, Mul, Greater, Where; Softplus as ``max(z, 0) + log(1 + exp(-|z|))``; see
`pycnn._onnx_export`; adaptive pooling as MatMuls or MaxPool), but convolutions,
AvgPool2d, LPPool2d and GELU's erf have no such spelling: `export` of a float64 model
with one raises a ValueError naming the layers, so a float64 file always runs there.
``dtype=numpy.float32`` writes such a model in float32.
"""

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


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("pycnn.onnx needs the onnx package: pip install onnx") from None
    return onnx


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

    Notes
    -----
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
    from pycnn import _onnx_export as E
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
    dtype, run_dtype = E._model_dtype(model, dtype)
    g = E._Graph(onnx, dtype, int(opset))
    g.run_dtype = run_dtype
    modes = [(layer, layer.training) for _, layer in model.named_layers()]
    model.eval()
    try:
        out, out_shape = E._emit(g, model, "input", shape, "" if E._is_seq(model) else "0")
    finally:
        for layer, mode in modes:
            layer.training = mode
    if out == "input":  # a model without nodes: ONNX needs one
        out = g.node("Identity", [out], "", "Sequential")
    if dtype == np.float64:
        E._check_float64(g.nodes)
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
    E._keep_other_state(onnx, proto, model, g.written)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, path)


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
    from pycnn import _onnx_load as L
    from pycnn.layers.base import _backend

    _backend(backend)  # a bad name raises before the file is read
    proto = onnx.load(path)
    if len(proto.graph.input) != 1 or len(proto.graph.output) != 1:
        raise ValueError(
            "pycnn.onnx.load: the graph must have one input and one output. Received: "
            f"{len(proto.graph.input)} inputs, {len(proto.graph.output)} outputs"
        )
    proto = onnx.shape_inference.infer_shapes(proto)
    ctx = L._Context(onnx, proto, backend)
    groups = L._groups(proto.graph)
    if list(groups) == [""] and groups[""][0] == "Sequential":  # the empty model's node
        groups = {}
    root = L._build(ctx, groups, "")
    from pycnn.model import Sequential

    model = root if isinstance(root, Sequential) else Sequential(root)
    L._restore_other_state(proto, model)
    return model.eval()
