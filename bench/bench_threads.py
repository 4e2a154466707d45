"""Two ways to use the cores in a convolution, timed side by side in one process.

    python bench/bench_threads.py [--dtype float32|float64] [--repeat 9]

"BLAS threads": the calling thread runs im2col/col2im and every GEMM, and BLAS
threads each GEMM (pycnn's path without threadpoolctl). "over images": one range of
images per pycnn thread, each with single-threaded BLAS (pycnn's default, see
pycnn/_parallel.py). The two alternate call by call, so both see the same machine;
medians in ms, nothing asserted. Re-runs itself without OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE when they are set (they force a slower BLAS kernel), and says so.
"""

import argparse
import sys
import time

from pycnn._bench import rerun_without_scrubbed_env


def _time_alternating(fns, repeat):
    """Median seconds of each of `fns`, called in turn `repeat` times after a warm-up."""
    import numpy as np

    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    rerun_without_scrubbed_env()

    import numpy as np

    import pycnn
    from pycnn import _parallel, functional
    from pycnn._bench import CONV_SHAPES

    blas = _parallel._blas_libraries()
    if not blas:
        sys.exit("threadpoolctl is not installed (or sees no BLAS): nothing to compare")

    def spread(on):
        _parallel._libraries = blas if on else ()

    rng = np.random.default_rng(0)
    print(
        f"{args.dtype}, pycnn threads {pycnn.get_num_threads()}, BLAS threads "
        f"{[n for _, n in _parallel.blas_status()]}, medians of {args.repeat} (ms), fwd / bwd"
    )
    print(f"{'shape':<9}{'BLAS threads':>16}{'over images':>16}{'ratio':>8}")
    for name, (b, c, hw, f, k, s, p) in CONV_SHAPES.items():
        x = rng.standard_normal((b, c, hw, hw)).astype(args.dtype)
        w = rng.standard_normal((f, c, k, k)).astype(args.dtype)
        g = rng.standard_normal(functional.conv2d(x, w, stride=s, padding=p).shape)
        g = g.astype(args.dtype)
        calls = []
        for on in (False, True):
            calls.append(
                lambda on=on: (spread(on), functional.conv2d(x, w, stride=s, padding=p))
            )
            calls.append(
                lambda on=on: (
                    spread(on),
                    functional.conv2d_backward(g, x, w, stride=s, padding=p),
                )
            )
        fwd0, bwd0, fwd1, bwd1 = _time_alternating(calls, args.repeat)
        spread(True)
        print(
            f"{name:<9}{fwd0 * 1e3:>8.1f} /{bwd0 * 1e3:>6.1f}{fwd1 * 1e3:>9.1f} /"
            f"{bwd1 * 1e3:>6.1f}{(fwd0 + bwd0) / (fwd1 + bwd1):>7.2f}x"
        )


if __name__ == "__main__":
    main()
