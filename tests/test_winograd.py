"""The Winograd F(4x4, 3x3) path of stride-1 3x3 convolutions (pycnn._conv).

Its float32 error is larger than im2col + GEMM's (the transforms multiply by up to 8
and divide by 24 and 6 before rounding): measured on random normal data it is 3e-6 to
1.3e-5 of the output's largest magnitude for 1 to 512 input channels, against 1e-7 to
5e-7 for im2col. The tests hold it to WINOGRAD_F32_BOUND, and float64 to 1e-12; the
weight gradient, G^T [sum of (A dY A^T) * (B^T d B)] G, too (measured 1e-6 to 6e-6 in
float32).
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import assert_close

import pycnn
from pycnn import _config, _conv, _parallel, functional, reference
from pycnn import _validation as V
from pycnn._ext import load_kernels

_kernels = load_kernels()

# max |error| / max |float64 output| on random normal inputs and weights (issue 17)
WINOGRAD_F32_BOUND = 2e-5
WINOGRAD_F64_BOUND = 1e-12
BOUND = {np.float32: WINOGRAD_F32_BOUND, np.float64: WINOGRAD_F64_BOUND}

# name: (N, C, H, W, F, padding); odd and even sizes, sizes below one 4x4 tile,
# outputs not a multiple of the tile, 1 to 64 channels
CASES = {
    "tiny-1x1": (1, 1, 1, 1, 1, 1),
    "below-a-tile": (2, 3, 3, 5, 2, 1),
    "pad0-3x3": (3, 2, 3, 3, 4, 0),
    "pad0-odd": (2, 5, 9, 7, 6, 0),
    "even": (2, 8, 8, 8, 8, 1),
    "odd": (3, 7, 13, 11, 5, 1),
    "wide": (2, 4, 5, 23, 3, 1),
    "tall": (2, 4, 21, 6, 3, 0),
    "pad2": (2, 3, 6, 7, 4, 2),
    "cifar-like": (4, 32, 16, 16, 64, 1),
    "deep": (2, 64, 10, 9, 16, 1),
    "one-image": (1, 16, 12, 12, 16, 1),
}


@pytest.fixture
def everywhere(monkeypatch):
    """Winograd on every geometry it handles, whatever the speed rule says."""
    monkeypatch.setattr(_conv, "_winograd_pays", lambda *sizes: True)
    monkeypatch.setattr(_conv, "_winograd_grad_w_pays", lambda *sizes: True)
    monkeypatch.setattr(_config, "_winograd", True)
    _conv._cached_plan.cache_clear()
    yield
    _conv._cached_plan.cache_clear()


def _case(name, dtype, rng):
    n, c, h, w, f, p = CASES[name]
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    return x, weight, bias, p


def _f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def _relative_error(got, want):
    return float(np.max(np.abs(got - want))) / max(float(np.max(np.abs(want))), 1e-300)


def _plan(x, weight, p):
    args = V.conv2d_args(x, weight, None, 1, p, 1, 1)
    return _conv.plan(x.shape, weight.shape, x.dtype, args)


@pytest.mark.parametrize("name", CASES)
def test_forward_within_the_bound(everywhere, name, dtype, rng):
    x, weight, bias, p = _case(name, dtype, rng)
    assert _plan(x, weight, p).winograd
    got = functional.conv2d(x, weight, bias, padding=p)
    assert got.dtype == dtype
    assert_close(got, reference.conv2d(x, weight, bias, padding=p), dtype)
    want = reference.conv2d(*_f64(x, weight, bias), padding=p)
    assert _relative_error(got, want) <= BOUND[dtype]


@pytest.mark.parametrize("name", CASES)
def test_gradients_within_the_bound(everywhere, name, dtype, rng):
    """The input gradient (the algorithm on grad_out) and the weight gradient
    (G^T [sum over tiles of (A dY A^T) * (B^T d B)] G), one image or several."""
    x, weight, _, p = _case(name, dtype, rng)
    plan = _plan(x, weight, p)
    assert plan.winograd_grad_x and plan.winograd_grad_w
    g = rng.standard_normal(plan.out_shape).astype(dtype)
    before = x.copy(), g.copy()
    grad_x, grad_w, grad_b = functional.conv2d_backward(g, x, weight, padding=p)
    want = reference.conv2d_backward(*_f64(g, x, weight), padding=p)
    for got, ref in zip((grad_x, grad_w), want):
        assert got.dtype == dtype and got.shape == ref.shape
        assert _relative_error(got, ref) <= BOUND[dtype]
    assert_close(grad_b, want[2], dtype)
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(g, before[1])


def test_weight_gradient_over_several_chunks(everywhere, monkeypatch, dtype, rng):
    """Chunks of one image each, their sums added: the same gradient within rounding."""
    monkeypatch.setattr(_conv, "WINOGRAD_BYTES", 1)
    x, weight, _, p = _case("odd", dtype, rng)
    g = rng.standard_normal(reference.conv2d(x, weight, padding=p).shape).astype(dtype)
    grad_w = functional.conv2d_backward(g, x, weight, padding=p)[1]
    want = reference.conv2d_backward(*_f64(g, x, weight), padding=p)[1]
    assert _relative_error(grad_w, want) <= BOUND[dtype]


@pytest.mark.parametrize("padding", [((0, 1), (1, 0)), ((2, 0), (1, 2))])
def test_asymmetric_padding(everywhere, padding, dtype, rng):
    x = rng.standard_normal((2, 5, 9, 10)).astype(dtype)
    weight = rng.standard_normal((6, 5, 3, 3)).astype(dtype)
    args = V.conv2d_args(x, weight, None, 1, 0, 1, 1)._replace(padding=padding)
    plan = _conv.plan(x.shape, weight.shape, dtype, args)
    assert plan.winograd and plan.winograd_grad_w
    (pt, pb), (pl, pr) = padding
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    want = reference.conv2d(*_f64(xp, weight))
    out = plan.forward(x, weight)
    assert _relative_error(out, want) <= BOUND[dtype]
    g = rng.standard_normal(out.shape).astype(dtype)
    grad_xp, want_w = reference.conv2d_backward(*_f64(g, xp, weight))[:2]
    want_x = grad_xp[:, :, pt : pt + x.shape[2], pl : pl + x.shape[3]]
    grad_x, grad_w = plan.backward(g, x, weight, need_bias=False)[:2]
    assert _relative_error(grad_x, want_x) <= BOUND[dtype]
    assert _relative_error(grad_w, want_w) <= BOUND[dtype]


@pytest.mark.parametrize("act", ["relu", "leaky"])
def test_epilogue_bias_and_activation(everywhere, act, dtype, rng):
    x, weight, bias, p = _case("cifar-like", dtype, rng)
    layer = pycnn.ReLU() if act == "relu" else pycnn.LeakyReLU(0.1)
    want = layer.forward(reference.conv2d(*_f64(x, weight, bias), padding=p))

    def in_place(chunk):
        chunk[...] = layer.forward(chunk)

    got = _plan(x, weight, p).forward(x, weight, _conv.Epilogue(bias, in_place))
    assert _relative_error(got, want) <= BOUND[dtype]


def test_fused_layer_takes_the_winograd_path(everywhere, rng):
    conv = pycnn.Conv2d(16, 16, 3, padding=1, rng=rng)
    conv.params["bias"][:] = rng.standard_normal(16)
    model = pycnn.Sequential(conv, pycnn.ReLU()).eval()
    x = rng.standard_normal((3, 16, 10, 10)).astype(np.float32)
    want = np.maximum(reference.conv2d(*_f64(x, conv.weight, conv.bias), padding=1), 0)
    assert _relative_error(pycnn.fuse(model).forward(x), want) <= WINOGRAD_F32_BOUND


def test_non_contiguous_inputs(everywhere, dtype, rng):
    x, weight, bias, p = _case("odd", dtype, rng)
    x_t = np.asfortranarray(x)  # same values, another layout
    w_view = np.ascontiguousarray(weight[:, :, ::-1, ::-1])[:, :, ::-1, ::-1]
    x_strided = np.repeat(x, 2, axis=3)[..., ::2]
    for xs, ws in [(x_t, weight), (x_strided, w_view)]:
        assert not xs.flags.c_contiguous
        got = functional.conv2d(xs, ws, bias, padding=p)
        np.testing.assert_array_equal(got, functional.conv2d(x, weight, bias, padding=p))
        g = np.ones(got.shape, dtype)[..., ::-1]
        gx = functional.conv2d_backward(g, xs, ws, padding=p)[0]
        np.testing.assert_array_equal(
            gx, functional.conv2d_backward(np.ones(got.shape, dtype), x, weight, padding=p)[0]
        )


def test_layer_forward_and_backward(everywhere, dtype, rng):
    """A Conv2d layer on the Winograd path against its NumPy-backend twin."""
    kw = dict(padding=1, dtype=dtype)
    compiled = pycnn.Conv2d(8, 12, 3, rng=np.random.default_rng(1), **kw)
    numpy_twin = pycnn.Conv2d(8, 12, 3, rng=np.random.default_rng(1), backend="numpy", **kw)
    x = rng.standard_normal((3, 8, 11, 10)).astype(dtype)
    out = compiled.forward(x)
    assert compiled._plan(x).winograd
    assert_close(out, numpy_twin.forward(x), dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    assert_close(compiled.backward(g), numpy_twin.backward(g), dtype)
    for name in ("weight", "bias"):
        assert_close(compiled.grads[name], numpy_twin.grads[name], dtype)


def test_conv_transpose_uses_it_for_its_forward(everywhere, dtype, rng):
    """A stride-1 3x3 transposed convolution is its adjoint's input gradient."""
    x = rng.standard_normal((2, 6, 7, 9)).astype(dtype)
    weight = rng.standard_normal((6, 5, 3, 3)).astype(dtype)
    got = functional.conv_transpose2d(x, weight, padding=1)
    want = reference.conv_transpose2d(*_f64(x, weight), padding=1)
    assert _relative_error(got, want) <= BOUND[dtype]


