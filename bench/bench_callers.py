"""Every public op called from many threads at once, against the same calls made in turn.

    python bench/bench_callers.py [--threads 8] [--calls 40] [--repeat 7] [--dtype float32]

For each op, `--calls` calls run one after another on the main thread ("serial"), then
the same calls spread over `--threads` threads of a ThreadPoolExecutor ("threaded");
the two alternate round by round, so both see the same machine. Printed: the median
time per call of each, and the ratio threaded / serial. Near 1 means a call costs the
same from any thread, however many run at once (the cores are shared either way, so
the total time is what counts); well above 1 means the calls get in each other's way.
Nothing is asserted. Re-runs itself without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE when
they are set (they force a slower BLAS kernel), and says so.
"""

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from pycnn._bench import rerun_without_scrubbed_env


def _ops(np, functional, _parallel, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 16, 24, 24)).astype(dtype)
    w = rng.standard_normal((32, 16, 3, 3)).astype(dtype)
    b = rng.standard_normal(32).astype(dtype)
    g = rng.standard_normal((8, 32, 24, 24)).astype(dtype)
    x1 = rng.standard_normal((1, 16, 56, 56)).astype(dtype)
    g1 = rng.standard_normal((1, 32, 56, 56)).astype(dtype)
    cols = functional.im2col(x, 3, padding=1)
    out, idx = functional.max_pool2d(x, 2, return_indices=True)
    gp = rng.standard_normal(out.shape).astype(dtype)
    a = rng.standard_normal((64, 2304)).astype(dtype)
    wl = rng.standard_normal((2304, 128)).astype(dtype)
    gl = rng.standard_normal((64, 128)).astype(dtype)
    return {
        "im2col": lambda: functional.im2col(x, 3, padding=1),
        "col2im": lambda: functional.col2im(cols, (24, 24), 3, padding=1),
        "conv2d": lambda: functional.conv2d(x, w, b, padding=1),
        "conv2d N=1": lambda: functional.conv2d(x1, w, b, padding=1),
        "conv2d_backward": lambda: functional.conv2d_backward(g, x, w, padding=1),
        "conv2d_bwd N=1": lambda: functional.conv2d_backward(g1, x1, w, padding=1),
        "max_pool2d": lambda: functional.max_pool2d(x, 2, return_indices=True),
        "max_pool2d_bwd": lambda: functional.max_pool2d_backward(gp, idx, x.shape),
        "avg_pool2d": lambda: functional.avg_pool2d(x, 2),
        "avg_pool2d_bwd": lambda: functional.avg_pool2d_backward(gp, x.shape, 2),
        "lp_pool2d": lambda: functional.lp_pool2d(x, 2, 2),
        "lp_pool2d_bwd": lambda: functional.lp_pool2d_backward(gp, x, 2, 2),
        "Linear fwd": lambda: _parallel.matmul(a, wl),
        "Linear grad": lambda: _parallel.matmul_t(a, gl),
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    rerun_without_scrubbed_env()

    import numpy as np

    import pycnn
    from pycnn import _parallel, functional

    ops = _ops(np, functional, _parallel, args.dtype)
    pool = ThreadPoolExecutor(args.threads)

    def serial(op):
        for _ in range(args.calls):
            op()

    def threaded(op):
        list(pool.map(lambda _: op(), range(args.calls)))

    print(
        f"{args.dtype}, pycnn threads {pycnn.get_num_threads()}, BLAS "
        f"{_parallel.blas_status() or 'not driven (no threadpoolctl)'}; {args.calls} "
        f"calls, serial vs over {args.threads} threads; medians of {args.repeat} rounds"
    )
    print(f"{'op':<18}{'serial ms/call':>16}{'threaded ms/call':>18}{'ratio':>8}")
    ratios = []
    for name, op in ops.items():
        op()
        threaded(op)  # warm-up: pool threads, workspaces
        times = {serial: [], threaded: []}
        for _ in range(args.repeat):
            for run in (serial, threaded):
                t0 = time.perf_counter()
                run(op)
                times[run].append((time.perf_counter() - t0) / args.calls)
        s, t = (float(np.median(times[run])) for run in (serial, threaded))
        ratios.append(t / s)
        print(f"{name:<18}{s * 1e3:>16.3f}{t * 1e3:>18.3f}{t / s:>7.2f}x")
    print(f"{'geometric mean':<18}{'':>34}{float(np.exp(np.mean(np.log(ratios)))):>7.2f}x")
    pool.shutdown()


if __name__ == "__main__":
    main()
