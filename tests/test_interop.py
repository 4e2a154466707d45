"""Weights in and out (issue 16): `load_state_dict`, checked attribute assignment,
`to(dtype)`, BatchNorm's `num_batches_tracked` and ``momentum=None``, the PyTorch
bridge (`from_torch` / `to_torch`) and ``.safetensors`` files. PyTorch is the oracle
where it is installed: its twin of a model must compute the same outputs and hold the
same state dict."""

import pickle
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import pycnn
from pycnn import (
    BatchNorm1d,
    BatchNorm2d,
    Concat,
    Conv2d,
    Flatten,
    GroupNorm,
    LayerNorm,
    Linear,
    MaxPool2d,
    PReLU,
    ReLU,
    Residual,
    Sequential,
)

# the tolerances of the issue: PyTorch twins agree to these, relative to the largest value
BRIDGE_TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _close(got, want, dtype, what=""):
    want = np.asarray(want)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    tol = BRIDGE_TOL[dtype]
    assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


def _model(dtype=np.float32, seed=0):
    """A network with every kind of state: conv, batch norm (with running statistics and
    a counter), a residual block, a Concat, PReLU, layer and group norms, Linear."""
    rng = np.random.default_rng(seed)
    return Sequential(
        Conv2d(2, 4, 3, padding=1, dtype=dtype, rng=rng),
        BatchNorm2d(4, dtype=dtype),
        PReLU(4, dtype=dtype),
        Residual(
            Sequential(
                Conv2d(4, 4, 3, padding=1, bias=False, dtype=dtype, rng=rng),
                GroupNorm(2, 4, dtype=dtype),
            )
        ),
        Concat(
            Conv2d(4, 2, 1, dtype=dtype, rng=rng),
            Sequential(Conv2d(4, 3, 3, padding=1, dtype=dtype, rng=rng), ReLU()),
        ),
        MaxPool2d(2),
        Flatten(),
        LayerNorm(5 * 3 * 3, dtype=dtype),
        Linear(5 * 3 * 3, 6, dtype=dtype, rng=rng),
        BatchNorm1d(6, momentum=None, dtype=dtype),
    )


