"""`pycnn.onnx`: every layer exported, run by onnxruntime against pycnn's own eval
forward at batch 1 and 7 from one file, and read back by `load` to the same outputs
and state dict."""

import os
import re

import numpy as np
import pytest

import pycnn
import pycnn._onnx_export
from pycnn.cli import build_model, build_resnet

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

P = pycnn
C, H, W = 4, 8, 6  # the default input: 4 channels, a non-square 8x6 image
IMG = (C, H, W)

# id -> (builder of the model given a dtype, input shape without the batch axis)
# Builders take the dtype so that one table serves float32 and float64.
CASES = {
    # convolutions
    "conv": (lambda d: P.Conv2d(C, 5, 3, dtype=d, rng=0), IMG),
    "conv-stride-pad": (
        lambda d: P.Conv2d(C, 5, (3, 2), stride=(2, 1), padding=(1, 2), dtype=d, rng=0),
        IMG,
    ),
    "conv-same-even": (lambda d: P.Conv2d(C, 3, 4, padding="same", dtype=d, rng=0), IMG),
    "conv-same-dilated": (
        lambda d: P.Conv2d(C, 3, 3, padding="same", dilation=2, dtype=d, rng=0),
        IMG,
    ),
    "conv-valid": (lambda d: P.Conv2d(C, 3, 3, padding="valid", dtype=d, rng=0), IMG),
    "conv-groups-nobias": (
        lambda d: P.Conv2d(C, 6, 3, groups=2, bias=False, dtype=d, rng=0),
        IMG,
    ),
    "conv-depthwise": (lambda d: P.Conv2d(C, C, 3, padding=1, groups=C, dtype=d, rng=0), IMG),
    "convT": (lambda d: P.ConvTranspose2d(C, 3, 3, dtype=d, rng=0), IMG),
    "convT-stride-outpad": (
        lambda d: P.ConvTranspose2d(
            C, 3, 3, stride=2, padding=1, output_padding=1, dtype=d, rng=0
        ),
        IMG,
    ),
    "convT-groups-dilation": (
        lambda d: P.ConvTranspose2d(
            C, 6, (2, 3), groups=2, dilation=(2, 1), bias=False, dtype=d, rng=0
        ),
        IMG,
    ),
    # linear and flatten
    "linear": (lambda d: P.Linear(12, 5, dtype=d, rng=0), (12,)),
    "linear-nobias": (lambda d: P.Linear(12, 5, bias=False, dtype=d, rng=0), (12,)),
    "linear-3d": (lambda d: P.Linear(W, 5, dtype=d, rng=0), (H, W)),
    "linear-3d-nobias": (lambda d: P.Linear(W, 5, bias=False, dtype=d, rng=0), (H, W)),
    "flatten": (
        lambda d: P.Sequential(P.Flatten(), P.Linear(C * H * W, 3, dtype=d, rng=0)),
        IMG,
    ),
    "flatten-partial": (
        lambda d: P.Sequential(P.Flatten(start_dim=2), P.Linear(H * W, 3, dtype=d, rng=0)),
        IMG,
    ),
    "flatten-middle": (
        lambda d: P.Sequential(P.Flatten(1, 2), P.Linear(W, 3, dtype=d, rng=0)),
        IMG,
    ),
    # pooling
    "maxpool": (lambda d: P.MaxPool2d(2), IMG),
    "maxpool-stride-pad": (lambda d: P.MaxPool2d(3, stride=2, padding=1), IMG),
    "maxpool-ceil": (lambda d: P.MaxPool2d(3, stride=2, ceil_mode=True), IMG),
    "maxpool-ceil-pad": (
        lambda d: P.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        (C, 9, 6),
    ),
    "maxpool-dilation": (lambda d: P.MaxPool2d(2, stride=1, dilation=2), IMG),
    "avgpool": (lambda d: P.AvgPool2d(2), IMG),
    "avgpool-pad": (lambda d: P.AvgPool2d(3, stride=2, padding=1), IMG),
    "avgpool-pad-exclude": (
        lambda d: P.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        IMG,
    ),
    "avgpool-ceil": (lambda d: P.AvgPool2d(3, stride=2, ceil_mode=True), IMG),
    "avgpool-ceil-pad": (
        lambda d: P.AvgPool2d(3, stride=2, padding=1, ceil_mode=True),
        (C, 9, 6),
    ),
    "avgpool-ceil-pad-exclude": (
        lambda d: P.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        (C, 9, 6),
    ),
    "avgpool-divisor": (lambda d: P.AvgPool2d(2, padding=1, divisor_override=3), IMG),
    "lppool2": (lambda d: P.LPPool2d(2, 2), IMG),
    "lppool-ceil": (lambda d: P.LPPool2d(3, (3, 2), stride=2, ceil_mode=True), IMG),
    "lppool-1.5": (lambda d: P.Sequential(P.Sigmoid(), P.LPPool2d(1.5, 2, stride=1)), IMG),
    "adaptive-avg-1": (lambda d: P.AdaptiveAvgPool2d(1), IMG),
    "adaptive-avg-div": (lambda d: P.AdaptiveAvgPool2d((4, 3)), IMG),
    "adaptive-avg-none": (lambda d: P.AdaptiveAvgPool2d((2, None)), IMG),
    "adaptive-avg-uneven": (lambda d: P.AdaptiveAvgPool2d((3, 4)), IMG),
    "adaptive-avg-up": (lambda d: P.AdaptiveAvgPool2d((5, 9)), (C, 3, 7)),
    "adaptive-max-1": (lambda d: P.AdaptiveMaxPool2d(1), IMG),
    "adaptive-max-uneven": (lambda d: P.AdaptiveMaxPool2d((3, 4)), IMG),
    "adaptive-max-up": (lambda d: P.AdaptiveMaxPool2d((5, None)), (C, 3, 7)),
    "adaptive-max-div": (lambda d: P.AdaptiveMaxPool2d((2, 2)), IMG),
    # normalisation
    "batchnorm2d": (lambda d: P.BatchNorm2d(C, dtype=d), IMG),
    "batchnorm2d-noaffine-eps": (
        lambda d: P.BatchNorm2d(C, eps=1e-3, momentum=0.2, affine=False, dtype=d),
        IMG,
    ),
    "batchnorm1d": (lambda d: P.BatchNorm1d(12, dtype=d), (12,)),
    "batchnorm1d-3d": (lambda d: P.BatchNorm1d(C, dtype=d), (C, 7)),
    "layernorm": (lambda d: P.LayerNorm(W, dtype=d), IMG),
    "layernorm-2axes": (lambda d: P.LayerNorm((H, W), eps=1e-3, dtype=d), IMG),
    "layernorm-noaffine": (
        lambda d: P.LayerNorm((C, H, W), elementwise_affine=False, dtype=d),
        IMG,
    ),
    "groupnorm": (lambda d: P.GroupNorm(2, C, dtype=d), IMG),
    "groupnorm-noaffine": (lambda d: P.GroupNorm(4, C, eps=1e-3, affine=False, dtype=d), IMG),
    "groupnorm-3d": (lambda d: P.GroupNorm(1, C, dtype=d), (C, 5)),
    # dropout, identity, upsample
    "dropout": (lambda d: P.Sequential(P.Dropout(0.3), P.Linear(12, 3, dtype=d, rng=0)), (12,)),
    "dropout2d": (lambda d: P.Sequential(P.Dropout2d(0.4), P.Identity()), IMG),
    "identity": (lambda d: P.Identity(), IMG),
    "upsample-2x": (lambda d: P.Upsample(scale_factor=2), IMG),
    "upsample-3x2": (lambda d: P.Upsample(scale_factor=(3, 2)), (C, 5, 7)),
    "upsample-scale": (lambda d: P.Upsample(scale_factor=(1.5, 2.5)), IMG),
    "upsample-size": (lambda d: P.Upsample(size=(11, 5)), IMG),
    "upsample-size-odd": (lambda d: P.Upsample(size=(31, 13)), (C, 7, 11)),
    # activations
    "relu": (lambda d: P.ReLU(), IMG),
    "leakyrelu": (lambda d: P.LeakyReLU(0.2), IMG),
    "sigmoid": (lambda d: P.Sigmoid(), IMG),
    "tanh": (lambda d: P.Tanh(), IMG),
    "elu": (lambda d: P.ELU(0.7), IMG),
    "selu": (lambda d: P.SELU(), IMG),
    "celu": (lambda d: P.CELU(1.3), IMG),
    "gelu": (lambda d: P.GELU(), IMG),
    "gelu-tanh": (lambda d: P.GELU("tanh"), IMG),
    "silu": (lambda d: P.SiLU(), IMG),
    "mish": (lambda d: P.Mish(), IMG),
    "softplus": (lambda d: P.Softplus(), IMG),
    "softplus-beta-threshold": (lambda d: P.Softplus(beta=2.0, threshold=1.5), IMG),
    "softsign": (lambda d: P.Softsign(), IMG),
    "hardtanh": (lambda d: P.Hardtanh(-0.5, 1.5), IMG),
    "relu6": (lambda d: P.ReLU6(), IMG),
    "hardsigmoid": (lambda d: P.Hardsigmoid(), IMG),
    "hardswish": (lambda d: P.Hardswish(), IMG),
    "logsigmoid": (lambda d: P.LogSigmoid(), IMG),
    "tanhshrink": (lambda d: P.Tanhshrink(), IMG),
    "softshrink": (lambda d: P.Softshrink(0.3), IMG),
    "hardshrink": (lambda d: P.Hardshrink(0.4), IMG),
    "threshold": (lambda d: P.Threshold(0.1, -2.0), IMG),
    "tanhexp": (lambda d: P.TanhExp(), IMG),
    "prelu": (lambda d: _prelu(1, d), IMG),
    "prelu-channels": (lambda d: _prelu(C, d), IMG),
    "prelu-2d": (lambda d: P.Sequential(P.Flatten(), _prelu(C * H * W, d)), IMG),
    "softmax": (lambda d: P.Softmax(dim=1), IMG),
    "softmax-last": (lambda d: P.Softmax(dim=-1), IMG),
    "logsoftmax": (lambda d: P.LogSoftmax(dim=1), (12,)),
    # containers
    "residual": (lambda d: P.Residual(P.Conv2d(C, C, 3, padding=1, dtype=d, rng=0)), IMG),
    "residual-shortcut": (
        lambda d: P.Residual(
            P.Sequential(
                P.Conv2d(C, 6, 3, stride=2, padding=1, dtype=d, rng=0), _bn(6, d), P.ReLU()
            ),
            shortcut=P.Sequential(
                P.Conv2d(C, 6, 1, stride=2, bias=False, dtype=d, rng=1), _bn(6, d)
            ),
        ),
        IMG,
    ),
    "residual-nested": (
        lambda d: P.Residual(P.Residual(P.Sequential(P.Tanh(), P.Identity()), P.Sigmoid())),
        IMG,
    ),
    "concat": (
        lambda d: P.Concat(
            P.Conv2d(C, 2, 1, dtype=d, rng=0), P.Identity(), P.MaxPool2d(3, 1, 1)
        ),
        IMG,
    ),
    "concat-last-axis": (lambda d: P.Concat(P.Sigmoid(), P.Tanh(), dim=-1), IMG),
    "concat-residual": (
        lambda d: P.Sequential(
            P.Concat(
                P.Residual(P.ReLU()),
                P.Sequential(P.Conv2d(C, 3, 3, padding=1, dtype=d, rng=0), P.SiLU()),
            ),
            P.Conv2d(C + 3, 2, 1, dtype=d, rng=1),
        ),
        IMG,
    ),
    "nested-sequential": (
        lambda d: P.Sequential(
            P.Sequential(P.Sequential(P.ReLU()), P.Linear(12, 4, dtype=d, rng=0)), P.Tanh()
        ),
        (12,),
    ),
    "empty-sequential": (lambda d: P.Sequential(), IMG),
}

