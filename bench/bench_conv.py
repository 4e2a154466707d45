"""Time conv2d forward and backward: compiled vs NumPy reference, one run, medians.

    python bench/bench_conv.py [--dtype float32|float64] [--repeat 7]

Ratios are measured side by side in this one process; nothing is asserted.
"""

import argparse

import numpy as np

from pycnn import functional, reference
from pycnn._bench import CONV_SHAPES as SHAPES
from pycnn._bench import median_of


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}, dtype {args.dtype}, medians of {args.repeat} (ms)")
    print(
        f"{'shape':<9}{'ref fwd':>9}{'ref bwd':>9}{'pycnn fwd':>11}{'pycnn bwd':>11}"
        f"{'speedup':>9}"
    )
    for name, (b, c, hw, f, k, s, p) in SHAPES.items():
        x = rng.standard_normal((b, c, hw, hw)).astype(args.dtype)
        w = rng.standard_normal((f, c, k, k)).astype(args.dtype)
        out = functional.conv2d(x, w, stride=s, padding=p)
        g = rng.standard_normal(out.shape).astype(args.dtype)
        t = [
            median_of(lambda m=m: m.conv2d(x, w, stride=s, padding=p), args.repeat)
            for m in (reference, functional)
        ]
        tb = [
            median_of(lambda m=m: m.conv2d_backward(g, x, w, stride=s, padding=p), args.repeat)
            for m in (reference, functional)
        ]
        speedup = (t[0] + tb[0]) / (t[1] + tb[1])
        print(
            f"{name:<9}{t[0] * 1e3:>9.1f}{tb[0] * 1e3:>9.1f}{t[1] * 1e3:>11.1f}"
            f"{tb[1] * 1e3:>11.1f}{speedup:>8.2f}x"
        )


if __name__ == "__main__":
    main()
