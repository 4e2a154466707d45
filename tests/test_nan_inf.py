"""NaN and +-inf propagate through convolution and pooling, forward and backward, as in
PyTorch: the same positions are NaN, +inf and -inf, in the compiled ops and in both
twins (pycnn.reference, pycnn.naive). The PyTorch comparisons skip without torch; the
tests below them state the rules on their own.

Zero padding is multiplied like any other input: a padded tap times an infinite weight
(or an infinite output gradient, for grad_weight) is 0 * inf = NaN. That is IEEE
arithmetic on the zero-padded input, and what PyTorch's own im2col convolution gives
(float64, grouped float32); its oneDNN float32 path skips padded taps instead, so the
comparisons where an infinite weight or gradient meets padding run with oneDNN off.
"""

import numpy as np
import pytest
from conftest import CONV_CASES, TOL, make_conv

from pycnn import functional, naive, reference

IMPLS = {"compiled": functional, "reference": reference, "naive": naive}
impls = pytest.mark.parametrize("impl", IMPLS.values(), ids=IMPLS.keys())


def sprinkle(a, rng, fraction=0.08):
    """`a` with about `fraction` of its entries each set to NaN, +inf and -inf (at least
    one of each), in place; returns a."""
    flat = a.reshape(-1)
    k = max(1, int(flat.size * fraction))
    where = rng.permutation(flat.size)[: 3 * k]
    flat[where[:k]] = np.nan
    flat[where[k : 2 * k]] = np.inf
    flat[where[2 * k :]] = -np.inf
    return a


def assert_same_nonfinite(got, want, dtype, err_msg=""):
    """NaN, +inf and -inf at the same positions; finite entries close."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, err_msg
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        np.testing.assert_array_equal(test(got), test(want), f"{err_msg}: {name} positions")
    finite = np.isfinite(want)
    scale = max(1.0, float(np.abs(want[finite]).max())) if finite.any() else 1.0
    tol = 10 * TOL[dtype]  # PyTorch sums in another order
    np.testing.assert_allclose(
        got[finite], want[finite], rtol=tol, atol=tol * scale, err_msg=err_msg
    )


# --- convolution ----------------------------------------------------------------------

CONV_NAMES = ["3x3-pad1", "valid", "unequal-strides", "mixed", "same-even-dilated", "depthwise"]


def _padded(kw):
    p = kw["padding"]
    return p == "same" or (p != "valid" and np.any(np.asarray(p) != 0))


@pytest.mark.filterwarnings("ignore:TF32 acceleration:UserWarning")  # mkldnn.flags()
@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("where", ["x", "weight", "bias", "grad_out"])
@pytest.mark.parametrize("name", CONV_NAMES)
def test_conv2d_nan_inf_match_torch(name, where, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(sum(map(ord, name + where)))
    x, w, b, kw = make_conv(CONV_CASES[name], dtype, rng)
    arrays = {"x": x, "weight": w, "bias": b}
    if where in arrays:
        sprinkle(arrays[where], rng)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    # oneDNN skips padded taps (see the module docstring); torch's im2col path does not
    onednn = not (_padded(kw) and where in ("weight", "grad_out"))
    with torch.backends.mkldnn.flags(enabled=onednn):
        out_t = torch.nn.functional.conv2d(xt, wt, bt, **kw)
        g = rng.standard_normal(tuple(out_t.shape)).astype(dtype)
        if where == "grad_out":
            sprinkle(g, rng, 0.03)
        out_t.backward(torch.tensor(g))
    want = (out_t.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy())
    with np.errstate(invalid="ignore", over="ignore"):
        for impl_name, impl in IMPLS.items():
            got = (impl.conv2d(x, w, b, **kw),) + impl.conv2d_backward(g, x, w, **kw)
            for a, e, what in zip(got, want, ("out", "grad_x", "grad_weight", "grad_bias")):
                assert_same_nonfinite(a, e, dtype, f"{impl_name} {what}")


@impls
def test_conv2d_nan_reaches_exactly_its_receptive_field(impl, dtype):
    """One NaN input pixel makes NaN the outputs whose windows hold it, and nothing
    else; one NaN output gradient makes NaN the input gradient of its window, the
    whole gradient of its filter and its bias."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 2, 7, 8)).astype(dtype)
    w = rng.standard_normal((3, 2, 3, 2)).astype(dtype)
    x[0, 1, 4, 5] = np.nan
    kw = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    out = impl.conv2d(x, w, **kw)
    hit = np.zeros(out.shape[2:], dtype=bool)
    for oy in range(out.shape[2]):
        for ox in range(out.shape[3]):
            rows = [oy * 2 - 1 + i for i in range(3)]
            cols = [ox + 2 * j for j in range(2)]
            hit[oy, ox] = 4 in rows and 5 in cols
    assert hit.any()
    np.testing.assert_array_equal(np.isnan(out), np.broadcast_to(hit, out.shape))

    x[0, 1, 4, 5] = 1.0
    g = rng.standard_normal(out.shape).astype(dtype)
    g[0, 2, 1, 3] = np.nan  # window rows 1..3, columns 3 and 5
    gx, gw, gb = impl.conv2d_backward(g, x, w, **kw)
    want = np.zeros(x.shape, dtype=bool)
    want[0, :, 1:4, [3, 5]] = True
    np.testing.assert_array_equal(np.isnan(gx), want)
    np.testing.assert_array_equal(
        np.isnan(gw), np.broadcast_to((np.arange(3) == 2)[:, None, None, None], w.shape)
    )
    np.testing.assert_array_equal(np.isnan(gb), np.arange(3) == 2)


