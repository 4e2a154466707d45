"""The ``.npz`` model file: `save` writes a state dict atomically, `load_into` reads one
back into a model's own arrays without pickle and without trusting the file (every
member's header is checked before any data is read, and no more bytes are read than the
model holds). `Sequential.save` and `Sequential.load` delegate here, so the messages
name them."""

import os
import struct
import zipfile
import zlib

import numpy as np

from pycnn.io._files import atomic_write, model_file, state_of

__all__ = ["save", "load_into"]

# a batch norm's counter: files from before pycnn had it lack it, and still load
_OPTIONAL_KEY = ".num_batches_tracked"


def save(model_or_state, path):
    """Write a model's parameters and buffers (its `state_dict`), or a state dict, to an
    ``.npz`` file; return the name of the file written. See `Sequential.save`."""
    path = os.fsdecode(os.fspath(path))
    if not path.endswith(".npz"):
        path += ".npz"
    state = state_of(model_or_state)
    return atomic_write(path, ".npz", lambda f: np.savez(f, **state))


def load_into(model_or_state, path):
    """Read an ``.npz`` file written by `save` into the arrays of a model's `state_dict`
    (or of a state dict), in place; return `model_or_state`. See `Sequential.load`."""
    path = model_file(path, ".npz")
    loaded = {}
    with open(path, "rb") as f:
        if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
            raise ValueError(
                f"`path` must be an .npz file written by Sequential.save, "
                f"not a single array. Received: path={path!r}"
            )
        f.seek(0)
        try:
            archive = zipfile.ZipFile(f)
        except _READ_ERRORS as exc:
            raise ValueError(
                f"`path` must be an .npz file written by Sequential.save. "
                f"Received: path={path!r} ({type(exc).__name__}: {exc})"
            ) from None
        with archive:
            members = _npz_members(archive, path)
            expected = {  # a missing num_batches_tracked keeps its value
                k: v
                for k, v in state_of(model_or_state).items()
                if k in members or not f".{k}".endswith(_OPTIONAL_KEY)
            }
            for key, target in expected.items():  # every header first ...
                if key not in members:
                    raise ValueError(
                        f"{path}: missing key {key!r}: the file does not "
                        f"match this model (it holds {sorted(members)})"
                    )
                _check_member(archive, members[key], path, key, target)
            extra = sorted(set(members) - set(expected))
            if extra:
                raise ValueError(
                    f"{path}: unexpected key {extra[0]!r}: the file does not "
                    f"match this model (extra keys: {extra})"
                )
            for key, target in expected.items():  # ... then exactly their data
                loaded[key] = _read_member(archive, members[key], path, key, target)
    for key, arr in loaded.items():
        np.copyto(expected[key], arr)  # in place: layers and optimizers keep arrays
    return model_or_state


# --- reading .npz files without trusting them ---------------------------------------------

_NPY_MAGIC = b"\x93NUMPY"
# what reading a corrupt zip member can raise: zipfile's own errors, zlib's, an
# unsupported compression method (NotImplementedError) or an encrypted member
# (RuntimeError), NumPy's header parser (ValueError), a cut-off file (EOFError, OSError)
_READ_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    struct.error,
    OverflowError,
)


def _npz_members(archive, path):
    """{key: ZipInfo} of an archive whose members are all ``<key>.npy``, once each."""
    members = {}
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy") or info.is_dir():
            raise ValueError(
                f"{path}: member {name!r} is not an .npy array (a file "
                f"written by Sequential.save holds only '<key>.npy' members)"
            )
        key = name[: -len(".npy")]
        if key in members:
            raise ValueError(f"{path}: member {name!r} appears twice")
        members[key] = info
    return members


def _header(stream, path, key):
    """(shape, fortran_order, dtype) of the .npy stream, read from its header alone."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    raise ValueError(
        f"{path}: member '{key}.npy' has .npy format version {version}, expected 1.0 or 2.0"
    )


def _check_member(archive, info, path, key, target):
    """Raise a ValueError unless member `info` declares `target`'s shape and dtype."""
    try:
        with archive.open(info) as stream:
            shape, fortran_order, dtype = _header(stream, path, key)
    except _READ_ERRORS as exc:
        raise ValueError(
            f"{path}: key {key!r} cannot be read: member {info.filename!r} "
            f"is not a valid .npy array ({type(exc).__name__}: {exc})"
        ) from None
    if dtype.hasobject:
        raise ValueError(
            f"{path}: key {key!r} cannot be read: member {info.filename!r} "
            f"holds Python objects (dtype {dtype}), which would need "
            f"unpickling; load never unpickles"
        )
    if shape != target.shape:
        raise ValueError(
            f"{path}: key {key!r} has shape {shape}, the model expects {target.shape}"
        )
    if dtype != target.dtype:
        got, want = (
            (dtype.str, target.dtype.str)
            if dtype.name == target.dtype.name
            else (dtype, target.dtype)
        )
        raise ValueError(f"{path}: key {key!r} has dtype {got}, the model expects {want}")


def _read_member(archive, info, path, key, target):
    """A new array of `target`'s shape and dtype from member `info`, reading no more
    than its header, its data and one byte to make sure nothing follows."""
    try:
        with archive.open(info) as stream:
            shape, fortran_order, dtype = _header(stream, path, key)
            if shape != target.shape or dtype != target.dtype:  # checked before
                raise ValueError(f"the header changed to shape {shape}, dtype {dtype}")
            # Fortran order: the data of the transpose, in C order
            raw = np.empty(shape[::-1] if fortran_order else shape, dtype=dtype)
            view = memoryview(raw.reshape(-1).view(np.uint8))
            done, chunk = 0, 1 << 20
            while done < len(view):
                data = stream.read(min(chunk, len(view) - done))
                if not data:
                    raise ValueError(f"the data ends after {done:,} of {len(view):,} bytes")
                view[done : done + len(data)] = data
                done += len(data)
            if stream.read(1):  # also checks the CRC at the end
                raise ValueError(
                    f"more than the {len(view):,} bytes of a {shape} "
                    f"{dtype} array follow the header"
                )
    except _READ_ERRORS as exc:
        raise ValueError(
            f"{path}: key {key!r} cannot be read: member {info.filename!r} "
            f"is not a valid .npy array ({type(exc).__name__}: {exc})"
        ) from None
    return raw.T if fortran_order else raw
