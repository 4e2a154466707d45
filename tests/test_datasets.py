"""Datasets: the shipped digits, the deterministic split, MNIST IDX files written here."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from pycnn import datasets

# sha256 of images (uint8, 1797x8x8) + labels (int64) as tools/make_digits.py prints it
DIGITS_SHA256 = "65e5b4619795efb40c1082f4c350c049e4ad552200d369b6ae99e21eef5e72c5"


def test_load_digits(dtype):
    x, y = datasets.load_digits(dtype=dtype)
    assert x.shape == (1797, 1, 8, 8) and x.dtype == dtype and x.flags.c_contiguous
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 1
    np.testing.assert_array_equal(np.unique(x * 16), np.arange(17))  # counts 0..16
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    raw = (x * 16).round().astype(np.uint8).reshape(-1, 8, 8)
    assert hashlib.sha256(raw.tobytes() + y.tobytes()).hexdigest() == DIGITS_SHA256
    # the first image is a zero, as in the UCI file
    assert y[0] == 0 and raw[0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_load_digits_rejects_other_dtypes():
    with pytest.raises(TypeError, match=r"`dtype` must be float32 or float64"):
        datasets.load_digits(dtype=np.uint8)


def test_train_test_split_is_deterministic_stratified_and_complete():
    x, y = datasets.load_digits()
    ids = np.arange(len(y))
    a = datasets.train_test_split(ids, y, 0.25, seed=0)
    b = datasets.train_test_split(ids, y, 0.25, seed=0)
    c = datasets.train_test_split(ids, y, 0.25, seed=1)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[1], c[1])
    ids_train, ids_test, y_train, y_test = a
    assert len(ids_test) == 450 and len(ids_train) == 1347  # ceil(0.25 * 1797)
    np.testing.assert_array_equal(np.sort(np.concatenate([ids_train, ids_test])), ids)
    np.testing.assert_array_equal(y[ids_test], y_test)
    counts = np.bincount(y_test, minlength=10)
    np.testing.assert_array_less(np.abs(counts - np.bincount(y) * 450 / 1797), 1)
    assert not np.all(np.diff(ids_test) > 0)  # shuffled
    x_train, x_test, *_ = datasets.train_test_split(x, y, 100, seed=0, stratify=False)
    assert x_test.shape == (100, 1, 8, 8) and x_train.shape == (1697, 1, 8, 8)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(test_size=1.0), ValueError, r"`test_size` must be in \(0, 1\)"),
        (dict(test_size=0), ValueError, r"`test_size` must leave at least one sample in each"),
        (dict(test_size=10), ValueError, r"Received: test_size=10 for 10 samples"),
        (dict(test_size="a"), TypeError, r"`test_size` must be an int"),
    ],
)
def test_train_test_split_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        datasets.train_test_split(np.zeros(10), np.zeros(10, int), **kwargs)
    with pytest.raises(ValueError, match=r"`x` and `y` must have the same length"):
        datasets.train_test_split(np.zeros(10), np.zeros(9))


# --- MNIST IDX -------------------------------------------------------------------------------


def _idx(array, magic=None):
    """Bytes of an unsigned-byte IDX file holding `array`."""
    magic = (0x08 << 8 | array.ndim) if magic is None else magic
    return (
        struct.pack(">I", magic)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def _write_mnist(folder, n_train=5, n_test=3, size=28, compress=True, spelling="-", seed=0):
    rng = np.random.default_rng(seed)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        data[prefix] = images, labels
        for what, idx, arr in (("images", "idx3", images), ("labels", "idx1", labels)):
            name = f"{prefix}-{what}{spelling}{idx}-ubyte"
            raw = _idx(arr)
            if compress:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return data


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("spelling", ["-", "."])
def test_load_mnist(tmp_path, compress, spelling, dtype):
    data = _write_mnist(tmp_path, compress=compress, spelling=spelling)
    for kind, prefix in (("train", "train"), ("test", "t10k")):
        x, y = datasets.load_mnist(tmp_path, kind, dtype=dtype)
        images, labels = data[prefix]
        assert x.shape == (len(images), 1, 28, 28) and x.dtype == dtype
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, labels)
        np.testing.assert_allclose(x[:, 0], images / 255, rtol=1e-6)


def test_load_mnist_accepts_str_path_and_other_image_sizes(tmp_path):
    _write_mnist(tmp_path, size=5)
    x, _ = datasets.load_mnist(str(tmp_path))
    assert x.shape == (5, 1, 5, 5)


def _corrupt(folder, name, content):
    path = folder / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "name, content, match",
    [
        (
            "train-images-idx3-ubyte.gz",
            gzip.compress(_idx(np.zeros((5, 28, 28)), magic=0x0801)),
            r"train-images-idx3-ubyte.gz: bad magic number 0x00000801, expected 0x00000803",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            gzip.compress(_idx(np.zeros((5, 2)))),
            r"bad magic number 0x00000802, expected 0x00000801",
        ),
        (
            "train-images-idx3-ubyte.gz",
            gzip.compress(_idx(np.zeros((5, 28, 28)))[:-10]),
            r"header says 5 x 28 x 28 = 3920 bytes of data, the file holds 3910",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            gzip.compress(_idx(np.zeros(4))),
            r"holds 5 images but .*train-labels-idx1-ubyte.gz holds 4 labels",
        ),
        (
            "train-images-idx3-ubyte.gz",
            b"not gzip at all",
            r"train-images-idx3-ubyte.gz: cannot be read as gzip",
        ),
        (
            "train-images-idx3-ubyte.gz",
            gzip.compress(b"\x00\x00"),
            r"too short for an IDX header of 3 dimensions \(2 bytes\)",
        ),
    ],
)
def test_load_mnist_rejects_bad_files(tmp_path, name, content, match):
    _write_mnist(tmp_path)
    _corrupt(tmp_path, name, content)
    with pytest.raises(ValueError, match=match):
        datasets.load_mnist(tmp_path)


def test_load_mnist_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`path` must be a folder"):
        datasets.load_mnist(tmp_path / "absent")
    with pytest.raises(
        FileNotFoundError,
        match=r"no MNIST images file in .* tried "
        r"train-images-idx3-ubyte.gz, "
        r"train-images-idx3-ubyte, ",
    ):
        datasets.load_mnist(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"`kind` must be 'train' or 'test'. Received: "
        r"kind='val'",
    ):
        datasets.load_mnist(tmp_path, "val")
