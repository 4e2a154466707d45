"""Work spread over pycnn's threads, with BLAS on one thread meanwhile.

BLAS threads one GEMM at a time. The GEMMs of a convolution are small (one chunk of
images: a few MFLOP), so BLAS's threads spend much of each call waiting for each
other, and the im2col/col2im between two GEMMs runs on one core while the others
idle. So pycnn does what PyTorch does on the CPU: `over_ranges` splits the work (the
images of a batch, or the columns of one image's GEMM) into one contiguous range per
thread (`pycnn.get_num_threads()` of them) and runs each range on its own thread, with
BLAS on one thread meanwhile. NumPy's matmul and pycnn's kernels release the GIL, so
the ranges run in parallel. `Linear` spreads its rows the same way (`matmul`,
`matmul_t`), so that no pycnn layer wakes BLAS's own threads: after each
multi-threaded call they spin for a while, and in a training step those spinning
threads slowed the convolutions that followed (measured: a step of a small CIFAR
network took 86-90 ms this way against 58-67 ms with BLAS on one thread throughout).

Results never depend on the thread that calls: the ranges depend only on the sizes and
`get_num_threads()`, partial results are combined in range order, and every GEMM runs
on one BLAS thread, whichever thread calls and however many calls overlap.

Holding BLAS to one thread, from any thread
-------------------------------------------
threadpoolctl finds the BLAS libraries loaded. Their thread counts are of two kinds:
- process-wide (OpenBLAS with its own pthreads pool, MKL, BLIS): pycnn sets it to one
  when the first of its calls starts, in whichever thread, and puts back the value it
  found when the last one ends. pycnn calls the library's own setter: threadpoolctl
  (3.8) lets only the first thread that ever set OpenBLAS's count change it and
  silently ignores every other thread, so that a conv2d from a worker thread ran its
  GEMMs on BLAS's threads, 5-50 times slower and with other rounding. While a pycnn
  call runs, a NumPy matmul in another thread runs on one BLAS thread too.
- per thread (OpenBLAS built on OpenMP): pycnn's own threads set it to one for good,
  and the calling thread for the length of the call.
After setting, pycnn reads the count back; a library that does not obey leaves pycnn
serial (the whole call on the calling thread), as it is without threadpoolctl.
`Sequential.forward` and `backward` hold BLAS at one thread for the whole pass, so the
ops inside skip setting and restoring it; a custom layer's own NumPy matmul in such a
pass runs on one BLAS thread too.

Many calls at once
------------------
pycnn's threads are one pool for the process, `get_num_threads() - 1` threads that
take ranges from a queue; the calling thread runs the first range itself and then
every range of its own call that no pool thread has started. Eight threads calling
conv2d at once therefore keep at most eight plus the pool busy, instead of each
starting a team of its own.
"""

import ctypes
import os
import queue
import threading

import numpy as np

from pycnn._config import get_num_threads

__all__ = [
    "over_ranges",
    "over_images",
    "one_blas_thread",
    "team",
    "matmul",
    "matmul_t",
    "blas_status",
]

# Below this many multiply-adds per thread (~50 µs of GEMM), handing a range to another
# thread costs more than it saves.
MIN_MACS_PER_THREAD = 1 << 21
# For `matmul` and `matmul_t`, one GEMM cut into row ranges: each range is a smaller,
# less efficient GEMM. Measured (float32, 2 threads, K=576, N=128), one call / split
# (µs): 64 rows (4.7M multiply-adds) 115/143, 128 rows 213/185, 256 rows 406/288.
GEMM_MIN_MACS_PER_THREAD = 1 << 22


# --- BLAS thread counts ----------------------------------------------------------------


