"""`pycnn bench`: naive vs NumPy reference vs compiled (vs PyTorch), side by side.

Every library is timed in processes of its own, one per round (`--rounds`, 3 by
default), the rounds alternating which library goes first, so that one library's
thread pools cannot slow another's and a burst of load hits one round, not one
library. Every process gets the same thread count for every pool (BLAS, OpenMP, pycnn's,
torch's; `--threads`) and runs without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (on
machines where they are set, they force a slower BLAS kernel). The forward and the
backward pass are each timed on their own (the backward after one untimed forward),
never derived by subtraction. The parent collects JSON, prints the medians over the
rounds with each measurement's min / median / max, and warns when the numbers are
unreliable (see `pycnn._bench_check`); `--strict` then exits with status 3 instead of
printing the tables.
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

from pycnn import _bench_check

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


# --- worker side (runs in a subprocess per library and round) ----------------------


def _ops(library):
    """Closures of one library over NumPy inputs: ``conv(x, w, s, p)`` runs a forward
    pass; ``conv_backward(x, w, g, s, p)`` does the forward once and returns a call that
    runs the backward pass alone (so it is timed directly, not as a difference);
    ``pool(kind, x)`` and ``pool_backward(kind, x, g)`` likewise for 2x2 max/avg
    pooling; ``convert`` turns a NumPy array into the library's own."""
    if library == "torch":
        import torch

        F = torch.nn.functional
        grad = torch.autograd.grad

        def conv(x, w, s, p):
            # the training forward (inputs that require grad), whose backward we time:
            # without grad, oneDNN may pick another algorithm
            xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
            return F.conv2d(xr, wr, stride=s, padding=p)

        def conv_backward(x, w, g, s, p):
            xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
            out = F.conv2d(xr, wr, stride=s, padding=p)
            return lambda: grad(out, (xr, wr), g, retain_graph=True)

        def pool(kind, x):
            fn = F.max_pool2d if kind == "max" else F.avg_pool2d
            return fn(x.detach().requires_grad_(), 2)

        def pool_backward(kind, x, g):
            xr = x.detach().requires_grad_()
            out = (F.max_pool2d if kind == "max" else F.avg_pool2d)(xr, 2)
            return lambda: grad(out, (xr,), g, retain_graph=True)

        return conv, conv_backward, pool, pool_backward, torch.from_numpy

    import pycnn

    mod = {"naive": pycnn.naive, "numpy": pycnn.reference, "compiled": pycnn.functional}[
        library
    ]

    def conv(x, w, s, p):
        return mod.conv2d(x, w, stride=s, padding=p)

    def conv_backward(x, w, g, s, p):
        return lambda: mod.conv2d_backward(g, x, w, stride=s, padding=p)

    def pool(kind, x):
        return (mod.max_pool2d if kind == "max" else mod.avg_pool2d)(x, 2)

    def pool_backward(kind, x, g):
        if kind == "max":
            _, idx = mod.max_pool2d(x, 2, return_indices=True)
            return lambda: mod.max_pool2d_backward(g, idx, x.shape)
        return lambda: mod.avg_pool2d_backward(g, x.shape, 2)

    return conv, conv_backward, pool, pool_backward, lambda a: a


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


def _set_threads(library, threads):
    """Every thread pool of this process to `threads`; return what they report."""
    pools = []
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
        reported = torch.get_num_threads()
    else:
        import pycnn

        pycnn.set_num_threads(threads)
        reported = pycnn.get_num_threads()
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(threads)
        pools = [f"{p['internal_api']} x{p['num_threads']}" for p in threadpool_info()]
    except ImportError:
        pass
    return reported, pools


