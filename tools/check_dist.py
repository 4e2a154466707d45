"""Check what tools/build_wheel.sh produced: the sdist holds everything needed to build,
the repaired wheel holds no sources and no debug symbols and bundles what it links.

    python tools/check_dist.py dist/pycnn-X.tar.gz wheelhouse/pycnn-X-...-manylinux_*.whl

The file lists come from `git ls-files` when this is a git checkout (so a new C file or
data file that the packaging misses is caught), else from the source folders on disk.
"""

import fnmatch
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_ONLY = ("*.c", "*.h", "*.pyx", "*.pxi", "*.pxd")  # never in the wheel
SDIST_TOP = ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE")
SDIST_DIRS = ("csrc", "pycnn", "tests")  # every tracked file in these
errors = []


def fail(message):
    errors.append(message)
    print(f"  FAIL {message}")


def tracked_files():
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", *SDIST_DIRS],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        files = [f for f in out.split("\0") if f]
        if files:
            return files
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for top in SDIST_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            files += [
                os.path.relpath(os.path.join(dirpath, f), ROOT).replace(os.sep, "/")
                for f in filenames
                if not f.endswith((".so", ".pyd", ".o", ".pyc", ".html")) and f != "test_csrc"
            ]
    return files


def check_sdist(path, tracked):
    print(f"sdist {os.path.basename(path)}")
    with tarfile.open(path) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in sorted(set(SDIST_TOP) | set(tracked)):
        if name not in names:
            fail(f"sdist lacks {name}")
    for pattern in (
        "csrc/*.c",
        "csrc/*.h",
        "csrc/Makefile",
        "pycnn/_ext/*.pyx",
        "pycnn/_ext/*.pxi",
        "pycnn/_ext/*.pxd",
        "pycnn/_ext/*.pyi",
        "tests/*.py",
    ):
        if not fnmatch.filter(names, pattern):
            fail(f"sdist has no {pattern}")
    stray = [
        n for n in names if n.endswith((".so", ".pyd", ".o", ".pyc")) or n.startswith("build/")
    ]
    if stray:
        fail(f"sdist holds build products: {stray}")
    print(f"  {len(names)} entries; every tracked file of {', '.join(SDIST_DIRS)} present")


def elf_problems(data, name):
    with tempfile.NamedTemporaryFile(suffix=os.path.basename(name)) as f:
        f.write(data)
        f.flush()
        sections = subprocess.run(
            ["readelf", "-SW", f.name], check=True, capture_output=True, text=True
        ).stdout
        needed = subprocess.run(
            ["readelf", "-dW", f.name], check=True, capture_output=True, text=True
        ).stdout
    problems = [s for s in (".symtab",) if f" {s} " in sections]
    problems += sorted({w for w in sections.split() if w.startswith(".debug")})
    libs = [
        line.split("[", 1)[1].rstrip("]") for line in needed.splitlines() if "(NEEDED)" in line
    ]
    return problems, libs


def check_wheel(path, tracked):
    print(f"wheel {os.path.basename(path)}")
    if "manylinux" not in os.path.basename(path):
        fail("the wheel is not a manylinux wheel (auditwheel repair did not run?)")
    with zipfile.ZipFile(path) as whl:
        names = whl.namelist()
        sources = [n for n in names if any(fnmatch.fnmatch(n, p) for p in SOURCE_ONLY)]
        if sources:
            fail(f"wheel holds sources: {sources}")
        if "pycnn/_ext/_kernels.pyi" not in names:
            fail("wheel lacks the type stub pycnn/_ext/_kernels.pyi")
        extensions = [
            n
            for n in names
            if n.startswith("pycnn/_ext/_kernels.") and n.endswith((".so", ".pyd"))
        ]
        if len(extensions) != 1:
            fail(f"wheel should hold one compiled pycnn/_ext/_kernels: {extensions}")
        # every tracked package file that is not a source belongs in the wheel
        for name in tracked:
            if name.startswith("pycnn/") and not any(
                fnmatch.fnmatch(name, p) for p in SOURCE_ONLY
            ):
                if name not in names:
                    fail(f"wheel lacks {name}")
        bundled = {n.rsplit("/", 1)[1] for n in names if ".libs/" in n and not n.endswith("/")}
        for name in names:
            if not (name.endswith(".so") or ".so." in name):
                continue
            problems, libs = elf_problems(whl.read(name), name)
            if problems:
                fail(f"{name} is not stripped: {', '.join(problems)}")
            else:
                print(f"  {name}: stripped, links {', '.join(libs)}")
            for lib in libs:
                if lib.startswith("libgomp") and lib not in bundled:
                    fail(f"{name} links {lib} but the wheel does not bundle it")
    print(
        f"  {len(names)} entries; no .c/.h/.pyx/.pxi/.pxd; .pyi present; "
        f"bundled: {', '.join(sorted(bundled)) or 'nothing'}"
    )


def main(argv):
    if len(argv) != 2 or not argv[0].endswith(".tar.gz") or not argv[1].endswith(".whl"):
        sys.exit("usage: check_dist.py SDIST.tar.gz WHEEL.whl")
    tracked = tracked_files()
    check_sdist(argv[0], tracked)
    check_wheel(argv[1], tracked)
    if errors:
        sys.exit(f"check_dist: {len(errors)} problem(s)")
    print("check_dist: sdist and wheel OK")


if __name__ == "__main__":
    main(sys.argv[1:])
