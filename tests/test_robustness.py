"""Hostile sizes, concurrent calls and repeated calls: errors, never crashes or leaks."""

import sys
import threading

import numpy as np
import pytest
from conftest import CONV_CASES, make_conv

from pycnn import functional, naive, reference

IMPLS = [functional, reference, naive]
IDS = ["compiled", "reference", "naive"]


def test_outputs_too_large_to_allocate_raise_before_writing():
    # a 1x1 input padded by 2**30 per side would need ~2**62 column entries
    x = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises((ValueError, MemoryError)):
        functional.im2col(x, 1, padding=2**30)
    with pytest.raises((ValueError, MemoryError)):
        functional.conv2d(x, np.zeros((1, 1, 1, 1), np.float32), padding=2**30)


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@pytest.mark.parametrize(
    "padding, what, elements",
    [
        (2**31 - 1, "The output", (2**32 - 1) ** 2),  # > 2**63 elements
        (2**30, "The output", (2**31 + 1) ** 2),  # > 2**62 elements: > 2**63 bytes
    ],
)
def test_outputs_beyond_the_address_space_are_refused_with_one_message(
    impl, padding, what, elements
):
    """Sizes are multiplied as Python ints (no wrap-around) and checked before any
    allocation, with the same message from every backend."""
    x = np.zeros((1, 1, 1, 1), np.float32)
    w = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(
        ValueError,
        match=f"^{what} would have {elements} elements, more "
        "than an array can hold. Received: ",
    ):
        impl.conv2d(x, w, padding=padding)


@pytest.mark.parametrize("impl", [functional, reference], ids=IDS[:2])
def test_column_matrix_beyond_the_address_space_is_refused(impl):
    x = np.zeros((2, 3, 1, 1), np.float64)
    with pytest.raises(
        ValueError, match=f"^The column matrix would have {2 * 3 * (2**32 - 1) ** 2} elements"
    ):
        impl.im2col(x, 1, padding=2**31 - 1)


def test_size_check_is_on_bytes_not_int32(monkeypatch):
    """Past 2**31 elements is fine while the bytes fit the address space (and, here, a
    machine with all the memory in the world); past 2**63 - 1 bytes is refused."""
    from pycnn import _validation
    from pycnn._validation import MAX_ARRAY_BYTES, check_array_size

    monkeypatch.setattr(_validation, "available_memory", lambda: MAX_ARRAY_BYTES)

    check_array_size("A", (1, 2**16, 513, 513), 4, "")  # 2**34 elements
    check_array_size("A", (MAX_ARRAY_BYTES // 8,), 8, "")
    with pytest.raises(ValueError, match=r"^A would have 1152921504606846976 elements"):
        check_array_size("A", (2**30, 2**30), 8, "")
    with pytest.raises(ValueError, match="more than an array can hold"):
        check_array_size("A", (MAX_ARRAY_BYTES // 8 + 1,), 8, "")


def test_inputs_larger_than_memory_raise_memory_error():
    # a zero-stride view claims 2**42 elements; copying it to contiguous must fail cleanly
    huge = np.broadcast_to(np.zeros((1, 1, 1, 1), np.float32), (2**16, 2**10, 2**8, 2**8))
    w = np.zeros((1, 2**10, 1, 1), np.float32)
    with pytest.raises((MemoryError, ValueError)):
        functional.conv2d(huge, w)


def test_concurrent_calls_match_sequential_calls(rng):
    """8 Python threads on different inputs give results identical to sequential calls."""
    inputs = []
    for i, name in enumerate(["mixed", "3x3-pad1", "groups2", "dilation2"] * 2):
        x, w, b, kw = make_conv(CONV_CASES[name], np.float32, np.random.default_rng(i))
        x = np.concatenate([x] * 4)  # several chunks' worth of work
        g = (
            np.random.default_rng(100 + i)
            .standard_normal(functional.conv2d(x, w, b, **kw).shape)
            .astype(np.float32)
        )
        inputs.append((x, w, b, g, kw))

    def run(args):
        x, w, b, g, kw = args
        cols = (
            functional.im2col(x, w.shape[2:], kw["stride"], 0, 1)
            if kw["padding"] != "same"
            else None
        )
        return (
            functional.conv2d(x, w, b, **kw),
            functional.conv2d_backward(g, x, w, **kw),
            cols,
        )

    expected = [run(a) for a in inputs]
    results = [None] * len(inputs)
    barrier = threading.Barrier(len(inputs))

    def target(i):
        barrier.wait()
        for _ in range(5):
            results[i] = run(inputs[i])

    threads = [threading.Thread(target=target, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got[0], want[0])
        for a, b in zip(got[1], want[1]):
            np.testing.assert_array_equal(a, b)
        if want[2] is not None:
            np.testing.assert_array_equal(got[2], want[2])


def test_error_paths_do_not_leak_references(rng):
    x, w, b, kw = make_conv(CONV_CASES["mixed"], np.float32, rng)
    before = [sys.getrefcount(a) for a in (x, w, b)]
    for _ in range(500):
        for bad in (dict(stride=0), dict(padding="full"), dict(groups=3)):
            with pytest.raises(ValueError):
                functional.conv2d(x, w, b, **bad)
        with pytest.raises(TypeError):
            functional.conv2d(x, w.astype(np.float64), b)
    assert [sys.getrefcount(a) for a in (x, w, b)] == before


@pytest.mark.parametrize("impl", [functional, reference], ids=IDS[:2])
def test_col2im_output_beyond_the_address_space_is_refused(impl):
    side = 2**31 - 1  # one block, the stride as large as the image
    cols = np.ones((1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=f"^The output would have {side * side} elements"):
        impl.col2im(cols, (side, side), 1, stride=side)


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_outputs_beyond_the_memory_available_raise_memory_error_first(impl, monkeypatch):
    """Regression: with overcommit, NumPy hands out 20 GiB on a 24 GiB machine and the
    writes then exhaust its memory. Requests beyond the memory available are refused
    before anything is allocated, saying how much was asked, by every backend alike."""
    from pycnn import _validation

    monkeypatch.setattr(_validation, "available_memory", lambda: 2**30)
    x = np.zeros((1, 1, 1, 1), np.float32)
    w = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(
        MemoryError,
        match=r"^The output would need 4\.0 GiB \(4295229444 "
        r"bytes\), more than the 1\.0 GiB of memory "
        r"available\. Received: x\.shape=\(1, 1, 1, 1\)",
    ):
        impl.conv2d(x, w, padding=2**14)  # 32769**2 floats


def test_a_terabyte_output_is_refused_on_this_machine():
    from pycnn._validation import available_memory

    x = np.zeros((1, 1, 1, 1), np.float32)
    nbytes = 4 * (2 * 2**19 + 1) ** 2  # ~4 TiB of float32
    if available_memory() is None or available_memory() >= nbytes:
        pytest.skip("this machine has the memory")
    with pytest.raises(MemoryError, match=r"^The output would need 4096\.0 GiB"):
        functional.conv2d(x, np.zeros((1, 1, 1, 1), np.float32), padding=2**19)


def test_a_huge_workspace_is_refused_before_allocating(monkeypatch):
    from pycnn import _validation

    monkeypatch.setattr(_validation, "MEMORY_CHECK_BYTES", 1)
    x = np.zeros((1, 4, 100, 100), np.float32)  # columns of one image: 13 MB
    w = np.zeros((1, 4, 9, 9), np.float32)
    monkeypatch.setattr(_validation, "available_memory", lambda: 2**23)
    with pytest.raises(MemoryError, match="would need"):
        functional.conv2d(x, w, padding=4)
