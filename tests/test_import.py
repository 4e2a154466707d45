"""Importing pycnn with and without its compiled extension.

Without `pycnn._ext._kernels` (an unbuilt source checkout, a broken install) the pure
NumPy parts import and work, and the compiled parts raise an ImportError that says what
is wrong and how to fix it. Each case runs in a fresh interpreter, outside the source
tree, on the same pycnn this test session imported.
"""

import importlib.machinery
import os
import re
import subprocess
import sys
import textwrap

import pytest

import pycnn
from pycnn._ext import missing_extension_message

SITE = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))

# A finder ahead of the standard ones that makes the compiled module unimportable.
BLOCK_EXTENSION = """
import sys

class _NoExtension:
    def find_spec(self, name, path=None, target=None):
        if name == "pycnn._ext._kernels":
            raise ModuleNotFoundError("No module named 'pycnn._ext._kernels'", name=name)
        return None

sys.meta_path.insert(0, _NoExtension())
"""


def _run(code, tmp_path, block):
    prelude = f"import sys\nsys.path.insert(0, {SITE!r})\n"
    script = prelude + (BLOCK_EXTENSION if block else "") + textwrap.dedent(code)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_pure_parts_import_without_the_extension(tmp_path):
    out = _run(
        """
        import numpy as np
        import pycnn.reference, pycnn.naive
        x = np.ones((1, 1, 4, 4)); w = np.ones((1, 1, 3, 3))
        assert pycnn.reference.conv2d(x, w).shape == (1, 1, 2, 2)
        assert np.allclose(pycnn.naive.conv2d(x, w), 9.0)
        import pycnn
        layer = pycnn.Conv2d(1, 2, 3, backend="numpy", rng=0)
        assert layer(x.astype(np.float32)).shape == (1, 2, 2, 2)
        assert "pycnn._ext._kernels" not in sys.modules
        print("version", pycnn.__version__)
    """,
        tmp_path,
        block=True,
    )
    assert f"version {pycnn.__version__}" in out


@pytest.mark.parametrize(
    "statement",
    [
        "from pycnn import functional",
        "import pycnn.functional",
        "import pycnn; pycnn.functional",
        "from pycnn import Conv2d; Conv2d(1, 2, 3)",
    ],
    ids=["from-import", "import", "attribute", "compiled-layer"],
)
def test_compiled_parts_raise_a_helpful_import_error(statement, tmp_path):
    out = _run(
        f"""
        try:
            {statement}
        except ImportError as exc:
            print("MESSAGE:", exc)
            print("CAUSE:", repr(exc.__cause__))
        else:
            print("no error")
    """,
        tmp_path,
        block=True,
    )
    assert (
        "MESSAGE: pycnn's compiled extension (pycnn._ext._kernels) could not be imported" in out
    )
    assert "Reinstall" in out or "pip install ." in out  # how to fix it
    assert "pycnn.reference and pycnn.naive" in out
    assert "CAUSE: ModuleNotFoundError" in out  # the original error


def test_compiled_parts_import_normally_with_the_extension(tmp_path):
    out = _run(
        """
        from pycnn import Conv2d, functional
        import pycnn
        assert pycnn.functional is functional
        assert Conv2d(1, 2, 3, rng=0)._ops is functional
        print("kernels", functional._kernels.__file__)
    """,
        tmp_path,
        block=False,
    )
    assert "kernels " + os.path.join(SITE, "pycnn", "_ext", "_kernels") in out


# --- the diagnosis in the message, on fake layouts --------------------------------------


def _layout(tmp_path, source_checkout=False, built=()):
    ext_dir = tmp_path / "pycnn" / "_ext"
    ext_dir.mkdir(parents=True)
    if source_checkout:
        (tmp_path / "setup.py").write_text("")
        (tmp_path / "csrc").mkdir()
    for name in built:
        (ext_dir / name).write_text("")
    return str(ext_dir)


def test_message_for_an_unbuilt_source_checkout(tmp_path):
    msg = missing_extension_message(ImportError("boom"), _layout(tmp_path, True))
    assert "boom" in msg
    assert f"unbuilt source checkout at {tmp_path}" in msg
    assert "pip install ." in msg and "build_ext --inplace" in msg


def test_message_for_an_install_without_the_extension(tmp_path):
    msg = missing_extension_message(ImportError("boom"), _layout(tmp_path))
    assert "has no compiled extension (a broken or incomplete install)" in msg


def test_message_for_an_extension_built_for_another_python(tmp_path):
    other = "_kernels.cpython-20-x86_64-linux-gnu.so"
    msg = missing_extension_message(ImportError("boom"), _layout(tmp_path, True, [other]))
    assert other in msg and "built for another Python or platform" in msg


def test_message_for_an_extension_that_fails_to_load(tmp_path):
    mine = "_kernels" + importlib.machinery.EXTENSION_SUFFIXES[0]
    msg = missing_extension_message(
        ImportError("undefined symbol: x"), _layout(tmp_path, built=[mine])
    )
    assert "undefined symbol: x" in msg and f"{mine} is in" in msg and "did not load" in msg


@pytest.mark.parametrize("user_policy", [None, "active"])
def test_openmp_waits_passively_unless_the_user_chose(user_policy, tmp_path):
    """pycnn's OpenMP threads sleep between parallel regions (spinning ones took a core
    from the convolution after a pooling call), the environment the process hands its
    children stays the user's, and a policy the user set wins."""
    from pycnn._ext import _kernels

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(OMP_DISPLAY_ENV="true", PYTHONPATH=SITE)
    if user_policy:
        env["OMP_WAIT_POLICY"] = user_policy
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, pycnn.functional; print('env:', os.environ.get('OMP_WAIT_POLICY'))",
        ],
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"env: {user_policy}" in proc.stdout
    if _kernels.openmp_enabled():  # the runtime prints its settings
        want = (user_policy or "passive").upper()
        assert re.search(rf"OMP_WAIT_POLICY\s*=\s*'{want}'", proc.stderr), proc.stderr
