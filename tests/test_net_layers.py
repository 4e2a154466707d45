"""Linear, Flatten, activations, BatchNorm and Dropout: numerical gradients (float64),
dtype preservation, train/eval behaviour, PyTorch as an outside oracle, errors, reprs."""

import numpy as np
import pytest
from conftest import assert_close, numerical_gradient

import pycnn
from pycnn import (
    BatchNorm1d,
    BatchNorm2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Tanh,
)


def _away_from_zero(rng, shape, dtype=np.float64):
    """Normal draws kept at least 0.05 from 0, where ReLU-like kinks sit."""
    x = rng.standard_normal(shape)
    return (x + np.where(x >= 0, 0.05, -0.05)).astype(dtype)


def _randomise(layer, rng):
    """Non-trivial parameters (BatchNorm starts at weight 1, bias 0; biases at 0)."""
    for name, p in layer.params.items():
        p[...] = rng.standard_normal(p.shape) * (0.5 if name == "weight" else 1) + (
            1 if name == "weight" and isinstance(layer, (BatchNorm1d, BatchNorm2d)) else 0
        )
    return layer


# name: (factory(dtype), input shape)
LAYER_CASES = {
    "linear": (lambda dt: Linear(5, 3, dtype=dt, rng=0), (4, 5)),
    "linear-3d-input": (lambda dt: Linear(5, 3, dtype=dt, rng=0), (2, 3, 5)),
    "linear-no-bias": (lambda dt: Linear(4, 2, bias=False, dtype=dt, rng=0), (3, 4)),
    "flatten": (lambda dt: Flatten(), (2, 3, 4, 2)),
    "flatten-1-2": (lambda dt: Flatten(1, 2), (2, 3, 4, 2)),
    "relu": (lambda dt: ReLU(), (3, 2, 4, 3)),
    "leaky-relu": (lambda dt: LeakyReLU(0.2), (3, 7)),
    "sigmoid": (lambda dt: Sigmoid(), (3, 7)),
    "tanh": (lambda dt: Tanh(), (2, 3, 3)),
    "batchnorm1d": (lambda dt: BatchNorm1d(4, dtype=dt), (6, 4)),
    "batchnorm1d-ncl": (lambda dt: BatchNorm1d(3, dtype=dt), (4, 3, 5)),
    "batchnorm2d": (lambda dt: BatchNorm2d(3, dtype=dt), (2, 3, 4, 5)),
    "batchnorm2d-no-affine": (lambda dt: BatchNorm2d(2, affine=False, dtype=dt), (3, 2, 3, 3)),
    "dropout": (lambda dt: Dropout(0.3, rng=0), (4, 6)),
}


def _forward_fixed(layer, x, seed=99):
    """Forward with the dropout mask fixed (the layer's rng reset to the same seed)."""
    if isinstance(layer, Dropout):
        layer.rng = np.random.default_rng(seed)
    return layer.forward(x)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", LAYER_CASES)
def test_numerical_gradient(name, mode, rng):
    factory, shape = LAYER_CASES[name]
    layer = _randomise(factory(np.float64), rng).train(mode == "train")
    if mode == "eval" and "batchnorm" in name:
        layer.buffers["running_mean"][...] = rng.standard_normal(layer.num_features)
        layer.buffers["running_var"][...] = rng.uniform(0.5, 2, layer.num_features)
    x = _away_from_zero(rng, shape)
    out = _forward_fixed(layer, x)
    g = rng.standard_normal(out.shape)
    grad_x = layer.backward(g)
    analytic = {key: layer.grads[key].copy() for key in layer.params}

    def objective():
        return np.sum(_forward_fixed(layer, x) * g)

    np.testing.assert_allclose(
        grad_x, numerical_gradient(objective, x), rtol=1e-6, atol=1e-8, err_msg="grad_x"
    )
    for key, param in layer.params.items():
        np.testing.assert_allclose(
            analytic[key],
            numerical_gradient(objective, param),
            rtol=1e-6,
            atol=1e-8,
            err_msg=key,
        )
    assert set(analytic) == set(layer.params)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", LAYER_CASES)