# layers onnxruntime runs in float64 (some spelled with other ops, see
# _FLOAT64_FORMS); the rest raise, see test_float64_refused
FLOAT64 = [
    "linear", "linear-nobias", "linear-3d", "linear-3d-nobias", "flatten", "flatten-partial",
    "flatten-middle", "maxpool", "maxpool-stride-pad", "maxpool-ceil", "maxpool-ceil-pad",
    "maxpool-dilation", "adaptive-avg-uneven", "adaptive-avg-up", "adaptive-max-div",
    "adaptive-max-uneven", "adaptive-max-up", "adaptive-max-1", "adaptive-avg-1",
    "adaptive-avg-div", "adaptive-avg-none",
    "batchnorm2d", "batchnorm2d-noaffine-eps",
    "batchnorm1d", "batchnorm1d-3d", "layernorm", "layernorm-2axes", "layernorm-noaffine",
    "groupnorm", "groupnorm-noaffine", "groupnorm-3d", "dropout", "dropout2d", "identity",
    "upsample-2x", "upsample-3x2", "upsample-scale", "upsample-size", "upsample-size-odd",
    "relu", "sigmoid", "tanh", "silu", "gelu-tanh", "hardtanh", "relu6", "tanhshrink",
    "threshold", "tanhexp", "leakyrelu", "elu", "selu", "celu", "softplus",
    "softplus-beta-threshold", "softsign", "hardsigmoid", "hardswish", "logsigmoid",
    "softshrink", "hardshrink", "mish", "prelu", "prelu-channels", "prelu-2d",
    "softmax", "softmax-last", "logsoftmax", "residual-nested", "concat-last-axis",
    "nested-sequential", "empty-sequential",
]  # fmt: skip


