"""`pycnn train`: a short run on a digits subset, saving, MNIST files, options, errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
from test_datasets import _write_mnist

from pycnn import cli, datasets


def _train(capsys, *args):
    code = cli.main(["train", "--quiet", *args])
    return code, capsys.readouterr()


def test_train_a_digits_subset_and_save(capsys, tmp_path):
    path = tmp_path / "model.npz"
    code, out = _train(
        capsys, "--epochs", "2", "--limit", "300", "--seed", "1", "--save", str(path)
    )
    assert code == 0
    assert (
        "UCI digits (8x8), 255 training / 45 validation / 300 test images, float32, "
        "backend=compiled" in out.out
    )
    assert "Adam(lr=0.02) with ExponentialLR(gamma=0.9), batch size 32, 2 epochs" in out.out
    assert "BatchNorm2d(16)" in out.out and "Dropout(p=0.25)" in out.out
    line = [s for s in out.out.splitlines() if s.startswith("test accuracy: ")]
    assert len(line) == 1 and "(" in line[0] and "/300)" in line[0]
    accuracy = float(line[0].split()[2].rstrip("%"))
    # the saved model reproduces the printed accuracy
    model = cli.build_model(8, rng=0).load(path)
    x, y = datasets.load_digits()
    _, x_test, _, y_test = datasets.train_test_split(x, y, 0.25, seed=0)
    assert model.evaluate(x_test[:300], y_test[:300])[1] == pytest.approx(
        accuracy / 100, abs=5e-5
    )


def test_train_prints_progress_and_repeats_with_the_same_seed(capsys):
    args = (
        "--epochs",
        "2",
        "--limit",
        "120",
        "--optimizer",
        "sgd",
        "--no-batchnorm",
        "--dropout",
        "0.5",
        "--lr-decay",
        "1",
        "--seed",
        "4",
    )
    runs = [cli.main(["train", *args]) for _ in range(2)]
    out = capsys.readouterr().out
    assert runs == [0, 0]
    epochs = [s.rsplit(" - ", 1)[0] for s in out.splitlines() if s.startswith("epoch ")]
    assert len(epochs) == 4 and epochs[:2] == epochs[2:]  # all but the time
    results = [
        s.split(", training time")[0] for s in out.splitlines() if s.startswith("test accuracy")
    ]
    assert len(results) == 2 and results[0] == results[1]
    assert "SGD(lr=0.05, momentum=0.9, nesterov=True), batch size" in out
    assert "BatchNorm2d" not in out and "Dropout()" in out


@pytest.mark.parametrize("option", ["rmsprop", "adagrad"])
def test_train_other_optimizers_float64_numpy_backend(capsys, option):
    code, out = _train(
        capsys,
        "--epochs",
        "1",
        "--limit",
        "64",
        "--optimizer",
        option,
        "--dtype",
        "float64",
        "--backend",
        "numpy",
        "--lr",
        "0.01",
    )
    assert code == 0 and "float64, backend=numpy" in out.out
    assert f"{ {'rmsprop': 'RMSprop', 'adagrad': 'Adagrad'}[option] }(lr=0.01" in out.out


def test_train_on_mnist_files(capsys, tmp_path):
    _write_mnist(tmp_path, n_train=40, n_test=10)
    code, out = _train(capsys, "--mnist", str(tmp_path), "--epochs", "1", "--batch-size", "16")
    assert code == 0
    assert f"MNIST from {tmp_path}, 34 training / 6 validation / 10 test images" in out.out
    assert "(None, 1, 28, 28)" in out.out and "Linear(1568, 10)" in out.out


def test_train_plot(capsys, tmp_path):
    path = tmp_path / "curves.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        code, out = _train(capsys, "--epochs", "1", "--limit", "50", "--plot", str(path))
        assert code == 2 and "--plot needs matplotlib" in out.err and out.out == ""
    else:
        code, out = _train(capsys, "--epochs", "1", "--limit", "50", "--plot", str(path))
        assert code == 0 and path.stat().st_size > 0


@pytest.mark.parametrize(
    "args, match",
    [
        (["--epochs", "0"], "must be >= 1"),
        (["--lr", "-1"], "must be > 0"),
        (["--optimizer", "lbfgs"], "invalid choice"),
        (["--backend", "torch"], "invalid choice"),
        (["--dropout", "1"], "must be in [0, 1)"),
        (["--lr-decay", "0"], "must be > 0"),
    ],
)
def test_train_rejects_bad_options(capsys, args, match):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", *args])
    assert exc.value.code == 2 and match in capsys.readouterr().err


def test_train_missing_mnist_folder(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--mnist", str(tmp_path / "absent")])
    assert exc.value.code == 2 and "is not a folder" in capsys.readouterr().err


def test_python_dash_m_pycnn_train(tmp_path):
    """The console entry point through `python -m pycnn`, run outside the source tree."""
    import pycnn

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(pycnn.__file__)))
    proc = subprocess.run(
        [sys.executable, "-m", "pycnn", "train", "--epochs", "1", "--limit", "40", "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy: " in proc.stdout
    assert np.isfinite(float(proc.stdout.split("test accuracy: ")[1].split("%")[0]))


# --- --model resnet ----------------------------------------------------------------------


def test_train_resnet_one_epoch_on_a_subset(capsys):
    code, out = _train(capsys, "--model", "resnet", "--epochs", "1", "--limit", "200")
    assert code == 0
    # 15% of the 200 training images held out for validation, stratified
    assert "UCI digits (8x8), 170 training / 30 validation / 200 test images" in out.out
    assert "Adam(lr=0.003) with ExponentialLR(gamma=0.9), batch size 32, 1 epochs" in out.out
    assert "Residual()" in out.out and "AdaptiveAvgPool2d(output_size=(1, 1))" in out.out
    lines = [s for s in out.out.splitlines() if s.startswith("test accuracy: ")]
    assert len(lines) == 1 and "/200)" in lines[0]
    assert np.isfinite(float(lines[0].split()[2].rstrip("%")))


def test_train_resnet_reports_validation_per_epoch(capsys):
    code = cli.main(["train", "--model", "resnet", "--epochs", "2", "--limit", "100"])
    out = capsys.readouterr().out
    epochs = [s for s in out.splitlines() if s.startswith("epoch ")]
    assert code == 0 and len(epochs) == 2 and all("val_accuracy" in s for s in epochs)
    assert sum(s.startswith("test accuracy: ") for s in out.splitlines()) == 1


@pytest.mark.parametrize("size", [8, 28])
def test_build_resnet_structure_and_shapes(size):
    import pycnn

    model = cli.build_resnet(rng=0)
    blocks = [layer for layer in model.layers if isinstance(layer, pycnn.Residual)]
    assert len(blocks) == 3
    # the first stage keeps the shape (identity shortcut), the others halve H and W
    # and double the channels (1x1 strided convolution + batch norm shortcut)
    assert isinstance(blocks[0].shortcut, pycnn.Identity)
    for block in blocks[1:]:
        conv, bn = block.shortcut.layers
        assert isinstance(conv, pycnn.Conv2d) and isinstance(bn, pycnn.BatchNorm2d)
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert any(isinstance(layer, pycnn.BatchNorm2d) for layer in blocks[0].body.layers)
    assert isinstance(model.layers[-3], pycnn.AdaptiveAvgPool2d)
    assert isinstance(model.layers[-1], pycnn.Linear)
    x = np.random.default_rng(0).standard_normal((5, 1, size, size)).astype(np.float32)
    h = x
    shapes = []
    for layer in model.layers:
        h = layer.forward(h)
        if isinstance(layer, pycnn.Residual):
            shapes.append(h.shape)
    half, quarter = -(-size // 2), -(-size // 4)
    assert shapes == [(5, 32, size, size), (5, 64, half, half), (5, 128, quarter, quarter)]
    out = model.forward(x)
    assert out.shape == (5, 10) and out.dtype == np.float32
    assert model.backward(np.ones_like(out)).shape == x.shape


def test_train_model_cnn_is_the_default(capsys):
    args = ("--epochs", "1", "--limit", "100", "--seed", "2")
    runs = [cli.main(["train", *args]), cli.main(["train", "--model", "cnn", *args])]
    out = capsys.readouterr().out
    assert runs == [0, 0]
    lines = [s.rsplit(" - ", 1)[0].split(", training time")[0] for s in out.splitlines()]
    half = len(lines) // 2
    assert lines[:half] == lines[half:]
    assert "85 training / 15 validation / 100 test images" in out and "Residual" not in out
    assert "Adam(lr=0.02) with ExponentialLR(gamma=0.9), batch size 32, 1 epochs" in out
    assert "Dropout(p=0.25)" in out


# --- validation per epoch, the test set once -----------------------------------------------


@pytest.mark.parametrize("model", ["cnn", "resnet"])
def test_train_validates_per_epoch_and_tests_once_at_the_end(capsys, model):
    code = cli.main(["train", "--model", model, "--epochs", "3", "--limit", "120"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    # 15% of the 120 training images, rounded up, held out for validation
    assert lines[0].startswith("pycnn train: UCI digits (8x8), 102 training / 18 validation")
    epochs = [i for i, s in enumerate(lines) if s.startswith("epoch ")]
    assert [lines[i].split(" - ")[0] for i in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(" - val_loss " in lines[i] and " - val_accuracy " in lines[i] for i in epochs)
    # then the last epoch's validation figures, then the one test line, last
    last_val = lines[epochs[-1]].split(" - val_accuracy ")[1].split(" - ")[0]
    assert lines[-2].startswith("validation accuracy: ") and "/18)" in lines[-2]
    assert f"{float(last_val) * 100:.2f}%" in lines[-2]
    assert lines[-1].startswith("test accuracy: ") and "/120)" in lines[-1]
    # "test" names nothing else; the header's "120 test images" is the test set too
    assert [s for s in lines if "test" in s] == [lines[0], lines[-1]]


@pytest.mark.parametrize("model, seed", [("cnn", 0), ("resnet", 3)])
def test_train_selects_on_a_stratified_part_of_the_training_set(monkeypatch, model, seed):
    """What `pycnn train` evaluates: every epoch a stratified 15% of the training
    images, none of them a test image, and the test set once, after training."""
    import pycnn

    calls = []
    evaluate = pycnn.Sequential.evaluate

    def recording(self, x, y, *args, **kw):
        calls.append((x.copy(), y.copy()))
        return evaluate(self, x, y, *args, **kw)

    monkeypatch.setattr(pycnn.Sequential, "evaluate", recording)
    args = ["train", "--quiet", "--model", model, "--epochs", "2", "--seed", str(seed)]
    assert cli.main(args) == 0
    x, y = datasets.load_digits()
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, 0.25, seed=0)
    rows = {r.tobytes(): i for i, r in enumerate(x_train)}  # the digits have no duplicates
    assert len(calls) == 3  # two epochs' validation, then the test set
    (x_val, y_val), again, (x_last, y_last) = calls
    assert np.array_equal(again[0], x_val) and np.array_equal(x_last, x_test)
    assert np.array_equal(y_last, y_test)
    val_ids = [rows.get(r.tobytes()) for r in x_val]
    assert None not in val_ids and len(set(val_ids)) == len(val_ids)
    assert np.array_equal(y_val, y_train[val_ids])
    assert len(val_ids) == int(np.ceil(0.15 * len(x_train)))
    # each class gives its share of the validation set, within one image
    share = 0.15 * np.bincount(y_train, minlength=10)
    assert np.all(np.abs(np.bincount(y_val, minlength=10) - share) < 1)


def test_train_needs_a_training_image_besides_the_validation_split(capsys):
    code = cli.main(["train", "--limit", "1", "--epochs", "1"])
    assert code == 2
    assert "1 training image(s) leave none to train on" in capsys.readouterr().err


def test_train_save_with_an_unknown_suffix_is_refused_before_training(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--save", "model.pkl", "--epochs", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "the suffix must be .npz or .safetensors" in err
    assert "Traceback" not in err