@impls
def test_conv2d_infinite_weight_times_padding_is_nan(impl, dtype):
    """A padded tap is a zero that is multiplied: 0 * inf = NaN, in every backend."""
    x = np.ones((1, 1, 1, 1), dtype=dtype)
    w = np.zeros((2, 1, 3, 3), dtype=dtype)
    w[0] = np.inf  # every tap: padding times inf
    w[1, 0, 1, 1] = np.inf  # only the centre: the input pixel
    with np.errstate(invalid="ignore"):
        out = impl.conv2d(x, w, padding=1)
    assert np.isnan(out[0, 0, 0, 0])
    assert out[0, 1, 0, 0] == np.inf


# --- pooling --------------------------------------------------------------------------

MAX_KWARGS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=1, padding=1, dilation=(2, 1)),
]
AVG_KWARGS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, divisor_override=4),
]
LP_KWARGS = [dict(kernel_size=2), dict(kernel_size=(2, 3), stride=2, ceil_mode=True)]


def _pool_input(dtype, rng):
    x = rng.standard_normal((2, 3, 7, 8)).astype(dtype)
    sprinkle(x, rng, 0.06)
    x[0, 1] = -np.inf  # a plane of -inf: ties with padding
    x[1, 2, :3, :3] = np.inf  # windows of +inf, some with a NaN
    x[1, 2, 1, 1] = np.nan
    return x


