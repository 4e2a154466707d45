"""`pycnn bench --model NAME`: whole networks, pycnn vs PyTorch, same weights.

Each network is a spec (a list of layer descriptions, below) from which both a pycnn
`Sequential` and an equivalent `torch.nn.Sequential` are built; pycnn draws the initial
weights and `copy_weights` loads them into the torch model by state-dict key, so both
compute the same function (tests/test_bench_model.py holds them to it).

Modes: ``train`` (forward, cross-entropy, backward, SGD step with momentum, batch 64),
``infer1`` and ``infer64`` (eval-mode forward at batch 1 and 64). Inference runs each
library the way it serves a trained model, every one with batch norm folded into the
convolutions: pycnn's ``model.fuse()``, torch's eval model folded by
``torch.fx.experimental.optimization.fuse`` under ``inference_mode``, and, when it is
installed, onnxruntime on the model exported by `pycnn.onnx.export` (its default graph
optimisations fold and fuse; ``intra_op_num_threads`` set to the thread count). One
worker process per (library, network, dtype, mode) builds the model, warms up, then
times steps; rounds alternate which library goes first. Peak memory is the growth of
the worker's peak RSS (``ru_maxrss``) from just before the first (warm-up) step to
after the last: what the steps needed beyond the imports, the model and the input.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np

# --- network specs -------------------------------------------------------------------
# ("conv", c_in, c_out, k, stride, padding, bias)  ("bn", c)  ("relu",)
# ("maxpool", k)  ("gap",) global average pooling  ("flatten",)  ("linear", in, out)
# ("residual", body_spec, shortcut_spec or None)


def _conv_bn_relu(c_in, c_out, stride=1):
    return [("conv", c_in, c_out, 3, stride, 1, False), ("bn", c_out), ("relu",)]


def _basic_block(c_in, c_out, stride):
    """He et al.'s basic block: conv-bn-relu-conv-bn plus a shortcut, then relu; a 1x1
    strided conv and bn as the shortcut where the shape changes."""
    body = [
        *_conv_bn_relu(c_in, c_out, stride),
        ("conv", c_out, c_out, 3, 1, 1, False),
        ("bn", c_out),
    ]
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = [("conv", c_in, c_out, 1, stride, 0, False), ("bn", c_out)]
    return [("residual", body, shortcut), ("relu",)]


def _digits():
    # pycnn/cli.py build_model(8, dropout=0): dropout is left out, so that both libraries
    # compute the same function in training mode
    return [
        *_conv_bn_relu(1, 16),
        ("maxpool", 2),
        *_conv_bn_relu(16, 32),
        ("maxpool", 2),
        ("flatten",),
        ("linear", 32 * 2 * 2, 10),
    ]


def _mnist7():
    def conv(c_in, c_out):
        return [("conv", c_in, c_out, 3, 1, 1, True), ("relu",)]

    return [
        *conv(1, 16),
        *conv(16, 16),
        ("maxpool", 2),  # 14
        *conv(16, 32),
        *conv(32, 32),
        ("maxpool", 2),  # 7
        *conv(32, 64),
        *conv(64, 64),
        *conv(64, 64),
        ("maxpool", 2),  # 3
        ("flatten",),
        ("linear", 64 * 3 * 3, 128),
        ("relu",),
        ("linear", 128, 10),
    ]


def _resnet20(blocks=3):
    spec = _conv_bn_relu(3, 16)
    c_in = 16
    for width, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(blocks):
            spec += _basic_block(c_in, width, stride if i == 0 else 1)
            c_in = width
    return spec + [("gap",), ("flatten",), ("linear", 64, 10)]


def _lenet5():
    # LeNet-5 on 28x28 (padding 2 gives the original 32x32 geometry), ReLU and max pooling
    return [
        ("conv", 1, 6, 5, 1, 2, True),
        ("relu",),
        ("maxpool", 2),
        ("conv", 6, 16, 5, 1, 0, True),
        ("relu",),
        ("maxpool", 2),
        ("flatten",),
        ("linear", 16 * 5 * 5, 120),
        ("relu",),
        ("linear", 120, 84),
        ("relu",),
        ("linear", 84, 10),
    ]


# name: (input shape (C, H, W), spec, one-line description)
NETWORKS = {
    "digits": ((1, 8, 8), _digits(), "the `pycnn train` CNN at 8x8, without dropout"),
    "lenet5": ((1, 28, 28), _lenet5(), "LeNet-5, ReLU and max pooling, 28x28"),
    "mnist7": ((1, 28, 28), _mnist7(), "7 convs 16-64 channels, 3 max pools, 2 Linear"),
    "resnet20": ((3, 32, 32), _resnet20(), "CIFAR ResNet-20: 3 stages x 3 basic blocks"),
}
MODES = {"train": 64, "infer1": 1, "infer64": 64}  # mode: batch size
LIBRARIES = ("pycnn", "torch", "onnxruntime")
N_CLASSES = 10
LR, MOMENTUM = 0.01, 0.9


def build_pycnn(spec, dtype=np.float32, rng=None):
    """A pycnn `Sequential` of `spec`; `rng` (a Generator or a seed) draws the weights."""
    import pycnn

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def layer(d):
        kind = d[0]
        if kind == "conv":
            _, c_in, c_out, k, s, p, bias = d
            return pycnn.Conv2d(c_in, c_out, k, s, p, bias=bias, dtype=dtype, rng=rng)
        if kind == "bn":
            return pycnn.BatchNorm2d(d[1], dtype=dtype)
        if kind == "relu":
            return pycnn.ReLU()
        if kind == "maxpool":
            return pycnn.MaxPool2d(d[1])
        if kind == "gap":
            return pycnn.AdaptiveAvgPool2d(1)
        if kind == "flatten":
            return pycnn.Flatten()
        if kind == "linear":
            return pycnn.Linear(d[1], d[2], dtype=dtype, rng=rng)
        if kind == "residual":
            body, shortcut = d[1], d[2]
            return pycnn.Residual(
                pycnn.Sequential(*map(layer, body)),
                None if shortcut is None else pycnn.Sequential(*map(layer, shortcut)),
            )
        raise ValueError(f"unknown layer kind {kind!r} in a network spec")

    return pycnn.Sequential(*map(layer, spec))


def build_torch(spec, dtype=np.float32):
    """A `torch.nn.Sequential` of `spec` whose state-dict keys are pycnn's."""
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, body, shortcut):
            super().__init__()
            self.body = body
            self.shortcut = nn.Identity() if shortcut is None else shortcut

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32

    def layer(d):
        kind = d[0]
        if kind == "conv":
            _, c_in, c_out, k, s, p, bias = d
            return nn.Conv2d(c_in, c_out, k, s, p, bias=bias)
        if kind == "bn":
            return nn.BatchNorm2d(d[1])
        if kind == "relu":
            return nn.ReLU()
        if kind == "maxpool":
            return nn.MaxPool2d(d[1])
        if kind == "gap":
            return nn.AdaptiveAvgPool2d(1)
        if kind == "flatten":
            return nn.Flatten()
        if kind == "linear":
            return nn.Linear(d[1], d[2])
        if kind == "residual":
            body, shortcut = d[1], d[2]
            return Residual(
                nn.Sequential(*map(layer, body)),
                None if shortcut is None else nn.Sequential(*map(layer, shortcut)),
            )
        raise ValueError(f"unknown layer kind {kind!r} in a network spec")

    return nn.Sequential(*map(layer, spec)).to(tdtype)