def test_float32_error_larger_than_im2col_but_bounded(everywhere, monkeypatch, rng):
    """The documented trade: on a 64-channel layer, Winograd's float32 error exceeds
    im2col's, and stays within the bound."""
    x, weight, bias, p = _case("cifar-like", np.float32, rng)
    want = reference.conv2d(*_f64(x, weight, bias), padding=p)
    wino = _relative_error(functional.conv2d(x, weight, bias, padding=p), want)
    monkeypatch.setattr(_config, "_winograd", False)
    im2col = _relative_error(functional.conv2d(x, weight, bias, padding=p), want)
    assert im2col < wino <= WINOGRAD_F32_BOUND


# --- the rule, and the switch --------------------------------------------------------


def test_rule_picks_the_measured_geometries(monkeypatch):
    monkeypatch.setattr(_config, "_winograd", True)
    cases = {  # (x shape, weight shape, stride, padding, dilation, groups):
        # (forward, grad_x, grad_weight)
        ((64, 32, 32, 32), (64, 32, 3, 3), 1, 1, 1, 1): (True, True, True),
        ((16, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1, 1): (True, True, True),
        ((64, 16, 28, 28), (16, 16, 3, 3), 1, 1, 1, 1): (True, True, True),
        ((64, 32, 14, 14), (32, 32, 3, 3), 1, 1, 1, 1): (True, True, True),  # 16 tiles
        ((64, 32, 14, 14), (32, 32, 3, 3), 1, 0, 1, 1): (True, True, True),  # 9 tiles
        ((64, 32, 13, 13), (32, 32, 3, 3), 1, 1, 1, 1): (False, False, False),  # 2.6x
        ((64, 32, 17, 17), (32, 32, 3, 3), 1, 1, 1, 1): (False, False, False),  # 2.9x
        ((64, 32, 18, 18), (32, 32, 3, 3), 1, 1, 1, 1): (True, True, True),  # 3.2x fewer
        ((64, 64, 7, 7), (64, 64, 3, 3), 1, 1, 1, 1): (True, True, True),  # 4 tiles
        ((16, 64, 8, 8), (64, 64, 3, 3), 1, 1, 1, 1): (True, True, True),  # 4, 16 images
        ((15, 64, 8, 8), (64, 64, 3, 3), 1, 1, 1, 1): (False, False, True),  # 15 images
        ((64, 16, 8, 8), (32, 16, 3, 3), 1, 1, 1, 1): (False, False, False),  # 16, 4 tiles
        ((64, 32, 6, 6), (32, 32, 3, 3), 1, 1, 1, 1): (False, False, False),  # 2.7x fewer
        ((32, 16, 4, 4), (32, 16, 3, 3), 1, 1, 1, 1): (False, False, False),  # 1 tile
        ((1, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1, 1): (True, False, False),  # one image
        ((1, 16, 32, 32), (16, 16, 3, 3), 1, 1, 1, 1): (True, False, False),
        ((1, 128, 16, 16), (128, 128, 3, 3), 1, 1, 1, 1): (False, False, False),  # 2.4 MB
        ((1, 64, 8, 8), (64, 64, 3, 3), 1, 1, 1, 1): (False, False, False),  # 4 tiles
        ((1, 8, 32, 32), (8, 8, 3, 3), 1, 1, 1, 1): (False, False, False),  # 8 channels
        ((64, 3, 32, 32), (64, 3, 3, 3), 1, 1, 1, 1): (False, False, False),  # 3 channels
        ((64, 32, 32, 32), (64, 32, 3, 3), 2, 1, 1, 1): (False, False, False),  # stride
        ((64, 32, 32, 32), (64, 32, 3, 3), 1, 2, 2, 1): (False, False, False),  # dilation
        ((64, 32, 32, 32), (64, 16, 3, 3), 1, 1, 1, 2): (False, False, False),  # groups
        ((64, 32, 32, 32), (64, 32, 5, 5), 1, 2, 1, 1): (False, False, False),  # 5x5
        ((64, 32, 32, 32), (64, 32, 3, 3), 1, 3, 1, 1): (False, False, False),  # padding 3
    }
    for (xs, ws, s, p, d, g), expected in cases.items():
        x, w = np.empty(xs, np.float32), np.empty(ws, np.float32)
        plan = _conv.plan(xs, ws, np.float32, V.conv2d_args(x, w, None, s, p, d, g))
        got = (plan.winograd, plan.winograd_grad_x, plan.winograd_grad_w)
        assert got == expected, (xs, ws, s, p, d, g)
    # one image: not past 64 channels either way (not measured), nor on the baseline
    # instruction set, whose transforms the measurements did not use
    assert _conv._winograd_pays_one_image(32, 32, 16, 16)
    assert not _conv._winograd_pays_one_image(16, 128, 16, 16)
    assert not _conv._winograd_pays_one_image(128, 32, 16, 16)
    before = _kernels.simd_target()
    try:
        _kernels.set_simd_target("baseline")
        assert not _conv._winograd_pays_one_image(32, 32, 16, 16)
    finally:
        _kernels.set_simd_target(before)
    # one float64 image stays on im2col (its transforms have no AVX2 variant)
    xs, ws = (1, 64, 56, 56), (64, 64, 3, 3)
    x, w = np.empty(xs), np.empty(ws)
    assert not _conv.plan(xs, ws, np.float64, V.conv2d_args(x, w, None, 1, 1, 1, 1)).winograd


def test_switch_turns_it_off_bit_for_bit(monkeypatch, dtype, rng):
    """set_winograd(False): the plan takes im2col, and the results are the im2col path's
    bit for bit, through the functions and through a layer that ran before."""
    x = rng.standard_normal((4, 16, 16, 16)).astype(dtype)
    weight = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
    bias = rng.standard_normal(16).astype(dtype)
    g = rng.standard_normal((4, 16, 16, 16)).astype(dtype)
    layer = pycnn.Conv2d(16, 16, 3, padding=1, dtype=dtype, rng=rng)
    monkeypatch.setattr(_config, "_winograd", None)
    assert pycnn.get_winograd()
    on = functional.conv2d(x, weight, bias, padding=1)
    assert _plan(x, weight, 1).winograd
    layer_on = layer.forward(x), layer.backward(g)
    pycnn.set_winograd(False)
    assert not pycnn.get_winograd()
    assert not _plan(x, weight, 1).winograd and not _plan(x, weight, 1).winograd_grad_x
    off = functional.conv2d(x, weight, bias, padding=1)
    layer_off = layer.forward(x), layer.backward(g)
    args = V.conv2d_args(x, weight, bias, 1, 1, 1, 1)
    im2col = _conv.ConvPlan(x.shape, weight.shape, dtype, *args, winograd=False)
    np.testing.assert_array_equal(off, im2col.forward(x, weight, _conv.Epilogue(bias)))
    np.testing.assert_array_equal(
        functional.conv2d_backward(g, x, weight, padding=1)[0], im2col.backward(g, x, weight)[0]
    )
    assert not np.array_equal(on, off)
    assert not np.array_equal(layer_on[0], layer_off[0])
    np.testing.assert_array_equal(layer_off[1], im2col.backward(g, x, layer.weight)[0])
    pycnn.set_winograd(True)
    np.testing.assert_array_equal(functional.conv2d(x, weight, bias, padding=1), on)


def test_set_winograd_refuses_non_bool(monkeypatch):
    monkeypatch.setattr(_config, "_winograd", None)
    with pytest.raises(TypeError, match="True or False"):
        pycnn.set_winograd(1)


@pytest.mark.parametrize("value, expected", [("0", False), ("off", False), ("1", True)])
def test_environment_variable(value, expected):
    code = "import pycnn; print(pycnn.get_winograd())"
    env = dict(os.environ, PYCNN_WINOGRAD=value)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(expected)


def test_environment_variable_garbage_warns_and_keeps_the_default(monkeypatch):
    monkeypatch.setenv("PYCNN_WINOGRAD", "maybe")
    monkeypatch.setattr(_config, "_winograd", None)
    with pytest.warns(RuntimeWarning, match="PYCNN_WINOGRAD='maybe'"):
        assert pycnn.get_winograd() is True


# --- threads -------------------------------------------------------------------------


@pytest.fixture
def spread(monkeypatch):
    """Every range however small on its own thread, 3 of them (more than the cores)."""
    pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(_parallel, "MIN_MACS_PER_THREAD", 1)
    monkeypatch.setattr(_config, "_num_threads", None)
    yield
    monkeypatch.setattr(_config, "_num_threads", None)


@pytest.mark.parametrize("threads", [2, 3])
def test_results_do_not_depend_on_the_thread_count(everywhere, spread, threads, dtype, rng):
    x, weight, bias, p = _case("cifar-like", dtype, rng)
    x = np.concatenate([x, x[::-1], x[:1] * 2])  # 9 images, chunks of 3
    g = rng.standard_normal((9, 64, 16, 16)).astype(dtype)
    pycnn.set_num_threads(1)
    serial = functional.conv2d(x, weight, bias, padding=p)
    serial_dx = functional.conv2d_backward(g, x, weight, padding=p)[0]
    pycnn.set_num_threads(threads)
    assert _parallel.n_parts(3, 1) > 1
    np.testing.assert_array_equal(functional.conv2d(x, weight, bias, padding=p), serial)
    np.testing.assert_array_equal(
        functional.conv2d_backward(g, x, weight, padding=p)[0], serial_dx
    )


@pytest.mark.parametrize("hw", [4, 7, 16])
def test_an_image_gets_the_same_bits_in_any_batch(everywhere, hw, dtype, rng):
    """Each image has GEMMs of its own: its results do not depend on the other images in
    its chunk (so two ranks of a distributed batch compute what one process does)."""
    x = rng.standard_normal((12, 16, hw, hw)).astype(dtype)
    weight = rng.standard_normal((24, 16, 3, 3)).astype(dtype)
    g = rng.standard_normal((12, 24, hw, hw)).astype(dtype)
    whole = functional.conv2d(x, weight, padding=1)
    whole_dx = functional.conv2d_backward(g, x, weight, padding=1)[0]
    for lo, hi in [(0, 5), (5, 7), (3, 12)]:
        part = functional.conv2d(x[lo:hi], weight, padding=1)
        np.testing.assert_array_equal(part, whole[lo:hi])
        part_dx = functional.conv2d_backward(g[lo:hi], x[lo:hi], weight, padding=1)[0]
        np.testing.assert_array_equal(part_dx, whole_dx[lo:hi])


def test_bit_identical_from_many_threads_at_once(everywhere, spread, dtype, rng):
    """Eight threads calling at once (sharing pycnn's pool) get the serial bits."""
    x, weight, bias, p = _case("cifar-like", dtype, rng)
    g = rng.standard_normal((4, 64, 16, 16)).astype(dtype)
    pycnn.set_num_threads(3)

    def both():
        return (
            functional.conv2d(x, weight, bias, padding=p),
            functional.conv2d_backward(g, x, weight, padding=p)[0],
        )

    serial = both()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: both(), range(16)))
    for got in results:
        for a, b in zip(got, serial):
            assert a.tobytes() == b.tobytes()


