"""Pooling: compiled vs reference vs naive (vs PyTorch if installed), gradients, edge
inputs (ties, NaN, threads, out-of-range indices), the layers. Bad arguments, layouts,
the empty batch and unmodified inputs: tests/test_ops_table.py, from pycnn/_ops.py."""

import numpy as np
import pytest
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import pycnn
from pycnn import functional, naive, reference

IMPLS = {"compiled": functional, "reference": reference, "naive": naive}
impls = pytest.mark.parametrize("impl", IMPLS.values(), ids=IMPLS.keys())

# name: (N, C, H, W, kernel_size, stride, padding, dilation, ceil_mode,
#        count_include_pad, divisor_override)
POOL_CASES = {
    "2x2": (2, 3, 8, 8, 2, None, 0, 1, False, True, None),
    "non-square-window": (2, 3, 7, 9, (2, 3), None, 0, 1, False, True, None),
    "stride-ne-kernel": (2, 2, 9, 10, 3, (2, 1), 0, 1, False, True, None),
    "overlapping": (2, 2, 6, 7, 3, 1, 1, 1, False, True, None),
    "stride-not-dividing": (2, 2, 10, 11, 3, 4, 0, 1, False, True, None),
    "stride-gt-kernel": (2, 2, 11, 9, 2, 3, 0, 1, False, True, None),
    "padding": (2, 3, 7, 8, (3, 2), 2, 1, 1, False, True, None),
    "padding-exclude-pad": (2, 3, 7, 8, (3, 2), 2, 1, 1, False, False, None),
    "padding-per-axis": (2, 2, 6, 9, (2, 5), (1, 2), (1, 2), 1, False, True, None),
    "ceil": (2, 2, 7, 9, 2, None, 0, 1, True, True, None),
    "ceil-padding": (2, 2, 7, 8, 3, 2, 1, 1, True, True, None),
    "ceil-padding-exclude-pad": (2, 2, 7, 8, 3, 2, 1, 1, True, False, None),
    # the last ceil window on both axes would start in the bottom/right padding: dropped
    "ceil-drops-window-in-padding": (2, 2, 5, 7, 2, 2, 1, 1, True, True, None),
    # a ceil window that runs past the padded input (PyTorch allows up to stride - 1)
    "ceil-window-past-input": (2, 2, 3, 6, (4, 2), 2, 0, 1, True, True, None),
    "divisor-override": (2, 2, 7, 8, 3, 2, 1, 1, True, True, 5),
    "divisor-override-exclude-pad": (2, 2, 6, 6, 2, 1, 1, 1, False, False, 3),
    "dilation": (2, 2, 9, 9, 3, 1, 1, 2, False, True, None),
    "dilation-per-axis-ceil": (2, 2, 8, 11, (2, 3), (2, 3), 1, (3, 1), True, True, None),
    "n1": (1, 3, 6, 6, 2, None, 0, 1, False, True, None),
    "c1": (3, 1, 8, 6, 3, 2, 1, 1, False, True, None),
    "h-ne-w": (2, 2, 4, 13, 3, 2, 1, 1, True, True, None),
    "kernel-equals-input": (2, 2, 4, 5, (4, 5), None, 0, 1, False, True, None),
    "1x1-strided": (2, 2, 5, 6, 1, 2, 0, 1, False, True, None),
}
# average and Lp pooling have no dilation; Lp pooling has no padding either
AVG_CASES = {k: v for k, v in POOL_CASES.items() if v[7] == 1}
LP_CASES = {k: v for k, v in AVG_CASES.items() if v[6] == 0}


def cases(table):
    return pytest.mark.parametrize("case", table.values(), ids=table.keys())


def make_input(case, dtype, rng):
    n, c, h, w = case[:4]
    return rng.standard_normal((n, c, h, w)).astype(dtype)


def max_kwargs(case):
    k, s, p, d, ceil = case[4:9]
    return dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)


def avg_kwargs(case):
    k, s, p, _, ceil, cip, div = case[4:]
    return dict(
        kernel_size=k,
        stride=s,
        padding=p,
        ceil_mode=ceil,
        count_include_pad=cip,
        divisor_override=div,
    )


def lp_kwargs(case):
    return dict(kernel_size=case[4], stride=case[5], ceil_mode=case[8])


