"""The bench and training plots say what they show (issue 19, item 7): a title with the
dtype, threads and rounds; shapes with their batch size; axes with units; the training
curves' validation split called "validation", as the log's val_, and accuracy in %."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from pycnn import _plots, cli  # noqa: E402

SHAPES = {"lenet2": (64, 20, 12, 50, 5, 1, 0), "cifar": (64, 32, 32, 64, 3, 1, 1)}


def _entry(fwd, bwd):
    return {
        "fwd": fwd,
        "bwd": bwd,
        "fwd_rounds": [fwd * 0.9, fwd, fwd * 1.2],
        "bwd_rounds": [bwd, bwd * 1.1, bwd * 0.95],
    }


RESULTS = {
    "numpy": {"conv": {"lenet2": _entry(6e-3, 24e-3), "cifar": _entry(0.11, 0.12)}},
    "compiled": {"conv": {"lenet2": _entry(4e-3, 8e-3), "cifar": _entry(0.025, 0.05)}},
    "torch": {"error": ["ImportError: no torch"]},
}


def _texts(fig):
    return [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]


def test_bench_figure_title_axes_and_bars(tmp_path):
    fig = _plots.bench_figure(RESULTS, SHAPES, "float32", 2, 3)
    ax = fig.axes[0]
    title = ax.get_title()
    assert "float32" in title and "2 thread" in title and "3 round" in title
    assert "ms" in ax.get_ylabel() and "log" in ax.get_ylabel()
    assert "batch size" in ax.get_xlabel()
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0].startswith("lenet2") and "batch 64" in ticks[0] and "20x12x12" in ticks[0]
    assert "cifar" in ticks[1] and "64 filters 3x3" in ticks[1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["numpy", "compiled"]
    # bar heights: the medians' forward + backward in ms, library by library
    heights = [p.get_height() for p in ax.patches]
    expected = [1e3 * (6e-3 + 24e-3), 1e3 * (0.11 + 0.12), 1e3 * (4e-3 + 8e-3), 75.0]
    np.testing.assert_allclose(heights, expected, rtol=1e-9)
    fig.savefig(tmp_path / "bench.png")
    assert (tmp_path / "bench.png").stat().st_size > 0


HISTORY = {
    "loss": [1.2, 0.6, 0.4],
    "accuracy": [0.55, 0.8, 0.9],
    "val_loss": [1.0, 0.7, 0.5],
    "val_accuracy": [0.6, 0.75, 0.85],
}


def test_training_curves_say_validation_and_percent(tmp_path):
    source = "15%"
    path = tmp_path / "curves.png"
    fig = cli._plot(HISTORY, str(path))
    assert path.stat().st_size > 0
    ax_loss, ax_acc = fig.axes
    legend = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert legend == [
        "training loss",
        "validation loss (val_loss)",
        "training accuracy",
        "validation accuracy (val_accuracy)",
    ]
    assert not any("test" in t for t in legend)
    assert ax_acc.get_ylabel() == "accuracy, %"
    assert ax_loss.get_xlabel() == ax_acc.get_xlabel() == "epoch"
    train_acc, val_acc = (line.get_ydata() for line in ax_acc.get_lines())
    np.testing.assert_allclose(train_acc, [55, 80, 90])
    np.testing.assert_allclose(val_acc, [60, 75, 85])
    assert source in fig._suptitle.get_text()


def test_train_plot_from_the_command_line(tmp_path):
    path = tmp_path / "curves.png"
    argv = ["train", "--epochs", "1", "--limit", "120", "--quiet", "--plot", str(path)]
    assert cli.main(argv) == 0
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
