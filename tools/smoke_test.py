"""Smoke test of an *installed* pycnn (a wheel or an sdist install), run from outside
the source tree:

    cd "$(mktemp -d)" && python /path/to/pycnn/tools/smoke_test.py [--openmp yes|no]

1. pycnn imports, and its compiled extension is the installed one (not a file under
   this source tree);
2. compiled conv2d / conv2d_backward agree with pycnn.reference (float32 and float64),
   and so do the pooling ops when pycnn.functional has them;
3. the `pycnn info` console script runs and reports what this process sees, and
   `PYCNN_NUM_THREADS=1 pycnn info` reports one thread.

Exits non-zero, saying what failed, on the first problem.
"""

import argparse
import os
import shutil
import subprocess
import sys

import numpy as np

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = {np.float32: 1e-4, np.float64: 1e-10}


def check(condition, message):
    if not condition:
        sys.exit(f"smoke test FAILED: {message}")


def close(got, want, dtype, what):
    got, want = np.asarray(got), np.asarray(want)
    check(got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}")
    check(got.dtype == want.dtype, f"{what}: dtype {got.dtype} != reference {want.dtype}")
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    check(
        err <= TOL[dtype] * scale,
        f"{what} ({np.dtype(dtype).name}): max abs difference {err:.3g} from the reference",
    )


def under(path, root):
    path, root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([path, root]) == root


def check_import():
    import pycnn
    from pycnn import functional
    from pycnn._ext import _kernels

    check(
        not under(pycnn.__file__, SOURCE_ROOT),
        f"pycnn was imported from the source tree ({pycnn.__file__}): run this script "
        "from another folder against an installed pycnn",
    )
    check(
        not under(_kernels.__file__, SOURCE_ROOT),
        f"the compiled extension was loaded from the source tree ({_kernels.__file__})",
    )
    check(functional._kernels is _kernels, "pycnn.functional does not use pycnn._ext._kernels")
    print(f"pycnn {pycnn.__version__} from {os.path.dirname(pycnn.__file__)}")
    print(f"compiled extension {_kernels.__file__}")
    return pycnn, _kernels


def check_conv(functional, reference, rng):
    # non-square kernel, unequal strides and padding, dilation and groups in one case
    kwargs = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((3, 4, 9, 8)).astype(dtype)
        w = rng.standard_normal((6, 2, 3, 2)).astype(dtype)
        b = rng.standard_normal(6).astype(dtype)
        out = functional.conv2d(x, w, b, **kwargs)
        close(out, reference.conv2d(x, w, b, **kwargs), dtype, "conv2d")
        g = rng.standard_normal(out.shape).astype(dtype)
        for got, want, name in zip(
            functional.conv2d_backward(g, x, w, **kwargs),
            reference.conv2d_backward(g, x, w, **kwargs),
            ("grad_x", "grad_weight", "grad_bias"),
        ):
            close(got, want, dtype, f"conv2d_backward {name}")
    print("conv2d, conv2d_backward: compiled == reference (float32, float64)")


def check_pooling(functional, reference, rng):
    """The pooling ops pycnn.functional has (none before they land): vs the reference."""
    names = [
        n
        for n in ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward")
        if hasattr(functional, n)
    ]
    if not names:
        print("pooling: not in this pycnn.functional, skipped")
        return
    for name in names:
        check(hasattr(reference, name), f"pycnn.functional has {name}, pycnn.reference not")
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((2, 3, 9, 7)).astype(dtype)
        geo = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1))
        if "max_pool2d" in names:
            out, idx = functional.max_pool2d(x, **geo, return_indices=True)
            ref, ref_idx = reference.max_pool2d(x, **geo, return_indices=True)
            close(out, ref, dtype, "max_pool2d")
            check(np.array_equal(idx, ref_idx), "max_pool2d indices differ from the reference")
            if "max_pool2d_backward" in names:
                g = rng.standard_normal(out.shape).astype(dtype)
                close(
                    functional.max_pool2d_backward(g, idx, x.shape),
                    reference.max_pool2d_backward(g, ref_idx, x.shape),
                    dtype,
                    "max_pool2d_backward",
                )
        if "avg_pool2d" in names:
            out = functional.avg_pool2d(x, **geo, count_include_pad=False)
            close(
                out,
                reference.avg_pool2d(x, **geo, count_include_pad=False),
                dtype,
                "avg_pool2d",
            )
            if "avg_pool2d_backward" in names:
                g = rng.standard_normal(out.shape).astype(dtype)
                close(
                    functional.avg_pool2d_backward(g, x.shape, **geo, count_include_pad=False),
                    reference.avg_pool2d_backward(g, x.shape, **geo, count_include_pad=False),
                    dtype,
                    "avg_pool2d_backward",
                )
    print(f"{', '.join(names)}: compiled == reference (float32, float64)")


