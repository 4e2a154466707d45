"""Crash-isolated fuzz runner: hostile-argument cases over pycnn's public API.

    python tools/fuzz.py --cases 20000 [--batch 500] [--seed 0] [--jobs 1]

The cases and their check live in tests/fuzz_cases.py (compiled against reference,
layers against their NumPy backend or a formula, errors against errors). Each batch of
cases runs in its own Python subprocess, so a case that kills the interpreter (a
segfault, an abort, a hang) is reported instead of taking the run down: the batch's
seed, its exit signal and the case it was running. Batch `i` of seed `s` draws the same
cases on every run (hypothesis with ``@seed(s * 1_000_003 + i)``), so
``--seed s --first-batch i --cases B --batch B`` replays it alone.

pycnn is imported the usual way: from the source tree with ``PYTHONPATH=.``, else the
installed package (the header line says which). ``--simd NAME`` forces the kernels'
SIMD variant (PYCNN_SIMD=NAME in each subprocess), ``--simd all`` runs the same cases
once per variant this CPU can run (issue 12: every variant fuzzed where it can run);
each subprocess reports the variant it ran, and a run whose variant is not the one asked
for fails. Prints a summary line per variant with the number of cases run, crashes and
disagreements, and which variants ran; exits 1 if there was any crash, disagreement or
wrong variant. ``--json PATH`` writes the counts per variant.
"""

import argparse
import collections
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
CRASH_ENV = "PYCNN_FUZZ_SELF_TEST_CRASH"  # set by --self-test-crash for batch 0
# A case that asks for an absurd buffer must fail with MemoryError, not make the kernel
# kill the process (or the machine) for lack of memory: cap the address space.
ADDRESS_SPACE_BYTES = 8 * 2**30
# Disagreements a batch reports in full (the rest are counted).
MAX_REPORTED = 5


def batch_seed(seed, index):
    return seed * 1_000_003 + index


# --- child: one batch, in its own interpreter ------------------------------------------


def run_batch(seed, count, progress_path):
    """Run `count` cases drawn with hypothesis seed `seed`; return a JSON-able summary.

    Before each case its description goes to `progress_path` (flushed), so that if the
    interpreter dies the parent can say which case killed it.
    """
    sys.path.insert(0, TESTS)
    import fuzz_cases
    import numpy as np
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    outcomes = collections.Counter()
    disagreements = []
    crash_at = 3 if os.environ.get(CRASH_ENV) else -1

    progress = open(progress_path, "w")

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=False,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzz_cases.cases())
    def one_case(case):
        number = sum(outcomes.values())
        progress.seek(0)
        progress.write(f"case {number}: {case}\n")
        progress.truncate()
        progress.flush()
        if number == crash_at:
            ctypes.string_at(0)  # --self-test-crash: a real segfault
        try:
            outcomes[fuzz_cases.check_case(case)] += 1
        except fuzz_cases.Disagreement as exc:
            outcomes["disagreement"] += 1
            if len(disagreements) < MAX_REPORTED:
                disagreements.append(str(exc))

    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            one_case()
    progress.close()
    from pycnn._ext import _kernels

    return {
        "outcomes": dict(outcomes),
        "disagreements": disagreements,
        "simd": _kernels.simd_target(),
    }


def child_main(args):
    # AddressSanitizer (tools/sanitize.sh preloads it) reserves terabytes of address
    # space for its shadow memory, and refuses absurd requests with its own allocator
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))
    result = run_batch(batch_seed(args.seed, args.first_batch), args.cases, args.progress)
    print(json.dumps(result))


# --- parent: batches in subprocesses -----------------------------------------------------


