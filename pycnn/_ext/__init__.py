"""Compiled extension modules of pycnn (Cython wrappers around ``csrc/``).

Only `pycnn.functional` (and the layers' default ``backend="compiled"``) needs them;
`ReLU` and the batch norm layers use them when they load (`pycnn._eltwise`) and NumPy
otherwise; `pycnn.reference` and `pycnn.naive` are pure NumPy. `load_kernels()` imports the
compiled module or raises an ImportError that says what is wrong and how to fix it.
"""

import glob
import importlib
import importlib.machinery
import os
import sys

__all__ = ["load_kernels", "missing_extension_message"]

_NAME = "pycnn._ext._kernels"


# OpenMP threads that wait actively spin for milliseconds after each parallel region
# (libgomp's default), taking a core from the convolution or BLAS call that follows:
# measured, a 1.3 ms pooling call made the 20 ms convolution after it 5-8 ms slower.
# Waiting passively (sleeping at once) removes that, and costs pooling nothing
# measurable. OpenMP reads the variable when its runtime loads, with this extension:
# pycnn sets it for that moment only, unless the user chose a policy.
_WAIT_POLICY = "OMP_WAIT_POLICY"


def load_kernels():
    """Return the compiled module `pycnn._ext._kernels`, or raise a helpful ImportError."""
    chosen = _WAIT_POLICY in os.environ
    if not chosen:
        os.environ[_WAIT_POLICY] = "passive"
    try:
        _kernels = importlib.import_module(_NAME)
    except ImportError as exc:  # a source tree without a build, or a broken install
        raise ImportError(missing_extension_message(exc), name=_NAME) from exc
    finally:
        if not chosen:
            os.environ.pop(_WAIT_POLICY, None)  # child processes see the user's env
    return _kernels


def missing_extension_message(exc, ext_dir=None):
    """Why `pycnn._ext._kernels` did not import (`exc`), and what to do about it."""
    ext_dir = os.path.abspath(ext_dir or os.path.dirname(__file__))
    package_dir = os.path.dirname(ext_dir)
    root = os.path.dirname(package_dir)
    built = sorted(
        os.path.basename(p)
        for p in glob.glob(os.path.join(ext_dir, "_kernels.*"))
        if p.endswith((".so", ".pyd"))
    )
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    usable = [b for b in built if any(b == "_kernels" + s for s in suffixes)]
    python = f"Python {sys.version_info[0]}.{sys.version_info[1]}"

    lines = [f"pycnn's compiled extension ({_NAME}) could not be imported: {exc}"]
    if usable:
        lines.append(
            f"{usable[0]} is in {ext_dir} but did not load: it was built against another "
            "NumPy or a library it links is missing. Reinstall pycnn with pip "
            "(`pip install --force-reinstall <wheel or source folder>`)."
        )
    elif built:
        lines.append(
            f"{ext_dir} holds {', '.join(built)}, built for another Python or platform "
            f"than this {python} (which loads _kernels{suffixes[0]}). Rebuild or "
            "reinstall pycnn with this Python's pip."
        )
    elif os.path.isfile(os.path.join(root, "setup.py")) and os.path.isdir(
        os.path.join(root, "csrc")
    ):
        lines.append(
            f"This pycnn is the unbuilt source checkout at {root}, which Python imports "
            "when it runs from that folder. Install pycnn (`pip install .`) and run Python "
            "from any other folder, or build the extension in place with "
            "`python setup.py build_ext --inplace`."
        )
    else:
        lines.append(
            f"The pycnn installed at {package_dir} has no compiled extension (a broken or "
            "incomplete install). Reinstall it with pip; building from source needs a C "
            "compiler."
        )
    lines.append(
        "`pycnn info` shows what was found. pycnn.reference and pycnn.naive "
        "(pure NumPy) work without the extension."
    )
    return "\n".join(lines)
