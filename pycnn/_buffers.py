"""Output arrays reused from one training step to the next: `empty(shape, dtype)`.

A step allocates the same large arrays every time (each layer's output, each
gradient), and freeing them lets glibc hand the top of its heap back to the system,
to be mapped (and page-faulted) again on the next step: 1,600-1,700 page faults a step
on the MNIST CNN at batch 64, 9-14% of its time (measured: the same step with glibc's
thresholds raised in the environment took 13 faults and 31-34 ms instead of 34-39).

So arrays of at least MIN_BYTES are kept after use and handed out again for the same
shape and dtype once nothing else refers to them: their reference count shows only the
pool's own reference (what that count reads is measured once, through the same code,
as interpreters differ: see `_free_count`). An array that a caller still holds, that a
layer keeps for its backward, or that a view is based on, has more references and is
never handed out again; what `empty` returns is new to whoever receives it. The pools
are per thread (two threads cannot take the same array), with at most SLOTS arrays a
shape and MAX_BYTES in all a thread; `clear()` lets the calling thread's go
(`Sequential.fit`, `evaluate` and `predict` call it when they end).
"""

import math
import sys
import threading

import numpy as np

__all__ = ["empty", "clear"]

MIN_BYTES = 1 << 17  # smaller arrays come from malloc's free lists, without faults
SLOTS = 16  # arrays kept per (shape, dtype): several layers share a shape
MAX_BYTES = 256 << 20  # kept per thread (a ResNet-20 step at batch 64 needs ~140 MB)

_local = threading.local()


def empty(shape, dtype):
    """An uninitialised C-contiguous array, like ``np.empty(shape, dtype)``, perhaps
    one that was handed out before and is referenced by nothing else any more."""
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES or not _FREE:
        return np.empty(shape, dtype)
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
        _local.nbytes = 0
    kept = pool.setdefault((shape, dtype), [])
    a = _first_free(kept, _FREE)
    if a is not None:
        return a
    a = np.empty(shape, dtype)
    if len(kept) < SLOTS and _local.nbytes + nbytes <= MAX_BYTES:
        kept.append(a)
        _local.nbytes += nbytes
    return a


def _first_free(kept, free):
    """The first array of `kept` whose reference count is `free`, or None."""
    for a in kept:
        if sys.getrefcount(a) == free:
            return a
    return None


def _free_count():
    """What `_first_free` sees for an object that only its list refers to: 3 (the
    list's, the loop variable's and getrefcount's argument's) up to CPython 3.13, 2
    from 3.14, which can pass a local without a reference of its own. Measured through
    `_first_free` itself; 0 (no reuse at all) if no count matches."""
    probe = [object()]
    return next((n for n in range(1, 8) if _first_free(probe, n) is not None), 0)


_FREE = _free_count()


def clear():
    """Let this thread's kept arrays go (those still in use stay with their users)."""
    _local.pool = {}
    _local.nbytes = 0
