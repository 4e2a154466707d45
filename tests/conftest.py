"""Shared fixtures, tolerances and the named convolution case table."""

import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

# Relative to the largest magnitude in the expected array, so values near zero (sums of
# terms that cancel) are held to the precision of the terms, not to their own size.
TOL = {np.float32: 1e-4, np.float64: 1e-10}


def assert_close(got, want, dtype, err_msg=""):
    want = np.asarray(want)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=err_msg)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# name: (N, C, H, W, F, KH, KW, stride, padding, dilation, groups)
CONV_CASES = {
    "3x3-pad1": (2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1),
    "non-square-kernel": (2, 3, 7, 9, 4, 2, 4, 1, 0, 1, 1),
    "h-ne-w": (2, 2, 5, 11, 3, 3, 3, 1, 1, 1, 1),
    "unequal-strides": (2, 3, 9, 10, 4, 3, 3, (2, 3), 1, 1, 1),
    "stride-not-dividing": (2, 2, 10, 10, 3, 3, 3, 4, 0, 1, 1),
    "kernel-equals-input": (2, 3, 5, 4, 2, 5, 4, 1, 0, 1, 1),
    "stride-gt-kernel": (2, 2, 11, 11, 3, 2, 2, 3, 0, 1, 1),
    "n1": (1, 3, 6, 6, 2, 3, 3, 1, 1, 1, 1),
    "c1": (3, 1, 8, 8, 4, 5, 5, 1, 2, 1, 1),
    "groups2": (2, 4, 7, 7, 6, 3, 3, 1, 1, 1, 2),
    "groups3": (2, 6, 6, 8, 3, 3, 2, 1, 1, 1, 3),
    "depthwise": (2, 4, 6, 6, 4, 3, 3, 1, 1, 1, 4),
    "dilation2": (2, 3, 9, 9, 4, 3, 3, 1, 2, 2, 1),
    "asymmetric-padding": (2, 3, 6, 7, 4, 3, 3, 1, (0, 2), 1, 1),
    "same-odd": (2, 3, 7, 6, 4, 3, 5, 1, "same", 1, 1),
    "same-even-dilated": (2, 2, 7, 8, 3, 4, 2, 1, "same", (1, 2), 1),
    "valid": (2, 3, 6, 6, 2, 3, 3, 1, "valid", 1, 1),
    "pointwise-1x1": (2, 5, 4, 6, 3, 1, 1, 1, 0, 1, 1),
    "1x1-strided-padded": (2, 3, 5, 5, 4, 1, 1, 2, 1, 1, 1),
    "mixed": (3, 4, 9, 8, 6, 3, 2, (2, 1), (1, 2), (2, 1), 2),
}


def make_conv(case, dtype, rng):
    """Inputs of a CONV_CASES entry: x, weight, bias and the keyword arguments."""
    n, c, h, w, f, kh, kw, stride, padding, dilation, groups = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((f, c // groups, kh, kw)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, weight, bias, kwargs


def numerical_gradient(f, arr, eps=1e-6):
    """Central differences of the scalar `f()` with respect to every entry of `arr`
    (float64, modified in place and restored)."""
    grad = np.empty_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        up = f()
        arr[idx] = old - eps
        down = f()
        arr[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


# --- which SIMD variants the suite exercised (issue 12) --------------------------------
# Each test is counted under the variant active while its body runs (tests/test_dispatch.py
# forces each one on; every other test runs the default or PYCNN_SIMD's). The summary
# names any variant this CPU could run that no test ran.

_SIMD_TESTS = {}


@pytest.fixture(params=["baseline", "avx2", "avx512"])  # _kernels.SIMD_TARGETS
def simd(request):
    """Each instruction-set variant of the kernels forced on in turn (skipped where this
    CPU cannot run it), the previous one restored after."""
    from pycnn._ext import _kernels

    assert request.param in _kernels.SIMD_TARGETS
    if request.param not in _kernels.simd_supported():
        pytest.skip(f"{request.param} is not supported on this CPU")
    before = _kernels.simd_target()
    assert _kernels.set_simd_target(request.param) == request.param
    yield request.param
    _kernels.set_simd_target(before)


def _loaded_kernels():
    import sys

    return sys.modules.get("pycnn._ext._kernels")  # never imported just for this


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    kernels = _loaded_kernels()
    variant = kernels.simd_target() if kernels is not None else None
    yield
    if variant is not None:
        _SIMD_TESTS[variant] = _SIMD_TESTS.get(variant, 0) + 1


def pytest_terminal_summary(terminalreporter):
    kernels = _loaded_kernels()
    if kernels is None:
        return
    supported = kernels.simd_supported()
    ran = (
        ", ".join(
            f"{name} {_SIMD_TESTS[name]} tests"
            for name in kernels.SIMD_TARGETS
            if name in _SIMD_TESTS
        )
        or "none"
    )
    missing = [name for name in supported if name not in _SIMD_TESTS]
    verified = "yes" if kernels.avx512_verified() else "no (runs only when asked)"
    terminalreporter.write_line(
        f"SIMD variants exercised: {ran}; this CPU can run {', '.join(supported)}; "
        f"default {kernels.simd_default()}; avx512 verified on hardware: {verified}"
    )
    if missing and _SIMD_TESTS:
        terminalreporter.write_line(f"SIMD variants NOT exercised: {', '.join(missing)}")


def run_python(args, cwd, env=None, **kwargs):
    """Run a fresh interpreter (``python *args``) on the pycnn under test, whether it is
    installed or built in place, from `cwd` (outside the source tree, whose unbuilt
    package would shadow an installed one)."""
    import pycnn

    home = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(
        [home] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, **kwargs)
