"""Verify every SIMD variant on this machine and record the AVX-512 verification.

    python tools/verify_simd.py [--cases 5000] [--seed 2031] [--jobs 2] [--no-record]

Issue 12: code that has never run must not be the default. On a CPU with AVX-512 this
runs, against the extension built in place from this tree (python setup.py build_ext
--inplace):

  1. the dispatch tests (tests/test_dispatch.py, tests/test_kernel_guards.py), which
     force each variant on in turn, with no test skipped;
  2. the whole test suite forced onto each variant (PYCNN_SIMD=baseline, avx2, avx512);
  3. tools/fuzz.py forced onto each variant (--simd all), `--cases` cases each, every
     subprocess reporting the variant it ran.

If all pass, it writes csrc/VERIFIED_AVX512: the sha256 of the C sources
(tools/simd_digest.py), the git commit they are committed in, the CPU model, the date
and the counts. The sources must be committed and unmodified (the digest is of the
sources as committed); commit the record on its own afterwards, and rebuild: setup.py
then makes avx512 the default on CPUs that have it. On a CPU without AVX-512 there is
nothing to verify (exit status 2).
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import simd_digest  # noqa: E402

DISPATCH_TESTS = ["tests/test_dispatch.py", "tests/test_kernel_guards.py"]


def _git(*args):
    return subprocess.run(
        ["git", "-C", ROOT, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def cpu_model():
    """/proc/cpuinfo's model name, with family/model/stepping (virtual machines often
    show a generic name), and its AVX-512 flags."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if not sep:
                    break  # the end of the first processor
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    avx512 = " ".join(
        flag for flag in fields.get("flags", "").split() if flag.startswith("avx512")
    )
    return (
        f"{fields.get('model name', platform.machine())} (family "
        f"{fields.get('cpu family', '?')}, model {fields.get('model', '?')}, stepping "
        f"{fields.get('stepping', '?')}; {avx512 or 'no avx512 flags'})"
    )


def _env(simd=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYCNN_SIMD", None)
    if simd is not None:
        env["PYCNN_SIMD"] = simd
    return env


def run_pytest(paths, simd=None):
    """Run pytest on `paths` (forced onto `simd`); return its summary line, or exit."""
    label = f"PYCNN_SIMD={simd}" if simd else "default variant"
    print(f"verify_simd: pytest {' '.join(paths) or '(whole suite)'} [{label}]", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *paths],
        cwd=ROOT,
        env=_env(simd),
        capture_output=True,
        text=True,
    )
    lines = proc.stdout.strip().splitlines()
    summary = next(
        (line for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)),
        "no summary",
    )
    exercised = next((line for line in lines if line.startswith("SIMD variants exercised")), "")
    print(f"  {summary.strip('= ')}\n  {exercised}", flush=True)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-6000:] + proc.stderr[-3000:])
        sys.exit(f"verify_simd: FAILED: pytest {' '.join(paths)} [{label}]")
    return summary.strip("= "), exercised


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000, help="fuzz cases per variant")
    parser.add_argument("--seed", type=int, default=2031, help="fuzz seed")
    parser.add_argument("--jobs", type=int, default=2, help="fuzz batches at once")
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="run everything but do not write csrc/VERIFIED_AVX512",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, ROOT)
    from pycnn._ext import _kernels

    digest = simd_digest.digest(ROOT)
    if _kernels.simd_sources_digest() != digest:
        sys.exit(
            f"verify_simd: {_kernels.__file__} was not built from this tree's sources "
            f"(sha256 {digest[:12]}...): python setup.py build_ext --inplace first"
        )
    if "avx512" not in _kernels.simd_supported():
        print(
            f"verify_simd: this CPU/build cannot run avx512 "
            f"({', '.join(_kernels.simd_supported())}): nothing to verify"
        )
        return 2
    record_ok = not args.no_record
    dirty = [
        line
        for line in _git("status", "--porcelain", "--", "csrc").splitlines()
        if not line.endswith(simd_digest.RECORD.replace(os.sep, "/"))
    ]
    if dirty and record_ok:
        sys.exit(
            "verify_simd: csrc/ has uncommitted changes; the record must be of the "
            "sources as committed:\n" + "\n".join(dirty)
        )
    commit = _git("rev-parse", "HEAD")
    print(
        f"verify_simd: sources sha256 {digest} (commit {commit[:12]}), CPU {cpu_model()}",
        flush=True,
    )

    summary, exercised = run_pytest(DISPATCH_TESTS)
    if "skipped" in summary:
        sys.exit("verify_simd: FAILED: dispatch tests were skipped; every variant must run")
    suites = {"dispatch tests": summary, "dispatch variants": exercised}
    for simd in _kernels.SIMD_TARGETS:
        suites[f"suite PYCNN_SIMD={simd}"] = run_pytest([], simd)[0]

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "fuzz.json")
        cmd = [
            sys.executable,
            os.path.join(ROOT, "tools", "fuzz.py"),
            "--simd",
            "all",
            "--cases",
            str(args.cases),
            "--seed",
            str(args.seed),
            "--jobs",
            str(args.jobs),
            "--json",
            out,
        ]
        print(f"verify_simd: {' '.join(cmd[1:])}", flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, env=_env())
        if proc.returncode != 0:
            sys.exit("verify_simd: FAILED: fuzz run")
        with open(out) as f:
            fuzz = json.load(f)["variants"]
    if sorted(fuzz) != sorted(_kernels.SIMD_TARGETS):
        sys.exit(f"verify_simd: FAILED: the fuzz run exercised {sorted(fuzz)}")

    def outcomes(c):
        return ", ".join(f"{k} {v}" for k, v in sorted(c["outcomes"].items()))

    fuzz_line = "; ".join(
        f"{name} {c['cases']} cases ({outcomes(c)}), "
        f"crashes {c['crashes']}, disagreements {c['disagreements']}"
        for name, c in fuzz.items()
    )
    lines = [
        f"sha256 {digest}",
        f"commit {commit}",
        f"cpu {cpu_model()}",
        f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
    ]
    lines += [f"{key.replace(' ', '-')} {value}" for key, value in suites.items()]
    lines += [f"fuzz seed {args.seed}: {fuzz_line}"]
    print("verify_simd: every variant passed\n  " + "\n  ".join(lines), flush=True)
    if not record_ok:
        print("verify_simd: --no-record: csrc/VERIFIED_AVX512 left as it is")
        return 0
    path = os.path.join(ROOT, simd_digest.RECORD)
    with open(path, encoding="utf-8") as f:
        header = [
            line
            for line in f.read().splitlines()
            if line.startswith("#") and "Never verified" not in line
        ]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(header + lines) + "\n")
    print(f"verify_simd: wrote {simd_digest.RECORD}; commit it on its own, then rebuild")
    return 0


if __name__ == "__main__":
    sys.exit(main())