def worker(library, dtype, conv_shapes, pool_shapes, min_time, threads=None):
    """Time one library on every shape, forward and backward each timed on its own;
    return a JSON-able dict (seconds, medians over the calls)."""
    from pycnn import _bench_check

    result = {"library": library, "conv": {}, "pool": {}}
    if library == "torch":
        import torch

        result["version"] = torch.__version__
    if threads is not None:
        result["threads"], result["pools"] = _set_threads(library, threads)
    else:
        import pycnn

        result["threads"] = pycnn.get_num_threads()
    conv, conv_backward, pool, pool_backward, convert = _ops(library)
    shares = [_bench_check.probe()]
    rng = np.random.default_rng(0)
    for name, shape in conv_shapes.items():
        b, c, hw, f, k, s, p = shape
        nb = min(b, NAIVE_BATCH) if library == "naive" else b
        x = rng.standard_normal((nb, c, hw, hw)).astype(dtype)
        w = (rng.standard_normal((f, c, k, k)) / math.sqrt(c * k * k)).astype(dtype)
        o = (hw + 2 * p - k) // s + 1
        g = rng.standard_normal((nb, f, o, o)).astype(dtype)
        xt, wt, gt = convert(x), convert(w), convert(g)
        scale = b / nb
        fwd = median_time(lambda: conv(xt, wt, s, p), min_time)
        bwd = median_time(conv_backward(xt, wt, gt, s, p), min_time)
        entry = {"fwd": fwd * scale, "bwd": bwd * scale}
        if library == "compiled":
            keep = g.nbytes + x.nbytes + w.nbytes + f * x.itemsize  # out and grads

            def both():
                return conv(x, w, s, p), conv_backward(x, w, g, s, p)()

            entry["peak_extra"] = _peak_extra_bytes(both, keep)
        result["conv"][name] = entry
    for name, (b, c, hw, _) in pool_shapes.items():
        nb = min(b, NAIVE_BATCH) if library == "naive" else b
        x = rng.standard_normal((nb, c, hw, hw)).astype(dtype)
        g = rng.standard_normal((nb, c, hw // 2, hw // 2)).astype(dtype)
        xt, gt = convert(x), convert(g)
        scale = b / nb
        entry = {}
        for kind in ("max", "avg"):
            fwd = median_time(lambda: pool(kind, xt), min_time)
            bwd = median_time(pool_backward(kind, xt, gt), min_time)
            entry[kind] = {"fwd": fwd * scale, "bwd": bwd * scale}
        result["pool"][name] = entry
    # BLAS and OpenMP workers spin a while after their last task before they sleep;
    # let them, so that the probe measures the machine, not this process's own threads
    time.sleep(0.2)
    shares.append(_bench_check.probe())
    result["core_share"] = min(shares)
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


THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "PYCNN_NUM_THREADS",
)


def default_threads():
    """The number of CPUs this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_library(library, args, threads):
    """One worker process timing `library` on every selected shape: its JSON dict, or
    ``{"library": ..., "error": [last stderr line]}``."""
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
        "--threads",
        str(threads),
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
    # the same thread count for every library's pools, set before they load
    env = dict(_clean_env(), **{k: str(threads) for k in THREAD_ENV})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=home, check=False)
    if proc.returncode != 0:
        return {"library": library, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(runs):
    """{library: result} from {library: [one worker result per round]}: every time is
    the median over the rounds, with the rounds' own values in ``fwd_rounds`` and
    ``bwd_rounds``; a library that failed in any round keeps that round's error."""
    results = {}
    for lib, rounds in runs.items():
        failed = [r for r in rounds if "error" in r]
        if failed:
            results[lib] = failed[0]
            continue
        first = rounds[0]
        keys = ("library", "version", "threads", "pools")
        out = {key: first[key] for key in keys if key in first}
        out["core_share"] = min(r["core_share"] for r in rounds)
        out["conv"] = {}
        for name, entry in first["conv"].items():
            out["conv"][name] = _merge([r["conv"][name] for r in rounds])
            if "peak_extra" in entry:
                out["conv"][name]["peak_extra"] = max(
                    r["conv"][name]["peak_extra"] for r in rounds
                )
        out["pool"] = {
            name: {kind: _merge([r["pool"][name][kind] for r in rounds]) for kind in kinds}
            for name, kinds in first["pool"].items()
        }
        results[lib] = out
    return results


def _merge(entries):
    fwd = [e["fwd"] for e in entries]
    bwd = [e["bwd"] for e in entries]
    return {
        "fwd": float(np.median(fwd)),
        "bwd": float(np.median(bwd)),
        "fwd_rounds": fwd,
        "bwd_rounds": bwd,
    }


def _totals(entry):
    """Forward + backward seconds of each round."""
    return [f + b for f, b in zip(entry["fwd_rounds"], entry["bwd_rounds"])]


def spreads(results):
    """{"<library> <shape>": max/min over the rounds of forward + backward}."""
    from pycnn._bench_check import spread

    out = {}
    for lib, res in results.items():
        if "error" in res:
            continue
        for name, entry in res["conv"].items():
            out[f"{lib} {name}"] = spread(_totals(entry))
        for name, kinds in res["pool"].items():
            for kind, entry in kinds.items():
                out[f"{lib} {kind} {name}"] = spread(_totals(entry))
    return out


def ms(seconds):
    """Milliseconds with three significant digits, never rounded to zero: 1636, 24.5,
    6.12, 0.0412."""
    v = seconds * 1e3
    if v >= 100:
        return f"{v:.0f}"
    if v <= 0:
        return f"{v:.3g}"
    return f"{v:.{max(2 - math.floor(math.log10(v)), 1)}f}"


def _geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def _cell(entry):
    return f"{ms(entry['fwd']):>8} /{ms(entry['bwd']):>7}" if entry else f"{'-':>17}"


def format_tables(results, shapes):
    """The human-readable tables: conv and pooling, ms and ratios (medians over the
    rounds), then each measurement's min / median / max over the rounds."""
    libs = [lib for lib in LIBRARIES if lib in results and "error" not in results[lib]]
    comp = results.get("compiled", {})
    others = [o for o in ("numpy", "torch") if o in libs]
    lines = ["", "conv2d, milliseconds forward / backward (medians over the rounds)"]
    head = f"{'shape':<9}" + "".join(f"{lib:>17}" for lib in libs)
    head += "".join(f"{'vs ' + o:>10}" for o in others) + f"{'GFLOP/s':>9}{'peak MiB':>10}"
    lines.append(head)
    ratios = {o: [] for o in others}
    for name in comp.get("conv", {}):
        row = f"{name:<9}" + "".join(_cell(results[lib]["conv"].get(name)) for lib in libs)
        c = comp["conv"][name]
        total = c["fwd"] + c["bwd"]
        for other in others:
            e = results[other]["conv"][name]
            ratios[other].append((e["fwd"] + e["bwd"]) / total)
            row += f"{ratios[other][-1]:>9.2f}x"
        row += f"{3 * conv_flops(shapes[name]) / total / 1e9:>9.3g}"
        row += f"{c.get('peak_extra', 0) / 2**20:>10.1f}"
        lines.append(row)
    if comp.get("conv") and others:
        lines.append(
            f"{'geomean':<9}"
            + " " * 17 * len(libs)
            + "".join(f"{_geomean(ratios[o]):>9.2f}x" for o in others)
        )
    lines.append(
        "vs X = X's time / compiled time (forward+backward), each pass timed on its own; "
        f"naive runs {NAIVE_BATCH} images, scaled to the batch"
    )
    if comp.get("pool"):
        lines += ["", "pooling 2x2 stride 2, milliseconds forward / backward (medians)"]
        lines.append(
            f"{'shape':<16}"
            + "".join(f"{lib:>17}" for lib in libs)
            + "".join(f"{'vs ' + o:>10}" for o in others)
        )
        pratios = {o: [] for o in others}
        for name in comp["pool"]:
            for kind in ("max", "avg"):
                row = f"{kind + ' ' + name:<16}" + "".join(
                    _cell(results[lib]["pool"].get(name, {}).get(kind)) for lib in libs
                )
                c = comp["pool"][name][kind]
                for other in others:
                    e = results[other]["pool"][name][kind]
                    pratios[other].append((e["fwd"] + e["bwd"]) / (c["fwd"] + c["bwd"]))
                    row += f"{pratios[other][-1]:>9.2f}x"
                lines.append(row)
        if others:
            lines.append(
                f"{'geomean':<16}"
                + " " * 17 * len(libs)
                + "".join(f"{_geomean(pratios[o]):>9.2f}x" for o in others)
            )
    lines += _spread_table(results, libs)
    return lines


def _spread_table(results, libs):
    from pycnn._bench_check import spread

    rows = []
    for name in results.get("compiled", {}).get("conv", {}):
        rows.append((name, [results[lib]["conv"].get(name) for lib in libs]))
    for name, kinds in results.get("compiled", {}).get("pool", {}).items():
        for kind in kinds:
            entries = [results[lib]["pool"].get(name, {}).get(kind) for lib in libs]
            rows.append((f"{kind} {name}", entries))
    if not rows:
        return []
    lines = [
        "",
        "forward + backward ms over the rounds: min / median / max (spread = max/min)",
        f"{'shape':<16}" + "".join(f"{lib:>30}" for lib in libs),
    ]
    for label, entries in rows:
        row = f"{label:<16}"
        for e in entries:
            if not e:
                row += f"{'-':>30}"
                continue
            t = _totals(e)
            cell = f"{ms(min(t))} / {ms(float(np.median(t)))} / {ms(max(t))} x{spread(t):.2f}"
            row += f"{cell:>30}"
        lines.append(row)
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


def _ratio_above_one(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 1:
        raise argparse.ArgumentTypeError(f"must be > 1, got {value}")
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
        help="worker runs per library, each in a new process, alternating which "
        "library goes first; the tables show the median over the rounds (default 3)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        help="threads of every library's pools: BLAS, OpenMP, pycnn, torch (default: "
        "the CPUs this process may use)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 3, printing no table, when the numbers are unreliable "
        "(spread between rounds, other processes' CPU use, a probe loop slowed down)",
    )
    parser.add_argument(
        "--max-spread",
        type=_ratio_above_one,
        default=_bench_check.MAX_SPREAD,
        help="largest max/min over the rounds before a warning (default %(default)s)",
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


def _available(libraries):
    """The libraries to run: torch only where it is installed (said once)."""
    import importlib.util

    libs = []
    for lib in libraries:
        if lib == "torch" and importlib.util.find_spec("torch") is None:
            print("torch: not installed, skipped", flush=True)
            continue
        libs.append(lib)
    return libs


def main(args):
    """Run every library in its own processes, round after round, and print the tables
    and whether the machine let them be measured reliably."""
    if args.model:
        if args.strict or args.threads:
            print(
                "pycnn bench: error: --strict and --threads apply to the op tables, "
                "not to --model (whose workers use pycnn's threads)",
                file=sys.stderr,
            )
            return 2
        from pycnn import _bench_model

        return _bench_model.main(args)
    shapes = _selected_shapes(args)
    threads = args.threads or default_threads()
    for line in _header() + [_blas_line()]:
        print(line, flush=True)
    print(
        f"threads: {threads} in every library's pools (BLAS, OpenMP, pycnn, torch), set "
        "through OMP/OPENBLAS/MKL/PYCNN_NUM_THREADS, threadpoolctl and set_num_threads",
        flush=True,
    )
    libs = _available(args.libraries)
    runs = {lib: [] for lib in libs}
    monitor = _bench_check.CpuMonitor().start()
    for r in range(args.rounds):
        order = libs[r % len(libs) :] + libs[: r % len(libs)] if libs else []
        start = time.perf_counter()
        for lib in order:
            runs[lib].append(run_library(lib, args, threads))
        took = time.perf_counter() - start
        print(f"round {r + 1}/{args.rounds}: {' '.join(order)}, {took:.0f} s", flush=True)
    machine = monitor.stop()
    results = summarise(runs)
    for lib, res in results.items():
        if "error" in res:
            print(f"{lib}: error: {' '.join(res['error'])}", flush=True)
        elif res.get("pools"):
            print(f"{lib}: thread pools {', '.join(res['pools'])}", flush=True)
    limits = {
        "max_spread": args.max_spread,
        "max_other_cpu": _bench_check.MAX_OTHER_CPU,
        "min_core_share": _bench_check.MIN_CORE_SHARE,
    }
    shares = [r["core_share"] for r in results.values() if "core_share" in r]
    summary, warnings = _bench_check.verdict(
        spreads(results), machine, shares, args.rounds, limits
    )
    print(summary)
    for w in warnings:
        print(f"WARNING: unreliable numbers: {w}", flush=True)
    reliable = not warnings
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "dtype": args.dtype,
                    "shapes": shapes,
                    "threads": threads,
                    "rounds": args.rounds,
                    "reliable": reliable,
                    "warnings": warnings,
                    "machine": machine,
                    "results": results,
                },
                f,
                indent=1,
            )
    if args.strict and not reliable:
        print(
            "pycnn bench: --strict: the numbers are unreliable (WARNING lines above), "
            "so no table is printed; re-run on a quiet machine",
            file=sys.stderr,
        )
        return 3
    for line in format_tables(results, shapes):
        print(line)
    if args.plot:
        _plot(results, args.plot, shapes, args.dtype, threads, args.rounds)
    return 1 if any("error" in r for r in results.values()) else 0


def _plot(results, path, shapes, dtype, threads, rounds):
    try:
        from pycnn import _plots

        fig = _plots.bench_figure(results, shapes, dtype, threads, rounds)
    except ImportError:
        print("--plot needs matplotlib: pip install matplotlib", file=sys.stderr)
        return
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"plot written to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True, choices=LIBRARIES)
    add_arguments(parser)
    args = parser.parse_args()
    shapes = _selected_shapes(args)
    pools = {n: POOL_SHAPES[n] for n in args.pool_shapes if n in POOL_SHAPES}
    out = worker(args.worker, np.dtype(args.dtype), shapes, pools, args.min_time, args.threads)
    print(json.dumps(out))