# --- the transforms, in each instruction-set variant ---------------------------------

# B^T and A^T of F(4x4, 3x3) at the points 0, +-1, +-2, infinity (Lavin & Gray), what the
# kernels' loops apply: V = B^T d B for a 6x6 input tile d, Y = A^T M A for a product M
B_T = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=np.float64,
)
A_T = np.array(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    dtype=np.float64,
)

# (N, C or F, H, W, ph, pw): one tile, tiles past the input, 8 tiles and not, tails of
# 1 to 7 tiles, a block of 64 and more, 16 channels of 11 x 64 tiles (positions 4 KiB
# apart)
TRANSFORM_CASES = [
    (1, 1, 1, 1, 1, 1),
    (2, 3, 3, 5, 1, 1),
    (3, 2, 6, 6, 0, 0),
    (2, 5, 9, 7, 0, 0),
    (3, 7, 13, 11, 1, 1),
    (2, 4, 5, 23, 1, 1),
    (2, 3, 21, 6, 0, 2),
    (3, 3, 7, 7, 2, 1),
    (5, 6, 18, 18, 1, 1),
    (11, 16, 32, 32, 1, 1),
]


def _tiles(h, w, ph, pw):
    oh, ow = h + 2 * ph - 2, w + 2 * pw - 2
    return oh, ow, -(-oh // 4), -(-ow // 4)


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=str)
def test_input_transform(simd, case, dtype, rng):
    """V = B^T d B for every tile, against the matrices in float64; the same bits in
    every variant."""
    n, c, h, w, ph, pw = case
    oh, ow, th, tw = _tiles(h, w, ph, pw)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    before = x.copy()
    v = np.full((36, c, n * th * tw), np.nan, dtype)
    _kernels.winograd_input(x, v, ph, pw, th, tw)
    padded = np.zeros((n, c, 4 * th + 2, 4 * tw + 2))
    rows, cols = min(h, 4 * th + 2 - ph), min(w, 4 * tw + 2 - pw)
    padded[:, :, ph : ph + rows, pw : pw + cols] = x[:, :, :rows, :cols]
    d = np.stack(
        [
            padded[:, :, 4 * i : 4 * i + 6, 4 * j : 4 * j + 6]
            for i in range(th)
            for j in range(tw)
        ],
        axis=2,
    )  # (N, C, tiles, 6, 6)
    want = (B_T @ d @ B_T.T).reshape(n, c, th * tw, 36).transpose(3, 1, 0, 2)
    assert_close(v, want.reshape(36, c, -1), dtype)
    np.testing.assert_array_equal(x, before)
    _assert_same_bits_as_baseline(
        v, lambda out: _kernels.winograd_input(x, out, ph, pw, th, tw)
    )


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("relu", [False, True], ids=["", "relu"])
@pytest.mark.parametrize("with_residual", [False, True], ids=["", "residual"])
def test_output_transform(simd, case, with_bias, relu, with_residual, dtype, rng):
    """out = A^T M A + bias for every tile, cropped to the output, plus a residual
    (a residual block's shortcut), then with `relu` max(., 0) keeping NaN (a tile with a
    NaN product), against the matrices in float64; the same bits in every variant."""
    n, f, h, w, ph, pw = case
    oh, ow, th, tw = _tiles(h, w, ph, pw)
    m = rng.standard_normal((36, f, n * th * tw)).astype(dtype)
    m[7, 0, 0] = np.nan
    bias = rng.standard_normal(f).astype(dtype) if with_bias else None
    residual = rng.standard_normal((n, f, oh, ow)).astype(dtype) if with_residual else None
    kept = None if residual is None else residual.copy()
    out = np.full((n, f, oh, ow), -7, dtype)
    _kernels.winograd_output(m, out, bias, th, tw, relu, residual)
    tiles = m.astype(np.float64).reshape(6, 6, f, n, th, tw).transpose(3, 2, 4, 5, 0, 1)
    y = A_T @ tiles @ A_T.T  # (N, F, th, tw, 4, 4)
    want = y.transpose(0, 1, 2, 4, 3, 5).reshape(n, f, 4 * th, 4 * tw)[:, :, :oh, :ow]
    if with_bias:
        want = want + bias[:, None, None]
    if with_residual:
        want = want + residual
        np.testing.assert_array_equal(residual, kept)
    if relu:
        want = np.where(want <= 0, 0, want)  # NaN stays
        assert np.isnan(out[0, 0, 0, 0])
        assert (out == 0).any() or np.count_nonzero(~np.isnan(out)) < 8
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    assert_close(np.nan_to_num(out), np.nan_to_num(want), dtype)
    _assert_same_bits_as_baseline(
        out, lambda res: _kernels.winograd_output(m, res, bias, th, tw, relu, residual)
    )


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=str)
def test_output_gradient_transform(simd, case, dtype, rng):
    """W = A dY A^T for every 4x4 tile of an output gradient (zero past its end),
    against the matrices in float64; the same bits in every variant."""
    n, f, h, w, ph, pw = case
    oh, ow, th, tw = _tiles(h, w, ph, pw)
    grad = rng.standard_normal((n, f, oh, ow)).astype(dtype)
    before = grad.copy()
    out = np.full((36, f, n * th * tw), np.nan, dtype)
    _kernels.winograd_grad_output(grad, out, th, tw)
    padded = np.zeros((n, f, 4 * th, 4 * tw))
    padded[:, :, :oh, :ow] = grad
    y = padded.reshape(n, f, th, 4, tw, 4).transpose(0, 1, 2, 4, 3, 5)
    want = (A_T.T @ y @ A_T).reshape(n, f, th * tw, 36).transpose(3, 1, 0, 2)
    assert_close(out, want.reshape(36, f, -1), dtype)
    np.testing.assert_array_equal(grad, before)
    _assert_same_bits_as_baseline(
        out, lambda res: _kernels.winograd_grad_output(grad, res, th, tw)
    )