def _prelu(n, dtype):
    layer = P.PReLU(n, dtype=dtype)
    layer.params["weight"][...] = np.linspace(-0.5, 0.7, n)  # distinct slopes
    return layer


def _bn(c, dtype):
    return P.BatchNorm2d(c, dtype=dtype)


def _randomise(model, seed=0):
    """Non-trivial batch-norm statistics and affine parameters (they start at 0/1)."""
    rng = np.random.default_rng(seed)
    for _, layer in model.named_layers():
        if isinstance(layer, (P.BatchNorm1d, P.BatchNorm2d, P.LayerNorm, P.GroupNorm)):
            for name, arr in (*layer.params.items(), *layer.buffers.items()):
                low = 0.5 if name in ("weight", "running_var") else -0.5
                arr[...] = rng.uniform(low, low + 1, arr.shape)
        elif (
            isinstance(layer, (P.Conv2d, P.ConvTranspose2d, P.Linear))
            and layer.bias is not None
        ):
            layer.bias[...] = rng.uniform(-0.5, 0.5, layer.bias.shape)
    return model


def _model(case, dtype):
    build, shape = CASES[case]
    layer = build(dtype)
    model = layer if isinstance(layer, P.Sequential) else P.Sequential(layer)
    return _randomise(model).eval(), shape


