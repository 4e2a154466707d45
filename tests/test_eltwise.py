"""ReLU and batch norm in compiled loops (pycnn._eltwise): the same results as the
NumPy formulas they replace (float32 and float64, train and eval, affine or not, every
input rank), NaN propagated, non-contiguous inputs, inputs left alone, dtypes kept, the
same results on one thread as on two, and wrappers that refuse what does not fit."""

import numpy as np
import pytest
from conftest import assert_close, numerical_gradient

import pycnn
from pycnn import _eltwise, _parallel
from pycnn._ext import _kernels
from pycnn.layers import BatchNorm1d, BatchNorm2d, ReLU

# --- the NumPy formulas the loops replace ----------------------------------------------


def _bn_reference(x, weight, bias, eps, mean=None, var=None):
    """Batch norm of x in float64: with the batch statistics unless `mean` and `var`
    are given (eval); returns (out, xhat, inv_std, axes, broadcast shape)."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    x = x.astype(np.float64)
    if mean is None:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    inv_std = 1 / np.sqrt(np.asarray(var, np.float64) + eps)
    xhat = (x - np.reshape(mean, shape)) * inv_std.reshape(shape)
    out = xhat
    if weight is not None:
        out = xhat * weight.reshape(shape) + bias.reshape(shape)
    return out, xhat, inv_std, axes, shape


def _bn_backward_reference(grad, xhat, inv_std, weight, training, axes, shape):
    """dx, d weight and d bias of batch norm in float64."""
    grad = grad.astype(np.float64)
    dxhat = grad if weight is None else grad * weight.reshape(shape)
    if training:
        dxhat = (
            dxhat
            - dxhat.mean(axis=axes, keepdims=True)
            - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)
        )
    return dxhat * inv_std.reshape(shape), np.sum(grad * xhat, axis=axes), grad.sum(axis=axes)


BN_CASES = {
    "1d-nc": (BatchNorm1d, (5, 3)),
    "1d-nc-n2": (BatchNorm1d, (2, 4)),
    "1d-ncl": (BatchNorm1d, (4, 3, 7)),
    "2d": (BatchNorm2d, (3, 4, 5, 7)),
    "2d-1x1": (BatchNorm2d, (2, 3, 1, 1)),
    "2d-odd": (BatchNorm2d, (2, 5, 9, 11)),
    "2d-n2": (BatchNorm2d, (2, 16, 8, 8)),
}


def _bn_layer(cls, c, affine, dtype, rng):
    layer = cls(c, momentum=0.3, affine=affine, dtype=dtype)
    if affine:
        layer.params["weight"][...] = rng.standard_normal(c) + 1
        layer.params["bias"][...] = rng.standard_normal(c)
    layer.buffers["running_mean"][...] = rng.standard_normal(c)
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2, c)
    return layer


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("case", list(BN_CASES))
def test_batch_norm_matches_the_numpy_formulas(case, affine, training, dtype, rng):
    cls, shape = BN_CASES[case]
    c = shape[1]
    layer = _bn_layer(cls, c, affine, dtype, rng).train(training)
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    x0, grad0 = x.copy(), grad.copy()
    weight = layer.weight.astype(np.float64) if affine else None
    bias = layer.bias.astype(np.float64) if affine else None
    stats = {} if training else dict(mean=rm, var=rv)
    want, xhat, inv_std, axes, bshape = _bn_reference(x, weight, bias, layer.eps, **stats)

    out = layer(x)
    dx = layer.backward(grad)
    assert out.dtype == dx.dtype == dtype and out.shape == dx.shape == shape
    assert_close(out, want, dtype)
    want_dx, want_dw, want_db = _bn_backward_reference(
        grad, xhat, inv_std, weight, training, axes, bshape
    )
    assert_close(dx, want_dx, dtype)
    if affine:
        assert layer.grads["weight"].dtype == layer.grads["bias"].dtype == dtype
        assert_close(layer.grads["weight"], want_dw, dtype)
        assert_close(layer.grads["bias"], want_db, dtype)
    else:
        assert not layer.grads
    np.testing.assert_array_equal(x, x0)  # inputs left alone
    np.testing.assert_array_equal(grad, grad0)
    if training:
        n = x.size // c
        x64 = x.astype(np.float64)
        assert_close(layer.running_mean, 0.7 * rm + 0.3 * x64.mean(axis=axes), dtype)
        var = x64.var(axis=axes) * n / (n - 1)
        assert_close(layer.running_var, 0.7 * rv + 0.3 * var, dtype)
        assert int(layer.num_batches_tracked) == 1
    else:
        np.testing.assert_array_equal(layer.running_mean, rm)
        np.testing.assert_array_equal(layer.running_var, rv)
        assert int(layer.num_batches_tracked) == 0
    assert layer.running_mean.dtype == layer.running_var.dtype == dtype


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_running_stats_over_several_batches(momentum, rng):
    layer = BatchNorm2d(3, momentum=momentum, dtype=np.float64)
    xs = [rng.standard_normal((4, 3, 2, 3)) * (i + 1) + i for i in range(3)]
    rm, rv = np.zeros(3), np.ones(3)
    for t, x in enumerate(xs, 1):
        layer(x)
        m = 1 / t if momentum is None else momentum
        rm = (1 - m) * rm + m * x.mean(axis=(0, 2, 3))
        rv = (1 - m) * rv + m * x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, rv, rtol=1e-12)
    assert int(layer.num_batches_tracked) == 3


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("case", ["1d-nc-n2", "1d-ncl", "2d-1x1", "2d-odd"])
def test_batch_norm_gradients_are_numerical(case, affine, rng):
    cls, shape = BN_CASES[case]
    if case == "2d-odd":
        shape = (2, 2, 3, 5)
    layer = _bn_layer(cls, shape[1], affine, np.float64, rng)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    layer(x)
    dx = layer.backward(g)
    grads = dict(layer.grads)

    def loss():
        return np.sum(layer.forward(x) * g)

    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-5, atol=1e-7)
    for name, value in grads.items():
        want = numerical_gradient(loss, layer.params[name])
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_non_contiguous_input_and_grad(training, dtype, rng):
    """A strided view gives what its contiguous copy gives (the NumPy path runs it)."""
    big = rng.standard_normal((4, 3, 6, 10)).astype(dtype)
    grad_big = rng.standard_normal((4, 3, 6, 10)).astype(dtype)
    x, grad = big[:, :, ::2, 1::3], grad_big[:, :, ::2, 1::3]
    assert not x.flags.c_contiguous
    results = []
    for a, g in ((x, grad), (x.copy(), grad.copy())):
        layer = _bn_layer(BatchNorm2d, 3, True, dtype, np.random.default_rng(0))
        layer.train(training)
        results.append((layer(a), layer.backward(g), layer.grads["weight"], layer.running_var))
    for got, want in zip(*results):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
def test_batch_norm_compiled_and_numpy_paths_agree(affine, training, dtype, rng, monkeypatch):
    """Without the extension the same formulas run in NumPy."""
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    results = []
    for kernels in (_eltwise._kernels, None):
        monkeypatch.setattr(_eltwise, "_kernels", kernels)
        layer = _bn_layer(BatchNorm2d, 4, affine, dtype, np.random.default_rng(1))
        layer.train(training)
        results.append((layer(x), layer.backward(g), layer.running_mean, *layer.grads.values()))
    for got, want in zip(*results):
        assert got.dtype == want.dtype == dtype
        assert_close(got, want, dtype)


@pytest.mark.parametrize("momentum", [0.1, 0.9, 1 / 3, 1.0, 0.0])
def test_batch_norm_statistics_give_numpys_bits(momentum, dtype, rng, monkeypatch):
    """The one-call update of the running statistics rounds each step as the NumPy
    in-place operations do: the same bits, not merely close ones."""
    c, n = 37, 10
    mean = rng.standard_normal(c) * 10.0 ** rng.integers(-3, 4, c)
    var = rng.random(c) * 10.0 ** rng.integers(-6, 4, c)
    var[:2] = 0, 1e-30
    running = rng.standard_normal(c).astype(dtype), rng.random(c).astype(dtype)
    results = []
    for kernels in (_eltwise._kernels, None):
        monkeypatch.setattr(_eltwise, "_kernels", kernels)
        running_mean, running_var = (a.copy() for a in running)
        got = _eltwise.batch_norm_statistics(
            mean, var, running_mean, running_var, momentum, momentum * n / (n - 1), 1e-5
        )
        results.append((*got, running_mean, running_var))
    for got, want in zip(*results):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 3, 0, 4)], ids=["n0", "h0"])
def test_batch_norm_eval_on_empty_inputs(shape, dtype):
    layer = BatchNorm2d(3, dtype=dtype).eval()
    x = np.ones(shape, dtype)
    out = layer(x)
    assert out.shape == layer.backward(out).shape == shape
    np.testing.assert_array_equal(layer.grads["weight"], 0)
    np.testing.assert_array_equal(layer.grads["bias"], 0)


# --- ReLU --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 5), (2, 3, 4, 5), (64, 16, 28, 28)])
def test_relu_layer_matches_numpy(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    if x.size:
        x.flat[:3] = 0  # the kink: gradient 0, as PyTorch
    grad = rng.standard_normal(shape).astype(dtype)
    x0, grad0 = x.copy(), grad.copy()
    layer = ReLU()
    out = layer(x)
    dx = layer.backward(grad)
    assert out.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    np.testing.assert_array_equal(dx, np.where(x > 0, grad, 0))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(grad, grad0)


def test_relu_propagates_nan_and_handles_infinities(dtype):
    x = np.array([np.nan, -np.inf, np.inf, -1, 0, 2, np.nan], dtype=dtype)
    grad = np.array([1, 2, 3, 4, 5, 6, np.nan], dtype=dtype)
    layer = ReLU()
    out = layer(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))  # NaN where x is NaN
    assert np.isnan(out[0]) and np.isnan(out[-1])
    dx = layer.backward(grad)
    np.testing.assert_array_equal(dx, np.where(x > 0, grad, 0))  # NaN x: 0
    np.testing.assert_array_equal(dx, [0, 0, 3, 0, 0, 6, 0])


def test_relu_non_contiguous_input(dtype, rng):
    x = rng.standard_normal((4, 6, 5)).astype(dtype).transpose(2, 0, 1)[:, ::2]
    grad = rng.standard_normal(x.shape).astype(dtype)[::-1]
    layer = ReLU()
    np.testing.assert_array_equal(layer(x), np.maximum(x, 0))
    np.testing.assert_array_equal(layer.backward(grad), np.where(x > 0, grad, 0))


def test_relu_matches_pycnn_activations(dtype, rng):
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    grad = rng.standard_normal(x.shape).astype(dtype)
    layer = ReLU()
    np.testing.assert_array_equal(layer(x), pycnn.activations.relu(x))
    np.testing.assert_array_equal(
        layer.backward(grad), pycnn.activations.relu_backward(grad, x)
    )


# --- threads -----------------------------------------------------------------------------


@pytest.fixture
def split_small_work(monkeypatch):
    """Let every call split over the threads, however small (ranges of one item)."""
    monkeypatch.setattr(_parallel, "MIN_MACS_PER_THREAD", 1)
    before = pycnn.get_num_threads()
    yield
    pycnn.set_num_threads(before)


def test_results_do_not_depend_on_the_thread_count(split_small_work, dtype, rng):
    x = (rng.standard_normal((3, 7, 5, 9)) * 3 + 1).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        pycnn.set_num_threads(threads)
        if threads > 1 and _parallel.n_parts(7, 1) == 1:
            pytest.skip("pycnn runs on one thread here (no threadpoolctl)")
        bn = BatchNorm2d(7, dtype=dtype)
        relu = ReLU()
        got = [bn(x), bn.backward(g), bn.running_var, *bn.grads.values()]
        bn.eval()
        got += [bn(x), bn.backward(g), relu(x), relu.backward(g)]
        results.append(got)
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)


# --- the wrappers refuse what does not fit ---------------------------------------------


X, V, OUT = np.ones((2, 3, 4)), np.ones(3), np.empty((2, 3, 4))  # (N, C, M), (C,)
K = _kernels

GUARD_CASES = {
    "relu-out-size": lambda: K.relu_forward(np.ones(5), np.empty(4)),
    "relu-backward-x-size": lambda: K.relu_backward(np.ones(5), np.ones(4), np.empty(5)),
    "relu-backward-dx-size": lambda: K.relu_backward(np.ones(5), np.ones(5), np.empty(6)),
    "stats-range-past-c": lambda: K.batch_norm_stats(X, np.empty(3), np.empty(3), 0, 4),
    "stats-negative-range": lambda: K.batch_norm_stats(X, np.empty(3), np.empty(3), -1, 2),
    "stats-short-mean": lambda: K.batch_norm_stats(X, np.empty(2), np.empty(3), 0, 2),
    "stats-no-values": lambda: K.batch_norm_stats(
        np.ones((0, 3, 4)), np.empty(3), np.empty(3), 0, 3
    ),
    "forward-out-shape": lambda: K.batch_norm_forward(X, V, V, V, V, np.empty((2, 3, 5)), 0, 3),
    "forward-short-weight": lambda: K.batch_norm_forward(X, V, V, np.ones(2), V, OUT, 0, 3),
    "forward-weight-without-bias": lambda: K.batch_norm_forward(X, V, V, V, None, OUT, 0, 3),
    "forward-reversed-range": lambda: K.batch_norm_forward(X, V, V, None, None, OUT, 2, 1),
    "grad-sums-grad-shape": lambda: K.batch_norm_grad_sums(
        np.ones((2, 3, 5)), X, V, V, np.empty(3), np.empty(3), 0, 3
    ),
    "grad-sums-short-sum": lambda: K.batch_norm_grad_sums(
        X, X, V, V, np.empty(3), np.empty(1), 0, 3
    ),
    "backward-dx-shape": lambda: K.batch_norm_backward(
        X, X, V, V, V, V, V, np.empty((3, 3, 4)), 0, 3
    ),
    "backward-one-mean": lambda: K.batch_norm_backward(X, X, V, V, V, V, None, OUT, 0, 3),
    "backward-short-inv-std": lambda: K.batch_norm_backward(
        X, X, V, np.ones(2), None, None, None, OUT, 0, 3
    ),
    "statistics-short-var": lambda: K.batch_norm_statistics(
        V, np.ones(2), V.copy(), V.copy(), 0.1, 0.1, 1e-5, np.empty(3), np.empty(3)
    ),
    "statistics-one-running": lambda: K.batch_norm_statistics(
        V, V, V.copy(), None, 0.1, 0.1, 1e-5, np.empty(3), np.empty(3)
    ),
    "statistics-short-running": lambda: K.batch_norm_statistics(
        V, V, np.ones(2), np.ones(3), 0.1, 0.1, 1e-5, np.empty(3), np.empty(3)
    ),
    "statistics-short-out": lambda: K.batch_norm_statistics(
        V, V, None, None, 0.1, 0.1, 1e-5, np.empty(3), np.empty(4)
    ),
}


@pytest.mark.parametrize("case", list(GUARD_CASES))
def test_wrappers_refuse_arrays_that_do_not_fit(case):
    with pytest.raises(ValueError):
        GUARD_CASES[case]()


def test_wrappers_refuse_mixed_dtypes():
    with pytest.raises(ValueError, match="dtype mismatch"):
        _kernels.relu_forward(np.ones(3, np.float32), np.empty(3))


def test_relu_keeps_its_output_not_its_input():
    # a network holds one activation less until backward when ReLU lets its input go
    import weakref

    layer = pycnn.ReLU()
    x = np.random.default_rng(0).standard_normal((8, 4, 5, 5)).astype(np.float32)
    want = np.where(x > 0, 1.0, 0.0).astype(np.float32)
    alive = weakref.ref(x)
    layer.forward(x)
    del x
    assert alive() is None
    np.testing.assert_array_equal(layer.backward(np.ones_like(want)), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [True, False])
def test_relu_in_place_equals_maximum(dtype, contiguous):
    from pycnn import _eltwise

    x = np.random.default_rng(1).standard_normal((3, 4, 6, 7)).astype(dtype)
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    block = x if contiguous else x[:, :, :, ::2]
    want = np.maximum(block, 0)
    _eltwise.relu_(block)
    np.testing.assert_array_equal(block, want)
    assert block.dtype == dtype
