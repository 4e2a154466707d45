"""Every script in examples/ runs, on a small setting, and does what it says."""

import gzip
import os
import re

import numpy as np
import pytest
from conftest import run_python

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def run_example(name, *args, cwd):
    result = run_python([os.path.join(EXAMPLES, name), *map(str, args)], cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_example_is_tested():
    tested = {
        "train_digits.py",
        "train_mnist.py",
        "profile_layer.py",
        "training_loop.py",
        "export_onnx.py",
        "train_distributed.py",
    }
    present = {f for f in os.listdir(EXAMPLES) if f.endswith(".py")}
    assert present == tested


def test_train_digits(tmp_path):
    out = run_example("train_digits.py", "--epochs", 3, cwd=tmp_path)
    assert "val_accuracy" in out
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", out).group(1))
    assert accuracy > 80  # three epochs of the digits CNN; a broken loop stays near 10%


def _write_idx(path, array):
    """An IDX file (unsigned bytes, big-endian sizes), gzip-compressed."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_train_mnist_from_idx_files(tmp_path):
    # a small MNIST-shaped set made from the digits: 8x8 pixels scaled to 0-255 and
    # pasted into the middle of 28x28 images
    from pycnn import datasets

    x, y = datasets.load_digits()
    images = np.zeros((len(x), 28, 28), dtype=np.uint8)
    images[:, 10:18, 10:18] = np.round(x[:, 0] * 255)
    for kind, part in (("train", slice(0, 600)), ("t10k", slice(600, 800))):
        _write_idx(tmp_path / f"{kind}-images-idx3-ubyte.gz", images[part])
        _write_idx(tmp_path / f"{kind}-labels-idx1-ubyte.gz", y[part])
    out = run_example("train_mnist.py", tmp_path, "--epochs", 2, cwd=tmp_path)
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", out).group(1))
    assert accuracy > 50


def test_profile_layer(tmp_path):
    out = run_example(
        "profile_layer.py",
        "--batch",
        2,
        "--channels",
        2,
        "--size",
        8,
        "--repeat",
        1,
        cwd=tmp_path,
    )
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert set(rows) == {"compiled", "numpy", "naive"}
    for name in ("compiled", "numpy"):
        assert all(float(t) > 0 for t in rows[name])
    assert rows["naive"][-1] == "run"  # "not run": the naive backward is not timed


def test_training_loop_with_accumulation(tmp_path):
    out = run_example("training_loop.py", "--epochs", 3, "--accumulate", 2, cwd=tmp_path)
    assert out.count("epoch ") == 3
    assert "lr 0.00e+00" in out.splitlines()[-2]  # cosine annealing reaches 0 at T_max
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", out).group(1))
    assert accuracy > 70


def test_export_onnx(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = run_example(
        "export_onnx.py", "--out", tmp_path / "d.onnx", "--epochs", 1, cwd=tmp_path
    )
    difference = float(re.search(r"largest difference ([\d.e+-]+)", out).group(1))
    assert difference < 1e-4
    assert "same outputs: True" in out


def test_train_distributed(tmp_path):
    pytest.importorskip("mpi4py")
    from test_distributed import MPIEXEC, run_ranks

    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install mpich)")
    source = (
        "import runpy, sys\n"
        f"sys.argv = ['train_distributed.py', '--epochs', '3']\n"
        f"runpy.run_path({os.path.join(EXAMPLES, 'train_distributed.py')!r}, "
        "run_name='__main__')\n"
    )
    result, _ = run_ranks(tmp_path, source)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("test accuracy") == 1  # rank 0 prints
    accuracy = float(re.search(r"2 ranks, test accuracy ([\d.]+)%", result.stdout).group(1))
    assert accuracy > 70


@pytest.mark.parametrize(
    "name",
    [
        "train_digits.py",
        "train_mnist.py",
        "profile_layer.py",
        "training_loop.py",
        "export_onnx.py",
        "train_distributed.py",
    ],
)
def test_help(tmp_path, name):
    out = run_example(name, "--help", cwd=tmp_path)
    assert out.startswith("usage:")