def expected_shape(case):
    """The output size written out from PyTorch's documentation, one more derivation."""
    n, c, h, w, k, s, p, d, ceil = case[:9]
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    k, p, d = pair(k), pair(p), pair(d)
    s = k if s is None else pair(s)
    size = []
    for n_in, ka, sa, pa, da in zip((h, w), k, s, p, d):
        span = n_in + 2 * pa - da * (ka - 1) - 1
        out = (-(-span // sa) if ceil else span // sa) + 1
        if ceil and (out - 1) * sa >= n_in + pa:
            out -= 1
        size.append(out)
    return (n, c) + tuple(size)


# --- agreement between backends -------------------------------------------------------


@cases(POOL_CASES)
def test_max_pool2d_agrees(case, dtype, rng):
    x = make_input(case, dtype, rng)
    kw = max_kwargs(case)
    want, want_idx = naive.max_pool2d(x, **kw, return_indices=True)
    assert want.shape == expected_shape(case)
    grad_out = rng.standard_normal(want.shape).astype(dtype)
    want_grad = naive.max_pool2d_backward(grad_out, want_idx, x.shape)
    for name in ("compiled", "reference"):
        impl = IMPLS[name]
        out, idx = impl.max_pool2d(x, **kw, return_indices=True)
        assert out.shape == want.shape and out.dtype == dtype, name
        assert idx.shape == want.shape and idx.dtype == np.int64, name
        np.testing.assert_array_equal(out, want, err_msg=name)  # a selection: exact
        np.testing.assert_array_equal(idx, want_idx, err_msg=name)
        np.testing.assert_array_equal(impl.max_pool2d(x, **kw), want, err_msg=name)
        grad_x = impl.max_pool2d_backward(grad_out, idx, x.shape)
        assert grad_x.shape == x.shape and grad_x.dtype == dtype, name
        # every backend adds the gradients of one pixel in output order: exact
        np.testing.assert_array_equal(grad_x, want_grad, err_msg=name)


@cases(AVG_CASES)
def test_avg_pool2d_agrees(case, dtype, rng):
    x = make_input(case, dtype, rng)
    kw = avg_kwargs(case)
    want = naive.avg_pool2d(x, **kw)
    assert want.shape == expected_shape(case) and want.dtype == dtype
    grad_out = rng.standard_normal(want.shape).astype(dtype)
    want_grad = naive.avg_pool2d_backward(grad_out, x.shape, **kw)
    assert want_grad.shape == x.shape and want_grad.dtype == dtype
    for name in ("compiled", "reference"):
        impl = IMPLS[name]
        out = impl.avg_pool2d(x, **kw)
        assert out.shape == want.shape and out.dtype == dtype, name
        grad_x = impl.avg_pool2d_backward(grad_out, x.shape, **kw)
        assert grad_x.shape == x.shape and grad_x.dtype == dtype, name
        # every backend sums a window's pixels, and a pixel's shares of the gradient, in
        # PyTorch's order (row-major), then divides once: bit for bit the same
        np.testing.assert_array_equal(out, want, err_msg=name)
        np.testing.assert_array_equal(grad_x, want_grad, err_msg=name)


@pytest.mark.parametrize("p", [1, 2, 3.5])
@cases(LP_CASES)
def test_lp_pool2d_agrees(case, p, dtype, rng):
    x = np.abs(make_input(case, dtype, rng)) + dtype(0.1)  # x**3.5 needs x >= 0
    kw = lp_kwargs(case)
    want = reference.lp_pool2d(x, p, **kw)
    out = functional.lp_pool2d(x, p, **kw)
    assert out.shape == want.shape == expected_shape(case) and out.dtype == want.dtype == dtype
    assert_close(out, want, dtype)
    grad_out = rng.standard_normal(out.shape).astype(dtype)
    grad_x = functional.lp_pool2d_backward(grad_out, x, p, **kw)
    assert grad_x.shape == x.shape and grad_x.dtype == dtype
    assert_close(grad_x, reference.lp_pool2d_backward(grad_out, x, p, **kw), dtype)


def test_lp_pool2d_special_norms(rng):
    """p = 1 is sum pooling; a large p approaches max pooling (of |x|)."""
    x = rng.standard_normal((2, 3, 6, 6))
    for impl in (functional, reference):
        assert_close(impl.lp_pool2d(x, 1, 3, 1), 9 * reference.avg_pool2d(x, 3, 1), np.float64)
        big = impl.lp_pool2d(np.abs(x), 200, 2)
        np.testing.assert_allclose(big, reference.max_pool2d(np.abs(x), 2), rtol=0.02)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    sh=st.integers(1, 3),
    sw=st.integers(1, 3),
    ph=st.integers(0, 2),
    pw=st.integers(0, 2),
    dh=st.integers(1, 3),
    dw=st.integers(1, 3),
    ceil_mode=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_pool2d_random_geometries(h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode, seed):
    """Compiled and reference agree on any geometry the validation lets through (and
    both refuse the same ones with the same message)."""
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)  # over half the kernel: always refused
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (2, 2, h, w)).astype(np.float64)  # many ties
    kwargs = dict(
        kernel_size=(kh, kw),
        stride=(sh, sw),
        padding=(ph, pw),
        dilation=(dh, dw),
        ceil_mode=ceil_mode,
    )
    try:
        want, want_idx = reference.max_pool2d(x, **kwargs, return_indices=True)
    except ValueError as exc:
        with pytest.raises(ValueError) as info:
            functional.max_pool2d(x, **kwargs)
        assert str(info.value) == str(exc)
        return
    out, idx = functional.max_pool2d(x, **kwargs, return_indices=True)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)
    assert np.isfinite(out).all() and ((idx >= 0) & (idx < h * w)).all()
    g = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(
        functional.max_pool2d_backward(g, idx, x.shape),
        reference.max_pool2d_backward(g, idx, x.shape),
    )
    if dh == dw == 1:
        for cip in (True, False):
            avg = dict(kwargs, count_include_pad=cip)
            del avg["dilation"]
            np.testing.assert_array_equal(
                functional.avg_pool2d(x, **avg), reference.avg_pool2d(x, **avg)
            )
            np.testing.assert_array_equal(
                functional.avg_pool2d_backward(g, x.shape, **avg),
                reference.avg_pool2d_backward(g, x.shape, **avg),
            )


