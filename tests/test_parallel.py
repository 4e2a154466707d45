"""Work spread over pycnn's threads (pycnn._parallel), and every op from any thread."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import CONV_CASES, assert_close, make_conv

import pycnn
from pycnn import _config, _conv, _parallel, functional, reference

threadpoolctl = pytest.importorskip(
    "threadpoolctl", reason="spreading over images needs threadpoolctl"
)


@pytest.fixture
def spread(monkeypatch):
    """Every convolution, however small, spread over 3 threads (more than the cores)."""
    monkeypatch.setattr(_parallel, "MIN_MACS_PER_THREAD", 1)
    monkeypatch.setattr(_parallel, "GEMM_MIN_MACS_PER_THREAD", 1)
    monkeypatch.setattr(_config, "_num_threads", None)
    pycnn.set_num_threads(3)
    yield
    monkeypatch.setattr(_config, "_num_threads", None)


def blas_threads():
    """Thread counts of the BLAS libraries, as threadpoolctl reads them."""
    return [
        c.num_threads
        for c in threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
    ]


@pytest.mark.parametrize(
    "name",
    [
        "3x3-pad1",
        "groups3",
        "same-even-dilated",
        "pointwise-1x1",
        "mixed",
        "stride-not-dividing",
    ],
)
def test_spread_convolution_matches_reference(spread, name, dtype, rng):
    x, w, b, kw = make_conv(CONV_CASES[name], dtype, rng)
    x = np.concatenate([x, x[::-1], x[:1] * 2])  # 5 images: ranges of 1 and 2
    assert _parallel.n_parts(len(x), 1) == 3
    _check_conv_against_reference(x, w, b, kw, dtype, rng)


def _check_conv_against_reference(x, w, b, kw, dtype, rng):
    out = functional.conv2d(x, w, b, **kw)
    assert_close(out, reference.conv2d(x, w, b, **kw), dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    for got, want in zip(
        functional.conv2d_backward(g, x, w, **kw), reference.conv2d_backward(g, x, w, **kw)
    ):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


@pytest.mark.parametrize(
    "name", ["3x3-pad1", "groups3", "same-even-dilated", "pointwise-1x1", "mixed", "c1"]
)
def test_one_image_spread_over_its_columns_matches_reference(spread, name, dtype, rng):
    """A single image splits its GEMMs over output columns and grad_weight rows."""
    x, w, b, kw = make_conv(CONV_CASES[name], dtype, rng)
    _check_conv_against_reference(x[:1], w, b, kw, dtype, rng)


def test_spread_and_serial_agree(spread, monkeypatch, rng):
    x, w, b, kw = make_conv(CONV_CASES["mixed"], np.float64, rng)
    x = np.concatenate([x] * 3)
    g = rng.standard_normal(functional.conv2d(x, w, b, **kw).shape)
    spread_out = functional.conv2d(x, w, b, **kw), functional.conv2d_backward(g, x, w, **kw)
    monkeypatch.setattr(_parallel, "_libraries", ())  # as without threadpoolctl
    assert _parallel.n_parts(len(x), 1) == 1
    serial_out = functional.conv2d(x, w, b, **kw), functional.conv2d_backward(g, x, w, **kw)
    np.testing.assert_array_equal(spread_out[0], serial_out[0])
    for a, c in zip(spread_out[1], serial_out[1]):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_ranges_cover_the_batch_in_order(spread):
    seen = []
    lock = threading.Lock()

    def work(lo, hi):
        with lock:
            seen.append((lo, hi))
        return lo

    assert _parallel.over_images(7, 1, work) == [0, 2, 4]
    assert sorted(seen) == [(0, 2), (2, 4), (4, 7)]
    assert _parallel.over_images(2, 1, work) == [0, 1]  # never more ranges than images
    assert _parallel.over_images(0, 1, work) == [0]


def test_small_work_stays_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(_config, "_num_threads", 4)
    assert _parallel.n_parts(64, _parallel.MIN_MACS_PER_THREAD // 64) == 1
    assert _parallel.n_parts(64, _parallel.MIN_MACS_PER_THREAD) == 4
    assert _parallel.n_parts(3, _parallel.MIN_MACS_PER_THREAD) == 3


def test_blas_threads_are_restored_after_success_and_error(spread):
    before = blas_threads()
    inside = []

    def work(lo, hi):
        inside.append(blas_threads())
        if lo > 0:
            raise RuntimeError("boom in a worker")
        return lo

    with pytest.raises(RuntimeError, match="boom in a worker"):
        _parallel.over_images(3, 1, work)
    assert len(inside) == 3
    assert all(n == [1] * len(before) for n in inside)  # BLAS held to one thread
    assert blas_threads() == before
    _parallel.over_images(3, 1, lambda lo, hi: lo)
    assert blas_threads() == before


def _in_thread(fn):
    box = {}
    t = threading.Thread(target=lambda: box.update(result=fn()))
    t.start()
    t.join()
    return box["result"]


@pytest.mark.parametrize("parts", [1, 3])
def test_blas_on_one_thread_whichever_thread_calls(monkeypatch, parts):
    """Regression: BLAS was held to one thread only when the thread that first set its
    count called (threadpoolctl lets only that thread change OpenBLAS's count), so a
    conv2d from a worker thread ran its GEMMs on BLAS's threads: slower, and with other
    rounding on some CPUs."""
    monkeypatch.setattr(_parallel, "MIN_MACS_PER_THREAD", 1)
    monkeypatch.setattr(_parallel, "GEMM_MIN_MACS_PER_THREAD", 1)
    monkeypatch.setattr(_config, "_num_threads", parts)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):  # main controls it
        before = blas_threads()
        inside = []
        _in_thread(
            lambda: _parallel.over_ranges(
                parts, 1, lambda lo, hi: inside.append(blas_threads())
            )
        )
        assert inside == [[1] * len(before)] * parts
        assert blas_threads() == before  # put back for other code


def test_many_callers_at_once_keep_blas_on_one_thread(spread):
    before = blas_threads()
    seen = []
    barrier = threading.Barrier(8)

    def work(lo, hi):
        seen.append(blas_threads())

    def caller():
        barrier.wait()
        for _ in range(10):
            _parallel.over_ranges(3, 1, work)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: caller(), range(8)))
    assert len(seen) == 8 * 10 * 3
    assert all(n == [1] * len(before) for n in seen)
    assert blas_threads() == before


def test_the_pool_stays_bounded_under_many_callers(spread):
    """Callers run their own unstarted ranges: overlapping calls share one pool of
    get_num_threads() - 1 threads instead of starting one team each."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: _parallel.over_ranges(3, 1, lambda lo, hi: lo), range(64)))
    assert len(_parallel._workers) <= max(pycnn.get_num_threads() - 1, 2)


# --- every public op, from many threads at once, bit for bit -----------------------


def _op_calls(dtype):
    """(name, call) for every public op of pycnn.functional, on inputs big enough to be
    spread over threads."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5, 13, 11)).astype(dtype)
    w = rng.standard_normal((8, 5, 3, 3)).astype(dtype)
    wg = rng.standard_normal((6, 1, 3, 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    g = rng.standard_normal((6, 8, 13, 11)).astype(dtype)
    cols = functional.im2col(x, 3, padding=1)
    out, idx = functional.max_pool2d(x, 3, 2, 1, return_indices=True)
    gp = rng.standard_normal(out.shape).astype(dtype)
    avg = functional.avg_pool2d(x, 3, 2, 1)
    lp = functional.lp_pool2d(np.abs(x), 2, 3, 2)
    x1, g1 = x[:1], g[:1]
    return [
        ("im2col", lambda: functional.im2col(x, 3, padding=1)),
        ("col2im", lambda: functional.col2im(cols, (13, 11), 3, padding=1)),
        ("conv2d", lambda: functional.conv2d(x, w, b, padding=1)),
        ("conv2d groups", lambda: functional.conv2d(x[:, :3], wg, None, 1, 1, 1, 3)),
        ("conv2d one image", lambda: functional.conv2d(x1, w, b, padding=1)),
        ("conv2d_backward", lambda: functional.conv2d_backward(g, x, w, padding=1)),
        ("conv2d_backward one image", lambda: functional.conv2d_backward(g1, x1, w, padding=1)),
        ("max_pool2d", lambda: functional.max_pool2d(x, 3, 2, 1, return_indices=True)),
        ("max_pool2d_backward", lambda: functional.max_pool2d_backward(gp, idx, x.shape)),
        ("avg_pool2d", lambda: functional.avg_pool2d(x, 3, 2, 1)),
        (
            "avg_pool2d_backward",
            lambda: functional.avg_pool2d_backward(avg * 0 + gp, x.shape, 3, 2, 1),
        ),
        ("lp_pool2d", lambda: functional.lp_pool2d(np.abs(x), 2, 3, 2)),
        (
            "lp_pool2d_backward",
            lambda: functional.lp_pool2d_backward(lp * 0 + 1, np.abs(x), 2, 3, 2),
        ),
        ("Linear", lambda: _parallel.matmul(x.reshape(6, -1), x.reshape(6, -1).T)),
        ("Linear grad", lambda: _parallel.matmul_t(x.reshape(6, -1), g.reshape(6, -1))),
    ]


def _flat(result):
    if isinstance(result, tuple):
        return [np.asarray(r) for r in result]
    return [np.asarray(result)]


def _assert_identical(got, want, name):
    for a, b in zip(_flat(got), _flat(want)):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), f"{name}: not bit-identical to the serial call"


@pytest.mark.parametrize(
    "with_threadpoolctl", [True, False], ids=["threadpoolctl", "no-threadpoolctl"]
)
@pytest.mark.parametrize("how", ["threads", "executor"])
def test_every_op_is_bit_identical_from_any_thread(
    spread, monkeypatch, dtype, how, with_threadpoolctl
):
    if not with_threadpoolctl:
        monkeypatch.setattr(_parallel, "_libraries", ())
    calls = _op_calls(dtype)
    serial = {name: call() for name, call in calls}
    results = []
    lock = threading.Lock()

    def everything():
        for name, call in calls:
            got = call()
            with lock:
                results.append((name, got))

    if how == "threads":
        barrier = threading.Barrier(8)

        def target():
            barrier.wait()
            everything()

        threads = [threading.Thread(target=target) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: everything(), range(8)))
    assert len(results) == 8 * len(calls)
    for name, got in results:
        _assert_identical(got, serial[name], name)


@pytest.mark.parametrize("rows", [0, 1, 5])
def test_spread_matmuls_match_numpy(spread, rows, dtype, rng):
    a = rng.standard_normal((rows, 4)).astype(dtype)
    b = rng.standard_normal((4, 3)).astype(dtype)
    c = rng.standard_normal((rows, 3)).astype(dtype)
    got = _parallel.matmul(a, b)
    assert got.dtype == dtype and got.shape == (rows, 3)
    assert_close(got, a @ b, dtype)
    got_t = _parallel.matmul_t(a, c)
    assert got_t.dtype == dtype and got_t.shape == (4, 3)
    assert_close(got_t, a.T @ c, dtype)


def test_blas_stays_on_one_thread_for_every_call(monkeypatch):
    """Small work runs on the calling thread with BLAS held to one thread (its idle
    threads would spin beside pycnn's); one big image spreads its GEMMs over pycnn's
    threads instead of BLAS's, so the count never depends on the work."""
    monkeypatch.setattr(_config, "_num_threads", 2)
    before = blas_threads()
    seen = {}

    def work(lo, hi):
        seen[(lo, hi)] = blas_threads()

    _parallel.over_images(4, 1, work)
    assert seen.pop((0, 4)) == [1] * len(before)
    _parallel.over_images(1, 2 * _parallel.MIN_MACS_PER_THREAD, work)
    assert seen.pop((0, 1)) == [1] * len(before)
    assert blas_threads() == before


@pytest.mark.parametrize("hw", [8, 40], ids=["one-range", "spread"])
def test_every_gemm_of_one_image_runs_on_one_blas_thread(monkeypatch, hw, rng):
    """Regression: a one-image convolution whose GEMM stays in one range took a
    shortcut around over_ranges and ran it on all of BLAS's threads when called on its
    own (outside `Sequential`, which holds BLAS for the whole pass). On im2col: one
    float32 image of 16 channels would otherwise take Winograd (no BLAS call)."""
    monkeypatch.setattr(_config, "_num_threads", 2)
    monkeypatch.setattr(_config, "_winograd", False)
    before = blas_threads()
    seen = []
    matmul = np.matmul

    def spy(*args, **kwargs):
        seen.append(blas_threads())
        return matmul(*args, **kwargs)

    monkeypatch.setattr(np, "matmul", spy)
    x = rng.standard_normal((1, 16, hw, hw)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    functional.conv2d(x, w, padding=1)
    assert seen and all(n == [1] * len(before) for n in seen)
    assert blas_threads() == before


def test_workspace_kept_between_calls_is_bounded(monkeypatch):
    """Regression: one conv2d with a huge column matrix left it cached on every thread
    that ran (1.3 GiB for (1, 4, 1024, 1024) with a 9x9 kernel)."""
    x = np.zeros((1, 4, 160, 160), np.float32)  # columns: 4*81*160*160*4 B = 33 MB
    w = np.zeros((2, 4, 9, 9), np.float32)
    functional.conv2d(x, w, padding=4)
    functional.conv2d_backward(np.zeros((1, 2, 160, 160), np.float32), x, w, padding=4)
    kept = getattr(_conv._local, "buffer", None)
    assert kept is None or kept.nbytes <= _conv.WORKSPACE_CACHE_BYTES
    small = np.zeros((8, 4, 16, 16), np.float32)  # steady state: reused, not reallocated
    functional.conv2d(small, w, padding=4)
    first = _conv._local.buffer
    functional.conv2d(small, w, padding=4)
    assert _conv._local.buffer is first
