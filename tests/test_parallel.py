"""Convolutions spread over the images of a batch (pycnn._parallel)."""
import threading

import numpy as np
import pytest
from conftest import CONV_CASES, assert_close, make_conv

import pycnn
from pycnn import _config, _parallel, functional, reference

pytest.importorskip("threadpoolctl", reason="spreading over images needs threadpoolctl")


@pytest.fixture
def spread(monkeypatch):
    """Every convolution, however small, spread over 3 threads (more than the cores)."""
    monkeypatch.setattr(_parallel, "MIN_MACS_PER_THREAD", 1)
    monkeypatch.setattr(_config, "_num_threads", None)
    pycnn.set_num_threads(3)
    yield
    monkeypatch.setattr(_config, "_num_threads", None)


def blas_threads():
    return [c.num_threads for c in _parallel._blas_controllers()]


@pytest.mark.parametrize("name", ["3x3-pad1", "groups3", "same-even-dilated",
                                  "pointwise-1x1", "mixed", "stride-not-dividing"])
def test_spread_convolution_matches_reference(spread, name, dtype, rng):
    x, w, b, kw = make_conv(CONV_CASES[name], dtype, rng)
    x = np.concatenate([x, x[::-1], x[:1] * 2])         # 5 images: ranges of 1 and 2
    assert _parallel.n_parts(len(x), 1) == 3
    out = functional.conv2d(x, w, b, **kw)
    assert_close(out, reference.conv2d(x, w, b, **kw), dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    for got, want in zip(functional.conv2d_backward(g, x, w, **kw),
                         reference.conv2d_backward(g, x, w, **kw)):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


def test_spread_and_serial_agree(spread, monkeypatch, rng):
    x, w, b, kw = make_conv(CONV_CASES["mixed"], np.float64, rng)
    x = np.concatenate([x] * 3)
    g = rng.standard_normal(functional.conv2d(x, w, b, **kw).shape)
    spread_out = functional.conv2d(x, w, b, **kw), functional.conv2d_backward(g, x, w, **kw)
    monkeypatch.setattr(_parallel, "_blas", ())          # as without threadpoolctl
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
    assert _parallel.over_images(2, 1, work) == [0, 1]   # never more ranges than images
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
    assert all(n == [1] * len(before) for n in inside)   # BLAS held to one thread
    assert blas_threads() == before
    _parallel.over_images(3, 1, lambda lo, hi: lo)
    assert blas_threads() == before


def test_overlapping_calls_from_threads_restore_blas_threads(spread, rng):
    before = blas_threads()
    x, w, b, kw = make_conv(CONV_CASES["3x3-pad1"], np.float32, rng)
    x = np.concatenate([x] * 4)
    want = functional.conv2d(x, w, b, **kw)
    results = []
    barrier = threading.Barrier(6)

    def target():
        barrier.wait()
        for _ in range(20):
            results.append(functional.conv2d(x, w, b, **kw))

    threads = [threading.Thread(target=target) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 120
    for got in results:
        np.testing.assert_array_equal(got, want)
    assert blas_threads() == before


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


def test_blas_stays_on_one_thread_unless_one_image_needs_more(monkeypatch):
    """Small work runs on the calling thread with BLAS held to one thread (its idle
    threads would spin beside pycnn's); a single image with enough work for several
    threads keeps BLAS's threads, to share its GEMMs."""
    monkeypatch.setattr(_config, "_num_threads", 2)
    before = blas_threads()
    seen = {}

    def work(lo, hi):
        seen[(lo, hi)] = blas_threads()

    _parallel.over_images(4, 1, work)
    assert seen.pop((0, 4)) == [1] * len(before)
    _parallel.over_images(1, 2 * _parallel.MIN_MACS_PER_THREAD, work)
    assert seen.pop((0, 1)) == before
    assert blas_threads() == before
