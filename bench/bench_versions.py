"""conv2d forward/backward of two pycnn checkouts, timed side by side in one run.

    python bench/bench_versions.py BEFORE_DIR AFTER_DIR [--rounds 5] [--dtype float32]

Each directory holds a pycnn package whose extension is built in place (for example a
`git worktree` of an older commit after `python setup.py build_ext --inplace`). For
every shape of `pycnn bench` (and two single-image shapes), one round runs a fresh
process per checkout, alternating, and each process reports the median of its calls;
printed are the medians over rounds, in ms, and the ratio after / before (below 1:
faster). For checking that a refactoring lost no speed. Nothing is asserted. Unsets
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the measuring processes, and says so.
"""

import argparse
import json
import os
import subprocess
import sys

SHAPES = {  # name: (B, C, H=W, F, K, S, P), as in pycnn._bench.CONV_SHAPES
    "lenet1": (64, 1, 28, 20, 5, 1, 0),
    "lenet2": (64, 20, 12, 50, 5, 1, 0),
    "cifar": (64, 32, 32, 64, 3, 1, 1),
    "resnet": (16, 64, 56, 64, 3, 1, 1),
    "strided": (32, 64, 28, 128, 3, 2, 1),
    "n1-28": (1, 16, 28, 32, 3, 1, 1),
    "n1-56": (1, 64, 56, 64, 3, 1, 1),
}

WORKER = r"""
import json, sys, time
import numpy as np
from pycnn import functional as F
(b, c, hw, f, k, s, p), dtype, repeat = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(0)
x = rng.standard_normal((b, c, hw, hw)).astype(dtype)
w = rng.standard_normal((f, c, k, k)).astype(dtype)
g = np.ones_like(F.conv2d(x, w, stride=s, padding=p))
def median(fn):
    fn()
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); t.append(time.perf_counter() - t0)
    return float(np.median(t))
print(json.dumps([median(lambda: F.conv2d(x, w, stride=s, padding=p)),
                  median(lambda: F.conv2d_backward(g, x, w, stride=s, padding=p))]))
"""


def _measure(checkout, shape, dtype, repeat, env):
    env = dict(env, PYTHONPATH=checkout)
    out = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(shape), dtype, str(repeat)],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=9, help="calls per process")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    scrubbed = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    env = {k: v for k, v in os.environ.items() if k not in scrubbed}
    removed = [k for k in scrubbed if k in os.environ]
    if removed:
        print(f"unset for the measuring processes: {', '.join(removed)}")
    dirs = [os.path.abspath(args.before), os.path.abspath(args.after)]
    print(
        f"{args.dtype}; before {dirs[0]}\n         after {dirs[1]}\n"
        f"medians over {args.rounds} rounds of a process each (ms), fwd / bwd"
    )
    print(f"{'shape':<9}{'before':>18}{'after':>18}{'after/before':>14}")
    ratios = []
    for name, shape in SHAPES.items():
        runs = [[], []]
        for _ in range(args.rounds):
            for i, d in enumerate(dirs):
                runs[i].append(_measure(d, shape, args.dtype, args.repeat, env))
        (f0, b0), (f1, b1) = (
            [sorted(r[j] for r in run)[len(run) // 2] for j in (0, 1)] for run in runs
        )
        ratios.append((f1 + b1) / (f0 + b0))
        print(
            f"{name:<9}{f0 * 1e3:>9.2f} /{b0 * 1e3:>7.2f}{f1 * 1e3:>9.2f} /{b1 * 1e3:>7.2f}"
            f"{ratios[-1]:>13.2f}x"
        )
    geo = 1.0
    for r in ratios:
        geo *= r
    print(f"{'geometric mean':<45}{geo ** (1 / len(ratios)):>8.2f}x")


if __name__ == "__main__":
    main()