def pycnn_command():
    """The `pycnn` console script installed beside this Python (or on PATH)."""
    bindir = os.path.dirname(sys.executable)
    for name in ("pycnn", "pycnn.exe"):
        if os.path.isfile(os.path.join(bindir, name)):
            return os.path.join(bindir, name)
    found = shutil.which("pycnn")
    check(found is not None, f"no `pycnn` console script in {bindir} or on PATH")
    return found


def run_info(command, **env):
    proc = subprocess.run(
        [command, "info"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, **env),
    )
    check(
        proc.returncode == 0,
        f"`pycnn info` exited {proc.returncode}:\n{proc.stdout}{proc.stderr}",
    )
    fields = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition(" : ")
        if sep and key.strip():
            fields[key.strip()] = value
    return proc.stdout, fields


def check_info(pycnn, kernels, expect_openmp):
    command = pycnn_command()
    out, fields = run_info(command)
    print(f"\n$ {command} info\n{out}")
    for label in (
        "pycnn",
        "compiled extension",
        "build",
        "OpenMP",
        "pycnn threads",
        "SIMD dispatch",
        "NumPy",
        "BLAS",
        "Python",
    ):
        check(label in fields, f"`pycnn info` has no {label!r} line")
    check(
        fields["pycnn"].startswith(pycnn.__version__ + " "),
        f"`pycnn info` version {fields['pycnn']!r} != {pycnn.__version__}",
    )
    check(
        fields["compiled extension"] == f"loaded ({os.path.abspath(kernels.__file__)})",
        f"`pycnn info` compiled extension: {fields['compiled extension']!r}",
    )
    check(fields["build"].startswith("release"), f"not a release build: {fields['build']!r}")
    check(fields["NumPy"].startswith(np.__version__ + " "), "`pycnn info` NumPy version")
    openmp = fields["OpenMP"].split()[0]
    check(
        openmp == ("yes" if kernels.openmp_enabled() else "no"),
        f"`pycnn info` says OpenMP {openmp!r}, the extension says {kernels.openmp_enabled()}",
    )
    if expect_openmp is not None:
        check(openmp == expect_openmp, f"expected OpenMP {expect_openmp}, got {openmp}")
    _, fields1 = run_info(command, PYCNN_NUM_THREADS="1")
    expected = "1" if kernels.openmp_enabled() else "1 (no OpenMP; 1 requested)"
    check(
        fields1.get("pycnn threads") == expected,
        f"PYCNN_NUM_THREADS=1 pycnn info: threads {fields1.get('pycnn threads')!r}",
    )
    print("pycnn info: fields present and true; PYCNN_NUM_THREADS=1 gives 1 thread")
    check_bundled_openmp(pycnn, kernels)


def check_bundled_openmp(pycnn, kernels):
    """A repaired wheel carries its OpenMP runtime in pycnn.libs/: that copy must be the
    one loaded (Linux: /proc/self/maps)."""
    libs = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__))), "pycnn.libs"
    )
    if not (
        kernels.openmp_enabled() and os.path.isdir(libs) and os.path.exists("/proc/self/maps")
    ):
        return
    from pycnn._info import _loaded_openmp_runtimes

    loaded = _loaded_openmp_runtimes()
    check(
        any(under(path, libs) for path in loaded),
        f"the wheel bundles {os.listdir(libs)} but the OpenMP runtime loaded is {loaded}",
    )
    print(f"OpenMP runtime loaded from the wheel: {', '.join(loaded)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--openmp",
        choices=["yes", "no"],
        help="also require the extension to be built with/without OpenMP",
    )
    args = parser.parse_args()
    check(
        not under(os.getcwd(), SOURCE_ROOT),
        f"run from outside the source tree (cwd is {os.getcwd()})",
    )
    pycnn, kernels = check_import()
    from pycnn import functional, reference

    rng = np.random.default_rng(7)
    check_conv(functional, reference, rng)
    check_pooling(functional, reference, rng)
    check_info(pycnn, kernels, args.openmp)
    print("\nsmoke test passed")


if __name__ == "__main__":
    main()
