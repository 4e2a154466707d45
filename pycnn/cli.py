"""The `pycnn` command: `pycnn info`, `pycnn demo`."""
import argparse
import sys
import time

import numpy as np

from pycnn._info import show_config


def _median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def demo(args):
    """Run one convolution forward and backward through each backend and compare."""
    from pycnn import functional, naive, reference

    rng = np.random.default_rng(args.seed)
    n, c, hw, f = args.batch, 32, 32, 64
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((f, c, 3, 3)) * np.sqrt(2 / (c * 9))).astype(np.float32)
    b = np.zeros(f, np.float32)
    g = rng.standard_normal((n, f, hw, hw)).astype(np.float32)
    print(f"conv2d float32: x {x.shape}, weight {w.shape}, padding=1\n")

    out = functional.conv2d(x, w, b, padding=1)
    grads = functional.conv2d_backward(g, x, w, padding=1)
    out_ref = reference.conv2d(x, w, b, padding=1)
    grads_ref = reference.conv2d_backward(g, x, w, padding=1)
    worst = max(float(np.max(np.abs(a - r)) / max(1.0, float(np.max(np.abs(r)))))
                for a, r in zip((out,) + grads, (out_ref,) + grads_ref))
    nn = 2   # the naive loops run on two images and are scaled to the batch
    out_naive = naive.conv2d(x[:nn], w, b, padding=1)
    worst_naive = float(np.max(np.abs(out[:nn] - out_naive)))
    print(f"compiled vs NumPy reference: max relative difference {worst:.1e} "
          f"(forward and backward)")
    print(f"compiled vs naive loops:     max abs difference {worst_naive:.1e} "
          f"(forward, {nn} images)\n")

    rows = [
        ("naive loops", n / nn * _median_time(lambda: naive.conv2d(x[:nn], w, b, padding=1), 1),
         n / nn * _median_time(lambda: naive.conv2d_backward(g[:nn], x[:nn], w, padding=1), 1)),
        ("NumPy reference", _median_time(lambda: reference.conv2d(x, w, b, padding=1), 3),
         _median_time(lambda: reference.conv2d_backward(g, x, w, padding=1), 3)),
        ("compiled", _median_time(lambda: functional.conv2d(x, w, b, padding=1), 5),
         _median_time(lambda: functional.conv2d_backward(g, x, w, padding=1), 5)),
    ]
    base = rows[-1][1] + rows[-1][2]
    print(f"{'backend':<18}{'forward ms':>12}{'backward ms':>13}{'x compiled':>12}")
    for name, fwd, bwd in rows:
        print(f"{name:<18}{fwd * 1e3:>12.1f}{bwd * 1e3:>13.1f}{(fwd + bwd) / base:>12.1f}")
    print(f"(medians; naive scaled from {nn} images)")
    ok = worst < 1e-4 and worst_naive < 1e-3
    print("\nagree: yes" if ok else "\nagree: NO")
    return 0 if ok else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pycnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="show version, compiled extension, threads and BLAS")
    p = sub.add_parser("demo", help="compare and time one convolution on every backend")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("bench", help="profile naive vs NumPy vs compiled (vs PyTorch)")
    from pycnn import _bench
    _bench.add_arguments(p)
    args = parser.parse_args(argv)
    if args.command == "info":
        show_config()
        return 0
    if args.command == "bench":
        return _bench.main(args)
    return demo(args)


if __name__ == "__main__":
    sys.exit(main())