def test_dtype_preserved(name, mode, dtype, rng):
    factory, shape = LAYER_CASES[name]
    layer = factory(dtype).train(mode == "train")
    x = rng.standard_normal(shape).astype(dtype)
    out = layer(x)
    assert out.dtype == dtype
    grad_x = layer.backward(np.ones_like(out))
    assert grad_x.dtype == dtype and grad_x.shape == x.shape
    for key, value in (*layer.params.items(), *layer.grads.items(), *layer.buffers.items()):
        assert value.dtype == (np.int64 if key == "num_batches_tracked" else dtype), key


def test_linear_matches_definition(dtype, rng):
    layer = _randomise(Linear(6, 4, dtype=dtype, rng=3), rng)
    assert layer.weight.shape == (4, 6) and layer.bias.shape == (4,)
    x = rng.standard_normal((5, 6)).astype(dtype)
    assert_close(
        layer(x), x.astype(np.float64) @ layer.weight.T.astype(np.float64) + layer.bias, dtype
    )
    g = rng.standard_normal((5, 4)).astype(dtype)
    assert_close(layer.backward(g), g.astype(np.float64) @ layer.weight, dtype)
    assert_close(layer.grads["weight"], g.T.astype(np.float64) @ x, dtype)
    assert_close(layer.grads["bias"], g.sum(0), dtype)


def test_linear_he_initialisation():
    layer = Linear(400, 300, rng=0)
    assert abs(layer.weight.std() / np.sqrt(2 / 400) - 1) < 0.02
    assert not layer.bias.any()
    np.testing.assert_array_equal(Linear(400, 300, rng=0).weight, layer.weight)


def test_flatten_shapes():
    x = np.zeros((2, 3, 4, 5), np.float32)
    assert Flatten()(x).shape == (2, 60)
    assert Flatten(0)(x).shape == (120,)
    assert Flatten(1, 2)(x).shape == (2, 12, 5)
    assert Flatten(-2)(x).shape == (2, 3, 20)


def test_sigmoid_is_stable_for_large_inputs(dtype):
    x = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow
        y = Sigmoid()(x)
    assert y.dtype == dtype and np.all(np.isfinite(y))
    assert y[0] == 0 and y[3] == 0.5 and y[-1] == 1
    np.testing.assert_allclose(
        y, 1 / (1 + np.exp(-x.astype(np.float64).clip(-700, 700))), rtol=1e-6, atol=1e-30
    )


def test_relu_family_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_array_equal(ReLU()(x), [0, 0, 0, 0.5, 2])
    np.testing.assert_array_equal(LeakyReLU()(x), [-0.02, -0.005, 0, 0.5, 2])
    relu = ReLU()
    relu(x)
    np.testing.assert_array_equal(relu.backward(np.ones(5)), [0, 0, 0, 1, 1])  # 0 at 0


# --- batch normalisation -------------------------------------------------------------


def test_batchnorm_train_normalises_and_tracks_running_stats(rng):
    bn = BatchNorm2d(3, momentum=0.2, dtype=np.float64)
    x = rng.standard_normal((4, 3, 5, 6)) * [[[[2.0]], [[0.5]], [[3.0]]]] + 1.5
    out = bn(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, rtol=1e-3)  # eps=1e-5
    n = 4 * 5 * 6
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(bn.running_mean, 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.8 + 0.2 * var * n / (n - 1), rtol=1e-12)


