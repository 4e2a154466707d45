"""`pycnn._buffers`: large output arrays are handed out again only when nothing else
refers to them, so no caller, layer cache or view ever sees its data overwritten."""

import threading

import numpy as np
import pytest

import pycnn
from pycnn import _buffers

BIG = (64, 16, 8, 8)  # 256 KiB in float32: kept


@pytest.fixture(autouse=True)
def fresh_pool():
    _buffers.clear()
    yield
    _buffers.clear()


def test_an_array_nothing_refers_to_is_handed_out_again():
    a = _buffers.empty(BIG, np.float32)
    first = id(a)
    del a
    b = _buffers.empty(BIG, np.float32)
    assert id(b) == first
    assert b.shape == BIG and b.dtype == np.float32 and b.flags.c_contiguous


@pytest.mark.parametrize("hold", ["array", "view", "reshape", "list"])
def test_an_array_still_referred_to_is_never_handed_out(hold):
    a = _buffers.empty(BIG, np.float32)
    a[...] = 1.0
    kept = {"array": a, "view": a[1:], "reshape": a.reshape(-1), "list": [a]}[hold]
    del a
    b = _buffers.empty(BIG, np.float32)
    b[...] = 2.0
    values = kept[0] if hold == "list" else kept
    assert np.all(values == 1.0)


def test_the_free_count_is_measured_through_the_same_code():
    """What `_first_free` reads for an unreferenced array depends on the interpreter
    (3 up to CPython 3.13, 2 from 3.14); it is measured, and one more reference must
    make an array unavailable."""
    assert _buffers._FREE in (2, 3)
    a = np.empty(3)
    kept = [a]
    assert _buffers._first_free(kept, _buffers._FREE) is None  # `a` holds it
    del a
    assert _buffers._first_free(kept, _buffers._FREE) is kept[0]


def test_shapes_and_dtypes_are_kept_apart():
    a = _buffers.empty(BIG, np.float32)
    first = id(a)
    del a
    assert id(_buffers.empty(BIG, np.float64)) != first
    assert id(_buffers.empty((64, 16, 64), np.float32)) != first


def test_small_arrays_are_not_kept():
    a = _buffers.empty((4, 4), np.float32)
    assert a.nbytes < _buffers.MIN_BYTES
    assert ((4, 4), np.dtype(np.float32)) not in getattr(_buffers._local, "pool", {})


def test_the_pools_are_per_thread():
    a = _buffers.empty(BIG, np.float32)
    first = id(a)
    del a
    seen = []
    t = threading.Thread(target=lambda: seen.append(id(_buffers.empty(BIG, np.float32))))
    t.start()
    t.join()
    assert seen[0] != first  # another thread's pool: a new array
    assert id(_buffers.empty(BIG, np.float32)) == first


def test_the_caps_bound_what_is_kept(monkeypatch):
    monkeypatch.setattr(_buffers, "SLOTS", 2)
    held = [_buffers.empty(BIG, np.float32) for _ in range(4)]  # 2 kept, 2 not
    assert len(_buffers._local.pool[(BIG, np.dtype(np.float32))]) == 2
    assert _buffers._local.nbytes == 2 * held[0].nbytes
    _buffers.clear()
    assert _buffers._local.nbytes == 0


def test_layer_outputs_the_caller_keeps_stay_intact(rng):
    """Two training steps: the outputs and gradients of the first, still held, are
    not overwritten by the second (which may reuse what was dropped)."""
    model = pycnn.Sequential(
        pycnn.Conv2d(3, 16, 3, padding=1, rng=0),
        pycnn.BatchNorm2d(16),
        pycnn.ReLU(),
        pycnn.MaxPool2d(2),
        pycnn.Conv2d(16, 16, 3, padding=1, rng=1),
        pycnn.ReLU(),
    )
    x1 = rng.standard_normal((8, 3, 16, 16)).astype(np.float32)
    x2 = rng.standard_normal((8, 3, 16, 16)).astype(np.float32)
    out1 = model.forward(x1)
    grad1 = model.backward(np.ones_like(out1))
    copies = out1.copy(), grad1.copy()
    for _ in range(3):
        out2 = model.forward(x2)
        model.backward(np.ones_like(out2))
        del out2
    assert out1.tobytes() == copies[0].tobytes()
    assert grad1.tobytes() == copies[1].tobytes()
    # and the steps themselves are unchanged by the reuse
    _buffers.clear()
    again = model.forward(x1)
    assert again.tobytes() == out1.tobytes()