def _session(path):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _inputs(shape, dtype, batch, seed=1):
    x = np.random.default_rng(seed).normal(0, 2, (batch,) + shape)
    return x.astype(dtype)


# float64: ONNX stores float attributes (eps) as float32, which moves results by ~1e-10
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-9)}


def _check_runtime(model, shape, dtype, tmp_path):
    path = tmp_path / "model.onnx"
    # a model without parameters is float32 unless `dtype` says otherwise
    pycnn.onnx.export(model, path, shape, dtype=None if model.state_dict() else dtype)
    session = _session(path)
    for batch in (1, 7):
        x = _inputs(shape, dtype, batch)
        (got,) = session.run(None, {"input": x})
        want = model.forward(x)
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **TOL[dtype])
    return path


def _check_roundtrip(model, shape, dtype, path):
    back = pycnn.onnx.load(path)
    assert isinstance(back, P.Sequential) and not back.training
    want_state = model.state_dict()
    got_state = back.state_dict()
    assert list(got_state) == list(want_state)
    for key, arr in want_state.items():
        assert got_state[key].dtype == arr.dtype and got_state[key].shape == arr.shape, key
        np.testing.assert_array_equal(got_state[key], arr, err_msg=key)
    x = _inputs(shape, dtype, 7, seed=2)
    want = model.forward(x)
    got = back.forward(x)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=0)
    return back


@pytest.mark.parametrize("case", list(CASES))
def test_float32_matches_onnxruntime_and_reloads(case, tmp_path):
    model, shape = _model(case, np.float32)
    path = _check_runtime(model, shape, np.float32, tmp_path)
    back = _check_roundtrip(model, shape, np.float32, path)
    # the rebuilt model is the same architecture: it exports to the same graph
    path2 = tmp_path / "again.onnx"
    pycnn.onnx.export(back, path2, shape)
    ops = [[n.op_type for n in onnx.load(p).graph.node] for p in (path, path2)]
    assert ops[0] == ops[1]


@pytest.mark.parametrize("case", FLOAT64)
def test_float64_matches_onnxruntime_and_reloads(case, tmp_path):
    model, shape = _model(case, np.float64)
    path = _check_runtime(model, shape, np.float64, tmp_path)
    _check_roundtrip(model, shape, np.float64, path)


@pytest.mark.parametrize("case", sorted(set(CASES) - set(FLOAT64)))
def test_float64_refused_where_onnxruntime_lacks_kernels(case, tmp_path):
    model, shape = _model(case, np.float64)
    with pytest.raises(ValueError, match=r"float64 .*float32 only.*Layers: '\d"):
        pycnn.onnx.export(model, tmp_path / "m.onnx", shape, dtype=np.float64)
    assert not (tmp_path / "m.onnx").exists()