# --- PyTorch as an outside oracle -------------------------------------------------------


def _torch_kwargs(kw):
    return {k: v for k, v in kw.items() if v is not None or k != "divisor_override"}


@cases(POOL_CASES)
def test_max_pool2d_matches_torch(case, dtype, rng):
    torch = pytest.importorskip("torch")
    x = make_input(case, dtype, rng)
    kw = max_kwargs(case)
    xt = torch.tensor(x, requires_grad=True)
    out_t, idx_t = torch.nn.functional.max_pool2d(xt, **kw, return_indices=True)
    grad_out = rng.standard_normal(tuple(out_t.shape)).astype(dtype)
    out_t.backward(torch.tensor(grad_out))
    for name in ("compiled", "reference"):
        out, idx = IMPLS[name].max_pool2d(x, **kw, return_indices=True)
        np.testing.assert_array_equal(out, out_t.detach().numpy(), err_msg=name)
        np.testing.assert_array_equal(idx, idx_t.numpy(), err_msg=name)
        np.testing.assert_array_equal(
            IMPLS[name].max_pool2d_backward(grad_out, idx, x.shape),
            xt.grad.numpy(),
            err_msg=name,
        )


# float32: 1e-6 relative to the largest magnitude (a few ulps); float64: 1e-12
TORCH_TOL = {np.float32: 1e-6, np.float64: 1e-12}


def _assert_torch_close(got, want, dtype, err_msg):
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(
        got, want, rtol=TORCH_TOL[dtype], atol=TORCH_TOL[dtype] * scale, err_msg=err_msg
    )


@cases(AVG_CASES)
def test_avg_pool2d_matches_torch(case, dtype, rng):
    torch = pytest.importorskip("torch")
    x = make_input(case, dtype, rng)
    kw = avg_kwargs(case)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.avg_pool2d(xt, **_torch_kwargs(kw))
    grad_out = rng.standard_normal(tuple(out_t.shape)).astype(dtype)
    out_t.backward(torch.tensor(grad_out))
    for name in ("compiled", "reference"):
        impl = IMPLS[name]
        _assert_torch_close(impl.avg_pool2d(x, **kw), out_t.detach().numpy(), dtype, name)
        _assert_torch_close(
            impl.avg_pool2d_backward(grad_out, x.shape, **kw), xt.grad.numpy(), dtype, name
        )


@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
@cases(LP_CASES)
def test_lp_pool2d_matches_torch(case, p, dtype, rng):
    """Signed inputs: odd p gives negative sums and non-integer p negative powers, so
    NaN must come out where PyTorch's does."""
    torch = pytest.importorskip("torch")
    x = make_input(case, dtype, rng)
    kw = lp_kwargs(case)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.lp_pool2d(xt, p, **kw)
    grad_out = rng.standard_normal(tuple(out_t.shape)).astype(dtype)
    out_t.backward(torch.tensor(grad_out))
    for impl in (functional, reference):
        name = impl.__name__
        out = impl.lp_pool2d(x, p, **kw)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(out_t.detach().numpy()), name)
        _assert_torch_close(out, out_t.detach().numpy(), dtype, name)
        grad_x = impl.lp_pool2d_backward(grad_out, x, p, **kw)
        np.testing.assert_array_equal(np.isnan(grad_x), np.isnan(xt.grad.numpy()), name)
        _assert_torch_close(grad_x, xt.grad.numpy(), dtype, name)


