"""conv2d and conv2d_backward: compiled vs reference vs naive (vs PyTorch if installed).
Bad arguments, layouts, the empty batch and unmodified inputs: tests/test_ops_table.py."""

import numpy as np
import pytest
from conftest import CONV_CASES, assert_close, make_conv, numerical_gradient

from pycnn import _conv, _parallel, _validation, functional, naive, reference
from pycnn._ext import _kernels

IMPLS = {"compiled": functional, "reference": reference, "naive": naive}
cases = pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())


# --- agreement between backends ----------------------------------------------------


@cases
def test_conv2d_forward_agrees(case, dtype, rng):
    x, w, b, kw = make_conv(case, dtype, rng)
    want = naive.conv2d(x, w, b, **kw)
    for name in ("compiled", "reference"):
        got = IMPLS[name].conv2d(x, w, b, **kw)
        assert got.shape == want.shape and got.dtype == want.dtype == dtype, name
        assert_close(got, want, dtype, err_msg=name)


@cases
def test_conv2d_backward_agrees(case, dtype, rng):
    x, w, b, kw = make_conv(case, dtype, rng)
    out_shape = naive.conv2d(x, w, b, **kw).shape
    grad_out = rng.standard_normal(out_shape).astype(dtype)
    want = naive.conv2d_backward(grad_out, x, w, **kw)
    for name in ("compiled", "reference"):
        got = IMPLS[name].conv2d_backward(grad_out, x, w, **kw)
        for g, ref, arg, shape in zip(
            got, want, ("grad_x", "grad_weight", "grad_bias"), (x.shape, w.shape, b.shape)
        ):
            assert g.shape == shape and g.dtype == dtype, f"{name} {arg}"
            assert_close(g, ref, dtype, err_msg=f"{name} {arg}")


@cases
def test_conv2d_without_bias(case, rng):
    x, w, b, kw = make_conv(case, np.float64, rng)
    for impl in IMPLS.values():
        assert_close(
            impl.conv2d(x, w, None, **kw) + b[:, None, None],
            impl.conv2d(x, w, b, **kw),
            np.float64,
        )