def test_float64_model_written_in_float32(tmp_path):
    model, shape = _model("residual-shortcut", np.float64)
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=r"'0\.body\.0' \(Conv2d\): Conv.*dtype=numpy"):
        pycnn.onnx.export(model, path, shape)
    pycnn.onnx.export(model, path, shape, dtype=np.float32)
    x = _inputs(shape, np.float64, 7)
    (got,) = _session(path).run(None, {"input": x.astype(np.float32)})
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, model.forward(x), rtol=1e-4, atol=1e-5)
    back = pycnn.onnx.load(path)
    assert back.dtype == np.float32
    for key, arr in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], arr.astype(np.float32))


def test_rebuilt_layers_keep_their_arguments(tmp_path):
    model = P.Sequential(
        P.Conv2d(
            C, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, bias=False
        ),
        P.BatchNorm2d(6, eps=1e-3, momentum=0.2),
        P.LeakyReLU(0.2),
        P.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        P.Dropout2d(0.3),
        P.Upsample(scale_factor=(1.5, 2)),
        P.Softplus(beta=2.0, threshold=1.5),
        P.AvgPool2d(2, divisor_override=3),
        P.Threshold(0.1, -2.0),
        P.GroupNorm(3, 6, eps=1e-4),
        P.Flatten(),
        P.Dropout(0.25),
        P.Linear(6 * 2 * 3, 4),
        P.LogSoftmax(dim=1),
    )
    path = tmp_path / "m.onnx"
    pycnn.onnx.export(model, path, IMG)
    assert repr(pycnn.onnx.load(path)) == repr(model)


def test_digits_cnn_after_training(tmp_path):
    x, y = _digits_batch()
    model = build_model(8, rng=0)  # conv-bn-relu-pool x2, flatten, dropout, linear
    _train(model, x, y)
    _compare_after_training(model, (1, 8, 8), x, tmp_path)


def test_resnet_after_training(tmp_path):
    x, y = _digits_batch()
    model = build_resnet(width=8, stages=3, rng=0)
    _train(model, x, y)
    assert isinstance(model.layers[3], P.Residual)
    _compare_after_training(model, (1, 8, 8), x, tmp_path)


def _digits_batch():
    from pycnn import datasets

    x, y = datasets.load_digits()
    return x[:64].astype(np.float32), y[:64]


def _train(model, x, y):
    optimizer = pycnn.optim.SGD(lr=0.05, momentum=0.9)
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=16,
        optimizer=optimizer,
        loss=P.CrossEntropyLoss(),
        progress=False,
        rng=0,
    )
    model.eval()
    bn = [layer for _, layer in model.named_layers() if isinstance(layer, P.BatchNorm2d)]
    assert bn and all(not np.allclose(b.running_var, 1) for b in bn)  # statistics moved


def _compare_after_training(model, shape, x, tmp_path):
    path = _check_runtime(model, shape, np.float32, tmp_path)
    session = _session(path)
    for batch in (1, 7):
        (got,) = session.run(None, {"input": x[:batch]})
        np.testing.assert_allclose(got, model.forward(x[:batch]), rtol=1e-5, atol=1e-5)
    _check_roundtrip(model, shape, np.float32, path)
    assert model.training is False  # export left the mode alone