def test_lp_pool2d_cancelling_window_matches_torch():
    """Cubes that nearly cancel: x**3 must be x*x*x as in PyTorch, not powf (whose last
    bit, amplified by the cancellation and the cube root, moved the output by 1e-4)."""
    torch = pytest.importorskip("torch")
    x = np.array(
        [
            0.9761002659797668,
            1.225845456123352,
            1.3419092893600464,
            -1.273045539855957,
            0.36683568358421326,
            0.633765459060669,
            -1.5587035417556763,
            0.4533635973930359,
            0.6428790092468262,
        ],
        dtype=np.float32,
    ).reshape(1, 1, 3, 3)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.lp_pool2d(xt, 3, 3)
    out_t.backward(torch.ones_like(out_t))
    for impl in (functional, reference):
        _assert_torch_close(
            impl.lp_pool2d(x, 3, 3), out_t.detach().numpy(), np.float32, impl.__name__
        )
        _assert_torch_close(
            impl.lp_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), x, 3, 3),
            xt.grad.numpy(),
            np.float32,
            impl.__name__,
        )


def test_lp_pool2d_zero_window_gradient_matches_torch():
    """A window whose x**p sums to zero: output 0 and gradient 0, not inf or NaN."""
    torch = pytest.importorskip("torch")
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, :2, :2] = [[1.0, -2.0], [0.5, 3.0]]
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.lp_pool2d(xt, 2, 2)
    out_t.backward(torch.ones_like(out_t))
    for impl in (functional, reference):
        np.testing.assert_allclose(impl.lp_pool2d(x, 2, 2), out_t.detach().numpy())
        grad = impl.lp_pool2d_backward(np.ones((1, 1, 2, 2)), x, 2, 2)
        assert np.isfinite(grad).all()
        np.testing.assert_allclose(grad, xt.grad.numpy())


# --- numerical gradients (central differences, float64) ---------------------------------


def _numerical_grad(f, x, g, eps=1e-6):
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = np.sum(f(x) * g)
        x[idx] = old - eps
        down = np.sum(f(x) * g)
        x[idx] = old
        out[idx] = (up - down) / (2 * eps)
    return out