def copy_weights(model, tmodel):
    """Load pycnn `model`'s parameters and buffers into `tmodel` by state-dict key.

    The keys must match both ways, except torch's ``num_batches_tracked`` of each batch
    norm, which older pycnn lacked; shapes must match too."""
    import torch

    state = model.state_dict()
    tstate = tmodel.state_dict()
    extra = [k for k in tstate if k not in state and not k.endswith(".num_batches_tracked")]
    missing = [k for k in state if k not in tstate]
    if extra or missing:
        raise ValueError(
            f"state-dict keys differ: only in torch {extra}, only in pycnn {missing}"
        )
    with torch.no_grad():
        for key, arr in state.items():
            if tuple(tstate[key].shape) != arr.shape:
                raise ValueError(
                    f"shape of {key!r}: pycnn {arr.shape}, torch {tuple(tstate[key].shape)}"
                )
            tstate[key].copy_(torch.from_numpy(np.array(arr, order="C")))  # 0-d stays 0-d


# --- worker side: one (library, network, dtype, mode) per process ----------------------


def _inputs(name, batch, dtype, seed=1):
    shape, _, _ = NETWORKS[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape)).astype(dtype)
    y = rng.integers(0, N_CLASSES, batch)
    return x, y


def _pycnn_step(name, mode, dtype):
    import pycnn

    model = build_pycnn(NETWORKS[name][1], dtype, rng=0)
    x, y = _inputs(name, MODES[mode], dtype)
    if mode != "train":
        fused = model.eval().fuse()
        return lambda: fused.forward(x)
    loss = pycnn.CrossEntropyLoss()
    opt = pycnn.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        opt.zero_grad()
        loss.forward(model.forward(x), y)
        model.backward(loss.backward(), input_grad=False)  # as torch: x needs no grad
        opt.step()

    return step


