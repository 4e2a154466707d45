"""setup.py stops an MSVC build before compiling, with one message that says why (issue
13: the kernels use GCC/Clang vector extensions and target attributes, so Windows is
not supported yet and nothing promises it)."""

import os
import runpy
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP = os.path.join(ROOT, "setup.py")
PYPROJECT = os.path.join(ROOT, "pyproject.toml")
needs_sources = pytest.mark.skipif(not os.path.isfile(SETUP), reason="needs the source tree")


@pytest.fixture
def setup_namespace(monkeypatch):
    """setup.py's globals, with setup() and cythonize() replaced by no-ops."""
    pytest.importorskip("Cython")
    setuptools = pytest.importorskip("setuptools")
    import Cython.Build

    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: None)
    monkeypatch.setattr(Cython.Build, "cythonize", lambda extensions, **kwargs: extensions)
    monkeypatch.setattr(sys, "path", list(sys.path))  # setup.py inserts tools/
    return runpy.run_path(SETUP, run_name="setup_under_test")


@needs_sources
def test_setup_refuses_msvc_before_compiling(setup_namespace):
    build_ext = setup_namespace["BuildExt"]
    cmd = build_ext.__new__(build_ext)  # no Distribution: only the check runs
    cmd.compiler = types.SimpleNamespace(compiler_type="msvc")
    cmd.extensions = []
    with pytest.raises(SystemExit) as info:
        cmd.build_extensions()
    message = str(info.value.code)
    assert "cannot be built with MSVC" in message
    assert "vector_size" in message and "target" in message
    assert "Windows is not supported yet" in message


@needs_sources
def test_nothing_promises_windows():
    with open(PYPROJECT, encoding="utf-8") as f:
        text = f.read()
    assert "Microsoft :: Windows" not in text
    assert "[tool.cibuildwheel.windows]" not in text
