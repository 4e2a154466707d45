#!/usr/bin/env bash
# Run the test suite against an AddressSanitizer + UBSan build of the extension.
#
#   tools/sanitize.sh [pytest arguments]      (default: -q -p no:cacheprovider)
#
# The extension is built with PYCNN_SANITIZE=1 (-fsanitize=address,undefined -O1 -g)
# in a scratch copy of the source tree, so the working tree's own build is untouched,
# and the tests run there with the sanitizer runtimes preloaded (CPython itself is not
# instrumented, so ASan must be loaded before anything else). Any report (a bad read
# or write, undefined behaviour) aborts the process that hit it and fails this script:
# pytest captures only Python's sys.stderr (--capture=sys), so reports written to file
# descriptor 2 reach the terminal and a copy of it that is searched at the end, and
# ASan also logs to files (UBSan, loaded beside ASan, ignores log_path). Leak detection
# is off: CPython keeps memory alive at exit by design (tests/test_leaks.py checks
# pycnn's own leaks). Python builds extensions with -fwrapv, so signed overflow is
# defined behaviour there and UBSan does not flag it (make -C csrc test does).
#
# Environment: PYTHON (default python3), CC (default gcc), PYCNN_DEBUG=1 to add
# Cython's bounds checks, KEEP=1 to keep the scratch folder.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
CC=${CC:-gcc}
WORK=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then
    echo "sanitize: scratch folder $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi

# the runtimes of the compiler that builds the extension
ASAN_LIB=$("$CC" -print-file-name=libasan.so)
UBSAN_LIB=$("$CC" -print-file-name=libubsan.so)
for lib in "$ASAN_LIB" "$UBSAN_LIB"; do
    if [ ! -e "$lib" ]; then
        echo "sanitize: $CC has no $(basename "$lib") (install its sanitizer runtime)" >&2
        exit 2
    fi
done

# the build runs setup.py directly, not in an isolated build environment: $PYTHON
# needs pyproject.toml's [build-system] requires, and pytest
if ! "$PYTHON" -c "
import Cython, numpy, pytest, setuptools
assert int(Cython.__version__.split('.')[0]) >= 3 and int(numpy.__version__.split('.')[0]) >= 2
assert int(setuptools.__version__.split('.')[0]) >= 77" 2>/dev/null; then
    echo "sanitize: $PYTHON needs Cython>=3, numpy>=2, setuptools>=77 and pytest:" \
         "$PYTHON -m pip install 'Cython>=3' 'numpy>=2' 'setuptools>=77' pytest hypothesis" >&2
    exit 2
fi

SECONDS=0
mkdir "$WORK/src" "$WORK/logs"
tar -C "$ROOT" --exclude=./build --exclude=./.git --exclude='*.so' --exclude=__pycache__ \
    --exclude=./dist --exclude=./wheelhouse --exclude='*.egg-info' -cf - . \
    | tar -C "$WORK/src" -xf -
(cd "$WORK/src" && CC="$CC" PYCNN_SANITIZE=1 "$PYTHON" setup.py -q build_ext --inplace \
    >"$WORK/build.log" 2>&1) || { cat "$WORK/build.log" >&2; exit 1; }
echo "sanitize: built the PYCNN_SANITIZE=1 extension in ${SECONDS}s"

# detect_leaks=0: CPython is not leak-clean at exit. allocator_may_return_null=1: an
# impossible allocation must become MemoryError, as in a normal build, not an abort.
export LD_PRELOAD="$ASAN_LIB $UBSAN_LIB${LD_PRELOAD:+ $LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=1:strict_init_order=1:detect_stack_use_after_return=1:log_path=$WORK/logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$WORK/logs/ubsan"
export PYTHONPATH="$WORK/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONFAULTHANDLER=1

rc=0
(cd "$WORK/src" && "$PYTHON" -c "
from pycnn._ext import _kernels
assert _kernels.sanitize_build(), 'not a PYCNN_SANITIZE=1 build: ' + _kernels.__file__
assert _kernels.__file__.startswith('$WORK/src/'), _kernels.__file__
") || rc=$?
if [ "$rc" -eq 0 ]; then
    (cd "$WORK/src" && "$PYTHON" -m pytest "${@:--q}" -p no:cacheprovider --capture=sys) \
        2> >(tee "$WORK/stderr.log" >&2) || rc=$?
fi

# a report is an ASan ERROR or a UBSan "runtime error"; the logs may also hold
# warnings, e.g. "failed to allocate" for the tests that expect a MemoryError
REPORT="ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer"
wait    # for tee
if grep -q -E "$REPORT" "$WORK/stderr.log" 2>/dev/null; then
    echo "sanitize: SANITIZER REPORTS on stderr (above)" >&2
    [ "$rc" -ne 0 ] || rc=1
fi
if compgen -G "$WORK/logs/*" >/dev/null; then
    if grep -q -E "$REPORT" "$WORK"/logs/*; then
        echo "sanitize: SANITIZER REPORTS:" >&2
        cat "$WORK"/logs/* >&2
        [ "$rc" -ne 0 ] || rc=1
    else
        echo "sanitize: sanitizer warnings (not errors):"
        cat "$WORK"/logs/*
    fi
fi
echo "sanitize: exit status $rc after ${SECONDS}s"
exit "$rc"