@pytest.mark.parametrize(
    "name",
    [
        "3x3-pad1",
        "mixed",
        "same-even-dilated",
        "groups3",
        "stride-not-dividing",
        "pointwise-1x1",
    ],
)
def test_conv2d_numerical_gradient(name, rng):
    """Central differences of L = sum(conv2d(x, w, b) * G) in float64."""
    x, w, b, kw = make_conv(CONV_CASES[name], np.float64, rng)
    x, w, b = x[:1], w, b  # one image keeps the loop short
    g = rng.standard_normal(functional.conv2d(x, w, b, **kw).shape)
    grad_x, grad_w, grad_b = functional.conv2d_backward(g, x, w, **kw)

    def numerical(arr):
        return numerical_gradient(lambda: np.sum(functional.conv2d(x, w, b, **kw) * g), arr)

    np.testing.assert_allclose(grad_x, numerical(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grad_w, numerical(w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grad_b, numerical(b), rtol=1e-6, atol=1e-7)


def test_conv2d_chunked_batch_matches_reference(monkeypatch, rng):
    """A workspace smaller than one image's columns forces one image per chunk."""
    x, w, b, kw = make_conv(CONV_CASES["mixed"], np.float64, rng)
    x = rng.standard_normal((7,) + x.shape[1:])
    monkeypatch.setattr(_conv, "WORKSPACE_BYTES", 1)
    out = functional.conv2d(x, w, b, **kw)
    assert_close(out, reference.conv2d(x, w, b, **kw), np.float64)
    g = rng.standard_normal(out.shape)
    for got, want in zip(
        functional.conv2d_backward(g, x, w, **kw), reference.conv2d_backward(g, x, w, **kw)
    ):
        assert_close(got, want, np.float64)


# --- PyTorch as an outside oracle ----------------------------------------------------


@cases
def test_conv2d_matches_torch(case, dtype, rng):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make_conv(case, dtype, rng)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out_t = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    grad_out = rng.standard_normal(tuple(out_t.shape)).astype(dtype)
    out_t.backward(torch.tensor(grad_out))
    for name in ("compiled", "reference"):
        impl = IMPLS[name]
        assert_close(impl.conv2d(x, w, b, **kw), out_t.detach().numpy(), dtype, name)
        for got, want in zip(
            impl.conv2d_backward(grad_out, x, w, **kw), (xt.grad, wt.grad, bt.grad)
        ):
            assert_close(got, want.numpy(), dtype, name)


# --- the direct kernel (groups of 1-3 input channels) --------------------------------

# (N, C, H, W, F, KH, KW, stride, padding, dilation, groups): rows of at least one
# 2-vector block (16 float32 / 8 float64 outputs), most not a multiple of it, so the
# last block of a row overlaps the one before; F not a multiple of 4 leaves filters
# that go one at a time
DIRECT_CASES = {
    "c1-5x5": (3, 1, 20, 21, 6, 5, 5, 1, 0, 1, 1),
    "c3-3x3-pad1": (2, 3, 9, 18, 5, 3, 3, 1, 1, 1, 1),
    "c2-asymmetric-pad": (2, 2, 7, 17, 4, 3, 2, 1, (2, 1), 1, 1),
    "c3-same-even": (2, 3, 6, 19, 9, 4, 4, 1, "same", 1, 1),
    "c1-dilated-row-stride": (2, 1, 13, 24, 3, 3, 3, (2, 1), 2, (2, 3), 1),
    "depthwise": (2, 4, 8, 20, 8, 3, 3, 1, 1, 1, 4),
    "groups-of-3": (2, 6, 5, 17, 4, 2, 3, 1, 1, 1, 2),
    "exact-block": (2, 1, 5, 18, 4, 3, 3, 1, 0, 1, 1),
}


@pytest.mark.parametrize("name", DIRECT_CASES)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_direct_kernel_matches_reference(name, with_bias, dtype, rng):
    x, w, b, kw = make_conv(DIRECT_CASES[name], dtype, rng)
    b = b if with_bias else None
    args = _validation.conv2d_args(x, w, b, **kw)
    assert _conv.plan(x.shape, w.shape, x.dtype, args).direct  # the case takes the direct path
    x_before = x.copy()
    out = functional.conv2d(x, w, b, **kw)
    assert out.dtype == dtype
    assert_close(out, reference.conv2d(x, w, b, **kw), dtype)
    np.testing.assert_array_equal(x, x_before)


def test_direct_kernel_on_rows_narrower_than_a_block(rng):
    """The one-output-at-a-time path, called on the kernel directly (conv2d sends such
    narrow rows to im2col + GEMM)."""
    x = rng.standard_normal((2, 3, 9, 7))
    w = rng.standard_normal((5, 3, 3, 2))
    b = rng.standard_normal(5)
    out = np.empty((2, 5, 7, 6))
    _kernels.conv2d_direct(x, w, b, out, 1, 1, 1, 1, 1)
    assert_close(out, reference.conv2d(x, w, b), np.float64)
    out_none = np.empty_like(out)
    _kernels.conv2d_direct(x, w, None, out_none, 1, 1, 1, 1, 1)
    assert_close(out_none, reference.conv2d(x, w), np.float64)


@pytest.mark.parametrize(
    "c, f, h, w",
    [(1, 16, 30, 30), (1, 6, 18, 18), (3, 16, 34, 34), (2, 5, 20, 33), (1, 3, 5, 18)],
    ids=str,
)
@pytest.mark.parametrize("bias", ["bias", "no-bias", "minus-zero"])
@pytest.mark.parametrize("relu", [False, True], ids=["", "relu"])
def test_direct_3x3_kernel_same_bits_as_the_general_one(simd, c, f, h, w, bias, relu, rng):
    """3x3 windows at stride 1 in float32 (the AVX2 twin in _direct3x3.pxi where the
    variant has AVX2): the general kernel's sums, bit for bit, against the baseline
    variant; blocks of 4 filters and single ones, one and several channels, rows of 16
    and more with an overlapping last block; a -0 bias; NaN; the ReLU as relu_forward."""
    x = rng.standard_normal((3, c, h, w)).astype(np.float32)
    x[1, 0, 2, 3] = np.nan
    weight = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
    b = {
        "bias": rng.standard_normal(f).astype(np.float32),
        "no-bias": None,
        "minus-zero": np.full(f, -0.0, np.float32),
    }[bias]
    if bias == "minus-zero":
        weight[0] = 0  # the first filter's outputs are the bias plus zeros
    before = x.copy()
    out = np.full((3, f, h - 2, w - 2), 7, np.float32)
    _kernels.conv2d_direct(x, weight, b, out, 1, 1, 1, 1, 1, 1, relu)
    np.testing.assert_array_equal(x, before)
    b64 = None if b is None else b.astype(np.float64)
    want = reference.conv2d(x.astype(np.float64), weight.astype(np.float64), b64)
    if relu:
        want = np.where(want <= 0, 0, want)
    assert np.isnan(out[1]).any()
    assert_close(np.nan_to_num(out), np.nan_to_num(want), np.float32)
    simd_before = _kernels.simd_target()
    _kernels.set_simd_target("baseline")
    try:
        base = np.full_like(out, 7)
        _kernels.conv2d_direct(x, weight, b, base, 1, 1, 1, 1, 1, 1, relu)
    finally:
        _kernels.set_simd_target(simd_before)
    assert base.tobytes() == out.tobytes()


def test_direct_kernel_refuses_an_output_that_does_not_fit():
    x = np.zeros((1, 1, 5, 20), np.float32)
    w = np.zeros((2, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        _kernels.conv2d_direct(x, w, None, np.empty((1, 2, 4, 18), np.float32), 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="does not fit"):
        _kernels.conv2d_direct(x, w, None, np.empty((1, 3, 3, 18), np.float32), 1, 1, 1, 1, 1)


def test_direct_kernel_chunks_and_threads(monkeypatch, rng):
    """Padded chunks of one image in the workspace, spread over threads."""
    x, w, b, kw = make_conv(DIRECT_CASES["c3-3x3-pad1"], np.float64, rng)
    x = rng.standard_normal((7,) + x.shape[1:])
    monkeypatch.setattr(_conv, "WORKSPACE_BYTES", 1)
    monkeypatch.setattr(_parallel, "MIN_MACS_PER_THREAD", 1)
    assert_close(functional.conv2d(x, w, b, **kw), reference.conv2d(x, w, b, **kw), np.float64)


@pytest.mark.parametrize(
    "n, c, f, hw, k, groups",
    [(1, 3, 4, 5, 3, 1), (6, 4, 6, 7, 3, 2), (5, 2, 3, 4, 2, 1), (7, 16, 8, 6, 3, 1)],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_kept_columns_give_the_gradients_of_recomputed_ones(
    n, c, f, hw, k, groups, chunked, monkeypatch
):
    # a training forward keeps small column matrices for backward (_conv.KEEP_COLUMNS_
    # BYTES); backward must give bit for bit what it gives computing them again, and
    # leave them intact for a second backward
    import pycnn

    threads = pycnn.get_num_threads()
    if chunked:  # several chunks a batch, over two threads
        monkeypatch.setattr(_conv, "WORKSPACE_BYTES", c * k * k * hw * hw * 4)
        pycnn.set_num_threads(2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    results = []
    try:
        for keep_bytes in (2**30, 0):
            monkeypatch.setattr(_conv, "KEEP_COLUMNS_BYTES", keep_bytes)
            rng0 = np.random.default_rng(0)
            layer = pycnn.Conv2d(c, f, k, padding=1, groups=groups, rng=rng0)
            out = layer.forward(x)
            assert (layer._columns is not None) == (keep_bytes > 0)
            g = np.random.default_rng(4).standard_normal(out.shape).astype(np.float32)
            first = layer.backward(g), layer.grads["weight"].copy(), layer.grads["bias"]
            again = layer.backward(g)
            np.testing.assert_array_equal(again, first[0])
            results.append((out, *first))
    finally:
        pycnn.set_num_threads(threads)
    for kept, recomputed in zip(*results):
        np.testing.assert_array_equal(kept, recomputed)