def test_export_keeps_train_mode_and_statistics(tmp_path):
    model = _model("residual-shortcut", np.float32)[0].train()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    pycnn.onnx.export(model, tmp_path / "m.onnx", IMG)
    assert all(layer.training for _, layer in model.named_layers())
    for key, arr in model.state_dict().items():
        np.testing.assert_array_equal(arr, before[key])
    # eval semantics in the file all the same: running statistics, no dropout
    x = _inputs(IMG, np.float32, 3)
    (got,) = _session(tmp_path / "m.onnx").run(None, {"input": x})
    np.testing.assert_allclose(got, model.eval().forward(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [18, 20, 21])
def test_newer_opsets(opset, tmp_path):
    model = P.Sequential(
        P.Conv2d(C, 4, 3, rng=0),
        P.Mish(),
        P.GELU(),
        P.GELU("tanh"),
        P.GroupNorm(2, 4),
        P.AdaptiveMaxPool2d((4, 3)),
    )
    path = tmp_path / "m.onnx"
    pycnn.onnx.export(model, path, IMG, opset=opset)
    proto = onnx.load(path)
    assert proto.opset_import[0].version == opset
    ops = {n.op_type for n in proto.graph.node}
    assert ("Mish" in ops) == (opset >= 18) and ("Gelu" in ops) == (opset >= 20)
    x = _inputs(IMG, np.float32, 7)
    (got,) = _session(path).run(None, {"input": x})
    np.testing.assert_allclose(got, model.forward(x), rtol=1e-5, atol=1e-5)
    _check_roundtrip(model, IMG, np.float32, path)


def test_file_is_valid_and_has_a_dynamic_batch(tmp_path):
    model, shape = _model("residual-shortcut", np.float32)
    path = tmp_path / "m.onnx"
    pycnn.onnx.export(model, path, shape)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(shape)
    assert proto.opset_import[0].version == pycnn.onnx.DEFAULT_OPSET


class _Custom(P.BaseLayer):
    def forward(self, x):
        return x


@pytest.mark.parametrize(
    "model, where",
    [
        (P.Sequential(P.ReLU(), _Custom()), r"'1' of type _Custom"),
        (
            P.Sequential(P.Residual(P.Sequential(P.ReLU(), _Custom()))),
            r"'0\.body\.1' of type _Custom",
        ),
        (P.Sequential(P.Concat(P.ReLU(), _Custom())), r"'0\.branches\.1' of type _Custom"),
        (
            P.Sequential(P.AdaptiveMaxPool2d(2, return_indices=True)),
            r"'0' \(AdaptiveMaxPool2d\).*return_indices",
        ),
        (P.Sequential(P.Flatten(0)), r"'0' \(Flatten\).*batch"),
        (
            P.Sequential(P.AvgPool2d(3, 2, ceil_mode=True, divisor_override=2)),
            r"'0' \(AvgPool2d.*partial",
        ),
    ],
    ids=[
        "custom",
        "custom-in-residual",
        "custom-in-concat",
        "indices",
        "flatten-batch",
        "divisor-ceil",
    ],
)
def test_unsupported_layers_raise_naming_them(model, where, tmp_path):
    with pytest.raises(TypeError, match=where):
        pycnn.onnx.export(model, tmp_path / "m.onnx", IMG)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(model="net"), TypeError, r"`model` must be a pycnn layer.*str"),
        (
            dict(input_shape=(4, -8, 6)),
            TypeError,
            r"`input_shape` must be a tuple of positive ints.*-8",
        ),
        (dict(input_shape=4), TypeError, r"`input_shape`.*Received: input_shape=4"),
        (dict(opset=16), ValueError, r"`opset` must be in \[17, \d+\].*opset=16"),
        (dict(opset=999), ValueError, r"`opset` must be in.*opset=999"),
        (dict(opset=17.0), TypeError, r"`opset` must be an int or None.*17\.0"),
        (dict(dtype=np.int32), TypeError, r"`dtype` must be float32 or float64"),
    ],
)
def test_bad_arguments(kwargs, error, match, tmp_path):
    args = dict(model=P.Sequential(P.ReLU()), path=tmp_path / "m.onnx", input_shape=IMG)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        pycnn.onnx.export(**args)


def test_input_shape_that_does_not_fit_names_the_layer(tmp_path):
    model = P.Sequential(P.ReLU(), P.Residual(P.Conv2d(3, 3, 3, padding=1)))
    with pytest.raises(ValueError, match=r"layer '1\.body' \(Conv2d\).*\(4, 8, 6\)"):
        pycnn.onnx.export(model, tmp_path / "m.onnx", IMG)
    assert not (tmp_path / "m.onnx").exists()


def _save_graph(path, nodes, initializers=(), shape=(1, 4), out_shape=None):
    h = onnx.helper
    f = onnx.TensorProto.FLOAT
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("input", f, ["N", *shape])],
        [h.make_tensor_value_info(nodes[-1].output[0], f, None)],
        list(initializers),
    )
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), path)


def test_load_unknown_op_names_it(tmp_path):
    h = onnx.helper
    path = tmp_path / "m.onnx"
    _save_graph(
        path,
        [
            h.make_node("Relu", ["input"], ["a"], name="r"),
            h.make_node("Cos", ["a"], ["b"], name="my_cos"),
        ],
    )
    with pytest.raises(ValueError, match=r"node 'my_cos' of op type 'Cos'"):
        pycnn.onnx.load(path)
    # the same op under a pycnn layer name
    _save_graph(path, [h.make_node("Cos", ["input"], ["b"], name="0/Cos/0")])
    with pytest.raises(ValueError, match=r"node '0/Cos/0' of op type 'Cos'"):
        pycnn.onnx.load(path)