def _random_state(model, seed=1):
    """A state for `model` that differs from it in every value (float64 arrays)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, arr in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = np.asarray(rng.integers(1, 100))
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, arr.shape)
        else:
            state[key] = rng.standard_normal(arr.shape)
    return state


def _x(dtype, seed=2):
    return np.random.default_rng(seed).standard_normal((3, 2, 6, 6)).astype(dtype)


# --- load_state_dict -----------------------------------------------------------------------


def test_state_dict_keys_follow_pytorch_and_include_num_batches_tracked():
    keys = list(_model().state_dict())
    assert keys[:7] == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]
    assert "3.body.0.weight" in keys and "4.branches.1.0.bias" in keys
    assert "9.num_batches_tracked" in keys
    counter = _model().state_dict()["1.num_batches_tracked"]
    assert counter.shape == () and counter.dtype == np.int64 and counter == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_state_dict_copies_and_casts_every_value(dtype):
    model = _model(dtype)
    state = _random_state(model)
    result = model.load_state_dict(state)
    assert result == ([], []) and result.missing_keys == [] and result.unexpected_keys == []
    for key, value in model.state_dict().items():
        want = np.int64 if key.endswith("num_batches_tracked") else dtype
        assert value.dtype == want and value.flags.c_contiguous, key
        assert_array_equal(value, np.asarray(state[key]).astype(want), err_msg=key)
        assert not np.shares_memory(value, state[key]), key


def test_load_state_dict_never_aliases_the_callers_arrays():
    model = _model(np.float64)
    state = {k: np.array(v, dtype=np.float64) for k, v in _random_state(model).items()}
    kept = {k: v.copy() for k, v in state.items()}
    model.load_state_dict(state)
    for arr in state.values():  # the caller changes its arrays after the load ...
        arr[...] = 7
    for key, value in model.state_dict().items():  # ... the model does not see it
        assert_array_equal(value, kept[key], err_msg=key)
    model[0].weight[...] = -1  # and the model's training does not reach the caller's
    assert_array_equal(state["0.weight"], 7)


def test_load_state_dict_replaces_the_arrays_in_the_layer_dicts():
    model = _model()
    conv = model[0]
    old = conv.params["weight"]
    model.load_state_dict(_random_state(model))
    assert conv.params["weight"] is not old  # a new array, in the dict itself
    assert conv.weight is conv.params["weight"]


def test_a_loaded_model_computes_what_the_source_model_computes():
    source, target = _model(seed=0), _model(seed=5)
    source.train()
    source(_x(np.float32))  # moves the running statistics and the counters
    target.load_state_dict(source.state_dict())
    source.eval(), target.eval()
    assert_array_equal(target(_x(np.float32)), source(_x(np.float32)))
    assert target.state_dict()["1.num_batches_tracked"] == 1


def test_load_state_dict_lists_every_missing_and_unexpected_key_and_wrong_shape():
    model = _model()
    state = _random_state(model)
    del state["0.bias"], state["3.body.1.weight"]
    state["extra"] = np.zeros(2)
    state["9.running_meen"] = np.zeros(6)
    state["8.weight"] = np.zeros((6, 44))
    state["1.bias"] = np.zeros(5)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert message.startswith("Sequential.load_state_dict: `state` does not match this model")
    assert "missing keys ['0.bias', '3.body.1.weight']" in message
    assert "unexpected keys ['extra', '9.running_meen']" in message
    assert "'8.weight' expects shape (6, 45), received (6, 44)" in message
    assert "'1.bias' expects shape (4,), received (5,)" in message
    for key, value in model.state_dict().items():  # nothing changed
        assert_array_equal(value, before[key], err_msg=key)


def test_load_state_dict_not_strict_returns_the_keys_and_loads_the_rest():
    model = _model()
    state = _random_state(model)
    del state["0.bias"]
    state["extra.weight"] = np.zeros(3)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["extra.weight"]
    assert_array_equal(model.state_dict()["0.weight"], state["0.weight"].astype(np.float32))
    bad = dict(state, **{"0.weight": np.zeros((4, 2, 3))})
    with pytest.raises(ValueError, match=r"'0.weight' expects shape \(4, 2, 3, 3\), received"):
        model.load_state_dict(bad, strict=False)  # shapes are checked either way


def test_a_state_without_num_batches_tracked_loads_and_keeps_the_counter():
    model = _model()
    model[1].buffers["num_batches_tracked"][...] = 3
    state = {k: v for k, v in _random_state(model).items() if "num_batches" not in k}
    assert model.load_state_dict(state) == ([], [])  # as PyTorch with an old state
    assert model[1].num_batches_tracked == 3
    assert_array_equal(model[1].running_mean, state["1.running_mean"].astype(np.float32))


def test_load_state_dict_refuses_what_is_not_a_state_of_numbers():
    model = _model()
    with pytest.raises(
        TypeError, match=r"`state` must be a mapping .* Received: state of type list"
    ):
        model.load_state_dict(list(model.state_dict().items()))
    state = dict(model.state_dict(), **{"0.bias": np.array(["a"] * 4)})
    with pytest.raises(TypeError, match=r"`state\['0.bias'\]` must be an array of numbers"):
        model.load_state_dict(state)
    state = dict(model.state_dict(), **{"0.bias": [[1.0], [1.0, 2.0]]})  # ragged
    with pytest.raises(TypeError, match=r"`state\['0.bias'\]` must be an array of numbers"):
        model.load_state_dict(state)


def test_load_state_dict_takes_torch_tensors_without_sharing_their_memory():
    torch = pytest.importorskip("torch")
    model = _model()
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in _random_state(model).items()}
    state["0.weight"].requires_grad_()  # a parameter: read through detach()
    state["8.weight"] = state["8.weight"].to(torch.bfloat16)  # NumPy has no bfloat16
    model.load_state_dict(state)
    assert_array_equal(model[0].weight, state["0.weight"].detach().numpy().astype(np.float32))
    assert_array_equal(model[8].weight, state["8.weight"].float().numpy())
    with torch.no_grad():
        state["0.weight"].fill_(5)
    assert not np.any(model[0].weight == 5)


def _sgd_step(model, lr):
    """Plain SGD on the arrays in the layers' dicts, gradients cleared after (written
    against `params` / `grads`, whatever the optimizers' binding)."""
    for _, layer in model.named_layers():
        for name, grad in layer.grads.items():
            if grad is not None:
                layer.params[name] -= lr * grad
        layer.grads.clear()


