"""The figures of `pycnn bench --plot` and `pycnn train --plot` (matplotlib, imported
here only; ImportError names what to install). Each function returns the Figure; the
caller saves and closes it."""

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bench_figure(results, shapes, dtype, threads, rounds):
    """Bars of conv2d forward + backward milliseconds per library and shape (median over
    the rounds, whiskers from the fastest to the slowest round), log scale.

    `results` is `pycnn._bench.summarise`'s dict, `shapes` maps a shape's name to
    (B, C, H=W, F, K, S, P).
    """
    from pycnn._bench import LIBRARIES, NAIVE_BATCH

    plt = _pyplot()
    names = list(results.get("compiled", {}).get("conv", {}))
    libs = [lib for lib in LIBRARIES if lib in results and "error" not in results[lib]]
    fig, ax = plt.subplots(figsize=(9, 5))
    width = 0.8 / max(len(libs), 1)
    for i, lib in enumerate(libs):
        entries = [results[lib]["conv"][n] for n in names]
        med = np.array([1e3 * (e["fwd"] + e["bwd"]) for e in entries])
        rounds_ms = [
            1e3 * np.add(e.get("fwd_rounds", [e["fwd"]]), e.get("bwd_rounds", [e["bwd"]]))
            for e in entries
        ]
        low = med - np.array([r.min() for r in rounds_ms])
        high = np.array([r.max() for r in rounds_ms]) - med
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, med, width, label=lib, yerr=[low, high], capsize=2)
    labels = []
    for n in names:
        b, c, hw, f, k, s, p = shapes[n]
        labels.append(f"{n}\nbatch {b}, {c}x{hw}x{hw}\n{f} filters {k}x{k}, s{s} p{p}")
    ax.set_xticks([j + width * (len(libs) - 1) / 2 for j in range(len(names))], labels)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("forward + backward time per batch, ms (log scale)")
    ax.set_xlabel(
        "convolution shape: batch size, input channels x height x width, filters, "
        "kernel, stride s, padding p"
    )
    ax.set_title(
        f"pycnn bench: conv2d, {np.dtype(dtype).name}, {threads} thread(s), median of "
        f"{rounds} round(s) (whiskers: fastest and slowest round)",
        fontsize=10,
    )
    if "naive" in libs:
        ax.annotate(
            f"naive: {NAIVE_BATCH} images timed, scaled to the batch",
            (0.01, 0.01),
            xycoords="figure fraction",
            fontsize=7,
        )
    ax.legend(title="library")
    fig.tight_layout()
    return fig


def training_figure(history, val_source="validation split"):
    """Loss and accuracy (in percent) per epoch, training and validation.

    `history` is `fit`'s dict (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``);
    the ``val_`` curves are labelled "validation" like the log, and `val_source` says
    which data they come from (e.g. ``"the test set"``), in the title.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax, scale, unit in (
        ("loss", ax_loss, 1, "cross-entropy loss (mean per sample)"),
        ("accuracy", ax_acc, 100, "accuracy, %"),
    ):
        if key not in history:
            ax.set_visible(False)
            continue
        ax.plot(epochs, scale * np.asarray(history[key]), marker=".", label=f"training {key}")
        if f"val_{key}" in history:
            val = scale * np.asarray(history[f"val_{key}"])
            ax.plot(epochs, val, marker=".", label=f"validation {key} (val_{key})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.25
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend()
    if "accuracy" in history:
        ax_acc.set_ylim(top=100)
    title = "pycnn train: per-epoch loss and accuracy"
    if any(k.startswith("val_") for k in history):
        title += f"; validation data: {val_source}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
