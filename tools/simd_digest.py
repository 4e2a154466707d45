"""Digest of the C sources that define the SIMD variants, and the record of the last
digest whose AVX-512 variants were verified on hardware (issue 12).

"Code that has never run must not be the default": setup.py compares `digest()` of
the sources it builds with the `sha256` line of csrc/VERIFIED_AVX512, which
tools/verify_simd.py writes after the dispatch tests, the suite and a fuzz run forced
onto each variant all passed on a CPU with AVX-512. Equal: the AVX-512 variants are the
default where the CPU has them. Different (any byte of a kernel, dispatch or shared
header changed since): AVX-512 runs only when asked for, and AVX2 is the default cap.

The digest covers every C source compiled into the extension (csrc/*.c and csrc/*.h
except the C-only test): the AVX-512 variants are generated from the same macro bodies
as the others, by common.h and dispatch.h, so any of them can change what they do. Line
endings are normalised, so a checkout with CRLF gives the same digest.

    python tools/simd_digest.py          prints the digest of this tree's sources
"""

import glob
import hashlib
import os
import sys

RECORD = os.path.join("csrc", "VERIFIED_AVX512")
_EXCLUDED = ("test_csrc.c",)


def source_files(root):
    """The sources covered, relative to `root`, in a fixed order."""
    paths = glob.glob(os.path.join(root, "csrc", "*.c")) + glob.glob(
        os.path.join(root, "csrc", "*.h")
    )
    names = sorted(
        os.path.relpath(p, root).replace(os.sep, "/")
        for p in paths
        if os.path.basename(p) not in _EXCLUDED
    )
    if not names:
        raise FileNotFoundError(f"no C sources under {os.path.join(root, 'csrc')}")
    return names


def digest(root):
    """sha256 (hex) over the name and content of every covered source."""
    h = hashlib.sha256()
    for name in source_files(root):
        with open(os.path.join(root, name), "rb") as f:
            data = f.read().replace(b"\r\n", b"\n")
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def read_record(root):
    """The `key value` lines of csrc/VERIFIED_AVX512 as a dict ({} when absent)."""
    try:
        with open(os.path.join(root, RECORD), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    record = {}
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            record[key] = value.strip()
    return record


def verified(root):
    """Whether the recorded digest is that of the sources under `root`."""
    return read_record(root).get("sha256") == digest(root)


if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(digest(root))
    sys.exit(0)
