"""10,000 calls of every compiled op of the table (pycnn/_ops.py), on the success path
and on error paths that raise after some work: the inputs' reference counts, the
interpreter's allocated blocks and the resident memory of the process must all stay
flat.

A leaked Python object (an array, a memoryview, a tuple: one per call) shows up as
10,000 more allocated blocks; a leaked output buffer (every output here is >= 1 KiB)
as >= 10 MiB of resident memory; a leaked reference as a changed refcount.
"""

import gc
import mmap
import os
import sys

import numpy as np
import pytest

from pycnn import functional as F
from pycnn._ext import load_kernels
from pycnn._ops import OPS

CALLS = 10_000
WARMUP = 200  # first calls fill caches, workspaces and free lists
MAX_BLOCK_GROWTH = 500  # allocated blocks: < 1 per 20 calls
MAX_RSS_GROWTH = 4 * 2**20  # bytes: < 420 bytes a call

_STATM = "/proc/self/statm"
HAVE_STATM = os.path.exists(_STATM)
if sys.platform.startswith("linux") and not HAVE_STATM:  # never silently off on Linux
    raise RuntimeError(f"{_STATM} is missing on Linux: resident memory cannot be checked")


def _asan_loaded():
    """AddressSanitizer in this process (tools/sanitize.sh): its quarantine holds freed
    memory back on purpose, so resident memory grows without any leak."""
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


UNDER_ASAN = _asan_loaded()


def _rss():
    """Resident set size of this process in bytes (None without /proc or under ASan,
    where refcounts and allocated blocks are still checked)."""
    if not HAVE_STATM or UNDER_ASAN:
        return None
    with open(_STATM) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _inputs():
    rng = np.random.default_rng(0)
    a = {}
    a["x"] = rng.standard_normal((2, 3, 8, 8))  # float64, 3 KiB
    a["x32"] = a["x"].astype(np.float32)
    a["w"] = rng.standard_normal((4, 3, 3, 3))
    a["cols"] = F.im2col(a["x"], 3, padding=1)  # (2, 27, 64)
    out, idx = F.max_pool2d(a["x"], 2, return_indices=True)
    a["g_pool"] = rng.standard_normal(out.shape)  # (2, 3, 4, 4)
    a["idx"] = idx
    a["idx_bad"] = idx.copy()
    a["idx_bad"][1, 2, 3, 3] = 64  # one past the plane
    a["g_wrong"] = rng.standard_normal((2, 3, 5, 4))
    a["x_int"] = np.arange(2 * 3 * 8 * 8).reshape(2, 3, 8, 8)
    return a


A = _inputs()
SHAPE = A["x"].shape
_k = load_kernels()

# The table's example call of every op (pycnn/_ops.py), on float64 batches of 8: every
# op's first output is >= 1 KiB.
TABLE_ARGS = {name: op.example_args(np.float64, n=8) for name, op in OPS.items()}


def _table_call(name):
    function, args = getattr(F, name), TABLE_ARGS[name]
    return lambda: function(**args)