def test_load_plain_chain_of_foreign_ops(tmp_path):
    h, nh = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    nodes = [
        h.make_node("Gemm", ["input", "w", "b"], ["a"], name="fc", transB=1),
        h.make_node("Relu", ["a"], ["c"], name="act"),
        h.make_node("Softmax", ["c"], ["d"], name="sm", axis=1),
    ]
    path = tmp_path / "m.onnx"
    _save_graph(path, nodes, [nh.from_array(w, "w"), nh.from_array(b, "b")])
    model = pycnn.onnx.load(path)
    assert [type(layer).__name__ for layer in model] == ["Linear", "ReLU", "Softmax"]
    x = rng.normal(size=(5, 4)).astype(np.float32)
    logits = np.maximum(x @ w.T + b, 0)
    want = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # written out
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-6)


def test_load_rejects_a_graph_that_is_not_a_chain(tmp_path):
    h = onnx.helper
    nodes = [
        h.make_node("Relu", ["input"], ["a"], name="r"),
        h.make_node("Add", ["input", "a"], ["b"], name="join"),
    ]
    path = tmp_path / "m.onnx"
    _save_graph(path, nodes)
    with pytest.raises(ValueError, match=r"'join' \(Add\)"):
        pycnn.onnx.load(path)


def test_import_pycnn_does_not_import_onnx(tmp_path):
    import subprocess
    import sys

    code = "import sys, pycnn; pycnn.onnx.export; assert 'onnx' not in sys.modules, 'imported'"
    site = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {site!r}); {code}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_missing_onnx_is_an_import_error_naming_pip_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(ImportError, match="pip install onnx"):
        pycnn.onnx.export(P.Sequential(P.ReLU()), tmp_path / "m.onnx", IMG)
    with pytest.raises(ImportError, match="pip install onnx"):
        pycnn.onnx.load(tmp_path / "m.onnx")


