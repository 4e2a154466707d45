"""Residual, Concat, Identity and nested Sequential: PyTorch as an outside oracle (outputs,
gradients of every parameter and of the input, state keys), numerical gradients, training,
save/load, the fit rollback, summary, repr and errors."""

import numpy as np
import pytest
from conftest import assert_close, numerical_gradient

import pycnn
from pycnn import (
    BaseLayer,
    BatchNorm2d,
    Concat,
    Conv2d,
    CrossEntropyLoss,
    Flatten,
    Identity,
    Linear,
    ReLU,
    Residual,
    Sequential,
    datasets,
    optim,
)

# --- the networks, in pycnn and in PyTorch -------------------------------------------------


def _block(kind, dtype, rng=0):
    """A residual block (Conv-BN-ReLU-Conv-BN body, identity or downsampling shortcut) or
    a Concat block of two conv branches, 3 channels in."""
    if kind == "concat":
        return Concat(
            Conv2d(3, 2, 1, dtype=dtype, rng=rng),
            Sequential(Conv2d(3, 4, 3, padding=1, dtype=dtype, rng=rng + 1), ReLU()),
        )
    down = kind == "downsample"
    out, stride = (5, 2) if down else (3, 1)
    body = Sequential(
        Conv2d(3, out, 3, stride=stride, padding=1, bias=False, dtype=dtype, rng=rng),
        BatchNorm2d(out, dtype=dtype),
        ReLU(),
        Conv2d(out, out, 3, padding=1, bias=False, dtype=dtype, rng=rng + 1),
        BatchNorm2d(out, dtype=dtype),
    )
    shortcut = (
        Sequential(
            Conv2d(3, out, 1, stride=2, bias=False, dtype=dtype, rng=rng + 2),
            BatchNorm2d(out, dtype=dtype),
        )
        if down
        else None
    )
    return Residual(body, shortcut)


def _torch_block(kind):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class TorchResidual(nn.Module):
        def __init__(self, body, shortcut=None):
            super().__init__()
            self.body, self.shortcut = body, shortcut if shortcut is not None else nn.Identity()

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    class TorchConcat(nn.Module):
        def __init__(self, *branches, dim=1):
            super().__init__()
            self.branches, self.dim = nn.ModuleList(branches), dim

        def forward(self, x):
            return torch.cat([b(x) for b in self.branches], self.dim)

    if kind == "concat":
        return TorchConcat(
            nn.Conv2d(3, 2, 1), nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        )
    down = kind == "downsample"
    out, stride = (5, 2) if down else (3, 1)
    body = nn.Sequential(
        nn.Conv2d(3, out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(),
        nn.Conv2d(out, out, 3, padding=1, bias=False),
        nn.BatchNorm2d(out),
    )
    shortcut = (
        nn.Sequential(nn.Conv2d(3, out, 1, stride=2, bias=False), nn.BatchNorm2d(out))
        if down
        else None
    )
    return TorchResidual(body, shortcut)


def _net(dtype, rng=0):
    """conv - residual (downsampling) - concat - residual (identity, nested in a Sequential)
    - flatten - linear, for 1x8x8 inputs."""
    return Sequential(
        Conv2d(1, 3, 3, padding=1, dtype=dtype, rng=rng),
        _block("downsample", dtype, rng + 10),  # (5, 4, 4)
        Sequential(Conv2d(5, 3, 1, dtype=dtype, rng=rng + 20), _block("identity", dtype)),
        _block("concat", dtype, rng + 30),  # (6, 4, 4)
        Flatten(),
        Linear(96, 10, dtype=dtype, rng=rng + 40),
    )


def _torch_net():
    nn = pytest.importorskip("torch").nn
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        _torch_block("downsample"),
        nn.Sequential(nn.Conv2d(5, 3, 1), _torch_block("identity")),
        _torch_block("concat"),
        nn.Flatten(),
        nn.Linear(96, 10),
    )


def _randomise(layer, rng):
    """Non-trivial parameters and batch-norm statistics (they start at 0 and 1)."""
    for _, sub in layer.named_layers():
        for p in sub.params.values():
            p[...] = rng.standard_normal(p.shape) * 0.5 + (
                1 if isinstance(sub, BatchNorm2d) and p is sub.weight else 0
            )
        if isinstance(sub, BatchNorm2d):
            sub.running_mean[...] = rng.standard_normal(sub.num_features) * 0.1
            sub.running_var[...] = rng.uniform(0.5, 2, sub.num_features)
    return layer