def _training_step(model, x, y, lr):
    loss = pycnn.CrossEntropyLoss()
    value = float(loss(model(x), y))
    model.backward(loss.backward())
    _sgd_step(model, lr)
    return value


def test_training_updates_the_loaded_arrays():
    model = _model()
    model.load_state_dict(_random_state(model))
    before = model[8].weight.copy()
    _training_step(model, _x(np.float32), np.arange(3), 0.1)
    assert not np.array_equal(model[8].weight, before)
    assert model[8].weight is model[8].params["weight"]


# --- checked assignment to layer attributes ------------------------------------------------


def test_assigning_a_weight_copies_casts_and_checks_its_shape():
    conv = Conv2d(2, 3, 3)
    w = np.random.default_rng(0).standard_normal((3, 2, 3, 3))  # float64
    conv.weight = w
    assert conv.weight.dtype == np.float32 and conv.params["weight"] is conv.weight
    assert_array_equal(conv.weight, w.astype(np.float32))
    w[...] = 0
    assert np.any(conv.weight != 0)  # a copy
    conv.bias = [1, 2, 3]
    assert conv.bias.dtype == np.float32 and list(conv.bias) == [1, 2, 3]
    with pytest.raises(
        ValueError,
        match=r"^Conv2d\(2, 3, kernel_size=\(3, 3\)\): `weight` must have shape \(3, 2, 3, 3\) "
        r"\(dtype float32\)\. Received: weight.shape=\(3, 2, 3\) \(dtype float64\)$",
    ):
        conv.weight = np.zeros((3, 2, 3))
    with pytest.raises(TypeError, match=r"^Conv2d\(.*\): `bias` must be an array of numbers"):
        conv.bias = np.array(["a", "b", "c"])
    with pytest.raises(ValueError, match=r"bias=False\): has no `bias` to assign"):
        Linear(2, 3, bias=False).bias = np.zeros(3)


def test_assigning_buffers_and_norm_parameters():
    bn = BatchNorm2d(3, dtype=np.float64)
    bn.running_mean = np.array([1, 2, 3], dtype=np.float32)
    bn.running_var = (4.0, 5.0, 6.0)
    bn.num_batches_tracked = 7.0
    assert bn.buffers["running_mean"].dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked == 7
    bn.eval()
    x = np.ones((1, 3, 1, 1))
    want = (1 - np.array([1, 2, 3])) / np.sqrt(np.array([4, 5, 6]) + 1e-5)
    assert_allclose(bn(x).ravel(), want, rtol=1e-14)
    with pytest.raises(ValueError, match=r"^BatchNorm2d\(3, dtype=float64\): `running_var`"):
        bn.running_var = np.ones(4)
    for layer, name, shape in (
        (LayerNorm((2, 3)), "weight", (2, 3)),
        (GroupNorm(1, 4), "bias", (4,)),
        (PReLU(2), "weight", (2,)),
        (Linear(3, 2), "weight", (2, 3)),
    ):
        setattr(layer, name, np.full(shape, 0.5))
        assert_array_equal(layer.params[name], np.full(shape, 0.5, np.float32))
        with pytest.raises(ValueError, match=rf"`{name}` must have shape"):
            setattr(layer, name, np.zeros((7,)))


# --- to(dtype) -----------------------------------------------------------------------------


