"""`pycnn info` / `pycnn.show_config()`: every line true of the running process."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import pycnn
from pycnn import _info
from pycnn._ext import _kernels

SITE = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))


def _show():
    buf = io.StringIO()
    pycnn.show_config(file=buf)
    return buf.getvalue()


def _field(text, label):
    for line in text.splitlines():
        key, sep, value = line.partition(" : ")
        if sep and key.strip() == label:
            return value
    raise AssertionError(f"no {label!r} line in:\n{text}")


def _pycnn_info(tmp_path, **env):
    """`python -m pycnn info` in a fresh interpreter, outside the source tree."""
    full_env = dict(os.environ, **env)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [SITE] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pycnn", "info"],
        cwd=tmp_path,
        text=True,
        capture_output=True,
        env=full_env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_show_config_reports_this_process():
    out = _show()
    assert _field(out, "pycnn").startswith(pycnn.__version__ + " (")
    assert _field(out, "compiled extension") == f"loaded ({os.path.abspath(_kernels.__file__)})"
    assert _field(out, "build").startswith("debug" if _kernels.debug_build() else "release")
    assert ("sanitized (PYCNN_SANITIZE=1" in _field(out, "build")) == _kernels.sanitize_build()
    openmp = _field(out, "OpenMP")
    threads = _field(out, "pycnn threads")
    if _kernels.openmp_enabled():
        assert openmp == f"yes (max threads {_kernels.openmp_max_threads()})"
        assert threads == str(pycnn.get_num_threads())
    else:
        assert openmp.startswith("no")
        assert threads == f"1 (no OpenMP; {pycnn.get_num_threads()} requested)"
    assert _field(out, "NumPy").startswith(np.__version__ + " (")
    assert _field(out, "Python").startswith("{}.{}.{}".format(*sys.version_info[:3]))
    assert "platform" in _info.config()


def test_show_config_follows_set_num_threads(monkeypatch):
    from pycnn import _config

    monkeypatch.setattr(_config, "_num_threads", None)
    pycnn.set_num_threads(1)
    expected = "1" if _kernels.openmp_enabled() else "1 (no OpenMP; 1 requested)"
    assert _field(_show(), "pycnn threads") == expected


def test_simd_target_is_read_from_the_extension():
    before = _kernels.simd_target()
    supported = ", ".join(_kernels.simd_supported())
    try:
        for target in _kernels.simd_supported():
            _kernels.set_simd_target(target)
            assert _field(_show(), "SIMD dispatch") == (
                f"{target} (this CPU and build can run: {supported})"
            )
    finally:
        _kernels.set_simd_target(before)


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="needs /proc/cpuinfo")
def test_cpu_simd_support_comes_from_proc_cpuinfo():
    with open("/proc/cpuinfo") as f:
        flags = next(
            (line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None
        )
    if flags is None:
        pytest.skip("no x86 flags line in /proc/cpuinfo")
    expected = ", ".join(f"{n} {'yes' if n in flags else 'no'}" for n in ("avx2", "avx512f"))
    assert _field(_show(), "CPU SIMD support") == expected


def test_blas_line_without_threadpoolctl(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import raises ImportError
    assert _field(_show(), "BLAS").startswith("unknown: install threadpoolctl")


def test_blas_line_with_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    out = _show()
    if blas:
        assert blas[0]["filepath"] in out and f"{blas[0]['num_threads']} threads" in out
    else:
        assert _field(out, "BLAS") == "none found loaded"


def test_pycnn_info_command_honours_pycnn_num_threads(tmp_path):
    out = _pycnn_info(tmp_path, PYCNN_NUM_THREADS="1")
    assert _field(out, "compiled extension").startswith("loaded (")
    expected = "1" if _kernels.openmp_enabled() else "1 (no OpenMP; 1 requested)"
    assert _field(out, "pycnn threads") == expected
    assert "PYCNN_NUM_THREADS=1" in _field(out, "environment")


def test_pycnn_info_without_the_extension(tmp_path):
    script = (
        "import sys\n"
        f"sys.path.insert(0, {SITE!r})\n"
        "class _NoExtension:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pycnn._ext._kernels':\n"
        "            raise ModuleNotFoundError('No module named ' + repr(name), name=name)\n"
        "sys.meta_path.insert(0, _NoExtension())\n"
        "from pycnn.cli import main\n"
        "sys.exit(main(['info']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert _field(proc.stdout, "compiled extension") == "NOT loaded"
    assert "No module named 'pycnn._ext._kernels'" in proc.stdout
    assert "OpenMP " not in proc.stdout


def test_openmp_runtime_without_threadpoolctl(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    runtimes = _info._loaded_openmp_runtimes()
    if _kernels.openmp_enabled() and os.path.exists("/proc/self/maps"):
        assert runtimes, "the extension uses OpenMP but no OpenMP runtime is mapped"
    if runtimes:
        assert _field(_show(), "OpenMP runtime") == runtimes[0]


def test_show_config_follows_set_winograd():
    before = pycnn.get_winograd()
    try:
        pycnn.set_winograd(False)
        assert _info.config()["Winograd"].startswith("off")
        pycnn.set_winograd(True)
        assert _info.config()["Winograd"].startswith("on")
    finally:
        pycnn.set_winograd(before)