def test_batchnorm_eval_uses_running_stats_and_does_not_update_them(rng):
    bn = BatchNorm1d(2, dtype=np.float64)
    bn.buffers["running_mean"][...] = [1.0, -2.0]
    bn.buffers["running_var"][...] = [4.0, 0.25]
    bn.eval()
    x = rng.standard_normal((3, 2))
    out = bn(x)
    np.testing.assert_allclose(out, (x - [1.0, -2.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5))
    np.testing.assert_array_equal(bn.running_mean, [1.0, -2.0])
    np.testing.assert_array_equal(bn.running_var, [4.0, 0.25])
    bn.eval()(x[:1])  # one sample is fine in eval mode


def test_batchnorm_needs_more_than_one_value_per_channel_in_train_mode():
    bn = BatchNorm1d(3)
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        bn(np.zeros((1, 3), np.float32))
    assert bn.num_batches_tracked == 0  # a refused batch is not counted


@pytest.mark.parametrize("cls, shape", [(BatchNorm1d, (0, 3)), (BatchNorm2d, (0, 3, 4, 5))])
def test_batchnorm_empty_batch_in_train_mode_changes_nothing_but_the_count(cls, shape):
    # PyTorch's rule (torch 2.x): the empty output, the running statistics as they were,
    # num_batches_tracked + 1, zero gradients for weight and bias
    bn = cls(3, momentum=None, dtype=np.float64)
    bn.buffers["running_mean"][...] = [0.5, -1.0, 2.0]
    bn.buffers["running_var"][...] = [2.0, 0.5, 3.0]
    x = np.zeros(shape)
    out = bn(x)
    assert out.shape == shape and out.dtype == np.float64 and out is not x
    np.testing.assert_array_equal(bn.running_mean, [0.5, -1.0, 2.0])
    np.testing.assert_array_equal(bn.running_var, [2.0, 0.5, 3.0])
    assert bn.num_batches_tracked == 1
    assert bn.backward(np.zeros(shape)).shape == shape
    np.testing.assert_array_equal(bn.grads["weight"], np.zeros(3))
    np.testing.assert_array_equal(bn.grads["bias"], np.zeros(3))
    # the next batch's cumulative average counts the empty one, as PyTorch's does
    y = np.arange(12.0).reshape(4, 3) if cls is BatchNorm1d else np.ones((2, 3, 4, 5))
    bn(y)
    batch_mean = y.mean(axis=(0,) if y.ndim == 2 else (0, 2, 3))
    start = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(bn.running_mean, start + (batch_mean - start) / 2)


@pytest.mark.parametrize(
    "cls, shape", [(BatchNorm1d, (8, 3)), (BatchNorm1d, (4, 3, 5)), (BatchNorm2d, (4, 3, 5, 6))]
)
def test_batchnorm_matches_torch(cls, shape, dtype, rng):
    torch = pytest.importorskip("torch")
    ours = _randomise(cls(3, momentum=0.3, dtype=dtype), rng)
    theirs = getattr(torch.nn, cls.__name__)(3, momentum=0.3).to(
        torch.float32 if dtype == np.float32 else torch.float64
    )
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight))
        theirs.bias.copy_(torch.from_numpy(ours.bias))
    for step in range(3):  # three training batches
        x = (rng.standard_normal(shape) * 2 + step).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        xt = torch.from_numpy(x).requires_grad_()
        out_t = theirs.train()(xt)
        out_t.backward(torch.from_numpy(g))
        out = ours.train()(x)
        grad_x = ours.backward(g)
        assert_close(out, out_t.detach().numpy(), dtype)
        assert_close(grad_x, xt.grad.numpy(), dtype)
        assert_close(ours.grads["weight"], theirs.weight.grad.numpy(), dtype)
        assert_close(ours.grads["bias"], theirs.bias.grad.numpy(), dtype)
        theirs.weight.grad = theirs.bias.grad = None
        ours.zero_grad()  # both accumulate gradients over backward calls
        assert_close(ours.running_mean, theirs.running_mean.numpy(), dtype)
        assert_close(ours.running_var, theirs.running_var.numpy(), dtype)
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    out_t = theirs.eval()(xt)
    g = rng.standard_normal(shape).astype(dtype)
    out_t.backward(torch.from_numpy(g))
    assert_close(ours.eval()(x), out_t.detach().numpy(), dtype)
    assert_close(ours.backward(g), xt.grad.numpy(), dtype)


# --- dropout ---------------------------------------------------------------------------


def test_dropout_inverted_scaling_and_eval_identity(rng):
    x = np.ones((200, 50), np.float32)
    layer = Dropout(0.25, rng=0)
    out = layer(x)
    assert out.dtype == np.float32
    kept = out != 0
    assert set(np.unique(out)) == {0.0, np.float32(1 / 0.75)}
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), out)  # same mask
    assert layer.eval()(x) is x
    np.testing.assert_array_equal(layer.backward(x), x)


def test_dropout_mask_comes_from_the_layer_rng():
    x = np.ones((10, 10))
    a, b = Dropout(0.5, rng=7)(x), Dropout(0.5, rng=7)(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, Dropout(0.5, rng=8)(x))


def test_dropout_edge_probabilities():
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(Dropout(0.0)(x), x)
    layer = Dropout(1.0)
    assert not layer(x).any() and not layer.backward(x).any()


