"""Build the compiled kernels: csrc/*.c through the Cython wrappers in pycnn/_ext/.

Environment switches:
    PYCNN_DEBUG=1     bounds checks on, -O0 -g (to hunt memory errors)
    PYCNN_SANITIZE=1  AddressSanitizer + UBSan, -O1 -g (gcc/clang only; combines with
                      PYCNN_DEBUG=1). Python must preload the sanitizer runtimes to
                      import it: tools/sanitize.sh builds it and runs the tests so.
    PYCNN_OPENMP=0    build without OpenMP (default: probed, used when the compiler has it)
"""

import glob
import os
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import simd_digest  # noqa: E402  (tools/simd_digest.py, shipped in the sdist)

DEBUG = os.environ.get("PYCNN_DEBUG", "0") not in ("", "0")
SANITIZE = os.environ.get("PYCNN_SANITIZE", "0") not in ("", "0")
OPENMP = os.environ.get("PYCNN_OPENMP", "auto").lower()

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 && omp_get_max_threads() > 0 ? 0 : 1;
}
"""


def _compiler_has_openmp(compiler, flag):
    """Compile and link a small OpenMP program; True when both succeed."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
            compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=[flag])
        except Exception:  # CompileError, LinkError: no OpenMP here
            return False
    return True


# Issue 13: the kernels use GCC/Clang extensions that MSVC rejects; say so once, before
# compiling, rather than in a wall of compile errors.
MSVC_MESSAGE = (
    "pycnn cannot be built with MSVC (Microsoft Visual C++): its C kernels in csrc/ use "
    "GCC/Clang vector extensions (__attribute__((vector_size))) and per-function target "
    "attributes with runtime CPU checks (__attribute__((target)), "
    "__builtin_cpu_supports), which MSVC does not support. Windows is not supported yet; "
    "pycnn builds with gcc or clang on Linux and macOS."
)


class BuildExt(build_ext):
    """build_ext that refuses MSVC, probes OpenMP once and applies it to every extension."""

    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            sys.exit(MSVC_MESSAGE)
        flag = "-fopenmp"
        if OPENMP in ("0", "off", "no", "false"):
            use_openmp = False
        else:
            use_openmp = _compiler_has_openmp(self.compiler, flag)
            if not use_openmp and OPENMP in ("1", "on", "yes", "true"):
                sys.exit("PYCNN_OPENMP=1 but the compiler cannot build OpenMP code")
        print(f"pycnn: building with OpenMP: {use_openmp}")
        for ext in self.extensions:
            if use_openmp:
                ext.extra_compile_args.append(flag)
                ext.extra_link_args.append(flag)
        super().build_extensions()


SANITIZER_FLAGS = [
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=undefined",
]
ldflags = []
# gcc or clang only (BuildExt stops an MSVC build). -ffp-contract=off: the AVX2/AVX-512
# variants have FMA, and a contracted a*b + c rounds once instead of twice; results must
# not depend on the variant (nor drift from PyTorch's arithmetic order). -std=c99 implies
# it with GCC; say it anyway.
cflags = (["-O0", "-g"] if DEBUG else ["-O1", "-g"] if SANITIZE else ["-O3", "-g0"]) + [
    "-std=c99",
    "-ffp-contract=off",
]
if SANITIZE:
    # the release code paths (no Cython bounds checks unless PYCNN_DEBUG=1 too),
    # instrumented: any out-of-bounds access or undefined behaviour aborts
    cflags += SANITIZER_FLAGS
    ldflags += SANITIZER_FLAGS

# Code that has never run must not be the default (issue 12): the AVX-512 variants are
# the default only if csrc/VERIFIED_AVX512 records the digest of these very sources
# (tools/verify_simd.py writes it on AVX-512 hardware); else they run only when asked.
SOURCES_DIGEST = simd_digest.digest(ROOT)
AVX512_VERIFIED = simd_digest.verified(ROOT)
print(
    f"pycnn: C sources sha256 {SOURCES_DIGEST}; AVX-512 variants verified on hardware: "
    + ("yes (default where the CPU has AVX-512)" if AVX512_VERIFIED else "no (only when asked)")
)

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "cdivision": True,
    "embedsignature": True,
}

extensions = [
    Extension(
        "pycnn._ext._kernels",
        sources=[
            "pycnn/_ext/_kernels.pyx",
            "csrc/dispatch.c",
            "csrc/im2col.c",
            "csrc/conv_direct.c",
            "csrc/pool2d.c",
        ],
        include_dirs=[np.get_include(), "csrc"],
        # a new record changes PYCNN_AVX512_VERIFIED without touching a source: without
        # this, `build_ext --inplace` would keep the old extension
        depends=[simd_digest.RECORD.replace(os.sep, "/")]
        + [
            f"csrc/{os.path.basename(p)}"
            for p in sorted(glob.glob(os.path.join(ROOT, "csrc", "*.h")))
        ],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_21_API_VERSION")]
        + ([("PYCNN_DEBUG_BUILD", "1")] if DEBUG else [])
        + ([("PYCNN_SANITIZE_BUILD", "1")] if SANITIZE else [])
        # a bare hex string, stringified in C: no quotes to survive the command line
        + [("PYCNN_SOURCES_DIGEST", SOURCES_DIGEST)]
        + ([("PYCNN_AVX512_VERIFIED", "1")] if AVX512_VERIFIED else []),
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    )
]

setup(
    # generated C goes under build/, one folder per mode, never into the source tree
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        quiet=True,
        build_dir=os.path.join("build", "cython" + "-debug" * DEBUG + "-sanitize" * SANITIZE),
    ),
    cmdclass={"build_ext": BuildExt},
)