def test_readme_onnx_section_runs(tmp_path, monkeypatch, capsys):
    """The README's ONNX snippet (fenced as ``py``: test_readme runs only the ``python``
    blocks, which must not need onnx) runs as written."""
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "README.md")
    if not os.path.exists(readme):
        pytest.skip("README.md is not beside the tests (an installed test run)")
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("### ONNX") :]
    section = section[: section.index("\n## ")]
    blocks = re.findall(r"```py\n(.*?)```", section, flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md ONNX block", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out.split()
    assert printed and all(word == "True" for word in printed)  # what its comments say


ACTIVATIONS = [
    "relu", "leakyrelu", "sigmoid", "tanh", "elu", "selu", "celu", "gelu", "gelu-tanh",
    "silu", "mish", "softplus", "softplus-beta-threshold", "softsign", "hardtanh", "relu6",
    "hardsigmoid", "hardswish", "logsigmoid", "tanhshrink", "softshrink", "hardshrink",
    "threshold", "tanhexp", "prelu", "softmax-last",
]  # fmt: skip


@pytest.mark.parametrize(
    "case, dtype, opset",
    [(case, np.float32, opset) for case in ACTIVATIONS for opset in (17, 21)]
    + [(case, np.float64, 17) for case in ACTIVATIONS if case in FLOAT64],
)
def test_activations_at_extreme_inputs(case, dtype, opset, tmp_path):
    """Where exp overflows or a decomposition could lose precision (+-1e4, +-800, 0)."""
    values = [-1e4, -800, -89, -50, -20, -5, -1, -1e-3, 0, 1e-3, 1, 5, 20, 50, 88, 89, 800]
    x = np.array(values + [1e4], dtype=dtype).reshape(1, 1, 2, 9)
    model = _model(case, dtype)[0]
    path = tmp_path / "m.onnx"
    pycnn.onnx.export(model, path, (1, 2, 9), opset=opset, dtype=dtype)
    (got,) = _session(path).run(None, {"input": x})
    with np.errstate(over="ignore"):
        want = model.forward(x)
    np.testing.assert_allclose(got, want, **TOL[dtype])


def test_load_with_the_numpy_backend(tmp_path):
    model, shape = _model("residual-shortcut", np.float32)
    model.layers.append(P.Upsample(scale_factor=2))
    pycnn.onnx.export(model, tmp_path / "m.onnx", shape)
    back = pycnn.onnx.load(tmp_path / "m.onnx", backend="numpy")
    backends = {layer.backend for _, layer in back.named_layers() if hasattr(layer, "backend")}
    assert backends == {"numpy"}
    x = _inputs(shape, np.float32, 3)
    np.testing.assert_allclose(back.forward(x), model.forward(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="`backend` must be 'compiled' or 'numpy'"):
        pycnn.onnx.load(tmp_path / "m.onnx", backend="cuda")


def test_state_the_graph_does_not_use_is_kept(tmp_path, monkeypatch):
    """A buffer no op reads (a statistic of the layer's own) is stored as metadata and
    set back on a rebuilt layer that has it."""
    model = P.Sequential(P.Linear(3, 2, rng=0))
    model.layers[0].buffers["seen"] = np.array([5.0, 0.25], dtype=np.float32)
    path = tmp_path / "m.onnx"
    pycnn.onnx.export(model, path, (3,))
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert list(meta) == ["pycnn.state.0.seen"]
    original = P.Linear.__init__

    def with_buffer(self, *args, **kwargs):  # a Linear that has the buffer, zeroed
        original(self, *args, **kwargs)
        self.buffers["seen"] = np.zeros(2, dtype=np.float32)

    monkeypatch.setattr(P.Linear, "__init__", with_buffer)
    seen = pycnn.onnx.load(path).layers[0].buffers["seen"]
    assert seen.dtype == np.float32 and seen.tolist() == [5.0, 0.25]


def test_every_layer_class_is_exported_and_has_a_case():
    """A new layer class fails here until it has an exporter and a row in CASES."""
    names = set(pycnn.layers.__all__) - {"BaseLayer"}
    used = set()
    for build, _ in CASES.values():
        model = build(np.float32)
        used |= {type(layer).__name__ for _, layer in model.named_layers()}
    assert names - used == set()
    assert names - {"Residual", "Concat"} <= set(pycnn._onnx_export._EXPORTERS)


@pytest.mark.parametrize(
    "case, dtype, ops",
    [
        ("upsample-2x", np.float32, ["Resize"]),
        ("upsample-3x2", np.float32, ["Resize"]),
        ("upsample-2x", np.float64, ["Gather", "Gather"]),  # no float64 Resize kernel
        ("upsample-scale", np.float32, ["Gather", "Gather"]),
        ("upsample-size", np.float32, ["Gather", "Gather"]),
    ],
)
def test_upsample_ops(case, dtype, ops, tmp_path):
    model, shape = _model(case, dtype)
    pycnn.onnx.export(model, tmp_path / "m.onnx", shape, dtype=dtype)
    assert [n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node] == ops


def test_load_a_chain_pytorch_exported(tmp_path):
    """An independent producer: torch.onnx.export's graph (other node names, the batch
    norm folded into the convolution) read as a chain, compared with PyTorch."""
    torch = pytest.importorskip("torch")
    import warnings

    torch.manual_seed(0)
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(C, 5, 3, padding=1),
        torch.nn.BatchNorm2d(5),
        torch.nn.LeakyReLU(0.1),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(5 * 4 * 3, 7),
        torch.nn.Tanh(),
    ).eval()
    with torch.no_grad():
        tm[1].running_mean.uniform_(-1, 1)
        tm[1].running_var.uniform_(0.5, 1.5)
    x = torch.from_numpy(_inputs(IMG, np.float32, 3))
    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        try:
            torch.onnx.export(
                tm, (x,), str(path), dynamo=False, input_names=["input"],
                dynamic_axes={"input": {0: "N"}},
            )  # fmt: skip
        except ImportError as err:  # a torch whose exporter needs more packages
            pytest.skip(f"torch.onnx.export: {err}")
    model = pycnn.onnx.load(path)
    assert [type(layer).__name__ for layer in model][-3:] == ["Flatten", "Linear", "Tanh"]
    with torch.no_grad():
        want = tm(x).numpy()
    np.testing.assert_allclose(model.forward(x.numpy()), want, rtol=1e-5, atol=1e-5)


def test_model_imported_from_pytorch(tmp_path):
    # a PyTorch model brought in with from_torch, exported: onnxruntime gives pycnn's
    # (and PyTorch's) eval outputs, at batch 1 and 7 from one file
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    tmodel = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.SiLU()),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(8, 5),
    )
    with torch.no_grad():  # batch-norm statistics that are not the defaults
        tmodel[1].running_mean.uniform_(-1, 1)
        tmodel[1].running_var.uniform_(0.5, 2)
    tmodel.eval()
    model = P.from_torch(tmodel)
    path = tmp_path / "imported.onnx"
    pycnn.onnx.export(model, path, input_shape=(3, 10, 10))
    session = _session(path)
    for batch in (1, 7):
        x = _inputs((3, 10, 10), np.float32, batch)
        (out,) = session.run(None, {"input": x})
        np.testing.assert_allclose(out, model.forward(x), **TOL[np.float32])
        with torch.no_grad():
            expected = tmodel(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(out, expected, **TOL[np.float32])
