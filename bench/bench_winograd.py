"""Time stride-1 3x3 convolutions on im2col + GEMM and on Winograd F(4x4, 3x3), side by
side in one run, against the float32/float64 GEMM rate of this machine.

    python bench/bench_winograd.py [--repeat 25] [--threads 2] [--all]

Every repetition times the forward, the input gradient and the weight gradient on each
path, in turn (each path first every other time), so that a busy machine slows both
alike; the table gives medians. The GEMM rate, a (1024 x 1024) @ (1024 x 1024)
np.matmul on as many BLAS threads as pycnn has, is measured apart, before the
convolutions of each dtype (after a multi-threaded BLAS call the convolutions that
follow measured up to 2x slower).
Effective GFLOP/s count the direct convolution's 2 * N * F * C * 9 * OH * OW
operations, whatever the algorithm does: only one that does fewer can exceed the GEMM
rate. `--all` runs Winograd on every shape, including those the plan's rule leaves on
im2col.
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import pycnn
from pycnn import _conv
from pycnn import _validation as V

# name: (N, C, H, W, F), 3x3, stride 1, padding 1
SHAPES = {
    "cifar": (64, 32, 32, 32, 64),
    "resnet": (16, 64, 56, 56, 64),
    "small28": (64, 16, 28, 28, 16),
    "small14": (64, 32, 14, 14, 32),
    "small8": (64, 64, 8, 8, 64),
    "small7": (64, 64, 7, 7, 64),
    "small4": (32, 16, 4, 4, 32),
}


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(shape, dtype, repeat, threads, rng):
    """Medians {fwd0, fwd1, dx0, dx1, dw0, dw1} in seconds (0: im2col, 1: Winograd where
    the rule, or `--all`, allows it)."""
    n, c, h, w, f = shape
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    grad_out = rng.standard_normal((n, f, h, w)).astype(dtype)
    args = V.conv2d_args(x, weight, bias, 1, 1, 1, 1)
    plans = [
        _conv.ConvPlan(x.shape, weight.shape, dtype, *args, winograd=on) for on in (False, True)
    ]
    times = {key: [] for key in ("fwd0", "fwd1", "dx0", "dx1", "dw0", "dw1")}
    for rep in range(repeat + 1):  # the first round warms up
        row = {}
        for i in (0, 1) if rep % 2 else (1, 0):  # each path first every other time
            plan = plans[i]
            row[f"fwd{i}"] = _seconds(lambda: plan.forward(x, weight, _conv.Epilogue(bias)))
            row[f"dx{i}"] = _seconds(
                lambda: plan.backward(grad_out, x, weight, need_weight=False, need_bias=False)
            )
            row[f"dw{i}"] = _seconds(
                lambda: plan.backward(grad_out, x, weight, need_x=False, need_bias=False)
            )
        if rep:
            for key, value in row.items():
                times[key].append(value)
    return {key: float(np.median(v)) for key, v in times.items()}


def gemm_rate(dtype, repeat, threads, rng):
    """GFLOP/s of a (1024 x 1024) @ (1024 x 1024) np.matmul on `threads` BLAS threads,
    median of `repeat` runs."""
    a = rng.standard_normal((1024, 1024)).astype(dtype)
    with threadpool_limits(threads, user_api="blas"):
        a @ a
        seconds = float(np.median([_seconds(lambda: a @ a) for _ in range(repeat)]))
    return 2 * 1024**3 / seconds / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--all", action="store_true", help="Winograd on every shape")
    args = parser.parse_args()
    pycnn.set_num_threads(args.threads)
    rule, rule_w = _conv._winograd_pays, _conv._winograd_grad_w_pays
    if args.all:
        _conv._winograd_pays = _conv._winograd_grad_w_pays = lambda *sizes: True
    rng = np.random.default_rng(0)
    print(f"{args.threads} threads, medians of {args.repeat} interleaved runs")
    print(
        f"{'shape':<8}{'dtype':<8}{'GEMM GF/s':>10}{'im2col ms':>11}{'GF/s':>7}"
        f"{'wino ms':>9}{'GF/s':>7}{'x':>6}{'dx im2col':>11}{'dx wino':>9}{'x':>6}"
        f"{'dw im2col':>11}{'dw wino':>9}{'x':>6}  rule (fwd/dx/dw)"
    )
    for dtype in (np.float32, np.float64):
        gemm = gemm_rate(dtype, args.repeat, args.threads, rng)
        time.sleep(1)  # BLAS's threads go back to sleep
        for name, shape in SHAPES.items():
            m = measure(shape, np.dtype(dtype), args.repeat, args.threads, rng)
            n, c, h, w, f = shape
            flops = 2 * n * f * c * 9 * h * w
            picked = "/".join(
                "winograd" if on else "im2col"
                for on in (rule(n, c, f, h, w), rule(n, f, c, h, w), rule_w(n, c, f, h, w))
            )
            print(
                f"{name:<8}{np.dtype(dtype).name:<8}{gemm:>10.1f}"
                f"{m['fwd0'] * 1e3:>11.2f}{flops / m['fwd0'] / 1e9:>7.1f}"
                f"{m['fwd1'] * 1e3:>9.2f}{flops / m['fwd1'] / 1e9:>7.1f}"
                f"{m['fwd0'] / m['fwd1']:>6.2f}{m['dx0'] * 1e3:>11.2f}{m['dx1'] * 1e3:>9.2f}"
                f"{m['dx0'] / m['dx1']:>6.2f}{m['dw0'] * 1e3:>11.2f}{m['dw1'] * 1e3:>9.2f}"
                f"{m['dw0'] / m['dw1']:>6.2f}  {picked}",
                flush=True,
            )


if __name__ == "__main__":
    main()
