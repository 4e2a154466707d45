"""Each runtime-dispatched instruction-set variant, forced on, agrees with the reference:
convolution, im2col/col2im and max/avg/Lp pooling, forward and backward."""

import numpy as np
import pytest
from conftest import CONV_CASES, assert_close, make_conv

from pycnn import functional, reference
from pycnn._ext import _kernels


@pytest.mark.parametrize(
    "name", ["mixed", "same-even-dilated", "stride-not-dividing", "c1", "groups3"]
)
def test_conv2d_variant_matches_reference(simd, name, dtype, rng):
    x, w, b, kw = make_conv(CONV_CASES[name], dtype, rng)
    out = functional.conv2d(x, w, b, **kw)
    assert_close(out, reference.conv2d(x, w, b, **kw), dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    for got, want in zip(
        functional.conv2d_backward(g, x, w, **kw), reference.conv2d_backward(g, x, w, **kw)
    ):
        assert_close(got, want, dtype)


@pytest.mark.parametrize(
    "case",
    [
        (2, 3, 9, 18, 6, 3, 3, 1, 1, 1, 1),  # direct kernel
        (2, 4, 6, 21, 4, 3, 3, 1, (1, 2), 1, 4),
    ],
    ids=["direct", "direct-depthwise"],
)
def test_direct_conv2d_variant_matches_reference(simd, case, dtype, rng):
    x, w, b, kw = make_conv(case, dtype, rng)
    assert_close(functional.conv2d(x, w, b, **kw), reference.conv2d(x, w, b, **kw), dtype)


def test_im2col_variant_matches_reference(simd, dtype, rng):
    x = rng.standard_normal((3, 2, 11, 13)).astype(dtype)
    kwargs = dict(kernel_size=(3, 4), stride=(1, 2), padding=(2, 1), dilation=(2, 1))
    cols = functional.im2col(x, **kwargs)
    np.testing.assert_array_equal(cols, reference.im2col(x, **kwargs))
    assert_close(
        functional.col2im(cols, (11, 13), **kwargs),
        reference.col2im(cols, (11, 13), **kwargs),
        dtype,
    )


# Rows wide enough for whole AVX2/AVX-512 vectors plus a remainder, so each variant's
# vectorised interior loops run (the 2x2 ones at a literal stride 2 among them).
# name: (input shape, pooling arguments shared by max, avg and Lp pooling, extra max ones)
POOL_VARIANT_CASES = {
    "2x2-stride2": ((2, 3, 10, 38), dict(kernel_size=2), {}),
    "2x2-stride2-padded-ceil": (
        (2, 2, 9, 69),
        dict(kernel_size=2, stride=2, ceil_mode=True),
        dict(padding=1),
    ),
    "2x2-stride1": ((1, 2, 6, 41), dict(kernel_size=2, stride=1), {}),
    "3x2-strides-2-1": (
        (2, 2, 11, 45),
        dict(kernel_size=(3, 2), stride=(2, 1)),
        dict(padding=1, dilation=(2, 1)),
    ),
}


def _pool_input(shape, dtype, rng, nan=False):
    """Values on a coarse grid (many ties inside windows), NaN sprinkled in on request."""
    x = np.round(rng.standard_normal(shape), 1).astype(dtype)
    if nan:
        x.reshape(-1)[::23] = np.nan
    return x


@pytest.mark.parametrize("nan", [False, True], ids=["ties", "nan"])
@pytest.mark.parametrize("name", POOL_VARIANT_CASES)
def test_max_pool2d_variant_matches_reference(simd, name, nan, dtype, rng):
    shape, kw, max_kw = POOL_VARIANT_CASES[name]
    kw = {**kw, **max_kw}
    x = _pool_input(shape, dtype, rng, nan)
    out, idx = functional.max_pool2d(x, **kw, return_indices=True)
    want, want_idx = reference.max_pool2d(x, **kw, return_indices=True)
    np.testing.assert_array_equal(out, want)  # a selection: exact
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(functional.max_pool2d(x, **kw), want)
    g = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_array_equal(
        functional.max_pool2d_backward(g, idx, x.shape),
        reference.max_pool2d_backward(g, want_idx, x.shape),
    )


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("name", POOL_VARIANT_CASES)
def test_avg_pool2d_variant_matches_reference(simd, name, count_include_pad, dtype, rng):
    shape, kw, _ = POOL_VARIANT_CASES[name]
    kw = dict(kw, padding=1 if count_include_pad else 0, count_include_pad=count_include_pad)
    x = _pool_input(shape, dtype, rng)
    out = functional.avg_pool2d(x, **kw)
    np.testing.assert_array_equal(out, reference.avg_pool2d(x, **kw))  # same order: exact
    g = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_array_equal(
        functional.avg_pool2d_backward(g, x.shape, **kw),
        reference.avg_pool2d_backward(g, x.shape, **kw),
    )


@pytest.mark.parametrize("p", [2, 3.5])
@pytest.mark.parametrize("name", POOL_VARIANT_CASES)
def test_lp_pool2d_variant_matches_reference(simd, name, p, dtype, rng):
    shape, kw, _ = POOL_VARIANT_CASES[name]
    x = np.abs(_pool_input(shape, dtype, rng)) + dtype(0.1)  # x**3.5 needs x >= 0
    out = functional.lp_pool2d(x, p, **kw)
    assert_close(out, reference.lp_pool2d(x, p, **kw), dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    assert_close(
        functional.lp_pool2d_backward(g, x, p, **kw),
        reference.lp_pool2d_backward(g, x, p, **kw),
        dtype,
    )


def test_the_default_or_the_requested_variant_runs():
    assert _kernels.simd_target() in _kernels.simd_supported()
    assert _kernels.simd_supported()[0] == "baseline"
    asked, problem = _kernels.simd_request()
    if asked and asked.strip() and problem is None:
        assert _kernels.simd_target() == asked.strip().lower()
    else:
        assert _kernels.simd_target() == _kernels.simd_default()


def test_unknown_or_unsupported_variant_is_refused():
    before = _kernels.simd_target()
    with pytest.raises(ValueError, match="`name` must be one of"):
        _kernels.set_simd_target("sse9")
    assert _kernels.simd_target() == before


# --- PYCNN_SIMD (issue 12, defect 5) ----------------------------------------------------


def _run_with_simd(value, code):
    """Run `code` in a fresh interpreter with PYCNN_SIMD=value; return the process."""
    import os
    import tempfile

    from conftest import run_python

    env = dict(os.environ, PYCNN_SIMD=value)
    with tempfile.TemporaryDirectory() as scratch:
        return run_python(["-W", "default", "-c", code], scratch, env=env, timeout=120)


@pytest.mark.parametrize("value", ["avx3", "sse9", "512"])
def test_unknown_pycnn_simd_falls_back_with_a_warning(value):
    proc = _run_with_simd(
        value,
        "import pycnn\nfrom pycnn._ext import _kernels\n"
        "print(_kernels.simd_target())\npycnn.show_config()",
    )
    assert proc.returncode == 0, proc.stderr
    target = proc.stdout.splitlines()[0]
    assert target == _kernels.simd_default()
    assert "RuntimeWarning" in proc.stderr
    assert f"PYCNN_SIMD={value!r} is not a SIMD variant" in proc.stderr
    assert f"running {target} instead" in proc.stderr
    # `pycnn info` says what was asked and what runs
    requested = [line for line in proc.stdout.splitlines() if line.startswith("SIMD requested")]
    assert requested and f"PYCNN_SIMD={value!r}" in requested[0], proc.stdout
    assert f"running {target} instead" in requested[0]


def test_unknown_pycnn_simd_does_not_break_the_cli():
    proc = _run_with_simd(
        "avx3", "import sys; from pycnn.cli import main; sys.exit(main(['info']))"
    )
    assert proc.returncode == 0, proc.stderr
    assert "SIMD requested" in proc.stdout and "avx3" in proc.stdout


@pytest.mark.parametrize("value", _kernels.SIMD_TARGETS)
def test_usable_pycnn_simd_is_obeyed(value):
    if value not in _kernels.simd_supported():
        pytest.skip(f"{value} is not supported on this CPU")
    proc = _run_with_simd(
        value,
        "from pycnn._ext import _kernels\n"
        "print(_kernels.simd_target(), _kernels.simd_request())",
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr
    assert proc.stdout.split()[0] == value


def test_pycnn_simd_unsupported_on_this_cpu_falls_back():
    # a CPU without AVX-512 (or AVX2), simulated through the logic the import runs
    resolve = _kernels._resolve_simd_request
    name, problem = resolve("avx512", ("baseline", "avx2"), "avx2")
    assert name == "avx2"
    assert problem == (
        "PYCNN_SIMD='avx512': this CPU/build cannot run avx512 (it can run "
        "baseline, avx2); running avx2 instead"
    )
    name, problem = resolve("AVX2 ", ("baseline",), "baseline")
    assert name == "baseline" and "cannot run avx2" in problem
    assert resolve("Avx512", _kernels.SIMD_TARGETS, "avx2") == ("avx512", None)
    assert resolve("", ("baseline",), "baseline") == ("baseline", None)
    assert resolve(None, ("baseline", "avx2"), "avx2") == ("avx2", None)
