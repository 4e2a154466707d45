"""`pycnn bench`: naive vs NumPy reference vs compiled (vs PyTorch), side by side.

Each library is timed in its own subprocess, so that one library's thread pool cannot
slow another's, and those processes run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
removed from their environment (on machines where they are set, they force a slower
BLAS kernel). The parent only collects JSON and prints the table. Nothing is asserted.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

import numpy as np

# name: (B, C, H=W, F, K, stride, padding)
CONV_SHAPES = {
    "lenet1": (64, 1, 28, 20, 5, 1, 0),
    "lenet2": (64, 20, 12, 50, 5, 1, 0),
    "cifar": (64, 32, 32, 64, 3, 1, 1),
    "resnet": (16, 64, 56, 64, 3, 1, 1),
    "strided": (32, 64, 28, 128, 3, 2, 1),
}
# name: (B, C, H=W), pooled 2x2 with stride 2: the outputs of lenet1 and cifar
POOL_SHAPES = {
    "lenet1-out": (64, 20, 24, 24),
    "cifar-out": (64, 64, 32, 32),
}
LIBRARIES = ("naive", "numpy", "compiled", "torch")
NAIVE_BATCH = 2  # the naive loops run on this many images, scaled to the batch
SCRUBBED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def conv_flops(shape):
    """Multiply-adds x 2 of one forward pass (the backward pass costs twice that)."""
    b, c, hw, f, k, s, p = shape
    o = (hw + 2 * p - k) // s + 1
    return 2.0 * b * f * o * o * c * k * k


def median_time(fn, min_time=0.2, max_repeat=15, min_repeat=3):
    """Median seconds per call: one warm-up, then at least `min_repeat` calls, more
    until `min_time` has passed (at most `max_repeat`)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_repeat or (
        time.perf_counter() - start < min_time and len(times) < max_repeat
    ):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def median_of(fn, repeat):
    """Median seconds of exactly `repeat` calls of `fn`, after one warm-up call."""
    return median_time(fn, min_time=0.0, max_repeat=repeat, min_repeat=repeat)


# --- worker side (runs in a subprocess per library) ---------------------------------


def _ops(library):
    """(conv2d, conv2d_backward, pool ops) closures of one library over NumPy inputs."""
    if library == "torch":
        import torch

        F = torch.nn.functional

        def conv(x, w, s, p):
            # the training forward (inputs that require grad), whose backward we time:
            # without grad, oneDNN may pick another algorithm
            xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
            return F.conv2d(xr, wr, stride=s, padding=p)

        def conv_fb(x, w, g, s, p):
            xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
            F.conv2d(xr, wr, stride=s, padding=p).backward(g)

        def maxpool(x):
            return F.max_pool2d(x.detach().requires_grad_(), 2)

        def maxpool_fb(x, g):
            xr = x.detach().requires_grad_()
            F.max_pool2d(xr, 2).backward(g)

        def avgpool(x):
            return F.avg_pool2d(x.detach().requires_grad_(), 2)

        def avgpool_fb(x, g):
            xr = x.detach().requires_grad_()
            F.avg_pool2d(xr, 2).backward(g)

        convert = torch.from_numpy
        return conv, conv_fb, maxpool, maxpool_fb, avgpool, avgpool_fb, convert

    import pycnn

    mod = {"naive": pycnn.naive, "numpy": pycnn.reference, "compiled": pycnn.functional}[
        library
    ]

    def conv(x, w, s, p):
        return mod.conv2d(x, w, stride=s, padding=p)

    def conv_fb(x, w, g, s, p):
        # both results stay alive to the end, as in training: the peak counts them
        return (
            mod.conv2d(x, w, stride=s, padding=p),
            mod.conv2d_backward(g, x, w, stride=s, padding=p),
        )

    def maxpool(x):
        return mod.max_pool2d(x, 2)

    def maxpool_fb(x, g):
        _, idx = mod.max_pool2d(x, 2, return_indices=True)
        return mod.max_pool2d_backward(g, idx, x.shape)

    def avgpool(x):
        return mod.avg_pool2d(x, 2)

    def avgpool_fb(x, g):
        mod.avg_pool2d(x, 2)
        return mod.avg_pool2d_backward(g, x.shape, 2)

    return conv, conv_fb, maxpool, maxpool_fb, avgpool, avgpool_fb, lambda a: a


def _peak_extra_bytes(fn, keep_bytes):
    """Peak bytes NumPy allocated during `fn()` beyond what it returned (`keep_bytes`)."""
    import tracemalloc

    from pycnn import _conv

    _conv._local.__dict__.clear()  # count the workspace as this call's memory
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return max(peak - base - keep_bytes, 0)


