"""Train a CNN on MNIST from the IDX files you have (pycnn never downloads).

    python examples/train_mnist.py PATH [--epochs 3] [--limit 60000]

PATH is a folder holding ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (``.gz`` or raw).
"""

import argparse

import numpy as np

import pycnn
from pycnn import datasets, optim


def make_model(rng):
    return pycnn.Sequential(
        pycnn.Conv2d(1, 16, 3, padding=1, rng=rng),
        pycnn.ReLU(),
        pycnn.MaxPool2d(2),  # 28 -> 14
        pycnn.Conv2d(16, 32, 3, padding=1, rng=rng),
        pycnn.ReLU(),
        pycnn.MaxPool2d(2),  # 14 -> 7
        pycnn.Flatten(),
        pycnn.Linear(32 * 7 * 7, 100, rng=rng),
        pycnn.ReLU(),
        pycnn.Dropout(0.3, rng=rng),
        pycnn.Linear(100, 10, rng=rng),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="folder with the four MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x_train, y_train = datasets.load_mnist(args.path, "train")
    x_test, y_test = datasets.load_mnist(args.path, "test")
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    x_fit, x_val, y_fit, y_val = datasets.train_test_split(
        x_train, y_train, test_size=1 / 12, seed=args.seed
    )

    model = make_model(np.random.default_rng(args.seed))
    model.fit(
        x_fit,
        y_fit,
        epochs=args.epochs,
        batch_size=64,
        optimizer=optim.Adam(1e-3),
        loss=pycnn.CrossEntropyLoss(),
        validation_data=(x_val, y_val),
        rng=args.seed,
    )
    _, accuracy = model.evaluate(x_test, y_test)
    print(f"test accuracy {accuracy:.2%}")
    return accuracy


if __name__ == "__main__":
    main()