@pytest.mark.parametrize("target", [np.float64, "float64", np.dtype("float64")])
def test_to_float64_computes_what_a_float64_model_with_the_same_weights_computes(target):
    model = _model(np.float32)
    model.load_state_dict(_random_state(model))
    x32 = _x(np.float32)
    model(x32)  # fills Conv2d's plans and the forward caches in float32
    out = model(x32)
    model.backward(np.ones_like(out))  # gradients, to be converted too
    twin = _model(np.float64, seed=9)
    twin.load_state_dict(model.state_dict())  # the same (float32) values, as float64
    assert model.to(target) is model
    assert model.dtype == np.float64
    for _, layer in model.named_layers():
        if hasattr(layer, "dtype"):
            assert layer.dtype == np.float64, layer
        for name, arr in (*layer.params.items(), *layer.buffers.items(), *layer.grads.items()):
            want = np.int64 if name == "num_batches_tracked" else np.float64
            assert arr.dtype == want, (layer, name)
    for key, value in model.state_dict().items():
        assert_array_equal(value, twin.state_dict()[key], err_msg=key)
    x64 = x32.astype(np.float64)
    for mode in ("train", "eval"):
        model.train(mode == "train"), twin.train(mode == "train")
        out, want = model(x64), twin(x64)
        assert out.dtype == np.float64
        assert_array_equal(out, want)
    model.to(np.float32)  # and back
    assert model.dtype == np.float32 and model[0].weight.dtype == np.float32
    assert model(x32).dtype == np.float32


def test_a_model_trains_after_to():
    model = Sequential(
        Conv2d(1, 4, 3, rng=0), BatchNorm2d(4), ReLU(), Flatten(), Linear(4 * 6 * 6, 3, rng=1)
    )
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 1, 8, 8)), rng.integers(0, 3, 32)
    _training_step(model, x.astype(np.float32), y, 0.05)  # float32 gradients, then ...
    before = {k: v.copy() for k, v in model.state_dict().items()}
    assert model.to(np.float64) is model  # ... float64 from here on
    losses = [_training_step(model, x, y, 0.05) for _ in range(12)]
    assert losses[-1] < losses[0]
    assert model[0].weight.dtype == np.float64 and model.predict(x).dtype == np.float64
    assert not np.array_equal(model[0].weight, before["0.weight"])
    assert model[1].num_batches_tracked == 13  # every training forward


def test_to_refuses_other_dtypes():
    with pytest.raises(
        TypeError, match=r"`dtype` must be float32 or float64. Received: dtype="
    ):
        _model().to(np.float16)
    with pytest.raises(TypeError, match=r"`dtype` must be float32 or float64"):
        _model().to("int64")


# --- BatchNorm: num_batches_tracked and momentum=None --------------------------------------


