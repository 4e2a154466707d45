"""The ``.safetensors`` model file (the `safetensors` package, imported when called):
tensors named by the state-dict keys, so PyTorch opens a file pycnn wrote
(``safetensors.torch.load_file`` + ``load_state_dict``) and pycnn one PyTorch wrote.
The format holds no code: a JSON header of names, dtypes, shapes and offsets, then the
raw data. `load_into` checks the header against the model before it reads any data."""

import os

import numpy as np

from pycnn.io._files import atomic_write, model_file, state_of

__all__ = ["save", "load_into"]

_OPTIONAL_KEY = ".num_batches_tracked"  # as in .npz files and load_state_dict


def _package(what):
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ImportError(
            f"{what} a .safetensors file needs the safetensors package: pip install safetensors"
        ) from None
    return safetensors


def save(model_or_state, path):
    """Write a model's `state_dict` (or a state dict) to a ``.safetensors`` file, the
    tensors named by their keys; return the name of the file written."""
    package = _package("Saving")
    path = os.fsdecode(os.fspath(path))
    # np.array, not np.ascontiguousarray, which makes a 0-d counter 1-d
    tensors = {key: np.array(arr, order="C") for key, arr in state_of(model_or_state).items()}
    data = package.numpy.save(tensors)
    return atomic_write(path, ".safetensors", lambda f: f.write(data))


def load_into(model_or_state, path):
    """Read a ``.safetensors`` file into a model (through its `load_state_dict`, which
    casts to the model's dtype) or into the arrays of a state dict, in place; return
    `model_or_state`. Names and shapes are checked before any data is read: every
    missing key (a batch norm's ``num_batches_tracked`` may be absent), unexpected key
    and wrong shape is listed in one ValueError naming the file."""
    package = _package("Loading")
    path = model_file(path, ".safetensors")
    expected = state_of(model_or_state)
    try:
        with package.safe_open(path, framework="numpy") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
            _check(path, expected, shapes)
            loaded = {key: _tensor(f, key, path) for key in shapes}
    except (package.SafetensorError, OSError) as exc:
        raise ValueError(
            f"`path` must be a .safetensors file. Received: path={path!r} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    load_state_dict = getattr(model_or_state, "load_state_dict", None)
    if callable(load_state_dict):
        load_state_dict(loaded)
    else:
        for key, arr in loaded.items():
            np.copyto(expected[key], arr, casting="unsafe")
    return model_or_state


def _check(path, expected, shapes):
    missing = [k for k in expected if k not in shapes and not f".{k}".endswith(_OPTIONAL_KEY)]
    unexpected = [k for k in shapes if k not in expected]
    wrong = [
        f"{k!r} has shape {shapes[k]}, the model expects {expected[k].shape}"
        for k in shapes
        if k in expected and shapes[k] != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong))
    if problems:
        raise ValueError(f"{path}: the file does not match this model: " + ", ".join(problems))


def _tensor(f, key, path):
    """Tensor `key` as a NumPy array; dtypes NumPy lacks (bfloat16, float8) are named."""
    try:
        return f.get_tensor(key)
    except (TypeError, ValueError) as exc:
        dtype = f.get_slice(key).get_dtype()
        raise ValueError(
            f"{path}: key {key!r} has dtype {dtype}, which NumPy cannot read ({exc})"
        ) from None
