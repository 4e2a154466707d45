"""A fused `Residual` (after `pycnn.fuse`) whose body ends in a `FusedConv2d` adds the
shortcut's output, and applies the ReLU after the sum, in that convolution's epilogue
(`FusedConv2d._forward_add`): the output must be the bits of the body and the shortcut
run on their own and summed, on every convolution path, in both dtypes."""

import numpy as np
import pytest

import pycnn
from pycnn import fusion
from pycnn._ext import _kernels


def _block(c, f, stride, dtype):
    """A ResNet basic block from C to F channels (a 1x1 shortcut where they differ)."""
    body = pycnn.Sequential(
        pycnn.Conv2d(c, f, 3, stride=stride, padding=1, bias=False, dtype=dtype),
        pycnn.BatchNorm2d(f, dtype=dtype),
        pycnn.ReLU(),
        pycnn.Conv2d(f, f, 3, padding=1, bias=False, dtype=dtype),
        pycnn.BatchNorm2d(f, dtype=dtype),
    )
    shortcut = None
    if stride != 1 or c != f:
        shortcut = pycnn.Sequential(
            pycnn.Conv2d(c, f, 1, stride=stride, bias=False, dtype=dtype),
            pycnn.BatchNorm2d(f, dtype=dtype),
        )
    return pycnn.Residual(body, shortcut)


# name: (make the block, input shape); named for the path the body's last convolution
# takes (`_path` checks it)
CASES = {
    "winograd": (lambda d: _block(16, 16, 1, d), (2, 16, 16, 16)),
    "winograd-one-image": (lambda d: _block(16, 16, 1, d), (1, 16, 16, 16)),
    "im2col": (lambda d: _block(4, 4, 1, d), (3, 4, 9, 7)),
    "im2col-one-image": (lambda d: _block(4, 4, 1, d), (1, 4, 8, 8)),
    "im2col-one-image-split": (lambda d: _block(8, 8, 1, d), (1, 8, 48, 48)),
    "direct": (
        lambda d: pycnn.Residual(
            pycnn.Sequential(
                pycnn.Conv2d(1, 1, 3, padding=1, dtype=d), pycnn.BatchNorm2d(1, dtype=d)
            )
        ),
        (2, 1, 10, 20),
    ),
    "im2col-strided-shortcut": (lambda d: _block(4, 8, 2, d), (3, 4, 10, 10)),
}


def _path(fused_block):
    """The path the body's last convolution's plan took."""
    (plan,) = fused_block.body.layers[-1]._plans.values()
    if plan.winograd:
        return "winograd"
    return "direct" if plan.direct else "im2col"


def _expected_path(name, dtype):
    # one image takes Winograd in float32 with the AVX2 transforms only
    if name == "winograd-one-image" and (
        dtype == np.float64 or _kernels.simd_target() == "baseline"
    ):
        return "im2col"
    return name.split("-")[0]


def _fused(name, dtype, relu, rng):
    """A fused [block, ReLU] (or [block]) with trained-looking batch norm statistics,
    and an input for it."""
    make, shape = CASES[name]
    block = make(dtype)
    for _, layer in block.named_layers():
        if isinstance(layer, pycnn.BatchNorm2d):
            n = layer.num_features
            layer.running_mean[:] = rng.standard_normal(n) * 0.1
            layer.running_var[:] = rng.uniform(0.5, 2.0, n)
            layer.weight[:] = rng.uniform(0.5, 1.5, n)
            layer.bias[:] = rng.standard_normal(n) * 0.1
    model = pycnn.Sequential(block, pycnn.ReLU()) if relu else pycnn.Sequential(block)
    model.eval()
    x = rng.standard_normal(shape).astype(dtype)
    return model, pycnn.fuse(model), x


def _separately(fused_block, x, relu):
    """The fused block's body and shortcut run on their own, summed by NumPy."""
    total = fused_block.body.forward(x) + fused_block.shortcut.forward(x)
    return np.where(total <= 0, 0, total).astype(total.dtype) if relu else total


@pytest.fixture
def adds(monkeypatch):
    """The number of sums the body's last convolution took on (a list of one count)."""
    calls = [0]
    original = fusion.FusedConv2d._forward_add

    def counted(self, x, residual, relu):
        out, added = original(self, x, residual, relu)
        calls[0] += added
        return out, added

    monkeypatch.setattr(fusion.FusedConv2d, "_forward_add", counted)
    return calls


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no-relu"])
def test_same_bits_as_the_parts(adds, name, relu, dtype, rng):
    model, fused, x = _fused(name, dtype, relu, rng)
    before = x.copy()
    out = fused.forward(x)
    assert adds[0] == 1  # the sum was the convolution's, not a pass of its own
    assert _path(fused.layers[0]) == _expected_path(name, dtype)
    if name.endswith("one-image"):
        assert fused.layers[0].body.layers[-1]._plans.popitem()[1].one_image
    want = _separately(fused.layers[0], x, relu)
    assert out.dtype == dtype and out.shape == want.shape
    assert out.tobytes() == want.tobytes()
    np.testing.assert_array_equal(x, before)
    # and the unfused model's outputs, to the folding's rounding (relative to the
    # largest output: Winograd's float32 error is relative to its inputs' scale)
    ref = model.forward(x)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(out - ref)) <= tol * np.max(np.abs(ref))