def test_momentum_none_is_the_cumulative_average_of_the_batch_statistics():
    rng = np.random.default_rng(0)
    bn = BatchNorm1d(3, momentum=None, dtype=np.float64)
    batches = [rng.standard_normal((5, 3)) * (i + 1) + i for i in range(4)]
    for x in batches:
        bn(x)
    # the rule written out: the plain mean of every batch's mean and unbiased variance
    assert_allclose(bn.running_mean, np.mean([b.mean(0) for b in batches], 0), rtol=1e-13)
    assert_allclose(bn.running_var, np.mean([b.var(0, ddof=1) for b in batches], 0), rtol=1e-13)
    assert bn.num_batches_tracked == 4
    bn.eval()
    bn(batches[0])
    assert bn.num_batches_tracked == 4  # eval mode counts nothing
    assert "momentum=None" in repr(bn)


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batch_norm_statistics_and_counter_match_torch(momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    bn = BatchNorm2d(3, momentum=momentum, dtype=np.float64)
    tbn = torch.nn.BatchNorm2d(3, momentum=momentum).double()
    for _ in range(3):
        x = rng.standard_normal((4, 3, 2, 5))
        _close(bn(x), tbn(torch.from_numpy(x)).detach().numpy(), np.float64)
    for key, value in tbn.state_dict().items():
        assert_allclose(bn.state_dict()[key], value.numpy(), rtol=1e-12, err_msg=key)
    assert bn.num_batches_tracked == 3


# --- the PyTorch bridge --------------------------------------------------------------------


def _torch_dtype(torch, dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def _randomise_torch(module, torch, seed=0):
    """Random weights and running statistics (all parameters, BN buffers)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5 + (1 if "norm" in name else 0))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
            elif name.endswith("num_batches_tracked"):
                b.fill_(int(torch.randint(1, 50, (), generator=gen)))
    return module


def _torch_net(torch):
    """Every supported kind of layer, nested Sequentials and pycnn's containers."""
    from pycnn.torch_bridge import TorchConcat, TorchResidual, TorchTanhExp

    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        TorchResidual(
            nn.Sequential(
                nn.Conv2d(8, 8, 3, padding="same", groups=2, bias=False),
                nn.BatchNorm2d(8, momentum=None),
                nn.PReLU(8, 0.2),
                nn.Conv2d(8, 8, 3, padding=2, dilation=2),
            ),
            nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.GroupNorm(4, 8)),
        ),
        TorchConcat(
            nn.Sequential(nn.Conv2d(8, 4, 1), nn.GELU(approximate="tanh")),
            nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), nn.Identity()),
            nn.Sequential(nn.MaxPool2d(3, 1, 1), TorchTanhExp()),
        ),
        nn.Dropout2d(0.3),
        nn.ConvTranspose2d(20, 6, 3, stride=2, padding=1, output_padding=1),
        nn.LayerNorm((6, 16, 16)),
        nn.Upsample(scale_factor=0.5),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.LPPool2d(2, 2),
        nn.AdaptiveAvgPool2d((3, 2)),
        nn.AdaptiveMaxPool2d(2),
        nn.SiLU(),
        nn.Flatten(),
        nn.Linear(24, 10),
        nn.BatchNorm1d(10),
        nn.Dropout(0.2),
        nn.Sequential(nn.Linear(10, 5, bias=False), nn.LogSoftmax(dim=1)),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_to_pycnn_to_torch_keeps_the_state_dict_bit_for_bit(dtype):
    torch = pytest.importorskip("torch")
    tnet = _randomise_torch(_torch_net(torch).to(_torch_dtype(torch, dtype)), torch)
    model = pycnn.from_torch(tnet)
    assert isinstance(model, Sequential) and model.dtype == dtype
    back = pycnn.to_torch(model)
    assert type(back) is torch.nn.Sequential and type(back[3]).__name__ == "TorchResidual"
    for state in (model.state_dict(), back.state_dict()):
        assert list(state) == list(tnet.state_dict())
    for key, value in tnet.state_dict().items():
        assert value.dtype == back.state_dict()[key].dtype, key
        assert value.numpy().tobytes() == model.state_dict()[key].tobytes(), key
        assert torch.equal(value, back.state_dict()[key]), key
    assert [type(m) for m in back.modules()] == [type(m) for m in tnet.modules()]
    assert repr(pycnn.from_torch(back)) == repr(model)  # the same arguments


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pycnn_twin_computes_what_the_torch_model_computes(dtype, mode):
    torch = pytest.importorskip("torch")
    tnet = _randomise_torch(_torch_net(torch).to(_torch_dtype(torch, dtype)), torch)
    if mode == "train":  # dropout draws differ between the libraries: switch it off
        tnet[5].p = tnet[-2].p = 0.0
    tnet.train(mode == "train")
    model = pycnn.from_torch(tnet)
    assert all(layer.training == (mode == "train") for _, layer in model.named_layers())
    x = np.random.default_rng(3).standard_normal((4, 3, 8, 8)).astype(dtype)
    out = model(x)
    want = tnet(torch.from_numpy(x.copy())).detach().numpy()
    assert out.dtype == dtype and out.shape == want.shape == (4, 5)
    _close(out, want, dtype, "output")
    for key, value in tnet.state_dict().items():  # running statistics and counters too
        _close(model.state_dict()[key], value.numpy(), dtype, key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_twin_computes_what_the_pycnn_model_computes(dtype):
    torch = pytest.importorskip("torch")
    model = _model(dtype)
    model.load_state_dict(_random_state(model))
    tnet = pycnn.to_torch(model)
    x = _x(dtype)
    for mode in ("train", "eval"):
        model.train(mode == "train"), tnet.train(mode == "train")
        want = tnet(torch.from_numpy(x.copy())).detach().numpy()
        _close(model(x), want, dtype, mode)
    for key, value in tnet.state_dict().items():
        _close(model.state_dict()[key], value.numpy(), dtype, key)


def _activations(torch):
    from pycnn.torch_bridge import TorchTanhExp

    nn = torch.nn
    return [
        nn.ReLU(), nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Tanh(), nn.ELU(0.7), nn.SELU(),
        nn.CELU(1.3), nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Mish(),
        nn.Softplus(2.0, 3.0), nn.Softsign(), nn.Hardtanh(-0.5, 0.8), nn.ReLU6(),
        nn.Hardsigmoid(), nn.Hardswish(), nn.LogSigmoid(), nn.Tanhshrink(), nn.Softshrink(0.3),
        nn.Hardshrink(0.4), nn.Threshold(0.1, -2.0), nn.PReLU(3, 0.1), nn.Softmax(dim=1),
        nn.LogSoftmax(dim=-1), TorchTanhExp(),
    ]  # fmt: skip


def test_every_pycnn_activation_has_a_twin_that_agrees():
    torch = pytest.importorskip("torch")
    modules = _activations(torch)
    names = {type(m).__name__.replace("Torch", "") for m in modules}
    assert names == {  # every activation layer of pycnn
        n for n in pycnn.layers.__all__ if getattr(pycnn, n).__module__.endswith(".activation")
    }
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)) * 4
    for dtype in (np.float32, np.float64):
        for module in modules:
            module = module.to(_torch_dtype(torch, dtype))
            layer = pycnn.from_torch(module)
            assert type(layer).__name__ == type(module).__name__.replace("Torch", "")
            xd = x.astype(dtype)
            want = module(torch.from_numpy(xd.copy())).detach().numpy()
            _close(layer(xd), want, dtype, repr(module))
            back = pycnn.to_torch(layer)
            assert type(back) is type(module) and repr(back) == repr(module)