def _to_torch(layer, torch_module, dtype):
    """Load `layer`'s state into `torch_module` by key; return the torch module."""
    torch = pytest.importorskip("torch")
    torch_module.to(torch.float64 if dtype == np.float64 else torch.float32)
    result = torch_module.load_state_dict(
        {k: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()}, strict=True
    )
    assert result.missing_keys == result.unexpected_keys == []  # num_batches_tracked too
    return torch_module


def _torch_keys(torch_module):
    return list(torch_module.state_dict())


def _compare_with_torch(layer, torch_module, x, dtype, mode, rng):
    torch = pytest.importorskip("torch")
    layer.train(mode == "train")
    torch_module.train(mode == "train")
    out = layer.forward(x)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    out_t = torch_module(xt)
    assert out.shape == tuple(out_t.shape) and out.dtype == dtype
    assert_close(out, out_t.detach().numpy(), dtype, "output")
    grad = rng.standard_normal(out.shape).astype(dtype)
    grad_x = layer.backward(grad)
    out_t.backward(torch.from_numpy(grad))
    assert grad_x.dtype == dtype
    assert_close(grad_x, xt.grad.numpy(), dtype, "input gradient")
    torch_grads = {k: p.grad.numpy() for k, p in torch_module.named_parameters()}
    keys = [k for k, _ in layer.named_parameters()]
    assert keys == list(torch_grads)
    for key, p in layer.named_parameters():
        assert_close(p.grad, torch_grads[key], dtype, key)
    for key, arr in layer.state_dict().items():  # running statistics too
        assert_close(arr, torch_module.state_dict()[key].numpy(), dtype, key)


# --- PyTorch as the oracle -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("kind", ["identity", "downsample", "concat"])
def test_block_matches_torch(kind, mode, dtype, rng):
    block = _randomise(_block(kind, dtype), rng)
    torch_block = _torch_block(kind)
    assert list(block.state_dict()) == _torch_keys(torch_block)
    _to_torch(block, torch_block, dtype)
    x = rng.standard_normal((4, 3, 6, 7)).astype(dtype)
    _compare_with_torch(block, torch_block, x, dtype, mode, rng)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_nested_network_matches_torch(mode, dtype, rng):
    net = _randomise(_net(dtype), rng)
    torch_net = _torch_net()
    assert list(net.state_dict()) == _torch_keys(torch_net)
    assert "1.body.0.weight" in net.state_dict() and "2.1.shortcut" not in str(
        list(net.state_dict())
    )  # the identity holds no state
    assert "3.branches.1.0.weight" in net.state_dict()
    _to_torch(net, torch_net, dtype)
    x = rng.standard_normal((3, 1, 8, 8)).astype(dtype)
    _compare_with_torch(net, torch_net, x, dtype, mode, rng)


def test_concat_along_another_dim_matches_torch(rng):
    torch = pytest.importorskip("torch")
    block = Concat(Identity(), ReLU(), dim=-1)
    x = rng.standard_normal((2, 3, 4))
    out = block.forward(x)
    assert_close(
        out, torch.cat([torch.from_numpy(x), torch.relu(torch.from_numpy(x))], -1), np.float64
    )
    grad = rng.standard_normal(out.shape)
    assert_close(block.backward(grad), grad[..., :4] + grad[..., 4:] * (x > 0), np.float64)
    assert (
        repr(block) == "Concat(\n  dim=-1\n  (branches.0): Identity()\n"
        "  (branches.1): ReLU()\n)"
    )


# --- numerical gradients ---------------------------------------------------------------------