def _torch_step(name, mode, dtype):
    import torch

    spec = NETWORKS[name][1]
    tmodel = build_torch(spec, dtype)
    copy_weights(build_pycnn(spec, dtype, rng=0), tmodel)
    x, y = _inputs(name, MODES[mode], dtype)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if mode != "train":
        from torch.fx.experimental.optimization import fuse

        folded = fuse(tmodel.eval())

        def infer():
            with torch.inference_mode():
                return folded(xt)

        return infer
    loss = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        opt.zero_grad(set_to_none=True)
        loss(tmodel(xt), yt).backward()
        opt.step()

    return step


def _onnxruntime_step(name, mode, dtype, threads, folder):
    """onnxruntime on the pycnn model exported to ONNX (inference modes only)."""
    import onnxruntime as ort

    from pycnn import onnx as pycnn_onnx

    shape, spec, _ = NETWORKS[name]
    path = os.path.join(folder, f"{name}.onnx")
    pycnn_onnx.export(build_pycnn(spec, dtype, rng=0), path, shape)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    x, _ = _inputs(name, MODES[mode], dtype)
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def worker(library, name, dtype, mode, threads, min_time, warmup=2, max_steps=200):
    """Step times (seconds) of one library on one network and mode, and the peak-RSS
    growth over the steps (bytes); a JSON-able dict."""
    import resource

    result = {"library": library, "network": name, "mode": mode}
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
        result["threads"] = torch.get_num_threads()
        result["version"] = torch.__version__
        step = _torch_step(name, mode, dtype)
    elif library == "onnxruntime":
        import tempfile

        import onnxruntime

        result["threads"] = threads
        result["version"] = onnxruntime.__version__
        with tempfile.TemporaryDirectory() as folder:
            step = _onnxruntime_step(name, mode, dtype, threads, folder)
    else:
        import pycnn

        pycnn.set_num_threads(threads)
        result["threads"] = pycnn.get_num_threads()
        step = _pycnn_step(name, mode, dtype)
    scale = 1024 if sys.platform != "darwin" else 1  # ru_maxrss: KiB on Linux, B on macOS
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(warmup):
        step()
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time and len(times) < max_steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["times"] = times
    result["peak_rss_growth"] = (rss1 - rss0) * scale
    return result


# --- parent side -----------------------------------------------------------------------


