"""Time one convolution layer's forward and backward: naive loops, NumPy, compiled.

    python examples/profile_layer.py [--batch 32] [--channels 16] [--size 28] [--repeat 5]

Each time is the median of `--repeat` calls after one warm-up call (the first call of a
shape plans the convolution and allocates its workspace). The naive loops run on one
image and are scaled to the batch.
"""

import argparse
import time

import numpy as np

import pycnn


def median_time(fn, repeat):
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    c, hw = args.channels, args.size
    x = rng.standard_normal((args.batch, c, hw, hw)).astype(np.float32)
    rows = []
    for backend in ("compiled", "numpy"):
        conv = pycnn.Conv2d(c, 2 * c, 3, padding=1, rng=0, backend=backend)
        forward = median_time(lambda conv=conv: conv(x), args.repeat)
        out = conv(x)
        backward = median_time(lambda conv=conv, out=out: conv.backward(out), args.repeat)
        rows.append((backend, forward, backward))

    conv = pycnn.Conv2d(c, 2 * c, 3, padding=1, rng=0)
    one = x[:1]
    naive = median_time(lambda: pycnn.naive.conv2d(one, conv.weight, conv.bias, padding=1), 1)
    rows.append(("naive (scaled)", naive * args.batch, None))

    print(f"Conv2d({c}, {2 * c}, 3, padding=1) on {x.shape} float32, ms")
    print(f"{'backend':<16}{'forward':>10}{'backward':>10}")
    for name, fwd, bwd in rows:
        bwd_text = "not run" if bwd is None else f"{bwd * 1e3:.2f}"
        print(f"{name:<16}{fwd * 1e3:>10.2f}{bwd_text:>10}")
    return rows


if __name__ == "__main__":
    main()