def _describe_exit(returncode):
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def launch(args, index, count, workdir, simd=None):
    """Run batch `index` in a subprocess, with PYCNN_SIMD=`simd` unless None; return
    (index, count, result dict or None, failure text or None)."""
    progress = os.path.join(workdir, f"batch{index}-{simd}.progress")
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        "--seed",
        str(args.seed),
        "--first-batch",
        str(index),
        "--cases",
        str(count),
        "--progress",
        progress,
    ]
    env = dict(os.environ)
    if simd is not None:
        env["PYCNN_SIMD"] = simd
    if args.self_test_crash and index == args.first_batch:
        env[CRASH_ENV] = "1"
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=args.timeout
        )
        failure = None if proc.returncode == 0 else _describe_exit(proc.returncode)
        stdout, stderr = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        failure = f"hung (no result after {args.timeout} s, killed)"
        stdout, stderr = exc.stdout or "", exc.stderr or ""
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
    result = None
    if failure is None:
        try:
            result = json.loads(stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            failure = "finished without a result"
    if failure is not None:
        last = ""
        if os.path.exists(progress):
            with open(progress) as f:
                last = f.read().strip()
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        failure = (
            f"batch {index} (hypothesis seed {batch_seed(args.seed, index)}) "
            f"{failure} during {last or 'start-up'}\n{tail}"
        )
    return index, count, result, failure


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="total number of cases")
    parser.add_argument("--batch", type=int, default=500, help="cases per subprocess")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--first-batch", type=int, default=0, help="index of the first batch (to replay one)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="batches run at once")
    parser.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="seconds a batch may take before it counts as hung",
    )
    parser.add_argument(
        "--simd",
        default=None,
        help="SIMD variant to force (baseline, avx2, avx512), or 'all': "
        "each variant this CPU can run, in turn (default: as "
        "PYCNN_SIMD or pycnn's default)",
    )
    parser.add_argument("--json", help="write the counts per variant to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--progress", help=argparse.SUPPRESS)
    parser.add_argument("--self-test-crash", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    if args.cases < 1 or args.batch < 1 or args.jobs < 1:
        parser.error("--cases, --batch and --jobs must be >= 1")

    import pycnn
    from pycnn._ext import _kernels

    if args.simd is None:
        variants = [None]
    elif args.simd == "all":
        variants = list(_kernels.simd_supported())
    elif args.simd in _kernels.simd_supported():
        variants = [args.simd]
    else:
        parser.error(
            f"--simd {args.simd}: not a variant this CPU and build can run "
            f"({', '.join(_kernels.simd_supported())}, or all)"
        )
    print(
        f"fuzz: pycnn {pycnn.__version__} from {os.path.dirname(pycnn.__file__)}; "
        f"{args.cases} cases, {args.batch} a batch, seed {args.seed}; SIMD variants: "
        f"{', '.join(v or 'default' for v in variants)} (this CPU can run "
        f"{', '.join(_kernels.simd_supported())}; default {_kernels.simd_default()})",
        flush=True,
    )
    summary, failed = {}, False
    for simd in variants:
        counts = run_variant(args, simd)
        failed |= bool(counts["crashes"] or counts["disagreements"] or counts["wrong variant"])
        for name in counts["ran"]:
            summary[name] = counts
    print(
        "fuzz: SIMD variants exercised: "
        + ", ".join(f"{name} {c['cases']} cases" for name, c in summary.items()),
        flush=True,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": args.seed, "variants": summary}, f, indent=1)
    return 1 if failed else 0


def run_variant(args, simd):
    """Run every batch with PYCNN_SIMD=`simd` (None: unchanged); print and return the
    counts, with the variants the subprocesses reported running."""
    import tempfile

    sizes = [min(args.batch, args.cases - start) for start in range(0, args.cases, args.batch)]
    batches = [(args.first_batch + i, n) for i, n in enumerate(sizes)]
    outcomes, crashes, reports, ran, wrong = collections.Counter(), [], [], set(), 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(launch, args, i, n, workdir, simd) for i, n in batches]
        for future in futures:
            index, count, result, failure = future.result()
            if failure is not None:
                crashes.append(failure)
                print(f"CRASH: {failure}", flush=True)
                continue
            outcomes.update(result["outcomes"])
            ran.add(result["simd"])
            if simd is not None and result["simd"] != simd:
                wrong += 1
                print(
                    f"WRONG VARIANT: batch {index} ran {result['simd']}, not {simd}", flush=True
                )
            for text in result["disagreements"]:
                reports.append(text)
                print(
                    f"DISAGREEMENT in batch {index} (hypothesis seed "
                    f"{batch_seed(args.seed, index)}): {text}",
                    flush=True,
                )
    elapsed = time.perf_counter() - start
    total = sum(outcomes.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()) if k != "disagreement")
    print(
        f"fuzz: [{'/'.join(sorted(ran)) or simd or 'default'}] {total} cases run in "
        f"{len(batches)} subprocesses, {elapsed:.1f} s "
        f"({detail}); crashes {len(crashes)}, disagreements "
        f"{outcomes['disagreement']}",
        flush=True,
    )
    return {
        "cases": total,
        "outcomes": dict(outcomes),
        "crashes": len(crashes),
        "disagreements": outcomes["disagreement"],
        "wrong variant": wrong,
        "ran": sorted(ran),
        "seconds": round(elapsed, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
