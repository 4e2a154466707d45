"""Convolutions spread over the images of a batch, one BLAS thread per image range.

BLAS threads one GEMM at a time. The GEMMs of a convolution are small (one chunk of
images: a few MFLOP), so BLAS's threads spend much of each call waiting for each
other, and the im2col/col2im between two GEMMs runs on one core while the others
idle. When another process competes for the cores, threads that wait on each other
lose their time slices and a convolution can take many times longer.

So pycnn does what PyTorch does on the CPU: `over_images` splits the batch into one
contiguous range of images per thread (`pycnn.get_num_threads()` of them) and runs
the whole per-image pipeline (im2col, GEMM, col2im) of each range on its own Python
thread, with BLAS held to one thread meanwhile. NumPy's matmul and pycnn's kernels
release the GIL, so the threads run in parallel. `Linear` spreads its rows the same
way (`matmul`, `matmul_t`), so that no pycnn layer wakes BLAS's own threads: after
each multi-threaded call they spin for a while, and in a training step those spinning
threads slowed the convolutions that followed (measured: a step of a small CIFAR
network took 86-90 ms this way against 58-67 ms with BLAS on one thread throughout).

Holding BLAS to one thread needs threadpoolctl; without it, the whole batch runs on
the calling thread and BLAS threads each GEMM. While pycnn holds BLAS to one thread,
it does so for the whole process: a NumPy matmul in another thread at that moment
runs on one thread too.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from pycnn._config import get_num_threads

__all__ = ["over_images", "matmul", "matmul_t"]

# Below this many multiply-adds per thread (~50 µs of GEMM), handing a range of
# images to another thread costs more than it saves.
MIN_MACS_PER_THREAD = 1 << 21

_lock = threading.Lock()
_executor = None     # created on first use; threads start lazily, as work needs them
_blas = None         # threadpoolctl's BLAS controllers, or () when there are none
_single_depth = 0    # calls holding BLAS to one thread now, in any thread
_saved_threads = ()  # BLAS thread counts to restore when the last one ends


def _reset_after_fork():
    # a forked child has none of the parent's threads: start from scratch
    global _lock, _executor, _single_depth
    _lock, _executor, _single_depth = threading.Lock(), None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _blas_controllers():
    """threadpoolctl's controllers of the BLAS libraries loaded, () without them."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas = tuple(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # not installed, or a BLAS it cannot drive: stay serial
            _blas = ()
    return _blas


class _SingleThreadedBlas:
    """BLAS on one thread while any `over_images` call runs (calls may overlap)."""

    def __enter__(self):
        global _single_depth, _saved_threads
        with _lock:
            if _single_depth == 0:
                _saved_threads = tuple(c.num_threads for c in _blas)
                for c in _blas:
                    c.set_num_threads(1)
            _single_depth += 1

    def __exit__(self, *exc_info):
        global _single_depth
        with _lock:
            _single_depth -= 1
            if _single_depth == 0:
                for c, n in zip(_blas, _saved_threads):
                    c.set_num_threads(n)


def _pool():
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max(32, os.cpu_count() or 1),
                                           thread_name_prefix="pycnn")
        return _executor


def n_parts(n_images, macs_per_image):
    """How many ranges `over_images` splits `n_images` images into."""
    if not _blas_controllers():
        return 1
    return max(1, min(get_num_threads(), n_images,
                      n_images * macs_per_image // MIN_MACS_PER_THREAD))


def over_images(n_images, macs_per_image, work):
    """Call ``work(lo, hi)`` on contiguous ranges covering ``range(n_images)``.

    The ranges run in parallel, one per thread, and the results come back in range
    order. `work` must only write to its own images. The split depends on the thread
    count and the sizes only, so equal calls give bit-identical results. BLAS runs on
    one thread throughout, even with a single range, so that its idle threads never
    spin beside pycnn's; only a single image with enough work for several threads
    leaves BLAS its threads, to share that image's GEMMs.
    """
    parts = n_parts(n_images, macs_per_image)
    if not _blas_controllers() or (
            parts == 1 and macs_per_image >= 2 * MIN_MACS_PER_THREAD
            and get_num_threads() > 1):
        return [work(0, n_images)]
    with _SingleThreadedBlas():
        if parts == 1:
            return [work(0, n_images)]
        bounds = [n_images * p // parts for p in range(parts + 1)]
        pool = _pool()
        futures = [pool.submit(work, bounds[p], bounds[p + 1]) for p in range(1, parts)]
        try:
            first = work(bounds[0], bounds[1])   # the calling thread takes a range too
        finally:
            wait(futures)                        # never return while others still write
        return [first] + [f.result() for f in futures]


def matmul(a, b):
    """``a @ b`` for a 2-D `a`, its rows spread over pycnn's threads like images."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))

    def rows(lo, hi):
        np.matmul(a[lo:hi], b, out=out[lo:hi])

    over_images(a.shape[0], a.shape[1] * b.shape[1], rows)
    return out


def matmul_t(a, b):
    """``a.T @ b`` for 2-D `a` and `b` with as many rows, summed over row ranges."""
    def rows(lo, hi):
        return np.matmul(a[lo:hi].T, b[lo:hi])

    return sum(over_images(a.shape[0], a.shape[1] * b.shape[1], rows))
