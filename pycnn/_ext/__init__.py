"""Compiled extension modules of pycnn (Cython wrappers around ``csrc/``)."""
