"""Model files: one module per format, each with ``save(model_or_state, path)`` and
``load_into(model_or_state, path)``: `pycnn.io.npz` (NumPy ``.npz``, read without pickle
and without trusting the file) and `pycnn.io.safetensors` (the `safetensors` package,
whose files PyTorch opens). `save` and `load_into` here pick one by the suffix of the
path, as `Sequential.save` and `Sequential.load` do."""

import os

from pycnn.io import npz, safetensors

__all__ = ["save", "load_into", "SUFFIXES"]

_FORMATS = {".npz": npz, ".safetensors": safetensors}
SUFFIXES = tuple(_FORMATS)


def _format(path):
    """The module of `path`'s format: by its suffix, ``.npz`` for a name without one."""
    name = os.fsdecode(os.fspath(path))
    suffix = os.path.splitext(name)[1]
    if not suffix:
        return npz  # `save` appends .npz, `load` reads the name or the name + .npz
    if suffix not in _FORMATS:
        raise ValueError(
            f"`path` must end with one of {', '.join(SUFFIXES)} (or have no suffix, for "
            f".npz). Received: path={name!r}"
        )
    return _FORMATS[suffix]


def save(model_or_state, path):
    """Write a model's `state_dict` (or a state dict) to `path` in the format its suffix
    names; return the name of the file written. See `Sequential.save`."""
    return _format(path).save(model_or_state, path)


def load_into(model_or_state, path):
    """Read the file `path` (format by its suffix) into a model or a state dict; return
    `model_or_state`. See `Sequential.load`."""
    return _format(path).load_into(model_or_state, path)
