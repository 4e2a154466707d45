"""What every public op must do whatever it computes, driven by the table of ops
(pycnn/_ops.py): backend parity (names, ``__all__``, signatures), bad arguments (the same
exception and message from every backend), an empty batch, any memory layout, inputs
never modified, dtypes preserved. An op's values are held to an oracle in its own
tests/test_<op>.py."""

import inspect
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_close

from pycnn import _ops

OPS = _ops.OPS
BACKENDS = _ops.BACKENDS
ops = pytest.mark.parametrize("op", OPS.values(), ids=OPS.keys())
backends = pytest.mark.parametrize("backend", BACKENDS)
op_backends = pytest.mark.parametrize(
    "op, backend",
    [pytest.param(op, b, id=f"{name}-{b}") for name, op in OPS.items() for b in op.backends],
)


def _call(op, backend, args):
    result = op.function(backend)(**args)
    return result if isinstance(result, tuple) else (result,)


# --- parity: the table, the backends' names, __all__ and signatures ------------------


@backends
def test_all_of_each_backend_is_its_table_ops(backend):
    module = _ops.backend_module(backend)
    assert sorted(module.__all__) == sorted(_ops.ops_of(backend)), (
        "a backend's __all__ must list exactly the table's ops for it (pycnn/_ops.py)"
    )
    assert len(set(module.__all__)) == len(module.__all__), "__all__ has duplicates"


@backends
def test_every_public_function_of_a_backend_is_in_the_table(backend):
    module = _ops.backend_module(backend)
    public = {
        name
        for name, value in vars(module).items()
        if inspect.isfunction(value)
        and value.__module__ == module.__name__
        and not name.startswith("_")
    }
    missing = public - set(_ops.ops_of(backend))
    assert not missing, (
        f"pycnn.{backend} defines {sorted(missing)}: add them to "
        f"pycnn/_ops.py (or make them private)"
    )


@ops
@backends
def test_an_op_is_defined_exactly_by_its_listed_backends(op, backend):
    module = _ops.backend_module(backend)
    if backend in op.backends:
        assert inspect.isfunction(getattr(module, op.name, None)), (
            f"pycnn.{backend} lacks {op.name}, which the table lists for it"
        )
    else:
        assert not hasattr(module, op.name), (
            f"pycnn.{backend} defines {op.name}, which the table does not list for it"
        )


@ops
def test_signatures_are_identical_across_backends(op):
    signatures = {
        b: inspect.signature(getattr(_ops.backend_module(b), op.name))
        for b in op.backends
        if hasattr(_ops.backend_module(b), op.name)
    }
    assert len(set(signatures.values())) == 1, signatures


@ops
def test_example_and_array_arguments_match_the_signature(op):
    params = inspect.signature(op.function(op.backends[0])).parameters
    args = op.example_args()
    assert set(args) == set(params), "the example names every argument"
    assert set(op.arrays) <= set(args)
    assert all(isinstance(args[name], np.ndarray) for name in op.arrays)
    assert not [
        k for k, v in args.items() if isinstance(v, np.ndarray) and k not in op.arrays
    ], "an array argument missing from `arrays`"


def test_the_table_imports_nothing_heavy():
    code = (
        "import sys, pycnn._ops; heavy = {'torch', 'hypothesis', 'pytest'} "
        "& set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- bad arguments: the same exception and message from every backend ------------------


@pytest.mark.parametrize(
    "op, case",
    [
        pytest.param(op, case, id=f"{name}-{case}")
        for name, op in OPS.items()
        for case in op.bad
    ],
)
def test_bad_arguments_give_the_same_error_from_every_backend(op, case):
    messages = {}
    for backend in op.backends:
        args, exc, match = op.bad_args(case)
        with pytest.raises(exc, match=match) as info:
            op.function(backend)(**args)
        assert type(info.value) is exc, backend
        messages[backend] = str(info.value)
    assert len(set(messages.values())) == 1, messages


# --- empty batch, dtypes ---------------------------------------------------------------


@ops
def test_an_empty_batch_gives_the_same_empty_results_everywhere(op, dtype):
    results = {b: _call(op, b, op.example_args(dtype, n=0)) for b in op.backends}
    full = _call(op, op.backends[0], op.example_args(dtype, n=2))
    for backend, outs in results.items():
        assert [(o.shape, o.dtype) for o in outs] == [
            (o.shape, o.dtype) for o in results[op.backends[0]]
        ], backend
        for out, like in zip(outs, full):
            assert out.ndim == like.ndim, backend
            if out.size:  # what does not scale with N (a weight's gradient) is zero
                assert out.shape == like.shape and not out.any(), backend
            else:
                assert out.shape[1:] == like.shape[1:], backend


@ops
def test_dtype_is_preserved_and_backends_agree(op, dtype):
    args = op.example_args(dtype, n=2)
    results = {b: _call(op, b, args) for b in op.backends}
    first = results[op.backends[0]]
    for backend, outs in results.items():
        assert len(outs) == len(first), backend
        for out, want in zip(outs, first):
            assert isinstance(out, np.ndarray)
            assert out.dtype == (dtype if out.dtype.kind == "f" else np.int64), backend
            assert out.shape == want.shape, backend
            if out.dtype.kind == "f":
                assert_close(out, want, dtype, err_msg=backend)
            else:
                np.testing.assert_array_equal(out, want, err_msg=backend)


# --- layouts: any layout gives the contiguous result; inputs are never modified -------


def _swap(a):
    """Axes 0 and 1 (or the only axis) transposed, copied, and transposed back."""
    if a.ndim < 2:
        return np.flip(np.flip(a).copy())
    return np.swapaxes(np.swapaxes(a, 0, 1).copy(), 0, 1)


LAYOUTS = {
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],  # a[..., ::2] of a copy
    "fortran": np.asfortranarray,
    "reversed": lambda a: np.flip(np.flip(a).copy()),  # negative strides
    "transposed": _swap,
    "readonly": np.array,
}


@op_backends
def test_any_layout_gives_the_same_result_and_inputs_are_not_modified(op, backend, dtype):
    args = op.example_args(dtype, n=2)
    before = {k: (args[k].shape, args[k].dtype, args[k].tobytes()) for k in op.arrays}
    want = _call(op, backend, args)
    for name, make in LAYOUTS.items():
        laid = dict(args)
        for k in op.arrays:
            laid[k] = make(args[k])
            if name != "readonly":
                assert (
                    not laid[k].flags.c_contiguous or laid[k].ndim < 2 or laid[k].size <= 1
                ), f"{name} layout of {k} is C-contiguous"
            laid[k].flags.writeable = False  # any write raises
        snapshot = {k: laid[k].tobytes() for k in op.arrays}
        for got, ref in zip(_call(op, backend, laid), want):
            if got.dtype.kind == "f":
                assert_close(got, ref, dtype, err_msg=name)
            else:
                np.testing.assert_array_equal(got, ref, err_msg=name)
        for k in op.arrays:
            assert laid[k].tobytes() == snapshot[k], f"{name}: `{k}` was modified"
    for k in op.arrays:
        assert (args[k].shape, args[k].dtype, args[k].tobytes()) == before[k], (
            f"`{k}` was modified"
        )