def parse_models(value):
    """`--model` value -> list of network names; SystemExit naming the valid ones."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if names == ["all"]:
        return list(NETWORKS)
    unknown = [n for n in names if n not in NETWORKS]
    if unknown or not names:
        raise SystemExit(
            f"unknown --model {', '.join(unknown) or repr(value)}; "
            f"choose from {', '.join(NETWORKS)} or all"
        )
    return names


def parse_modes(value):
    modes = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise SystemExit(
            f"unknown --modes {', '.join(unknown) or repr(value)}; "
            f"choose from {', '.join(MODES)}"
        )
    return modes


def run_worker(library, name, dtype, mode, threads, min_time):
    from pycnn._bench import _clean_env

    cmd = [
        sys.executable,
        "-m",
        "pycnn._bench_model",
        library,
        name,
        dtype,
        mode,
        str(threads),
        str(min_time),
    ]
    import pycnn

    # run from the folder holding the pycnn this process imported (see _bench.run_library)
    home = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=_clean_env(), cwd=home, check=False
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["exit status"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _summary(times):
    t = np.asarray(times) * 1e3
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median_ms": float(med), "q1_ms": float(q1), "q3_ms": float(q3), "n": len(t)}


def _ms(v):
    """Milliseconds to 3-4 significant digits."""
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def _cell(s):
    if s is None or "error" in s:
        return "-"
    return f"{_ms(s['median_ms'])} ({_ms(s['q1_ms'])}-{_ms(s['q3_ms'])})"


def _ratio(entry, other):
    """pycnn's median over `other`'s, or None when either is missing."""
    p, o = entry.get("pycnn"), entry.get(other)
    if p and o and "error" not in p and "error" not in o:
        return p["median_ms"] / o["median_ms"]
    return None


def format_table(summary, dtype, threads, rounds):
    from pycnn._bench import _geomean

    lines = [
        "",
        f"whole networks, {dtype}: ms per step, median (IQR) over {rounds} round(s) of "
        f"timed steps; pycnn threads {threads}, torch.set_num_threads({threads}), "
        f"onnxruntime intra_op_num_threads={threads}",
        f"{'network':<9}{'mode':<8}{'pycnn':>22}{'torch':>22}{'onnxruntime':>22}"
        f"{'/torch':>8}{'/ort':>7}{'peak RSS MiB pycnn/torch':>26}",
    ]
    by_mode = {}
    for (name, mode), entry in summary.items():
        row = f"{name:<9}{mode:<8}" + "".join(
            f"{_cell(entry.get(lib)):>22}" for lib in LIBRARIES
        )
        for other, width in (("torch", 8), ("onnxruntime", 7)):
            r = _ratio(entry, other)
            row += f"{'-':>{width}}" if r is None else f"{r:>{width - 1}.2f}x"
            if r is not None:
                by_mode.setdefault(mode, {}).setdefault(other, []).append(r)
        p, t = entry.get("pycnn"), entry.get("torch")
        mem = [f"{s['peak_rss_mib']:.1f}" if s and "error" not in s else "-" for s in (p, t)]
        row += f"{' / '.join(mem):>26}"
        lines.append(row)
    for mode, ratios in by_mode.items():
        cells = ""
        for other, width in (("torch", 8), ("onnxruntime", 7)):
            r = ratios.get(other)
            cells += f"{'-':>{width}}" if not r else f"{_geomean(r):>{width - 1}.2f}x"
        lines.append(f"{'geomean':<9}{mode:<8}{'':>66}{cells}")
    lines.append(
        "train = forward + cross-entropy + backward + SGD(momentum) step at batch "
        f"{MODES['train']}; infer1/infer64 = inference at batch 1/64 with batch norm "
        "folded in every library (pycnn model.fuse(), torch.fx fuse + inference_mode, "
        "onnxruntime on pycnn.onnx.export's file)"
    )
    lines.append(
        "/torch, /ort = pycnn's median over theirs; peak RSS = growth of the worker's "
        "ru_maxrss from before the first warm-up step to after the last step (max over "
        "rounds): memory the steps needed beyond the imports, model and input; it is a "
        "high-water mark, so 0 means no growth"
    )
    return lines


def main(args):
    """Run the workers, rounds alternating which library goes first; print the table."""
    import pycnn
    from pycnn._bench import _blas_line, _header

    names = parse_models(args.model)
    modes = parse_modes(args.modes)
    if args.rounds < 1:
        raise SystemExit(f"`--rounds` must be >= 1. Received: --rounds={args.rounds}")
    import importlib.util

    needs = {"torch": ("torch",), "onnxruntime": ("onnxruntime", "onnx")}
    libs = [
        lib for lib in LIBRARIES if all(importlib.util.find_spec(m) for m in needs.get(lib, ()))
    ]
    threads = pycnn.get_num_threads()
    for line in _header() + [_blas_line()]:
        print(line, flush=True)
    for lib in needs:
        if lib not in libs:
            print(f"{lib}: not installed, not measured", flush=True)
    if args.dtype == "float64" and "onnxruntime" in libs:
        # its CPU provider has no float64 Conv (pycnn.onnx.export refuses to write one)
        libs.remove("onnxruntime")
        print("onnxruntime: runs convolutions in float32 only, not measured", flush=True)
    raw = {}
    for r in range(args.rounds):
        order = libs if r % 2 == 0 else libs[::-1]
        start = time.perf_counter()
        for name in names:
            for mode in modes:
                for lib in order:
                    if lib == "onnxruntime" and mode == "train":
                        continue  # an inference engine
                    res = run_worker(lib, name, args.dtype, mode, threads, args.min_time)
                    raw.setdefault((name, mode), {}).setdefault(lib, []).append(res)
        print(f"round {r + 1}/{args.rounds}: {time.perf_counter() - start:.0f} s", flush=True)
    summary = {}
    for key, per_lib in raw.items():
        summary[key] = {}
        for lib, runs in per_lib.items():
            errors = [run["error"] for run in runs if "error" in run]
            if errors:
                print(f"{lib} {key[0]} {key[1]}: {errors[0]}", file=sys.stderr)
                summary[key][lib] = {"error": errors[0]}
                continue
            s = _summary([t for run in runs for t in run["times"]])
            s["peak_rss_mib"] = max(run["peak_rss_growth"] for run in runs) / 2**20
            s["threads"] = runs[0]["threads"]
            summary[key][lib] = s
    for line in format_table(summary, args.dtype, threads, args.rounds):
        print(line)
    if args.json:
        out = {
            "dtype": args.dtype,
            "rounds": args.rounds,
            "threads": threads,
            "results": [
                {"network": n, "mode": m, **{lib: s for lib, s in e.items()}}
                for (n, m), e in summary.items()
            ],
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    lib, name, dtype, mode, threads, min_time = sys.argv[1:7]
    out = worker(lib, name, np.dtype(dtype), mode, int(threads), float(min_time))
    print(json.dumps(out))
