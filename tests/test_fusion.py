"""`pycnn.fuse`: batch norm folded into convolutions and activations in the convolution's
epilogue give the unfused eval-mode outputs; the epilogue itself on every plan path."""

import numpy as np
import pytest

import pycnn
from pycnn import _conv
from pycnn import _validation as V
from pycnn import reference as R
from pycnn.fusion import FusedConv2d

RTOL = {np.float32: 1e-5, np.float64: 1e-12}

ACTIVATIONS = {
    "none": lambda: None,
    "relu": pycnn.ReLU,
    "leaky": lambda: pycnn.LeakyReLU(0.2),
    "relu6": pycnn.ReLU6,
    "hardtanh": lambda: pycnn.Hardtanh(-0.5, 0.5),
}

# (in, out, kernel, stride, padding, dilation, groups, bias, input (N, H, W)); the plan
# paths: im2col + GEMM over images, one image (N = 1) over columns, the direct kernel
# (1-3 input channels a group), pointwise 1x1
CONVS = {
    "gemm": (8, 16, 3, 1, 1, 1, 1, True, (4, 10, 10)),
    "one_image": (8, 16, 3, 1, 1, 1, 1, True, (1, 10, 10)),
    "direct": (1, 8, 3, 1, 1, 1, 1, True, (3, 20, 20)),
    "pointwise": (8, 12, 1, 1, 0, 1, 1, False, (2, 6, 6)),
    "strided": (6, 8, 3, 2, 1, 1, 1, False, (2, 9, 11)),
    "dilated_groups": (8, 8, 3, 1, 2, 2, 2, True, (2, 9, 9)),
    "depthwise": (6, 6, 3, 1, 1, 1, 6, True, (2, 20, 20)),
}


def _close(actual, expected, dtype):
    scale = float(np.max(np.abs(expected))) or 1.0
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def _random_bn(num_features, dtype, rng, affine=True):
    bn = pycnn.BatchNorm2d(num_features, affine=affine, dtype=dtype)
    bn.buffers["running_mean"][:] = rng.standard_normal(num_features)
    bn.buffers["running_var"][:] = rng.uniform(0.2, 3.0, num_features)
    if affine:
        bn.params["weight"][:] = rng.uniform(-2, 2, num_features)
        bn.params["bias"][:] = rng.standard_normal(num_features)
    return bn


def _conv_layer(case, dtype, rng):
    c_in, c_out, k, s, p, d, g, bias, _ = CONVS[case]
    conv = pycnn.Conv2d(c_in, c_out, k, s, p, d, g, bias, dtype=dtype, rng=rng)
    if bias:
        conv.params["bias"][:] = rng.standard_normal(c_out)
    return conv


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("bn", ["bn", "bn_no_affine", "no_bn"])
@pytest.mark.parametrize("case", list(CONVS))
def test_fused_equals_unfused(case, bn, act, dtype):
    rng = np.random.default_rng(abs(hash((case, bn, act))) % 2**32)
    conv = _conv_layer(case, dtype, rng)
    layers = [conv]
    if bn != "no_bn":
        layers.append(_random_bn(conv.out_channels, dtype, rng, affine=bn == "bn"))
    activation = ACTIVATIONS[act]()
    if activation is not None:
        layers.append(activation)
    model = pycnn.Sequential(*layers).eval()
    n, h, w = CONVS[case][-1]
    x = rng.standard_normal((n, conv.in_channels, h, w)).astype(dtype)

    fused = model.fuse()
    fusible = len(layers) > 1
    assert [type(layer) for layer in fused] == ([FusedConv2d] if fusible else [pycnn.Conv2d])
    out = fused(x)
    assert out.dtype == dtype
    _close(out, model(x), dtype)


