"""Model files: one module per format, each with ``save(model_or_state, path)`` and
``load_into(model_or_state, path)``. `pycnn.io.npz` is the format `Sequential.save` and
`Sequential.load` use (NumPy ``.npz``, read without pickle and without trusting the
file); its two functions are re-exported here."""

from pycnn.io.npz import load_into, save

__all__ = ["save", "load_into"]
