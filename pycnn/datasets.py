"""Data sets that work offline: the UCI digits shipped with pycnn, and MNIST IDX files.

Nothing here downloads. `load_digits` reads ``pycnn/data/digits.npz`` (made once by
``tools/make_digits.py``): the 1,797 8x8 images of the UCI ML "Optical Recognition of
Handwritten Digits" data set (E. Alpaydin, C. Kaynak, 1998; CC BY 4.0). `load_mnist`
reads the four standard MNIST IDX files from a folder you already have.
"""

import gzip
import os
import struct

import numpy as np

from pycnn import _validation as V

__all__ = ["load_digits", "train_test_split", "load_mnist"]

_DIGITS = os.path.join(os.path.dirname(__file__), "data", "digits.npz")


def load_digits(dtype=np.float32):
    """The 1,797 UCI handwritten digits as NCHW images in [0, 1] and int64 labels.

    Returns
    -------
    x : (1797, 1, 8, 8) array of `dtype` (float32 or float64), pixel counts 0..16 / 16
    y : (1797,) int64 labels 0..9
    """
    dtype = V.float_dtype(dtype)
    with np.load(_DIGITS, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    x = images.reshape(-1, 1, 8, 8).astype(dtype)
    x /= 16
    return x, labels.astype(np.int64, copy=False)


def train_test_split(x, y, test_size=0.25, seed=0, stratify=True):
    """Split `x`, `y` into shuffled train and test parts, the same way for the same seed.

    Parameters
    ----------
    x, y : arrays with the same first axis N
    test_size : float in (0, 1), the fraction for the test set (rounded up, as
        scikit-learn does), or an int count in [1, N)
    seed : int or None, the shuffle's seed
    stratify : bool; for 1-d integer labels `y`, keep each class's proportion in both
        parts (per-class counts are rounded so the total is exactly the test size)

    Returns
    -------
    x_train, x_test, y_train, y_test
    """
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    if len(y) != n:
        raise ValueError(
            f"`x` and `y` must have the same length. Received: len(x)={n}, len(y)={len(y)}"
        )
    if isinstance(test_size, (float, np.floating)):
        frac = V.real(test_size, "test_size", 0, 1, min_open=True, max_open=True)
        n_test = int(np.ceil(frac * n))
    else:
        n_test = V.integer(test_size, "test_size")
    if not 1 <= n_test < n:
        raise ValueError(
            f"`test_size` must leave at least one sample in each part. "
            f"Received: test_size={test_size!r} for {n} samples"
        )
    rng = np.random.default_rng(seed)
    if stratify and y.ndim == 1 and y.dtype.kind in "iu":
        classes, inverse = np.unique(y, return_inverse=True)
        counts = np.bincount(inverse)
        share = counts * (n_test / n)
        take = np.floor(share).astype(np.int64)
        # hand the remaining test slots to the largest fractional parts (ties: class order)
        rest = n_test - int(take.sum())
        take[np.argsort(-(share - take), kind="stable")[:rest]] += 1
        test_idx = []
        for c in range(len(classes)):
            members = np.flatnonzero(inverse == c)
            test_idx.append(rng.permutation(members)[: take[c]])
        test_idx = np.concatenate(test_idx)
        mask = np.zeros(n, dtype=bool)
        mask[test_idx] = True
        test_idx = rng.permutation(test_idx)
        train_idx = rng.permutation(np.flatnonzero(~mask))
    else:
        order = rng.permutation(n)
        test_idx, train_idx = order[:n_test], order[n_test:]
    return x[train_idx], x[test_idx], y[train_idx], y[test_idx]


# --- MNIST IDX files ------------------------------------------------------------------

_PREFIX = {"train": "train", "test": "t10k"}
_IDX_UBYTE = 0x08


def _find(folder, prefix, what, idx):
    """The first existing variant of an MNIST file name, gzip or raw."""
    names = [f"{prefix}-{what}-{idx}-ubyte", f"{prefix}-{what}.{idx}-ubyte"]
    tried = []
    for name in names:
        for candidate in (name + ".gz", name):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
            tried.append(candidate)
    raise FileNotFoundError(f"no MNIST {what} file in {folder!r}: tried {', '.join(tried)}")


def _read_idx(path, ndim):
    """The uint8 array of an IDX file of `ndim` dimensions, with checked header and size."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        what = "gzip" if opener is gzip.open else "a file"
        raise ValueError(f"{path}: cannot be read as {what} ({exc})") from None
    if len(data) < 4 + 4 * ndim:
        raise ValueError(
            f"{path}: too short for an IDX header of {ndim} dimensions ({len(data)} bytes)"
        )
    magic = struct.unpack(">I", data[:4])[0]
    expected = (_IDX_UBYTE << 8) | ndim
    if magic != expected:
        raise ValueError(
            f"{path}: bad magic number 0x{magic:08x}, expected "
            f"0x{expected:08x} (an unsigned-byte IDX file of {ndim} "
            f"dimensions)"
        )
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    size = int(np.prod(dims, dtype=np.int64))
    body = len(data) - 4 - 4 * ndim
    if body != size:
        raise ValueError(
            f"{path}: header says {' x '.join(map(str, dims))} = {size} bytes "
            f"of data, the file holds {body}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(path, kind="train", dtype=np.float32):
    """Read MNIST (or Fashion-MNIST) from the standard IDX files in folder `path`.

    `kind` 'train' reads ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``,
    'test' reads ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each
    gzip-compressed (``.gz``) or raw; the ``train-images.idx3-ubyte`` spelling works
    too. Headers (magic numbers, sizes) and counts are checked; nothing downloads.

    Returns
    -------
    x : (N, 1, H, W) array of `dtype`, pixels / 255 in [0, 1] (28x28 for MNIST)
    y : (N,) int64 labels
    """
    if kind not in _PREFIX:
        raise ValueError(f"`kind` must be 'train' or 'test'. Received: kind={kind!r}")
    dtype = V.float_dtype(dtype)
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"`path` must be a folder holding the MNIST IDX files. Received: path={folder!r}"
        )
    prefix = _PREFIX[kind]
    images_path = _find(folder, prefix, "images", "idx3")
    labels_path = _find(folder, prefix, "labels", "idx1")
    images = _read_idx(images_path, 3)
    labels = _read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} "
            f"holds {len(labels)} labels"
        )
    x = images[:, None].astype(dtype)
    x /= 255
    return x, labels.astype(np.int64)