@pytest.mark.parametrize(
    "name",
    [
        "padding",
        "ceil-padding-exclude-pad",
        "overlapping",
        "divisor-override",
        "ceil-window-past-input",
    ],
)
def test_avg_pool2d_numerical_gradient(name, rng):
    case = AVG_CASES[name]
    x = make_input(case, np.float64, rng)[:1]
    kw = avg_kwargs(case)
    g = rng.standard_normal(functional.avg_pool2d(x, **kw).shape)
    num = _numerical_grad(lambda a: functional.avg_pool2d(a, **kw), x, g)
    np.testing.assert_allclose(
        functional.avg_pool2d_backward(g, x.shape, **kw), num, rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
@pytest.mark.parametrize("name", ["overlapping-no-pad", "ceil", "stride-ne-kernel"])
def test_lp_pool2d_numerical_gradient(name, p, rng):
    case = dict(
        LP_CASES, **{"overlapping-no-pad": (1, 2, 5, 6, 3, 1, 0, 1, False, True, None)}
    )[name]
    x = np.abs(make_input(case, np.float64, rng))[:1] + 0.2  # away from 0: smooth
    kw = lp_kwargs(case)
    g = rng.standard_normal(functional.lp_pool2d(x, p, **kw).shape)
    num = _numerical_grad(lambda a: functional.lp_pool2d(a, p, **kw), x, g)
    np.testing.assert_allclose(
        functional.lp_pool2d_backward(g, x, p, **kw), num, rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize(
    "name",
    [
        "padding",
        "overlapping",
        "dilation-per-axis-ceil",
        "ceil-drops-window-in-padding",
        "stride-not-dividing",
    ],
)
def test_max_pool2d_numerical_gradient(name, rng):
    """Distinct values at least 0.01 apart: no ties, so the maximum is differentiable."""
    case = POOL_CASES[name]
    n, c, h, w = case[:4]
    x = rng.permutation(n * c * h * w).reshape(n, c, h, w)[:1] * 0.01
    kw = max_kwargs(case)
    out, idx = functional.max_pool2d(x, **kw, return_indices=True)
    g = rng.standard_normal(out.shape)
    num = _numerical_grad(lambda a: functional.max_pool2d(a, **kw), x, g)
    np.testing.assert_allclose(
        functional.max_pool2d_backward(g, idx, x.shape), num, rtol=1e-6, atol=1e-8
    )


# --- ties, NaN, -inf -----------------------------------------------------------------------


def _first_pixel_indices(shape, kw):
    """For each window, the flat position of its first tap (row-major) inside the input."""
    _, _, h, w = shape
    (kh, kwd), (sh, sw), (ph, pw), (dh, dw) = (
        (v, v) if not isinstance(v, tuple) else v
        for v in (
            kw["kernel_size"],
            kw["stride"] or kw["kernel_size"],
            kw["padding"],
            kw["dilation"],
        )
    )
    oh, ow = expected_shape(
        shape
        + (kw["kernel_size"], kw["stride"], kw["padding"], kw["dilation"], kw["ceil_mode"])
    )[2:]
    first = np.empty((oh, ow), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            taps = [
                (oy * sh - ph + i * dh, ox * sw - pw + j * dw)
                for i in range(kh)
                for j in range(kwd)
            ]
            y, xx = next((y, xx) for y, xx in taps if 0 <= y < h and 0 <= xx < w)
            first[oy, ox] = y * w + xx
    return first


@impls
@pytest.mark.parametrize(
    "name",
    ["overlapping", "padding-per-axis", "dilation-per-axis-ceil", "ceil-window-past-input"],
)
def test_max_pool2d_constant_input_picks_first_pixel(impl, name, dtype):
    """All ties: each window picks its first input pixel; the gradient goes to it alone."""
    case = POOL_CASES[name]
    kw = max_kwargs(case)
    x = np.full(case[:4], -np.inf if name == "overlapping" else 1.5, dtype=dtype)
    out, idx = impl.max_pool2d(x, **kw, return_indices=True)
    np.testing.assert_array_equal(out, np.full(out.shape, x.flat[0]))  # never padding
    first = _first_pixel_indices(case[:4], kw)
    np.testing.assert_array_equal(idx, np.broadcast_to(first, idx.shape))
    grad = impl.max_pool2d_backward(np.ones_like(out), idx, x.shape)
    counts = np.bincount(first.ravel(), minlength=x.shape[2] * x.shape[3])
    np.testing.assert_array_equal(grad, np.broadcast_to(counts.reshape(x.shape[2:]), x.shape))


@impls
def test_max_pool2d_nan_propagates(impl, dtype):
    """A window holding NaN gives NaN, its index at the (last, as PyTorch) NaN."""
    x = np.arange(2 * 6 * 6, dtype=dtype).reshape(1, 2, 6, 6)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan  # two NaNs in window (0, 0)
    x[0, 1, 5, 5] = np.nan  # bottom-right window of plane 1
    out, idx = impl.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(out[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 1 * 6 + 0
    assert np.isnan(out[0, 1, 2, 2]) and idx[0, 1, 2, 2] == 5 * 6 + 5
    assert np.isnan(out).sum() == 2
    out3, idx3 = impl.max_pool2d(x, 3, stride=1, padding=1, return_indices=True)
    assert np.isnan(out3[0, 0, :2, :2]).all() and (idx3[0, 0, :2, :2] == 6).all()
    np.testing.assert_array_equal(impl.max_pool2d(x, 2), out)
    g = impl.max_pool2d_backward(np.ones_like(out), idx, x.shape)
    assert g[0, 0, 1, 0] == 1 and g[0, 0, 0, 1] == 0 and g[0, 1, 5, 5] == 1


def test_nan_and_inf_match_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 7, 8)).astype(dtype)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.1] = -np.inf
    x[rng.random(x.shape) < 0.05] = np.inf
    x[0, 1] = -np.inf
    for kw in (
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=(2, 3), stride=1, padding=1, dilation=(2, 1)),
    ):
        out_t, idx_t = torch.nn.functional.max_pool2d(
            torch.tensor(x), **kw, return_indices=True
        )
        for impl in IMPLS.values():
            out, idx = impl.max_pool2d(x, **kw, return_indices=True)
            np.testing.assert_array_equal(out, out_t.numpy())  # NaN == NaN here
            np.testing.assert_array_equal(idx, idx_t.numpy())
        avg_t = torch.nn.functional.avg_pool2d(torch.tensor(x), 3, 2, 1, True)
        np.testing.assert_array_equal(functional.avg_pool2d(x, 3, 2, 1, True), avg_t.numpy())
    x[1, 2, :4, :4] = 0  # windows whose x**p sums to zero
    for p in (1, 2, 3, 1.5):
        xt = torch.tensor(x, requires_grad=True)
        out_t = torch.nn.functional.lp_pool2d(xt, p, (2, 3), 2, True)
        g = rng.standard_normal(tuple(out_t.shape)).astype(dtype)
        out_t.backward(torch.tensor(g))
        for impl in (functional, reference):
            out = impl.lp_pool2d(x, p, (2, 3), 2, True)
            grad = impl.lp_pool2d_backward(g, x, p, (2, 3), 2, True)
            for got, want in ((out, out_t.detach().numpy()), (grad, xt.grad.numpy())):
                np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
                np.testing.assert_array_equal(
                    got[~np.isfinite(want)], want[~np.isfinite(want)]
                )  # NaN, +-inf
                _assert_torch_close(
                    got[np.isfinite(want)], want[np.isfinite(want)], dtype, f"p={p}"
                )


# --- threads, out-of-range indices ------------------------------------------------------


def test_pooling_is_the_same_on_any_thread_count(monkeypatch, rng):
    monkeypatch.setattr(functional, "POOL_GRAIN", 1)  # small inputs still get threads
    x = rng.standard_normal((3, 5, 9, 8)).astype(np.float32)
    saved = pycnn.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            pycnn.set_num_threads(n)
            out, idx = functional.max_pool2d(x, 3, 2, 1, return_indices=True)
            results.append(
                (
                    out,
                    idx,
                    functional.max_pool2d_backward(out, idx, x.shape),
                    functional.avg_pool2d(x, 2, 1, 1),
                    functional.avg_pool2d_backward(out, x.shape, 3, 2, 1),
                )
            )
    finally:
        pycnn.set_num_threads(saved)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@impls
def test_max_pool2d_backward_refuses_indices_outside_the_plane(impl, rng):
    """Out-of-range indices raise ValueError and never write out of bounds."""
    x = rng.standard_normal((2, 3, 4, 4))
    out, idx = functional.max_pool2d(x, 2, return_indices=True)
    for bad, shown in (
        (16, r"\[0, 16\]"),
        (-1, r"\[-1, 15\]"),
        (2**40, r"\[0, 1099511627776\]"),
    ):
        wrong = idx.copy()
        wrong[1, 2, 1, 1] = bad
        wrong[0, 0, 0, 0] = 0
        wrong[1, 1, 0, 0] = 15
        with pytest.raises(
            ValueError,
            match=r"`indices` must be flat positions in "
            r"\[0, H\*W\) = \[0, 16\) of an input plane. Received: values in " + shown,
        ):
            impl.max_pool2d_backward(out, wrong, x.shape)


# --- layers ---------------------------------------------------------------------------------

LAYERS = {
    "max": lambda backend: pycnn.MaxPool2d(3, 2, 1, ceil_mode=True, backend=backend),
    "max-dilated": lambda backend: pycnn.MaxPool2d(
        (2, 3), (2, 1), 1, dilation=(2, 1), backend=backend
    ),
    "avg": lambda backend: pycnn.AvgPool2d(
        3, 2, 1, ceil_mode=True, count_include_pad=False, backend=backend
    ),
    "avg-divisor": lambda backend: pycnn.AvgPool2d(2, divisor_override=3, backend=backend),
    "lp": lambda backend: pycnn.LPPool2d(2, (2, 3), 1, backend=backend),
}


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_pool_layer_backends_agree(make, dtype, rng):
    x = rng.standard_normal((2, 3, 7, 8)).astype(dtype)
    layers = [make("compiled"), make("numpy")]
    assert layers[0].params == {} and layers[0].grads == {}
    outs = [layer(x) for layer in layers]
    assert outs[0].dtype == dtype and outs[0].shape == outs[1].shape
    assert_close(outs[0], outs[1], dtype)
    g = rng.standard_normal(outs[0].shape).astype(dtype)
    grads = [layer.backward(g) for layer in layers]
    assert grads[0].shape == x.shape and grads[0].dtype == dtype
    assert_close(grads[0], grads[1], dtype)


def test_pool_layers_wrap_functional(rng):
    x = rng.standard_normal((2, 3, 7, 8))
    g = rng.standard_normal((2, 3, 4, 5))
    layer = pycnn.MaxPool2d(3, 2, 1, ceil_mode=True)
    out, idx = functional.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(layer(x), out)
    np.testing.assert_array_equal(
        layer.backward(g), functional.max_pool2d_backward(g, idx, x.shape)
    )
    layer = pycnn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
    kw = dict(ceil_mode=True, count_include_pad=False)
    np.testing.assert_array_equal(layer(x), functional.avg_pool2d(x, 3, 2, 1, **kw))
    np.testing.assert_array_equal(
        layer.backward(g), functional.avg_pool2d_backward(g, x.shape, 3, 2, 1, **kw)
    )
    layer = pycnn.LPPool2d(3, (2, 3), (2, 1), ceil_mode=True)
    kw = dict(kernel_size=(2, 3), stride=(2, 1), ceil_mode=True)
    g = rng.standard_normal((2, 3, 4, 6))
    np.testing.assert_array_equal(layer(np.abs(x)), functional.lp_pool2d(np.abs(x), 3, **kw))
    np.testing.assert_array_equal(
        layer.backward(g), functional.lp_pool2d_backward(g, np.abs(x), 3, **kw)
    )


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_pool_layer_numerical_gradient(make, rng):
    layer = make("compiled")
    x = rng.permutation(2 * 5 * 6).reshape(1, 2, 5, 6) * 0.01 + 0.1  # no ties, > 0
    g = rng.standard_normal(layer(x).shape)
    grad_x = layer.backward(g)
    num = _numerical_grad(layer.forward, x, g)
    np.testing.assert_allclose(grad_x, num, rtol=1e-5, atol=1e-8)


def test_pool_layer_misuse():
    for layer in (pycnn.MaxPool2d(2), pycnn.AvgPool2d(2), pycnn.LPPool2d(2, 2)):
        name = type(layer).__name__
        with pytest.raises(RuntimeError, match=f"{name}.backward called before forward"):
            layer.backward(np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises(ValueError, match="`backend` must be 'compiled' or 'numpy'"):
        pycnn.MaxPool2d(2, backend="torch")
    with pytest.raises(ValueError, match="`padding` must be at most half of `kernel_size`"):
        pycnn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="`divisor_override` must be >= 1"):
        pycnn.AvgPool2d(2, divisor_override=0)
    with pytest.raises(TypeError, match="`count_include_pad` must be a bool"):
        pycnn.AvgPool2d(2, count_include_pad="no")
    with pytest.raises(ValueError, match="`norm_type` must be a positive finite number"):
        pycnn.LPPool2d(-1, 2)
    with pytest.raises(ValueError, match="`stride` must be >= 1"):
        pycnn.LPPool2d(2, 2, stride=0)


def test_pool_layer_repr_shows_non_defaults():
    assert repr(pycnn.MaxPool2d(2)) == "MaxPool2d(kernel_size=(2, 2))"
    assert repr(
        pycnn.MaxPool2d((3, 2), 2, (1, 0), dilation=2, ceil_mode=True, backend="numpy")
    ) == (
        "MaxPool2d(kernel_size=(3, 2), stride=(2, 2), padding=(1, 0), dilation=(2, 2), "
        "ceil_mode=True, backend='numpy')"
    )
    assert repr(pycnn.AvgPool2d(3)) == "AvgPool2d(kernel_size=(3, 3))"
    assert repr(pycnn.AvgPool2d(3, 1, 1, count_include_pad=False, divisor_override=4)) == (
        "AvgPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), "
        "count_include_pad=False, divisor_override=4)"
    )
    assert repr(pycnn.LPPool2d(2, 3)) == "LPPool2d(norm_type=2.0, kernel_size=(3, 3))"
    assert repr(pycnn.LPPool2d(1.5, (2, 3), 1, True)) == (
        "LPPool2d(norm_type=1.5, kernel_size=(2, 3), stride=(1, 1), ceil_mode=True)"
    )


def test_pool_layers_are_exported():
    import pycnn.layers as layers

    for name in ("MaxPool2d", "AvgPool2d", "LPPool2d"):
        assert name in pycnn.__all__ and name in layers.__all__
        assert getattr(pycnn, name) is getattr(layers, name)
        assert issubclass(getattr(pycnn, name), pycnn.BaseLayer)


@pytest.mark.parametrize("bad", [2.0, True, (2, 2.0), (True, 2)])
def test_cached_geometry_still_refuses_equal_values_of_other_types(bad):
    # pooling validates a geometry once and caches it by its arguments; 2.0 == 2 and
    # True == 1 as dict keys, so the cache must tell them apart and refuse them again
    x = np.zeros((1, 1, 4, 4), np.float32)
    functional.max_pool2d(x, 2)
    functional.max_pool2d(x, 1)
    functional.max_pool2d(x, (2, 2))
    with pytest.raises(TypeError, match="kernel_size"):
        functional.max_pool2d(x, bad)
    with pytest.raises(TypeError, match="kernel_size"):
        pycnn.MaxPool2d(bad)


# --- 2x2 windows at stride 2 (_kernels.max_pool_2x2) ---------------------------------


@pytest.mark.parametrize(
    "hw",
    [(2, 2), (5, 7), (7, 7), (6, 4), (3, 16), (14, 14), (16, 16), (28, 28), (9, 33), (4, 30)]
    + [(64, 64), (2, 2050)],
)
def test_max_pool_2x2_kernel_agrees(simd, hw, dtype, rng):
    """Values and indices of the 2x2 kernel, in each variant, against the NumPy twin:
    ties (the first tap wins, -0 and +0 too), NaN (the last NaN tap wins), infinities,
    odd sizes, rows of 1 to 16 windows (the vector and its masked tail), several blocks
    of the pass without indices (64x64), rows longer than its block (2 x 2050); the
    values without indices are the same bits, also on a range of planes (a thread's
    share), which writes nothing outside it."""
    from pycnn._ext import _kernels

    h, w = hw
    x = rng.standard_normal((3, 4, h, w)).astype(dtype)
    x[0, 0] = 1.0  # ties everywhere
    x[1, 0] = rng.choice(np.array([0.0, -0.0, -1.0], dtype), (h, w))  # signed zeros tie
    x[0, 1].flat[::3] = np.nan
    x[0, 1].flat[1::5] = np.nan
    x[1, 2].flat[::4] = np.inf
    x[2, 3].flat[::2] = -np.inf
    before = x.copy()
    oh, ow = h // 2, w // 2
    out = np.full((12, oh * ow), -7, dtype)
    indices = np.full((12, oh * ow), -7, np.int64)
    _kernels.max_pool_2x2(x.reshape(12, h * w), h, w, out, indices)
    want, want_i = reference.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(out.reshape(want.shape), want)
    np.testing.assert_array_equal(indices.reshape(want.shape), want_i)
    alone = np.full((12, oh * ow), -7, dtype)
    _kernels.max_pool_2x2(x.reshape(12, h * w), h, w, alone, None)
    assert alone.tobytes() == out.tobytes()
    part = np.full((12, oh * ow), -7, dtype)
    _kernels.max_pool_2x2(x.reshape(12, h * w)[5:9], h, w, part[5:9], None)
    assert part[5:9].tobytes() == out[5:9].tobytes()
    assert (part[:5] == -7).all() and (part[9:] == -7).all()
    for threads in (2, 5):  # ranges of planes on OpenMP threads
        shared = np.full((12, oh * ow), -7, dtype)
        _kernels.max_pool_2x2(x.reshape(12, h * w), h, w, shared, None, threads)
        assert shared.tobytes() == out.tobytes()
    np.testing.assert_array_equal(x, before)


def test_max_pool_2x2_kernel_refuses_mismatched_shapes():
    from pycnn._ext import _kernels

    x = np.zeros((2, 16), np.float32)
    with pytest.raises(ValueError, match="h \\* w"):
        _kernels.max_pool_2x2(x, 4, 5, np.zeros((2, 4), np.float32), None)
    with pytest.raises(ValueError, match="`out` has shape"):
        _kernels.max_pool_2x2(x, 4, 4, np.zeros((2, 3), np.float32), None)
    with pytest.raises(ValueError, match="`indices` has shape"):
        _kernels.max_pool_2x2(x, 4, 4, np.zeros((2, 4), np.float32), np.zeros((2, 5), np.int64))


@pytest.mark.parametrize("shape", [(4, 3, 28, 28), (2, 5, 14, 15), (2, 3, 7, 7)])
def test_max_pool_layer_backward_after_an_eval_forward(shape, dtype, rng):
    """An eval-mode forward keeps no indices; a backward after it finds them from the
    input and gives the training-mode gradient."""
    x = rng.standard_normal(shape).astype(dtype)
    grad = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2))
    grad = grad.astype(dtype)
    layer = pycnn.MaxPool2d(2)
    want_out = layer.forward(x)
    want = layer.backward(grad)
    layer.eval()
    assert layer.forward(x).tobytes() == want_out.tobytes()
    assert layer.backward(grad).tobytes() == want.tobytes()
    _, idx = reference.max_pool2d(x, 2, return_indices=True)
    assert_close(want, reference.max_pool2d_backward(grad, idx, x.shape), dtype)