def test_unsupported_modules_are_named_with_their_path():
    torch = pytest.importorskip("torch")
    from pycnn.torch_bridge import TorchResidual

    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        TorchResidual(nn.Sequential(nn.ReLU(), nn.LSTM(2, 2))),
    )
    with pytest.raises(TypeError, match=r"^model.1.body.1: torch.nn.LSTM is not supported"):
        pycnn.from_torch(net)

    class MyConv(nn.Conv2d):  # a subclass may compute something else
        pass

    with pytest.raises(TypeError, match=r"^model.0: .*MyConv is not supported"):
        pycnn.from_torch(nn.Sequential(MyConv(1, 2, 3)))
    with pytest.raises(TypeError, match=r"`module` must be a torch.nn.Module"):
        pycnn.from_torch(Conv2d(1, 2, 3))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda nn: nn.Conv2d(1, 2, 3, padding_mode="reflect"), r"padding_mode='reflect'"),
        (lambda nn: nn.BatchNorm2d(2, track_running_stats=False), r"track_running_stats"),
        (lambda nn: nn.LayerNorm(4, bias=False), r"a weight without a bias"),
        (lambda nn: nn.MaxPool2d(2, return_indices=True), r"return_indices=True"),
        (lambda nn: nn.Upsample(scale_factor=2, mode="bilinear"), r"mode='bilinear'"),
        (lambda nn: nn.Softmax(), r"dim=None"),
    ],
)
def test_unsupported_options_are_named(make, match):
    torch = pytest.importorskip("torch")
    with pytest.raises(
        ValueError, match=r"^model.0: torch.nn.\w+ has options pycnn .*" + match
    ):
        pycnn.from_torch(torch.nn.Sequential(make(torch.nn)))


def test_half_precision_modules_are_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(
        TypeError, match=r"model: torch.nn.Linear must hold float32 or float64 "
    ):
        pycnn.from_torch(torch.nn.Linear(2, 3).half())


def test_the_twins_share_no_memory_and_to_torch_refuses_foreign_layers():
    torch = pytest.importorskip("torch")
    tnet = torch.nn.Sequential(torch.nn.Linear(3, 2))
    model = pycnn.from_torch(tnet)
    back = pycnn.to_torch(model)
    kept = model[0].weight.copy()
    with torch.no_grad():
        tnet[0].weight.fill_(3)
        back[0].weight.fill_(4)
    assert_array_equal(model[0].weight, kept)

    class MyLinear(Linear):
        pass

    with pytest.raises(TypeError, match=r"^model.1: .*MyLinear has no PyTorch twin"):
        pycnn.to_torch(Sequential(ReLU(), MyLinear(2, 3)))


def test_container_modules_pickle_by_reference():
    torch = pytest.importorskip("torch")
    tnet = pycnn.to_torch(_model())
    again = pickle.loads(pickle.dumps(tnet))
    assert type(again[3]) is type(tnet[3])
    assert type(again[3]).__module__ == "pycnn.torch_bridge"
    x = torch.from_numpy(_x(np.float32))
    tnet.eval(), again.eval()
    assert torch.equal(again(x), tnet(x))