@pytest.mark.parametrize("kind", ["Dropout", "Dropout2d"])
def test_dropout_share_takes_its_rows_of_the_global_batch_mask(kind):
    # fit(distributed=True) gives each rank's dropout layers (rank, ranks, global batch):
    # rank r's mask is rows r::ranks of the one a single process draws for the batch,
    # and a rank with no rows (a last batch smaller than the job) draws it all the same
    make = getattr(pycnn, kind)
    x = np.arange(1, 1 + 5 * 3 * 2 * 2, dtype=np.float32).reshape(5, 3, 2, 2)
    alone = make(0.5, rng=3)
    whole = [alone(x), alone(x[:1])]
    for rank in range(3):
        layer = make(0.5, rng=3)
        layer._share = (rank, 3, 5)
        np.testing.assert_array_equal(layer(x[rank::3]), whole[0][rank::3])
        layer._share = (rank, 3, 1)
        mine = layer(x[:1][rank::3])
        np.testing.assert_array_equal(mine, whole[1][rank::3])
        assert mine.shape == ((1,) if rank == 0 else (0,)) + x.shape[1:]
        assert layer.rng.bit_generator.state == alone.rng.bit_generator.state
    layer._share = (0, 3, 7)  # not this batch's share: refused, not silently wrong
    with pytest.raises(RuntimeError, match="not rank 0's share of 7 over 3 ranks"):
        layer(x[:2])


# --- PyTorch as an outside oracle -------------------------------------------------------


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: ReLU(), "ReLU()"),
        (lambda: LeakyReLU(0.1), "LeakyReLU(0.1)"),
        (lambda: Sigmoid(), "Sigmoid()"),
        (lambda: Tanh(), "Tanh()"),
        (lambda: Flatten(), "Flatten()"),
    ],
)
def test_activations_match_torch(ours, theirs, dtype, rng):
    torch = pytest.importorskip("torch")
    layer, module = ours(), eval(f"torch.nn.{theirs}")
    x = (rng.standard_normal((3, 4, 5)) * 4).astype(dtype)
    g = rng.standard_normal(layer(x).shape).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    module(xt).backward(torch.from_numpy(g))
    assert_close(layer(x), module(xt).detach().numpy(), dtype)
    assert_close(layer.backward(g), xt.grad.numpy(), dtype)


def test_linear_matches_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    layer = _randomise(Linear(7, 3, dtype=dtype, rng=1), rng)
    module = torch.nn.Linear(7, 3).to(torch.float32 if dtype == np.float32 else torch.float64)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(layer.weight))
        module.bias.copy_(torch.from_numpy(layer.bias))
    x = rng.standard_normal((2, 5, 7)).astype(dtype)
    g = rng.standard_normal((2, 5, 3)).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    out_t = module(xt)
    out_t.backward(torch.from_numpy(g))
    assert_close(layer(x), out_t.detach().numpy(), dtype)
    assert_close(layer.backward(g), xt.grad.numpy(), dtype)
    assert_close(layer.grads["weight"], module.weight.grad.numpy(), dtype)
    assert_close(layer.grads["bias"], module.bias.grad.numpy(), dtype)


# --- errors and reprs --------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (
            lambda: Linear(0, 3),
            ValueError,
            r"`in_features` must be >= 1. Received: in_features=0",
        ),
        (lambda: Linear(3, 2.0), TypeError, r"`out_features` must be an int"),
        (
            lambda: Linear(3, 2, dtype=np.int32),
            TypeError,
            r"`dtype` must be float32 or float64",
        ),
        (lambda: LeakyReLU("0.1"), TypeError, r"`negative_slope` must be a real number"),
        (
            lambda: BatchNorm2d(3, momentum=1.5),
            ValueError,
            r"`momentum` must be in \[0, 1\]. Received: momentum=1.5",
        ),
        (lambda: BatchNorm2d(3, eps=0), ValueError, r"`eps` must be > 0. Received: eps=0"),
        (lambda: BatchNorm1d(-1), ValueError, r"`num_features` must be >= 1"),
        (lambda: Dropout(1.2), ValueError, r"`p` must be in \[0, 1\]. Received: p=1.2"),
        (lambda: Dropout(float("nan")), ValueError, r"`p` must be finite"),
        (lambda: Flatten(1.0), TypeError, r"`start_dim` must be an int"),
    ],
)
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    "layer, x, exc, match",
    [
        (
            Linear(4, 2),
            np.zeros((3, 5), np.float32),
            ValueError,
            r"^Linear\(4, 2\): expected input with in_features=4 on its last axis "
            r"\(\*, 4\); got x.shape=\(3, 5\)$",
        ),
        (
            Linear(4, 2),
            np.zeros((3, 4)),
            TypeError,
            r"^Linear\(4, 2\): expected float32 input .*; got x.dtype=float64\. "
            r"Convert the model, model.to\(np.float64\), or the input, "
            r"x.astype\(np.float32\)",
        ),
        (Linear(4, 2), [[1.0] * 4], TypeError, r"Linear\(4, 2\): `x` must be a numpy.ndarray"),
        (
            ReLU(),
            np.zeros(3, np.int64),
            TypeError,
            r"ReLU: `x` must have dtype float32 or float64. Received: x.dtype=int64",
        ),
        (
            BatchNorm2d(3),
            np.zeros((2, 3, 4), np.float32),
            ValueError,
            r"^BatchNorm2d\(3\): expected input with num_features=3 channels "
            r"\(N, 3, H, W\); got x.shape=\(2, 3, 4\)$",
        ),
        (
            BatchNorm1d(3),
            np.zeros((2, 4), np.float32),
            ValueError,
            r"^BatchNorm1d\(3\): expected input with num_features=3 channels "
            r"\(N, 3\) or \(N, 3, L\); got x.shape=\(2, 4\)$",
        ),
        (
            Flatten(2, 1),
            np.zeros((2, 3, 4), np.float32),
            ValueError,
            r"Flatten: `start_dim`..`end_dim` must be valid axes",
        ),
    ],
)
def test_forward_errors(layer, x, exc, match):
    with pytest.raises(exc, match=match):
        layer(x)