def test_numerical_gradient_of_residual_and_concat_net(rng):
    f64 = np.float64
    net = _randomise(
        Sequential(
            Conv2d(2, 3, 3, padding=1, dtype=f64, rng=0),
            Residual(
                Sequential(
                    Conv2d(3, 3, 3, padding=1, dtype=f64, rng=1),
                    BatchNorm2d(3, dtype=f64),
                    ReLU(),
                )
            ),
            Concat(
                Conv2d(3, 2, 1, dtype=f64, rng=2),
                Residual(Conv2d(3, 3, 3, padding=1, dtype=f64, rng=3)),
            ),
        ),
        rng,
    )
    x = rng.standard_normal((2, 2, 4, 5))
    w = rng.standard_normal((2, 5, 4, 5))  # the output is (2, 2 + 3, 4, 5)
    f = lambda: float(np.sum(net.forward(x) * w))  # noqa: E731
    f()
    grad_x = net.backward(w)
    analytic = {key: p.grad.copy() for key, p in net.named_parameters()}
    assert len(analytic) == 10
    close = lambda got, want, key: np.testing.assert_allclose(  # noqa: E731
        got, want, rtol=1e-6, atol=1e-7 * max(1.0, np.abs(want).max()), err_msg=key
    )
    close(grad_x, numerical_gradient(f, x), "x")  # central differences: ~1e-8 off
    for key, param in net.named_parameters():
        close(analytic[key], numerical_gradient(f, param.data), key)


# --- training, persistence, rollback, modes ---------------------------------------------


@pytest.fixture(scope="module")
def few_digits():
    x, y = datasets.load_digits()
    return x[:160], y[:160]


def test_nested_model_trains_and_round_trips_through_save_load(few_digits, tmp_path):
    x, y = few_digits
    model = _net(np.float32)
    history = model.fit(
        x,
        y,
        epochs=3,
        batch_size=16,
        optimizer=optim.Adam(3e-3),
        loss=CrossEntropyLoss(),
        rng=0,
        progress=False,
    )
    assert history["loss"][-1] < history["loss"][0]
    assert all(p.grad is not None for p in model.parameters())
    path = model.save(tmp_path / "nested")
    other = _net(np.float32, rng=7).load(path)
    for (key, a), (key2, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert key == key2
        np.testing.assert_array_equal(a, b, err_msg=key)
    np.testing.assert_array_equal(model.predict(x), other.predict(x))
    with np.load(path) as archive:
        assert sorted(archive.files) == sorted(model.state_dict())


def test_fit_rollback_restores_nested_parameters_and_statistics(few_digits):
    x, y = few_digits
    x = x[:48].copy()
    x[20] = np.nan  # batch 2 of 16, no shuffle
    model = _net(np.float32)
    seen = {}

    class Recording(optim.SGD):
        def step(self, *args, **kwargs):
            super().step(*args, **kwargs)
            seen["after"] = {k: v.copy() for k, v in model.state_dict().items()}

    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 1, batch 2"):
        model.fit(
            x,
            y[:48],
            1,
            16,
            Recording(0.01, momentum=0.9),
            CrossEntropyLoss(),
            shuffle=False,
            progress=False,
        )
    assert any(".body." in k and "running_var" in k for k in seen["after"])
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, seen["after"][key], err_msg=key)


def test_train_and_eval_reach_every_nested_layer():
    model = _net(np.float32)
    model.eval()
    assert all(not layer.training for _, layer in model.named_layers())
    model.train()
    assert all(layer.training for _, layer in model.named_layers())
    assert [k for k, _ in model.named_layers()][:4] == ["", "0", "1", "1.body"]


def test_sequential_is_a_layer_with_its_dtype():
    inner = Sequential(Linear(3, 2, dtype=np.float64), ReLU())
    assert isinstance(inner, BaseLayer)
    outer = Sequential(inner, Residual(Identity()))
    assert outer.dtype == np.float64
    assert list(outer.state_dict()) == ["0.0.weight", "0.0.bias"]
    assert [k for k, _ in outer.named_parameters()] == ["0.0.weight", "0.0.bias"]
    assert [k for k, _ in optim.named_parameters([inner])] == ["0.0.weight", "0.0.bias"]
    with pytest.raises(TypeError, match=r"one dtype. Received: float32, float64"):
        Sequential(inner, Residual(Linear(2, 2)))


# --- summary and repr ------------------------------------------------------------------------


