"""The hostile-argument fuzz suite, bounded, and its crash-isolated runner.

tests/fuzz_cases.py holds the cases and the check; here a few dozen deterministic
examples per op family run in-process (hypothesis shrinks any failure), and
tools/fuzz.py is run in subprocess mode, once clean and once made to crash, so that
both the isolation and the crash detection are exercised. The long run is
``python tools/fuzz.py --cases 20000`` (see the CHANGELOG for its figures).
"""

import os
import subprocess
import sys

import fuzz_cases
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import pycnn
from pycnn import functional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "tools", "fuzz.py")
FUZZ_SETTINGS = settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("family", fuzz_cases.OP_CASES, ids=list(fuzz_cases.OP_CASES))
def test_compiled_agrees_with_reference_on_hostile_arguments(family):
    @FUZZ_SETTINGS
    @given(fuzz_cases.OP_CASES[family]())
    def check(case):
        fuzz_cases.check_case(case)

    check()


def test_every_op_of_the_table_is_fuzzed():
    from pycnn._ops import OPS

    assert set(fuzz_cases.OP_CASES) == set(OPS) | set(fuzz_cases.LAYER_CASES)
    for name, op in OPS.items():
        if op.fuzz is not None:
            assert fuzz_cases.OP_CASES[name] is getattr(fuzz_cases, op.fuzz)


# --- the check itself can fail -----------------------------------------------------


def _conv_case():
    x = fuzz_cases.ArraySpec((2, 3, 5, 5), np.float32, seed=1)
    w = fuzz_cases.ArraySpec((4, 3, 3, 3), np.float32, seed=2)
    return fuzz_cases.Case(
        "conv2d", dict(x=x, weight=w, padding=1), fuzz_cases._functional("conv2d")
    )


def test_check_passes_an_agreeing_case():
    assert fuzz_cases.check_case(_conv_case()) == "agree"


@pytest.mark.parametrize(
    "fault, match",
    [
        (lambda out, x: out * 1.001, "values differ"),
        (lambda out, x: out.astype(np.float64), "float64"),
        (lambda out, x: np.where(out > 0, np.nan, out), "NaN/inf in different places"),
        (lambda out, x: x.__setitem__((0, 0, 0, 0), 7) or out, "modified its input `x`"),
        (lambda out, x: (_ for _ in ()).throw(IndexError("oops")), "IndexError"),
        (lambda out, x: (_ for _ in ()).throw(ValueError("other text")), "reference returned"),
    ],
)
def test_check_detects_a_faulty_compiled_op(monkeypatch, fault, match):
    real = functional.conv2d

    def faulty(x, weight, *args, **kwargs):
        return fault(real(x, weight, *args, **kwargs), x)

    monkeypatch.setattr(functional, "conv2d", faulty)
    with pytest.raises(fuzz_cases.Disagreement, match=match):
        fuzz_cases.check_case(_conv_case())


# --- the runner, in subprocess mode ----------------------------------------------------


def _run_fuzz(*args, **extra_env):
    # the subprocesses import the pycnn this test imported (source tree or installed)
    site = os.path.dirname(os.path.dirname(pycnn.__file__))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH")) if p),
        **extra_env,
    )
    return subprocess.run(
        [sys.executable, RUNNER, *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_runner_runs_batches_in_subprocesses_without_crashes():
    proc = _run_fuzz("--cases", "200", "--batch", "100", "--seed", "7")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = _summary(proc)
    assert "200 cases run in 2 subprocesses" in summary
    assert summary.endswith("crashes 0, disagreements 0")
    from pycnn._ext import _kernels

    # the variant the subprocesses pick: PYCNN_SIMD's (e.g. under tools/verify_simd.py)
    # or the default
    expected, _ = _kernels._resolve_simd_request(
        os.environ.get("PYCNN_SIMD"), _kernels.simd_supported(), _kernels.simd_default()
    )
    assert proc.stdout.strip().splitlines()[-1] == (
        f"fuzz: SIMD variants exercised: {expected} 200 cases"
    )


def _summary(proc, variant=None):
    """The runner's summary line (of one variant)."""
    lines = [
        line
        for line in proc.stdout.splitlines()
        if " cases run in " in line
        and (variant is None or line.startswith(f"fuzz: [{variant}]"))
    ]
    assert len(lines) == 1, proc.stdout
    return lines[0]


def test_runner_fuzzes_each_simd_variant_when_asked(tmp_path):
    import json

    from pycnn._ext import _kernels

    out = tmp_path / "fuzz.json"
    proc = _run_fuzz(
        "--cases", "30", "--batch", "30", "--seed", "3", "--simd", "all", "--json", str(out)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for variant in _kernels.simd_supported():
        assert _summary(proc, variant).endswith("crashes 0, disagreements 0")
    assert proc.stdout.strip().splitlines()[
        -1
    ] == "fuzz: SIMD variants exercised: " + ", ".join(
        f"{v} 30 cases" for v in _kernels.simd_supported()
    )
    counts = json.loads(out.read_text())["variants"]
    assert sorted(counts) == sorted(_kernels.simd_supported())
    assert all(c["cases"] == 30 and c["ran"] == [v] for v, c in counts.items())


def test_runner_refuses_a_variant_this_cpu_cannot_run():
    proc = _run_fuzz("--cases", "1", "--simd", "avx3")
    assert proc.returncode == 2 and "--simd avx3: not a variant" in proc.stderr


def test_runner_reports_a_crashing_case_and_fails():
    # under tools/sanitize.sh, AddressSanitizer would catch the deliberate SIGSEGV
    # (and report it as a memory error); let the signal through instead
    asan = os.environ.get("ASAN_OPTIONS")
    extra = {"ASAN_OPTIONS": asan + ":handle_segv=0"} if asan else {}
    proc = _run_fuzz("--cases", "20", "--batch", "10", "--self-test-crash", **extra)
    assert proc.returncode == 1
    assert "CRASH: batch 0 (hypothesis seed 0) killed by SIGSEGV during case 3:" in proc.stdout
    summary = _summary(proc)
    assert "10 cases run in 2 subprocesses" in summary  # the other batch still ran
    assert "crashes 1" in summary