@pytest.mark.parametrize("kw", MAX_KWARGS, ids=["2x2", "ceil-pad", "dilated"])
def test_max_pool2d_nan_inf_match_torch(kw, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = _pool_input(dtype, rng)
    xt = torch.tensor(x, requires_grad=True)
    out_t, idx_t = torch.nn.functional.max_pool2d(xt, **kw, return_indices=True)
    g = sprinkle(rng.standard_normal(tuple(out_t.shape)).astype(dtype), rng, 0.05)
    out_t.backward(torch.tensor(g))
    for name, impl in IMPLS.items():
        out, idx = impl.max_pool2d(x, **kw, return_indices=True)
        np.testing.assert_array_equal(out, out_t.detach().numpy(), name)  # NaN == NaN
        np.testing.assert_array_equal(idx, idx_t.numpy(), name)
        np.testing.assert_array_equal(impl.max_pool2d(x, **kw), out, name)
        with np.errstate(invalid="ignore"):  # inf + -inf where windows overlap
            grad = impl.max_pool2d_backward(g, idx, x.shape)
        assert_same_nonfinite(grad, xt.grad.numpy(), dtype, name)


@pytest.mark.parametrize("kw", AVG_KWARGS, ids=["2x2", "ceil-pad", "exclude-pad", "divisor"])
def test_avg_pool2d_nan_inf_match_torch(kw, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = _pool_input(dtype, rng)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.avg_pool2d(xt, **kw)
    g = sprinkle(rng.standard_normal(tuple(out_t.shape)).astype(dtype), rng, 0.05)
    out_t.backward(torch.tensor(g))
    with np.errstate(invalid="ignore"):
        for name, impl in IMPLS.items():
            assert_same_nonfinite(
                impl.avg_pool2d(x, **kw), out_t.detach().numpy(), dtype, f"{name} out"
            )
            assert_same_nonfinite(
                impl.avg_pool2d_backward(g, x.shape, **kw),
                xt.grad.numpy(),
                dtype,
                f"{name} grad_x",
            )


@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
@pytest.mark.parametrize("kw", LP_KWARGS, ids=["2x2", "ceil"])
def test_lp_pool2d_nan_inf_gradients_match_torch(kw, p, dtype):
    """NaN and inf in the output gradient too (test_pool2d.py covers them in x)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = np.abs(_pool_input(dtype, rng))  # x**1.5 of a negative is NaN anyway
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.lp_pool2d(xt, p, **kw)
    g = sprinkle(rng.standard_normal(tuple(out_t.shape)).astype(dtype), rng, 0.05)
    out_t.backward(torch.tensor(g))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for impl in (functional, reference):
            assert_same_nonfinite(
                impl.lp_pool2d(x, p, **kw),
                out_t.detach().numpy(),
                dtype,
                f"{impl.__name__} out",
            )
            assert_same_nonfinite(
                impl.lp_pool2d_backward(g, x, p, **kw),
                xt.grad.numpy(),
                dtype,
                f"{impl.__name__} grad_x",
            )


@impls
def test_max_pool2d_nan_beats_inf_and_routes_the_gradient(impl, dtype):
    """A window holding NaN gives NaN even next to +inf, its index is the NaN's, and
    the gradient (NaN or not) goes to that pixel alone."""
    x = np.zeros((1, 1, 4, 4), dtype=dtype)
    x[0, 0, 0, 0] = np.inf
    x[0, 0, 1, 1] = np.nan  # window (0, 0): +inf and NaN
    x[0, 0, 0, 2] = np.inf  # window (0, 1): +inf only
    x[0, 0, 2:, :2] = -np.inf  # window (1, 0): all -inf
    out, idx = impl.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(out[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5
    assert out[0, 0, 0, 1] == np.inf and idx[0, 0, 0, 1] == 2
    assert out[0, 0, 1, 0] == -np.inf and idx[0, 0, 1, 0] == 8
    assert out[0, 0, 1, 1] == 0 and idx[0, 0, 1, 1] == 10
    g = np.array([[[[np.nan, np.inf], [1.0, 2.0]]]], dtype=dtype)
    grad = impl.max_pool2d_backward(g, idx, x.shape)
    want = np.zeros((4, 4), dtype=dtype)
    want.flat[[5, 2, 8, 10]] = g.ravel()
    np.testing.assert_array_equal(grad[0, 0], want)


@impls
def test_avg_pool2d_nan_reaches_exactly_its_windows(impl, dtype):
    """One NaN input pixel makes NaN the averages whose windows hold it; one NaN output
    gradient makes NaN the input gradient of its window's pixels."""
    x = np.arange(36, dtype=dtype).reshape(1, 1, 6, 6)
    x[0, 0, 2, 3] = np.nan
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    out = impl.avg_pool2d(x, **kw)  # windows start at -1, 1, 3, 5 (ceil)
    want = np.zeros(out.shape[2:], dtype=bool)
    want[1, 1] = want[1, 2] = True  # rows 1..3; columns 1..3 and 3..5
    np.testing.assert_array_equal(np.isnan(out[0, 0]), want)
    g = np.ones(out.shape, dtype=dtype)
    g[0, 0, 2, 0] = np.nan  # rows 3..5, columns -1..1
    grad = impl.avg_pool2d_backward(g, x.shape, **kw)
    want = np.zeros((6, 6), dtype=bool)
    want[3:6, 0:2] = True
    np.testing.assert_array_equal(np.isnan(grad[0, 0]), want)