@pytest.mark.parametrize("path", ["images", "one_image", "direct"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_epilogue_activation_on_every_plan_path(path, dtype):
    # the plan's bias + activation epilogue against the NumPy reference convolution
    rng = np.random.default_rng(1)
    c_in, n = (2, 3) if path == "direct" else (8, 1 if path == "one_image" else 5)
    x = rng.standard_normal((n, c_in, 24, 24)).astype(dtype)
    w = rng.standard_normal((8, c_in, 3, 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    args = V.conv2d_args(x, w, b, 1, 1, 1, 1)
    plan = _conv.plan(x.shape, w.shape, x.dtype, args)
    assert (plan.direct, plan.one_image) == (path == "direct", path == "one_image")

    def clamp(block):
        np.clip(block, -1.0, 0.5, out=block)

    out = plan.forward(x, w, _conv.Epilogue(b, clamp))
    _close(out, np.clip(R.conv2d(x, w, b, padding=1), -1.0, 0.5), dtype)


def _trained(name, steps=3):
    """A bench network after a few SGD steps, so that batch-norm statistics are not the
    initial zeros and ones."""
    from pycnn import _bench_model as B

    shape, spec, _ = B.NETWORKS[name]
    model = B.build_pycnn(spec, np.float32, rng=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, *shape)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    loss = pycnn.CrossEntropyLoss()
    for _ in range(steps):
        loss(model(x), y)
        model.backward(loss.backward())
        for _, layer in model.named_layers():
            for key, p in layer.params.items():
                p -= 0.05 * layer.grads[key]
            layer.grads.clear()
    return model.eval(), x


@pytest.mark.parametrize("name", ["digits", "resnet20", "mnist7"])
def test_whole_networks(name):
    model, x = _trained(name)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    fused = model.fuse()
    _close(fused.predict(x), model.predict(x), np.float32)
    n_fused = sum(isinstance(layer, FusedConv2d) for _, layer in fused.named_layers())
    n_conv = sum(type(layer) is pycnn.Conv2d for _, layer in model.named_layers())
    assert n_fused == n_conv  # every convolution of these networks has a BN or a ReLU
    for key, value in model.state_dict().items():  # the original is left alone
        assert np.array_equal(value, before[key]), key


def test_fused_model_is_for_inference_only():
    model = pycnn.Sequential(pycnn.Conv2d(1, 2, 3, rng=0), pycnn.ReLU())
    fused = pycnn.fuse(model)
    x = np.ones((1, 1, 5, 5), np.float32)
    fused(x)
    with pytest.raises(RuntimeError, match="for inference"):
        fused.backward(np.ones((1, 2, 3, 3), np.float32))
    with pytest.raises(RuntimeError, match="for inference"):
        fused.train()
    assert model.training  # fusing does not switch the original to eval


def test_layers_that_do_not_fuse_stay():
    # a NumPy-backend convolution, a batch norm of another width, a non-ReLU activation
    model = pycnn.Sequential(
        pycnn.Conv2d(1, 2, 3, rng=0, backend="numpy"),
        pycnn.ReLU(),
        pycnn.Conv2d(2, 3, 3, rng=0),
        pycnn.Sigmoid(),
        pycnn.Conv2d(3, 3, 1, rng=0),
    ).eval()
    fused = pycnn.fuse(model)
    assert [type(layer) for layer in fused] == [type(layer) for layer in model]


def test_fuse_refuses_what_is_not_a_layer():
    with pytest.raises(TypeError, match="`model` must be a pycnn layer or model. Received"):
        pycnn.fuse([pycnn.ReLU()])


def test_winograd_filters_kept_while_the_weight_is_unchanged(rng):
    """A fused Winograd convolution transforms its constant weight once; the result is
    the bits of a plan transforming it every call, and a weight changed in place (a
    state dict loaded into the fused model) is transformed again."""
    model = pycnn.Sequential(pycnn.Conv2d(16, 16, 3, padding=1, rng=0), pycnn.ReLU())
    fused = pycnn.fuse(model.eval())
    layer = fused.layers[0]
    x = rng.standard_normal((4, 16, 16, 16)).astype(np.float32)
    first = fused.forward(x)
    plan = next(iter(layer._plans.values()))
    assert plan.winograd and layer._filters is not None
    kept = layer._filters[1]
    want = plan.forward(x, layer.weight, _conv.Epilogue(layer.bias, layer._act))
    assert first.tobytes() == want.tobytes()
    assert fused.forward(x).tobytes() == first.tobytes()
    assert layer._filters[1] is kept  # not transformed again
    layer.weight[0, 0, 1, 1] += 1  # in place, as load_state_dict writes
    changed = fused.forward(x)
    assert layer._filters[1] is not kept
    want = plan.forward(x, layer.weight, _conv.Epilogue(layer.bias, layer._act))
    assert changed.tobytes() == want.tobytes()
    assert not np.array_equal(changed, first)
