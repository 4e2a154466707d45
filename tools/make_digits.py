"""Make pycnn/data/digits.npz from the copy of the UCI digits that scikit-learn ships.

The 1,797 8x8 images of the UCI ML "Optical Recognition of Handwritten Digits" data
set (E. Alpaydin, C. Kaynak, 1998; CC BY 4.0), as scikit-learn's
`sklearn/datasets/data/digits.csv.gz` holds them: one image a row, 64 pixel counts in
0..16 then the label. Run once; the result is committed and shipped in the package.

    pip download scikit-learn==1.9.1 --no-deps -d /tmp/skl
    python tools/make_digits.py /tmp/skl/scikit_learn-1.9.1-*.whl

The argument is that wheel (or any zip holding the CSV) or the `digits.csv.gz` itself.
"""

import argparse
import gzip
import hashlib
import io
import os
import zipfile

import numpy as np

MEMBER = "sklearn/datasets/data/digits.csv.gz"
OUT = os.path.join(os.path.dirname(__file__), "..", "pycnn", "data", "digits.npz")


def read_csv_gz(path):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            raw = zf.read(MEMBER)
    else:
        with open(path, "rb") as f:
            raw = f.read()
    table = np.loadtxt(
        io.StringIO(gzip.decompress(raw).decode("ascii")), delimiter=",", dtype=np.int64
    )
    if table.shape != (1797, 65):
        raise SystemExit(f"expected 1797 rows of 64 pixels + label, got {table.shape}")
    images, labels = table[:, :64], table[:, 64]
    if images.min() < 0 or images.max() > 16 or set(labels.tolist()) != set(range(10)):
        raise SystemExit("pixel values must be 0..16 and labels 0..9")
    return images.astype(np.uint8).reshape(-1, 8, 8), labels.astype(np.int64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="scikit-learn wheel or digits.csv.gz")
    parser.add_argument("-o", "--output", default=OUT)
    args = parser.parse_args()
    images, labels = read_csv_gz(args.source)
    np.savez_compressed(args.output, images=images, labels=labels)
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    print(
        f"wrote {os.path.normpath(args.output)}: images {images.shape} {images.dtype}, "
        f"labels {labels.shape} {labels.dtype}, class counts "
        f"{np.bincount(labels).tolist()}, sha256(images+labels)={digest}"
    )


if __name__ == "__main__":
    main()