def worker(library, dtype, conv_shapes, pool_shapes, min_time):
    """Time one library on every shape; return a JSON-able dict."""
    result = {"library": library, "conv": {}, "pool": {}}
    if library == "torch":
        import torch

        result["version"] = torch.__version__
        result["threads"] = torch.get_num_threads()
    else:
        import pycnn

        result["threads"] = pycnn.get_num_threads()
    conv, conv_fb, maxpool, maxpool_fb, avgpool, avgpool_fb, convert = _ops(library)
    rng = np.random.default_rng(0)
    for name, shape in conv_shapes.items():
        b, c, hw, f, k, s, p = shape
        nb = min(b, NAIVE_BATCH) if library == "naive" else b
        x = rng.standard_normal((nb, c, hw, hw)).astype(dtype)
        w = (rng.standard_normal((f, c, k, k)) / math.sqrt(c * k * k)).astype(dtype)
        o = (hw + 2 * p - k) // s + 1
        g = rng.standard_normal((nb, f, o, o)).astype(dtype)
        xt, wt, gt = convert(x), convert(w), convert(g)
        fwd = median_time(lambda: conv(xt, wt, s, p), min_time)
        both = median_time(lambda: conv_fb(xt, wt, gt, s, p), min_time)
        scale = b / nb
        entry = {"fwd": fwd * scale, "bwd": max(both - fwd, 0.0) * scale}
        if library == "compiled":
            keep = g.nbytes + x.nbytes + w.nbytes + f * x.itemsize  # out and grads
            entry["peak_extra"] = _peak_extra_bytes(lambda: conv_fb(x, w, g, s, p), keep)
        result["conv"][name] = entry
    for name, (b, c, hw, _) in pool_shapes.items():
        nb = min(b, NAIVE_BATCH) if library == "naive" else b
        x = rng.standard_normal((nb, c, hw, hw)).astype(dtype)
        g = rng.standard_normal((nb, c, hw // 2, hw // 2)).astype(dtype)
        xt, gt = convert(x), convert(g)
        scale = b / nb
        entry = {}
        try:
            for kind, f1, f2 in (("max", maxpool, maxpool_fb), ("avg", avgpool, avgpool_fb)):
                fwd = median_time(lambda: f1(xt), min_time)
                both = median_time(lambda: f2(xt, gt), min_time)
                entry[kind] = {"fwd": fwd * scale, "bwd": max(both - fwd, 0.0) * scale}
        except AttributeError:  # this build has no pooling ops
            continue
        result["pool"][name] = entry
    return result


def _header():
    lines = [
        f"pycnn bench: python {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs ({platform.machine()})"
    ]
    removed = [v for v in SCRUBBED_ENV if v in os.environ]
    if removed:
        lines.append(
            f"unset for the measurement processes: {', '.join(removed)} "
            "(they force a slower OpenBLAS kernel)"
        )
    return lines


def _blas_line():
    code = (
        "import json, numpy\n"
        "try:\n from threadpoolctl import threadpool_info\n"
        " print(json.dumps(threadpool_info()))\n"
        "except ImportError:\n print('[]')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_clean_env(),
        check=False,
    ).stdout
    try:
        pools = json.loads(out)
    except ValueError:
        pools = []
    parts = [
        f"{p['internal_api']} {p.get('architecture') or ''} x{p['num_threads']}" for p in pools
    ]
    return "thread pools: " + (
        ", ".join(parts) if parts else "unknown (install threadpoolctl to see the BLAS kernel)"
    )


def _clean_env():
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    return env


def rerun_without_scrubbed_env():
    """Replace this process by itself without SCRUBBED_ENV, saying so, when any is set
    (for the scripts in bench/, which measure in their own process)."""
    removed = [k for k in SCRUBBED_ENV if k in os.environ]
    if removed:
        print(f"re-running without {', '.join(removed)}", flush=True)
        os.execve(sys.executable, [sys.executable] + sys.argv, _clean_env())


def run_library(library, args):
    cmd = [
        sys.executable,
        "-m",
        "pycnn._bench",
        "--worker",
        library,
        "--dtype",
        args.dtype,
        "--min-time",
        str(args.min_time),
        "--shapes",
        ",".join(args.shapes),
        "--pool-shapes",
        ",".join(args.pool_shapes),
    ]
    for custom in args.shape or []:
        cmd += ["--shape", custom]
    # run from the folder holding the pycnn this process imported, so that the worker
    # (whose sys.path starts with its working directory) times that same build
    import pycnn

    home = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=_clean_env(), cwd=home, check=False
    )
    if proc.returncode != 0:
        return {"library": library, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def format_tables(results, shapes):
    """The human-readable tables: conv and pooling, ms and ratios."""
    libs = [lib for lib in LIBRARIES if lib in results and "error" not in results[lib]]
    comp = results.get("compiled", {})
    lines = ["", "conv2d, milliseconds forward / backward (medians)"]
    head = f"{'shape':<9}" + "".join(f"{lib:>17}" for lib in libs)
    head += f"{'vs numpy':>10}{'vs torch':>10}{'GFLOP/s':>9}{'peak MiB':>10}"
    lines.append(head)
    ratios = {"numpy": [], "torch": []}
    for name in comp.get("conv", {}):
        row = f"{name:<9}"
        for lib in libs:
            e = results[lib]["conv"].get(name)
            row += f"{e['fwd'] * 1e3:>8.1f} /{e['bwd'] * 1e3:>7.1f}" if e else f"{'-':>17}"
        c = comp["conv"][name]
        total = c["fwd"] + c["bwd"]
        for other in ("numpy", "torch"):
            e = results.get(other, {}).get("conv", {}).get(name)
            if e:
                ratios[other].append((e["fwd"] + e["bwd"]) / total)
                row += f"{(e['fwd'] + e['bwd']) / total:>9.2f}x"
            else:
                row += f"{'-':>10}"
        row += f"{3 * conv_flops(shapes[name]) / total / 1e9:>9.0f}"
        row += f"{c.get('peak_extra', 0) / 2**20:>10.1f}"
        lines.append(row)
    lines.append(
        f"{'geomean':<9}"
        + " " * 17 * len(libs)
        + "".join(
            f"{_geomean(ratios[o]):>9.2f}x" if ratios[o] else f"{'-':>10}"
            for o in ("numpy", "torch")
        )
    )
    lines.append(
        "vs X = X's time / compiled time (forward+backward); "
        f"naive runs {NAIVE_BATCH} images, scaled to the batch"
    )
    if comp.get("pool"):
        lines += ["", "pooling 2x2 stride 2, milliseconds forward / backward (medians)"]
        lines.append(
            f"{'shape':<16}"
            + "".join(f"{lib:>17}" for lib in libs)
            + f"{'vs numpy':>10}{'vs torch':>10}"
        )
        pratios = {"numpy": [], "torch": []}
        for name in comp["pool"]:
            for kind in ("max", "avg"):
                row = f"{kind + ' ' + name:<16}"
                for lib in libs:
                    e = results[lib].get("pool", {}).get(name, {}).get(kind)
                    row += (
                        f"{e['fwd'] * 1e3:>8.2f} /{e['bwd'] * 1e3:>7.2f}" if e else f"{'-':>17}"
                    )
                c = comp["pool"][name][kind]
                for other in ("numpy", "torch"):
                    e = results.get(other, {}).get("pool", {}).get(name, {}).get(kind)
                    if e:
                        r = (e["fwd"] + e["bwd"]) / (c["fwd"] + c["bwd"])
                        pratios[other].append(r)
                        row += f"{r:>9.2f}x"
                    else:
                        row += f"{'-':>10}"
                lines.append(row)
        lines.append(
            f"{'geomean':<16}"
            + " " * 17 * len(libs)
            + "".join(
                f"{_geomean(pratios[o]):>9.2f}x" if pratios[o] else f"{'-':>10}"
                for o in ("numpy", "torch")
            )
        )
    return lines


def _parse_custom(spec):
    try:
        parts = [int(v) for v in spec.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 7 or min(parts[:6]) < 1 or parts[6] < 0:
        raise ValueError(
            "`--shape` must be B,C,HW,F,K,S,P: 7 ints, positive but P >= 0. "
            f"Received: --shape={spec}"
        )
    return tuple(parts)


def _custom_shape(spec):
    """argparse type of --shape: the spec, checked (the worker parses it again)."""
    try:
        _parse_custom(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return spec


def _names_from(valid, option):
    """argparse type of a comma-separated list of names taken from `valid`."""

    def parse(text):
        names = [v for v in text.split(",") if v]
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {option} {', '.join(unknown)}; choose from {', '.join(valid)}"
            )
        return names

    return parse


def _checked_by(parse):
    """argparse type: `text` unchanged once `parse(text)` accepted it (its SystemExit
    message becomes argparse's one-line error)."""

    def check(text):
        try:
            parse(text)
        except SystemExit as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def _model_names(text):
    from pycnn import _bench_model

    return _checked_by(_bench_model.parse_models)(text)


def _mode_names(text):
    from pycnn import _bench_model

    return _checked_by(_bench_model.parse_modes)(text)


def _output_file(text):
    """argparse type of a file to write: its folder must exist."""
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    return text


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_arguments(parser):
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument(
        "--shapes",
        default=",".join(CONV_SHAPES),
        type=_names_from(CONV_SHAPES, "--shapes"),
        help=f"conv shapes to run, from {', '.join(CONV_SHAPES)} (default: all)",
    )
    parser.add_argument(
        "--pool-shapes",
        default=",".join(POOL_SHAPES),
        type=_names_from(POOL_SHAPES, "--pool-shapes"),
        help="2x2 stride-2 pooling shapes to run, from "
        f"{', '.join(POOL_SHAPES)} (default: all; empty for none)",
    )
    parser.add_argument(
        "--shape",
        action="append",
        type=_custom_shape,
        help="a custom conv shape B,C,HW,F,K,S,P (repeatable)",
    )
    parser.add_argument(
        "--libraries",
        default=",".join(LIBRARIES),
        type=_names_from(LIBRARIES, "--libraries"),
        help=f"comma-separated, from {', '.join(LIBRARIES)} (default: all; torch is "
        "skipped when not installed)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.3,
        help="seconds of repeated calls per measurement (default 0.3)",
    )
    parser.add_argument(
        "--json", type=_output_file, help="also write the results to this JSON file"
    )
    parser.add_argument(
        "--model",
        type=_model_names,
        metavar="NAME[,NAME...]|all",
        help="time whole networks, pycnn vs PyTorch, instead of single ops "
        "(digits, lenet5, mnist7, resnet20)",
    )
    parser.add_argument(
        "--modes",
        default="train,infer1,infer64",
        type=_mode_names,
        help="with --model: train (batch 64), infer1, infer64 (default all three)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive_int,
        default=3,
        help="with --model: worker runs per library, alternating which goes first",
    )
    parser.add_argument(
        "--plot", type=_output_file, help="also draw a bar chart to this PNG (matplotlib)"
    )


def _selected_shapes(args):
    unknown = [s for s in args.shapes if s not in CONV_SHAPES]
    if unknown:
        raise SystemExit(f"unknown --shapes {unknown}; choose from {list(CONV_SHAPES)}")
    shapes = {name: CONV_SHAPES[name] for name in args.shapes}
    for spec in args.shape or []:
        shapes[spec] = _parse_custom(spec)
    return shapes


def main(args):
    """Run every library in its own process and print the tables."""
    if args.model:
        from pycnn import _bench_model

        return _bench_model.main(args)
    shapes = _selected_shapes(args)
    for line in _header() + [_blas_line()]:
        print(line, flush=True)
    results = {}
    for library in args.libraries:
        if library == "torch":
            try:
                import importlib.util

                if importlib.util.find_spec("torch") is None:
                    print("torch: not installed, skipped", flush=True)
                    continue
            except ImportError:
                continue
        start = time.perf_counter()
        results[library] = run_library(library, args)
        took = time.perf_counter() - start
        extra = results[library].get("error") or f"{took:.0f} s"
        print(f"{library}: {extra}", flush=True)
    for line in format_tables(results, shapes):
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"dtype": args.dtype, "shapes": shapes, "results": results}, f, indent=1)
    if args.plot:
        _plot(results, args.plot)
    return 1 if any("error" in r for r in results.values()) else 0


def _plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib: pip install matplotlib", file=sys.stderr)
        return
    names = list(results.get("compiled", {}).get("conv", {}))
    libs = [lib for lib in LIBRARIES if lib in results and "error" not in results[lib]]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(libs), 1)
    for i, lib in enumerate(libs):
        vals = [
            1e3 * (results[lib]["conv"][n]["fwd"] + results[lib]["conv"][n]["bwd"])
            for n in names
        ]
        ax.bar([j + i * width for j in range(len(names))], vals, width, label=lib)
    ax.set_xticks([j + width * (len(libs) - 1) / 2 for j in range(len(names))], names)
    ax.set_yscale("log")
    ax.set_ylabel("conv2d forward + backward, ms (log)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True, choices=LIBRARIES)
    add_arguments(parser)
    args = parser.parse_args()
    shapes = _selected_shapes(args)
    pools = {n: POOL_SHAPES[n] for n in args.pool_shapes if n in POOL_SHAPES}
    out = worker(args.worker, np.dtype(args.dtype), shapes, pools, args.min_time)
    print(json.dumps(out))