# name: (call, exception or None); every call uses only the arrays in A and TABLE_ARGS
CASES = {
    **{name: (_table_call(name), None) for name in OPS},
    # --- success paths: every op of the table (above), and these -------------------
    "max_pool2d-no-indices": (lambda: F.max_pool2d(A["x"], 2), None),
    "non-contiguous-float32": (
        lambda: F.conv2d(A["x32"][:, :, ::2], A["w"][:, :, ::2].astype(np.float32), padding=1),
        None,
    ),
    # --- error paths: raised after validation, allocation or a kernel has run -----
    "conv2d-mixed-dtypes": (lambda: F.conv2d(A["x32"], A["w"], padding=1), TypeError),
    "conv2d-int-input": (lambda: F.conv2d(A["x_int"], A["w"]), TypeError),
    "conv2d-channel-mismatch": (lambda: F.conv2d(A["x"][:, :2], A["w"]), ValueError),
    "conv2d_backward-wrong-grad-shape": (
        lambda: F.conv2d_backward(A["g_pool"], A["x"], A["w"], padding=1),
        ValueError,
    ),
    "im2col-kernel-too-large": (lambda: F.im2col(A["x"], 9), ValueError),
    "col2im-wrong-block-count": (lambda: F.col2im(A["cols"], (7, 8), 3, padding=1), ValueError),
    "max_pool2d-padding-over-half": (lambda: F.max_pool2d(A["x"], 2, padding=2), ValueError),
    "max_pool2d_backward-index-out-of-range": (  # raised after the kernel ran
        lambda: F.max_pool2d_backward(A["g_pool"], A["idx_bad"], SHAPE),
        ValueError,
    ),
    "max_pool2d_backward-wrong-index-dtype": (
        lambda: F.max_pool2d_backward(A["g_pool"], A["idx"].astype(np.int32), SHAPE),
        TypeError,
    ),
    "avg_pool2d-int-input": (lambda: F.avg_pool2d(A["x_int"], 2), TypeError),
    "avg_pool2d_backward-wrong-grad-shape": (
        lambda: F.avg_pool2d_backward(A["g_wrong"], SHAPE, 2),
        ValueError,
    ),
    "linear-in-features-mismatch": (
        lambda: F.linear(A["x"], A["w"].reshape(4, 27)),
        ValueError,
    ),
    "linear_backward-wrong-grad-shape": (
        lambda: F.linear_backward(A["g_wrong"], A["x"], A["w"].reshape(9, 12)[:, :8]),
        ValueError,
    ),
    "lp_pool2d-bad-norm": (lambda: F.lp_pool2d(A["x"], -1, 2), ValueError),
    "lp_pool2d_backward-wrong-grad-shape": (
        lambda: F.lp_pool2d_backward(A["g_wrong"], A["x"], 2, 2),
        ValueError,
    ),
    # the extension's own memory guard, after its memoryviews were acquired
    "kernels.im2col-wrong-cols": (
        lambda: _k.im2col(A["x"], A["cols"][:, :26], 3, 3, 1, 1, 1, 1, 1, 1, 8, 8),
        ValueError,
    ),
    "kernels.max_pool2d_forward-wrong-indices": (
        lambda: _k.max_pool2d_forward(
            A["x"].reshape(6, 8, 8),
            A["g_pool"].reshape(6, 4, 4),
            A["idx"].reshape(6, 4, 4)[:, :, :3].copy(),
            2,
            2,
            2,
            2,
            0,
            0,
            1,
            1,
        ),
        ValueError,
    ),
}


def _run(call, exc, n):
    if exc is None:
        for _ in range(n):
            call()
        return
    for _ in range(n):
        try:
            call()
        except exc:
            pass
        else:
            raise AssertionError(f"expected {exc.__name__}")


def _refcounts():
    counts = {k: sys.getrefcount(v) for k, v in A.items()}
    counts.update(
        {
            (op, k): sys.getrefcount(v)
            for op, args in TABLE_ARGS.items()
            for k, v in args.items()
            if isinstance(v, np.ndarray)
        }
    )
    return counts


@pytest.mark.parametrize("name", CASES)
def test_repeated_calls_do_not_leak(name):
    call, exc = CASES[name]
    _run(call, exc, WARMUP)
    gc.collect()
    refs, blocks, rss = _refcounts(), sys.getallocatedblocks(), _rss()
    _run(call, exc, CALLS)
    gc.collect()
    assert _refcounts() == refs, "an input's reference count changed"
    grown = sys.getallocatedblocks() - blocks
    assert grown < MAX_BLOCK_GROWTH, f"{grown} more allocated blocks after {CALLS} calls"
    if rss is not None:
        grown = _rss() - rss
        assert grown < MAX_RSS_GROWTH, (
            f"resident memory grew by {grown / 2**20:.1f} MiB over {CALLS} calls"
        )


@pytest.mark.skipif(
    not HAVE_STATM,
    reason=f"no {_STATM}: resident memory growth is not "
    "checked on this platform (refcounts and "
    "allocated blocks still are)",
)
def test_resident_memory_measurement_sees_a_leak():
    """The RSS probe the tests above rely on does see 16 MiB of new pages written to (a
    fresh mapping: malloc could hand back freed pages that are already resident)."""
    if UNDER_ASAN:
        pytest.skip("AddressSanitizer's quarantine makes resident memory grow by design")
    size = 16 * 2**20
    with mmap.mmap(-1, size) as kept:
        before = _rss()
        for offset in range(0, size, mmap.PAGESIZE):
            kept[offset] = 1
        assert _rss() - before >= 15 * 2**20