def _assert_same_bits_as_baseline(got, compute):
    """`compute(out)` under the baseline variant writes `got`'s very bits."""
    before = _kernels.simd_target()
    _kernels.set_simd_target("baseline")
    try:
        base = np.full_like(got, np.nan)
        compute(base)
    finally:
        _kernels.set_simd_target(before)
    assert base.tobytes() == got.tobytes()


@pytest.mark.parametrize("n_chunks", [1, 2, 3, 5])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("epilogue", ["none", "bias-relu", "bias-residual-relu"])
def test_forward_over_chunks_is_its_three_steps(simd, n_chunks, threads, epilogue, dtype, rng):
    """`winograd_forward` (one call, chunks over OpenMP threads) writes the bits of
    winograd_input, matmul_fixed and winograd_output on the whole batch, in any
    chunking and on any number of threads; partial tiles (9x10 outputs), padding."""
    n, j, k, h, w = 5, 3, 4, 9, 10
    th, tw = 3, 3
    x = rng.standard_normal((n, j, h, w)).astype(dtype)
    u = rng.standard_normal((36, k, j)).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype) if epilogue != "none" else None
    relu = epilogue != "none"
    residual = (
        rng.standard_normal((n, k, h, w)).astype(dtype) if "residual" in epilogue else None
    )
    v = np.empty((36, j, n * th * tw), dtype)
    m = np.empty((36, k, n * th * tw), dtype)
    want = np.empty((n, k, h, w), dtype)
    _kernels.winograd_input(x, v, 1, 1, th, tw)
    _kernels.matmul_fixed(u, v, m)
    _kernels.winograd_output(m, want, bias, th, tw, relu, residual)
    before = x.copy()
    out = np.full((n, k, h, w), np.nan, dtype)
    _kernels.winograd_forward(x, u, out, bias, 1, 1, relu, residual, n_chunks, threads)
    assert out.tobytes() == want.tobytes()
    np.testing.assert_array_equal(x, before)


