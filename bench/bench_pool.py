"""Time max and average pooling, forward and backward: compiled vs NumPy reference (vs
PyTorch when installed), one run, medians.

    python bench/bench_pool.py [--dtype float32|float64] [--repeat 15] [--threads N]

Ratios are measured side by side in this one process; nothing is asserted. PyTorch's
backward is timed on its backward kernels (aten.*_backward), as pycnn's, with the same
number of threads.
"""

import argparse

import numpy as np

import pycnn
from pycnn import functional, reference
from pycnn._bench import median_of as autotime

# name: (N, C, H=W, kernel, stride, padding)
SHAPES = {
    "2x2/2": (64, 64, 32, 32, 2, 2, 0),
    "3x3/2p1": (64, 64, 32, 32, 3, 2, 1),
    "3x3/1p1": (16, 64, 56, 56, 3, 1, 1),
}


def torch_ops(torch, x, g, idx, k, s, p):
    """Forward and backward callables of PyTorch's max and avg pooling kernels."""
    aten = torch.ops.aten
    xt, gt, it = torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(idx)
    f = torch.nn.functional
    return {
        "max": (
            lambda: f.max_pool2d(xt, k, s, p, return_indices=True),
            lambda: aten.max_pool2d_with_indices_backward(
                gt, xt, [k, k], [s, s], [p, p], [1, 1], False, it
            ),
        ),
        "avg": (
            lambda: f.avg_pool2d(xt, k, s, p),
            lambda: aten.avg_pool2d_backward(gt, xt, [k, k], [s, s], [p, p], False, True, None),
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=pycnn.get_num_threads())
    args = parser.parse_args()
    pycnn.set_num_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    print(
        f"numpy {np.__version__}, torch {torch.__version__ if torch else '-'}, "
        f"dtype {args.dtype}, {args.threads} thread(s), medians of {args.repeat} (ms)"
    )
    print(
        f"{'pooling':<12}{'ref fwd':>9}{'ref bwd':>9}{'pycnn fwd':>11}{'pycnn bwd':>11}"
        f"{'torch fwd':>11}{'torch bwd':>11}{'vs ref':>8}{'vs torch':>9}"
    )
    for name, (n, c, h, w, k, s, p) in SHAPES.items():
        x = rng.standard_normal((n, c, h, w)).astype(args.dtype)
        out, idx = functional.max_pool2d(x, k, s, p, return_indices=True)
        g = rng.standard_normal(out.shape).astype(args.dtype)
        ops = {
            "max": {
                m: (
                    lambda m=m: m.max_pool2d(x, k, s, p, return_indices=True),
                    lambda m=m: m.max_pool2d_backward(g, idx, x.shape),
                )
                for m in (reference, functional)
            },
            "avg": {
                m: (
                    lambda m=m: m.avg_pool2d(x, k, s, p),
                    lambda m=m: m.avg_pool2d_backward(g, x.shape, k, s, p),
                )
                for m in (reference, functional)
            },
        }
        theirs = torch_ops(torch, x, g, idx, k, s, p) if torch else {}
        for kind in ("max", "avg"):
            t = {m: [autotime(fn, args.repeat) for fn in fns] for m, fns in ops[kind].items()}
            tt = [autotime(fn, args.repeat) for fn in theirs[kind]] if torch else [np.nan] * 2
            mine = sum(t[functional])
            print(
                f"{kind + ' ' + name:<12}{t[reference][0] * 1e3:>9.2f}"
                f"{t[reference][1] * 1e3:>9.2f}{t[functional][0] * 1e3:>11.2f}"
                f"{t[functional][1] * 1e3:>11.2f}{tt[0] * 1e3:>11.2f}{tt[1] * 1e3:>11.2f}"
                f"{sum(t[reference]) / mine:>7.1f}x{sum(tt) / mine:>8.1f}x"
            )


if __name__ == "__main__":
    main()