class _Library:
    """One BLAS library's thread count: `get()`, `set(n)`, and whether it is per thread."""

    def __init__(self, controller):
        self.name = f"{controller.internal_api} ({controller.filepath})"
        layer = getattr(controller, "threading_layer", None)
        self.per_thread = layer == "openmp"
        self._get = lambda: controller.num_threads
        self._set = controller.set_num_threads
        dynlib = getattr(controller, "dynlib", None)
        if controller.internal_api == "openblas" and not self.per_thread and dynlib:
            self._bind_openblas(dynlib)

    def _bind_openblas(self, dynlib):
        # OpenBLAS's own setter and getter, whatever prefix and suffix this build gave
        # them (scipy-openblas: scipy_openblas_set_num_threads64_)
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_", "_64"):
                setter = getattr(dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
                getter = getattr(dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    self._set, self._get = setter, getter
                    return

    def get(self):
        return int(self._get())

    def set(self, n):
        self._set(n)


_lock = threading.Lock()
_libraries = None  # the BLAS libraries loaded, or () when they cannot be driven
_global_depth = 0  # pycnn calls holding process-wide counts at one now, any thread
_saved = ()  # the process-wide counts to put back when the last one ends
_local = threading.local()  # per thread: levels held (`held`) and saved per-thread counts


def _blas_libraries():
    """The BLAS libraries pycnn can hold to one thread; () without threadpoolctl."""
    global _libraries
    if _libraries is None:
        try:
            from threadpoolctl import ThreadpoolController

            found = ThreadpoolController().select(user_api="blas").lib_controllers
            libraries = tuple(_Library(c) for c in found)
            _check_obeys(libraries)
        except Exception:  # not installed, or a BLAS it cannot drive: stay serial
            libraries = ()
        _libraries = libraries
    return _libraries


def _check_obeys(libraries):
    """Raise unless every library's count can be set to one and put back from here."""
    for lib in libraries:
        before = lib.get()
        lib.set(1)
        obeyed = lib.get() == 1
        lib.set(before)
        if not obeyed or lib.get() != before:
            raise RuntimeError(f"{lib.name} does not take a thread count")


class _OneBlasThread:
    """BLAS on one thread while any pycnn call runs, whichever threads they run in.

    Re-entrant and cheap when nested: a thread that holds BLAS at one already (a layer
    inside `Sequential.forward`, an op inside a layer) only counts the level, so a
    network pass sets and restores the counts once, not once per op."""

    def __enter__(self):
        global _global_depth, _saved
        held = getattr(_local, "held", 0)
        if held:
            _local.held = held + 1
            return self
        shared, own = _kinds()
        if shared:
            with _lock:
                if _global_depth == 0:
                    _saved = tuple(lib.get() for lib in shared)
                    for lib, n in zip(shared, _saved):
                        if n != 1:
                            lib.set(1)
                _global_depth += 1
        if own:
            _local.saved = tuple(lib.get() for lib in own)
            for lib, n in zip(own, _local.saved):
                if n != 1:
                    lib.set(1)
        _local.held = 1
        return self

    def __exit__(self, *exc_info):
        global _global_depth
        _local.held -= 1
        if _local.held:
            return
        shared, own = _kinds()
        for lib, n in zip(own, getattr(_local, "saved", ())):
            if n != 1:
                lib.set(n)
        if shared:
            with _lock:
                _global_depth -= 1
                if _global_depth == 0:
                    for lib, n in zip(shared, _saved):
                        if n != 1:
                            lib.set(n)


_by_kind = None  # (libraries, process-wide ones, per-thread ones), see _kinds


def _kinds():
    """The BLAS libraries pycnn drives, as (process-wide, per-thread) tuples."""
    global _by_kind
    libraries = _blas_libraries()
    if _by_kind is None or _by_kind[0] is not libraries:
        _by_kind = (
            libraries,
            tuple(lib for lib in libraries if not lib.per_thread),
            tuple(lib for lib in libraries if lib.per_thread),
        )
    return _by_kind[1:]


one_blas_thread = _OneBlasThread


def blas_status():
    """[(library, thread count now)] of the BLAS libraries pycnn drives (for `pycnn info`
    and the tests); [] without threadpoolctl."""
    return [(lib.name, lib.get()) for lib in _blas_libraries()]


# --- the pool -------------------------------------------------------------------------


class _Task:
    """One range of one call. Whoever acquires `claim` first runs it: a pool thread, or
    the calling thread once its own first range is done."""

    __slots__ = ("work", "lo", "hi", "claim", "done", "result", "error")

    def __init__(self, work, lo, hi):
        self.work, self.lo, self.hi = work, lo, hi
        self.claim, self.done = threading.Lock(), threading.Event()
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.work(self.lo, self.hi)
        except BaseException as exc:  # handed to the caller, which raises it
            self.error = exc
        finally:
            self.done.set()


_queue: queue.SimpleQueue = queue.SimpleQueue()
_workers: list = []


def _worker():
    for lib in _blas_libraries():
        if lib.per_thread:  # a pool thread runs nothing but pycnn's ranges
            lib.set(1)
    while True:
        task = _queue.get()
        if task.claim.acquire(blocking=False):
            task.run()


def _ensure_workers(n):
    """At least `n` pool threads (they live as long as the process, idle in a queue)."""
    if len(_workers) >= n:
        return
    with _lock:
        while len(_workers) < n:
            t = threading.Thread(target=_worker, name=f"pycnn-{len(_workers)}", daemon=True)
            t.start()
            _workers.append(t)


def _reset_after_fork():
    # a forked child has none of the parent's threads: start from scratch
    global _lock, _queue, _workers, _global_depth, _local, _teams
    _lock, _queue, _workers = threading.Lock(), queue.SimpleQueue(), []
    _global_depth, _local, _teams = 0, threading.local(), 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _run(work, bounds):
    """Run ``work(bounds[p], bounds[p + 1])`` for every p, in parallel; results in order."""
    tasks = [_Task(work, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    _ensure_workers(len(tasks) - 1)
    for task in tasks[1:]:
        _queue.put(task)
    for task in tasks:  # the first one is ours; then any that nobody has started
        if task.claim.acquire(blocking=False):
            task.run()
    for task in tasks:  # never return while others still write
        task.done.wait()
    for task in tasks:
        if task.error is not None:
            raise task.error
    return [task.result for task in tasks]


# --- the public helpers ---------------------------------------------------------------


def n_parts(n_items, macs_per_item, min_macs=None):
    """How many ranges `over_ranges` splits `n_items` items into (ranges of at least
    `min_macs` multiply-adds, MIN_MACS_PER_THREAD by default)."""
    parts = n_items * macs_per_item // (min_macs or MIN_MACS_PER_THREAD)
    if parts < 2 or not _blas_libraries():  # the common small call, decided first
        return 1
    return min(get_num_threads(), n_items, parts)


def over_ranges(n_items, macs_per_item, work, min_macs=None):
    """Call ``work(lo, hi)`` on contiguous ranges covering ``range(n_items)``, of at
    least `min_macs` multiply-adds each (MIN_MACS_PER_THREAD by default).

    The ranges run in parallel, one per thread, and the results come back in range
    order. `work` must only write to its own items. The split depends on the thread
    count and the sizes only, so equal calls give bit-identical results, from any
    thread. BLAS runs on one thread throughout, even with a single range, so that its
    idle threads never spin beside pycnn's. Without threadpoolctl, one range on the
    calling thread, with BLAS as it is.
    """
    if not _blas_libraries():
        return [work(0, n_items)]
    parts = n_parts(n_items, macs_per_item, min_macs)
    if parts == 1 and getattr(_local, "held", 0):  # inside a pass that holds BLAS
        return [work(0, n_items)]
    with _OneBlasThread():
        if parts == 1:
            return [work(0, n_items)]
        return _run(work, [n_items * p // parts for p in range(parts + 1)])


over_images = over_ranges

_teams = 0  # compiled kernels running an OpenMP team now, in any thread


class team:
    """``with team(n) as threads``: the OpenMP threads for one kernel call.

    `n` when no other pycnn kernel runs a team at the moment, else 1: OpenMP gives each
    calling thread a team of its own, so eight threads calling a pooling op at once
    would keep sixteen threads busy on two cores (measured: 1.5-1.9x the time per call).
    The kernels that take a team (im2col, col2im, pooling) give the same result on any
    number of threads, so only the time depends on it."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        global _teams
        if self.n == 1:
            return 1
        with _lock:
            busy = _teams > 0
            _teams += 1
        return 1 if busy else self.n

    def __exit__(self, *exc_info):
        global _teams
        if self.n != 1:
            with _lock:
                _teams -= 1


def matmul(a, b):
    """``a @ b`` for a 2-D `a`, its rows spread over pycnn's threads like images."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))

    def rows(lo, hi):
        np.matmul(a[lo:hi], b, out=out[lo:hi])

    over_ranges(a.shape[0], a.shape[1] * b.shape[1], rows, GEMM_MIN_MACS_PER_THREAD)
    return out


def matmul_t(a, b):
    """``a.T @ b`` for 2-D `a` and `b` with as many rows, summed over row ranges."""

    def rows(lo, hi):
        return np.matmul(a[lo:hi].T, b[lo:hi])

    return sum(over_ranges(a.shape[0], a.shape[1] * b.shape[1], rows, GEMM_MIN_MACS_PER_THREAD))
