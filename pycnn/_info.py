"""What this pycnn is and runs on: `pycnn.show_config()` and `pycnn info`.

Every line is read from the running process (the loaded extension, the OpenMP and BLAS
libraries loaded in it, /proc/cpuinfo), not from how pycnn was meant to be built.
"""

import importlib
import os
import platform
import sys

import numpy as np

__all__ = ["config", "show_config"]

# Environment variables that change how many threads run or which BLAS kernel runs.
_ENV_VARS = (
    "PYCNN_NUM_THREADS",
    "PYCNN_WINOGRAD",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)


def _cpu_simd_flags():
    """'avx2 yes, avx512f no' from /proc/cpuinfo, or None where there is none (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
            else:
                return None
    except OSError:
        return None
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "i386", "x86"):
        return None
    return ", ".join(
        f"{name} {'yes' if name in flags else 'no'}" for name in ("avx2", "avx512f")
    )


def _thread_pools():
    """threadpoolctl's view of the BLAS and OpenMP libraries loaded, or None without it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return threadpool_info()


def _loaded_openmp_runtimes():
    """OpenMP runtimes mapped into this process, from /proc/self/maps (Linux only)."""
    try:
        with open("/proc/self/maps") as f:
            fields = [line.split(None, 5) for line in f]
    except OSError:
        return []
    paths = {parts[5].strip() for parts in fields if len(parts) == 6}
    return sorted(
        p for p in paths if os.path.basename(p).startswith(("libgomp", "libomp", "libiomp"))
    )


def _describe_pool(pool):
    details = [
        d
        for d in (pool.get("version"), pool.get("threading_layer"), pool.get("architecture"))
        if d
    ]
    name = pool["prefix"] if pool["user_api"] == "openmp" else pool["internal_api"]
    return (
        f"{name}"
        + (f" {details[0]}" if details else "")
        + (f" ({', '.join(details[1:])})" if len(details) > 1 else "")
        + f", {pool['num_threads']} threads, {pool['filepath']}"
    )


def config():
    """The facts `show_config()` prints, as an ordered dict of label -> text."""
    # the submodules it needs, not the package: pycnn/__init__.py imports this module
    from pycnn._config import get_num_threads, get_winograd
    from pycnn._ext import missing_extension_message
    from pycnn._version import __version__

    info = {"pycnn": f"{__version__} ({os.path.dirname(os.path.abspath(__file__))})"}
    try:
        kernels = importlib.import_module("pycnn._ext._kernels")
    except ImportError as exc:
        kernels = None
        info["compiled extension"] = "NOT loaded\n" + missing_extension_message(exc)
    else:
        info["compiled extension"] = f"loaded ({os.path.abspath(kernels.__file__)})"

    pools = _thread_pools()
    threads = get_num_threads()
    if kernels is not None:
        info["build"] = (
            "debug (PYCNN_DEBUG=1: bounds checks, -O0 -g)"
            if kernels.debug_build()
            else "release (-O3)"
        )
        if kernels.sanitize_build():
            info["build"] = (
                info["build"].replace("release (-O3)", "release (-O1 -g)")
                + ", sanitized (PYCNN_SANITIZE=1: ASan + UBSan)"
            )
        if kernels.openmp_enabled():
            info["OpenMP"] = f"yes (max threads {kernels.openmp_max_threads()})"
            info["pycnn threads"] = str(threads)
        else:
            info["OpenMP"] = "no (built without it: the kernels run serially)"
            info["pycnn threads"] = f"1 (no OpenMP; {threads} requested)"
        info["SIMD dispatch"] = (
            f"{kernels.simd_target()} (this CPU and build can run: "
            f"{', '.join(kernels.simd_supported())})"
        )
        # issue 12: unverified AVX-512 code is never the default
        digest = kernels.simd_sources_digest()[:12] or "unknown"
        if kernels.avx512_verified():
            info["avx512 verified"] = (
                f"yes, on hardware (the default on CPUs with AVX-512; sources sha256 "
                f"{digest}...)"
            )
        else:
            info["avx512 verified"] = (
                f"no, not on hardware (runs only when asked: PYCNN_SIMD=avx512 or "
                f"set_simd_target('avx512'); sources sha256 {digest}... not in "
                f"csrc/VERIFIED_AVX512)"
            )
        info["Winograd"] = (
            "on (stride-1 3x3 convolutions where it measured faster; "
            "pycnn.set_winograd(False) or PYCNN_WINOGRAD=0 turns it off)"
            if get_winograd()
            else "off (pycnn.set_winograd(True) turns it on)"
        )
        asked, problem = kernels.simd_request()
        if asked is not None:
            # what was asked and what runs, even when the value could not be used
            info["SIMD requested"] = problem or (
                f"PYCNN_SIMD={asked} (default: {kernels.simd_default()})"
            )
    else:
        info["pycnn threads"] = f"{threads} (unused: no compiled extension)"
    cpu = _cpu_simd_flags()
    if cpu is not None:
        info["CPU SIMD support"] = cpu

    info["NumPy"] = f"{np.__version__} ({os.path.dirname(np.__file__)})"
    if pools is None:
        info["BLAS"] = "unknown: install threadpoolctl to see it (pip install threadpoolctl)"
        omp = _loaded_openmp_runtimes()
        if omp:
            info["OpenMP runtime"] = "\n".join(omp)
    else:
        blas = [_describe_pool(p) for p in pools if p["user_api"] == "blas"]
        info["BLAS"] = "\n".join(blas) if blas else "none found loaded"
        omp = [_describe_pool(p) for p in pools if p["user_api"] == "openmp"]
        if omp:
            info["OpenMP runtime"] = "\n".join(omp)
    env = [f"{name}={os.environ[name]}" for name in _ENV_VARS if name in os.environ]
    if env:
        info["environment"] = " ".join(env)
    info["Python"] = (
        f"{platform.python_version()} {platform.python_implementation()} ({sys.executable})"
    )
    info["platform"] = f"{platform.platform()} ({platform.machine()})"
    return info


def show_config(file=None):
    """Print pycnn's version, its compiled extension (loaded or not, from where), build
    mode, OpenMP and thread counts, SIMD target, NumPy and its BLAS, Python, platform."""
    info = config()
    width = max(len(label) for label in info)
    lines = []
    for label, text in info.items():
        first, *rest = text.split("\n")
        lines.append(f"{label:<{width}} : {first}")
        lines.extend(f"{'':<{width}}   {line}" for line in rest)
    print("\n".join(lines), file=file or sys.stdout)