def test_forward_over_chunks_refuses_mismatched_shapes():
    x, u, out = np.zeros((2, 3, 8, 8)), np.zeros((36, 4, 3)), np.zeros((2, 4, 8, 8))
    with pytest.raises(ValueError, match="u must be"):
        _kernels.winograd_forward(x, np.zeros((36, 4, 2)), out, None, 1, 1, False, None, 1)
    with pytest.raises(ValueError, match="out must be"):
        _kernels.winograd_forward(x, u, np.zeros((2, 5, 8, 8)), None, 1, 1, False, None, 1)
    with pytest.raises(ValueError, match="bias must be"):
        _kernels.winograd_forward(x, u, out, np.zeros(3), 1, 1, False, None, 1)
    with pytest.raises(ValueError, match="residual must have"):
        _kernels.winograd_forward(x, u, out, None, 1, 1, False, np.zeros((2, 4, 8, 7)), 1)
    with pytest.raises(ValueError, match="n_chunks"):
        _kernels.winograd_forward(x, u, out, None, 1, 1, False, None, 3)
    with pytest.raises(ValueError, match="ph, pw"):
        _kernels.winograd_forward(x, u, out, None, -1, 1, False, None, 1)


# --- the kernels' own guards ---------------------------------------------------------


def test_kernels_refuse_mismatched_shapes():
    x = np.zeros((2, 3, 8, 8))
    with pytest.raises(ValueError, match="v must be"):
        _kernels.winograd_input(x, np.zeros((36, 3, 7)), 1, 1, 2, 2)
    with pytest.raises(ValueError, match="ph, pw"):
        _kernels.winograd_input(x, np.zeros((36, 3, 8)), -1, 1, 2, 2)
    with pytest.raises(ValueError, match="cover the output"):
        _kernels.winograd_output(np.zeros((36, 4, 8)), np.zeros((2, 4, 9, 8)), None, 2, 2)
    with pytest.raises(ValueError, match="m must be"):
        _kernels.winograd_output(np.zeros((36, 4, 9)), np.zeros((2, 4, 8, 8)), None, 2, 2)
    with pytest.raises(ValueError, match="bias must be"):
        _kernels.winograd_output(
            np.zeros((36, 4, 8)), np.zeros((2, 4, 8, 8)), np.zeros(3), 2, 2
        )
    with pytest.raises(ValueError, match="residual must have"):
        _kernels.winograd_output(
            np.zeros((36, 4, 8)),
            np.zeros((2, 4, 8, 8)),
            None,
            2,
            2,
            True,
            np.zeros((2, 4, 8, 7)),
        )
    with pytest.raises(ValueError, match="u must be"):
        _kernels.winograd_filter(np.zeros((4, 3, 3, 3)), np.zeros((36, 3, 4)))
    with pytest.raises(ValueError, match="cover the output"):
        _kernels.winograd_grad_output(np.zeros((2, 4, 9, 8)), np.zeros((36, 4, 8)), 2, 2)
    with pytest.raises(ValueError, match="w must be"):
        _kernels.winograd_grad_output(np.zeros((2, 4, 8, 8)), np.zeros((36, 4, 9)), 2, 2)
    with pytest.raises(ValueError, match="m must be"):
        _kernels.winograd_filter_grad(np.zeros((36, 4, 2)), np.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="grad_w must be"):
        _kernels.winograd_filter_grad(np.zeros((36, 4, 3)), np.zeros((4, 3, 5, 5)))


# --- PyTorch as another oracle -------------------------------------------------------


@pytest.mark.parametrize("name", ["odd", "cifar-like", "pad0-odd"])
def test_matches_torch(everywhere, name, rng):
    torch = pytest.importorskip("torch")
    x, weight, bias, p = _case(name, np.float64, rng)
    want = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias), padding=p
    ).numpy()
    assert _relative_error(functional.conv2d(x, weight, bias, padding=p), want) <= 1e-12
    x32, w32, b32 = (a.astype(np.float32) for a in (x, weight, bias))
    got32 = functional.conv2d(x32, w32, b32, padding=p)
    assert _relative_error(got32, want) <= WINOGRAD_F32_BOUND