def test_summary_shows_the_nesting(capsys):
    model = _net(np.float32)
    model.summary((1, 8, 8))
    lines = capsys.readouterr().out.splitlines()
    row = {line.split()[0]: line for line in lines[2:] if line and line[0] != "-"}
    assert "Residual()" in row["1"] and "(None, 5, 4, 4)" in row["1"]
    assert "\n".join(lines).count("Sequential()") == 5
    # children are indented two spaces per level under their container
    col = lambda key, name: row[key].index(name)  # noqa: E731
    assert col("1.body", "Sequential") == col("1", "Residual") + 2
    assert col("1.body.0", "Conv2d") == col("1.body", "Sequential") + 2
    assert col("2.1.body.1", "BatchNorm2d") == col("2", "Sequential") + 6
    assert "(None, 4, 4, 4)" in row["3.branches.1"] and "(None, 2, 4, 4)" in row["3.branches.0"]
    assert "(None, 6, 4, 4)" in row["3"]
    counts = {k: int(r.split()[-1].replace(",", "")) for k, r in row.items() if k[0].isdigit()}
    assert counts["3"] == counts["3.branches.0"] + counts["3.branches.1"]
    assert f"total parameters: {model.num_parameters():,}" in "\n".join(lines)
    assert "forward" not in vars(model[1].body[0])  # the recording wrappers are gone


def test_repr_nests_like_torch():
    block = Residual(Sequential(Linear(2, 2), ReLU()))
    assert repr(block) == (
        "Residual(\n  (body): Sequential(\n    (0): Linear(2, 2)\n"
        "    (1): ReLU()\n  )\n  (shortcut): Identity()\n)"
    )


def test_exports():
    for name in ("Identity", "Residual", "Concat"):
        assert name in pycnn.__all__ and name in pycnn.layers.__all__
        assert getattr(pycnn, name) is getattr(pycnn.layers, name)


# --- errors -----------------------------------------------------------------------------


def test_containers_reject_what_is_not_a_layer():
    with pytest.raises(
        TypeError,
        match=r"Residual: `body` must be a pycnn layer \(a "
        r"BaseLayer instance\). Received: body of type function",
    ):
        Residual(lambda x: x)
    with pytest.raises(TypeError, match=r"Residual: `shortcut` must be a pycnn layer"):
        Residual(ReLU(), shortcut="identity")
    with pytest.raises(
        TypeError,
        match=r"Concat: `branches\[1\]` must be a pycnn layer.*"
        r"Received: branches\[1\] of type int",
    ):
        Concat(ReLU(), 3)
    with pytest.raises(ValueError, match=r"Concat: `branches` must hold at least one layer"):
        Concat()
    with pytest.raises(TypeError, match=r"`dim`"):
        Concat(ReLU(), dim=1.5)


def test_mismatched_shapes_at_the_join(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    with pytest.raises(
        ValueError,
        match=r"Residual: the outputs of `body` and `shortcut` "
        r"must have the same shape and dtype to be added. "
        r"Received: body -> \(2, 4, 3, 3\) float32, "
        r"shortcut -> \(2, 3, 6, 6\) float32",
    ):
        Residual(Conv2d(3, 4, 3, stride=2, padding=1)).forward(x)
    with pytest.raises(
        ValueError,
        match=r"Concat: the outputs of the branches must have the "
        r"same shape except along dim=1, and the same dtype. "
        r"Received: branch 0 -> \(2, 2, 6, 6\) float32, "
        r"branch 1 -> \(2, 2, 4, 4\) float32",
    ):
        Concat(Conv2d(3, 2, 1), Conv2d(3, 2, 3)).forward(x)
    with pytest.raises(ValueError, match=r"Concat: `dim` must be in \[-4, 4\)"):
        Concat(Identity(), dim=4).forward(x)


def test_backward_before_forward_and_bad_gradients(rng):
    for block, name in ((Residual(ReLU()), "Residual"), (Concat(ReLU()), "Concat")):
        with pytest.raises(RuntimeError, match=rf"{name}.backward called before forward"):
            block.backward(np.ones((2, 3)))
        block.forward(np.ones((2, 3)))
        with pytest.raises(
            ValueError,
            match=rf"{name}: `grad` must have the forward "
            r"output's shape \(2, 3\)",
        ):
            block.backward(np.ones((2, 4)))
    with pytest.raises(TypeError, match=r"Identity: `x` must be a numpy.ndarray"):
        Identity().forward([1.0])