@pytest.mark.parametrize("name", ["winograd", "im2col", "direct"])
def test_nan_propagates_as_in_the_parts(adds, name, dtype, rng):
    _, fused, x = _fused(name, dtype, True, rng)
    x[0, 0, 1, 2] = np.nan
    out = fused.forward(x)
    assert adds[0] == 1
    want = _separately(fused.layers[0], x, True)
    assert np.isnan(out).any()
    assert out.tobytes() == want.tobytes()


def test_the_shortcut_output_is_not_modified(rng):
    _, fused, x = _fused("im2col-strided-shortcut", np.float32, True, rng)
    block = fused.layers[0]
    kept = []
    forward = block.shortcut.forward

    def keep(h):
        kept.append(forward(h))
        return kept[-1]

    block.shortcut.forward = keep
    fused.forward(x)
    np.testing.assert_array_equal(kept[0], forward(x))


def test_a_last_convolution_with_an_activation_sums_on_its_own(adds, rng):
    body = pycnn.Sequential(pycnn.Conv2d(4, 4, 3, padding=1), pycnn.LeakyReLU(0.1))
    model = pycnn.Sequential(pycnn.Residual(body), pycnn.ReLU()).eval()
    fused = pycnn.fuse(model)
    assert isinstance(fused.layers[0].body.layers[0], fusion.FusedConv2d)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    out = fused.forward(x)
    assert adds[0] == 0
    assert out.tobytes() == _separately(fused.layers[0], x, True).tobytes()


def test_a_forward_replaced_on_the_instance_is_called(adds, rng):
    _, fused, x = _fused("im2col", np.float32, True, rng)
    last = fused.layers[0].body.layers[-1]
    seen = []
    forward = last.forward
    last.forward = lambda h: seen.append(h.shape) or forward(h)
    out = fused.forward(x)
    assert seen == [x.shape] and adds[0] == 0
    del last.forward
    assert out.tobytes() == _separately(fused.layers[0], x, True).tobytes()


def test_mismatched_shortcut_still_names_both_shapes(rng):
    body = pycnn.Sequential(pycnn.Conv2d(4, 8, 3, padding=1), pycnn.BatchNorm2d(8))
    model = pycnn.Sequential(pycnn.Residual(body, pycnn.Conv2d(4, 8, 1, stride=2))).eval()
    fused = pycnn.fuse(model)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=r"body -> \(2, 8, 6, 6\).*shortcut -> \(2, 8, 3, 3\)"):
        fused.forward(x)


def test_a_nested_sequential_at_the_end_of_the_body(adds, dtype, rng):
    """The body's last layer a Sequential of its own (as torch_bridge builds from nested
    nn.Sequential): the sum goes down to its last convolution, in eval mode and, unfused,
    in training mode too."""
    inner = pycnn.Sequential(
        pycnn.Conv2d(16, 16, 3, padding=1, bias=False, dtype=dtype),
        pycnn.BatchNorm2d(16, dtype=dtype),
    )
    body = pycnn.Sequential(
        pycnn.Conv2d(16, 16, 3, padding=1, dtype=dtype), pycnn.ReLU(), inner
    )
    model = pycnn.Sequential(pycnn.Residual(body), pycnn.ReLU())
    x = rng.standard_normal((2, 16, 12, 12)).astype(dtype)
    train_out = model.forward(x)  # training mode: unfused, the body then the shortcut
    assert train_out.shape == x.shape
    model.eval()
    fused = pycnn.fuse(model)
    out = fused.forward(x)
    assert adds[0] == 1
    assert out.tobytes() == _separately(fused.layers[0], x, True).tobytes()


def test_a_fused_convolution_as_the_whole_body(adds, rng):
    conv = pycnn.Conv2d(4, 4, 3, padding=1)
    bn = pycnn.BatchNorm2d(4).eval()
    model = pycnn.Sequential(pycnn.Residual(fusion.FusedConv2d(conv, bn)), pycnn.ReLU()).eval()
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    out = model.forward(x)
    assert adds[0] == 1
    assert out.tobytes() == _separately(model.layers[0], x, True).tobytes()
    # one with an activation of its own sums on its own
    act = pycnn.Residual(fusion.FusedConv2d(conv, bn, pycnn.ReLU())).eval()
    assert act.forward(x).tobytes() == _separately(act, x, False).tobytes()