# --- .safetensors files --------------------------------------------------------------------


def test_a_safetensors_file_of_pycnn_loads_into_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    model = _model()
    model.load_state_dict(_random_state(model))
    path = model.save(tmp_path / "model.safetensors")
    assert path.endswith("model.safetensors")
    tnet = pycnn.to_torch(_model(seed=7))  # other weights
    tensors = st_torch.load_file(path)
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    result = tnet.load_state_dict(tensors, strict=True)
    assert result.missing_keys == result.unexpected_keys == []
    for key, value in tnet.state_dict().items():
        assert value.numpy().tobytes() == model.state_dict()[key].tobytes(), key
    model.eval(), tnet.eval()
    want = tnet(torch.from_numpy(_x(np.float32))).detach().numpy()
    _close(model(_x(np.float32)), want, np.float32)


def test_a_safetensors_file_of_torch_loads_into_pycnn(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    tnet = _randomise_torch(pycnn.to_torch(_model()), torch, seed=4)
    path = str(tmp_path / "torch.safetensors")
    st_torch.save_file(tnet.state_dict(), path)
    model = _model(seed=3)
    assert model.load(path) is model
    for key, value in tnet.state_dict().items():
        assert model.state_dict()[key].tobytes() == value.numpy().tobytes(), key
    # into a float64 model: cast, as load_state_dict does
    model64 = _model(np.float64).load(path)
    assert_array_equal(model64[0].weight, tnet[0].weight.detach().double().numpy())


def test_safetensors_round_trip_and_mismatches(tmp_path):
    pytest.importorskip("safetensors")
    model = _model()
    model.load_state_dict(_random_state(model))
    path = pycnn.io.save(model, tmp_path / "m.safetensors")
    other = pycnn.io.load_into(_model(seed=4), path)
    for key, value in model.state_dict().items():
        assert_array_equal(other.state_dict()[key], value, err_msg=key)
    wrong = Sequential(Conv2d(2, 5, 3, padding=1), BatchNorm2d(5))
    before = {k: v.copy() for k, v in wrong.state_dict().items()}
    with pytest.raises(ValueError) as info:
        wrong.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: the file does not match this model")
    assert "'0.weight' has shape (4, 2, 3, 3), the model expects (5, 2, 3, 3)" in message
    assert "unexpected keys ['2.weight'," in message
    for key, value in wrong.state_dict().items():
        assert_array_equal(value, before[key], err_msg=key)
    state = {k: np.zeros_like(v) for k, v in model.state_dict().items()}  # a plain dict
    pycnn.io.load_into(state, path)
    assert_array_equal(state["8.weight"], model[8].weight)


def test_a_corrupt_safetensors_file_is_one_value_error(tmp_path):
    pytest.importorskip("safetensors")
    path = tmp_path / "bad.safetensors"
    for content in (b"", b"\xff" * 8 + b"{}", b"this is not a safetensors file"):
        path.write_bytes(content)
        with pytest.raises(ValueError, match=r"`path` must be a .safetensors file\. Received"):
            _model().load(path)
    good = _model().save(tmp_path / "good.safetensors")
    with open(good, "rb") as f:
        data = f.read()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ValueError, match=str(path)):
        _model().load(path)


def test_without_the_safetensors_package_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(
        ImportError, match=r"needs the safetensors package: pip install safetensors"
    ):
        _model().save(tmp_path / "m.safetensors")


def test_without_torch_the_bridge_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"`to_torch` needs PyTorch: pip install torch"):
        pycnn.to_torch(_model())
    with pytest.raises(ImportError, match=r"`from_torch` needs PyTorch: pip install torch"):
        pycnn.from_torch(object())


def test_a_lone_batch_norm_loads_a_state_without_its_counter():
    bn = BatchNorm2d(2)
    state = {
        "weight": [2.0, 3.0],
        "bias": [0.0, 1.0],
        "running_mean": [0, 0],
        "running_var": [1, 1],
    }
    assert bn.load_state_dict(state) == ([], [])
    assert list(bn.weight) == [2.0, 3.0] and bn.num_batches_tracked == 0