@pytest.mark.parametrize(
    "layer", [Linear(2, 2), Flatten(), ReLU(), Sigmoid(), Dropout(), BatchNorm1d(2)]
)
def test_backward_before_forward(layer):
    with pytest.raises(
        RuntimeError, match=f"{type(layer).__name__}.backward called before forward"
    ):
        layer.backward(np.zeros((2, 2), np.float32))


def test_backward_checks_grad():
    layer = Tanh()
    layer(np.zeros((2, 3), np.float32))
    with pytest.raises(
        ValueError,
        match=r"Tanh: `grad` must have the forward output's "
        r"shape \(2, 3\). Received: grad.shape=\(3, 2\)",
    ):
        layer.backward(np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match=r"`grad` must have the forward output's dtype"):
        layer.backward(np.zeros((2, 3)))


@pytest.mark.parametrize(
    "layer, text",
    [
        (Linear(3, 4), "Linear(3, 4)"),
        (Linear(3, 4, bias=False, dtype=np.float64), "Linear(3, 4, bias=False, dtype=float64)"),
        (Flatten(), "Flatten()"),
        (Flatten(0, 2), "Flatten(start_dim=0, end_dim=2)"),
        (ReLU(), "ReLU()"),
        (LeakyReLU(), "LeakyReLU()"),
        (LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)"),
        (Sigmoid(), "Sigmoid()"),
        (Tanh(), "Tanh()"),
        (BatchNorm1d(8), "BatchNorm1d(8)"),
        (
            BatchNorm2d(8, eps=1e-3, momentum=0.01, affine=False),
            "BatchNorm2d(8, eps=0.001, momentum=0.01, affine=False)",
        ),
        (Dropout(), "Dropout()"),
        (Dropout(0.2), "Dropout(p=0.2)"),
    ],
)
def test_repr_shows_non_defaults(layer, text):
    assert repr(layer) == text


def test_exported_from_layers_and_top_level():
    from pycnn import layers

    for name in (
        "Linear",
        "Flatten",
        "ReLU",
        "LeakyReLU",
        "Sigmoid",
        "Tanh",
        "BatchNorm1d",
        "BatchNorm2d",
        "Dropout",
    ):
        assert getattr(pycnn, name) is getattr(layers, name)
        assert issubclass(getattr(pycnn, name), pycnn.BaseLayer)


def test_flatten_backward_checks_the_shape_even_for_an_empty_batch():
    """Found by the fuzzer: with N = 0 every size is 0, so a size check let a grad of
    the wrong width through."""
    layer = pycnn.Flatten()
    layer.forward(np.zeros((0, 3, 2), np.float32))
    with pytest.raises(ValueError, match=r"shape of the forward output \(0, 6\)"):
        layer.backward(np.zeros((0, 7), np.float32))
    assert layer.backward(np.zeros((0, 6), np.float32)).shape == (0, 3, 2)
