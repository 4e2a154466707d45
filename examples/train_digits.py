"""Train a small CNN on the handwritten digits that ship with pycnn.

    python examples/train_digits.py [--epochs 15] [--seed 0]

Picks nothing on the test split: the last 15% of the training split is held out for
validation, and the test split is scored once, at the end.
"""

import argparse

import numpy as np

import pycnn
from pycnn import datasets, optim


def make_model(rng):
    return pycnn.Sequential(
        pycnn.Conv2d(1, 16, 3, padding=1, rng=rng),
        pycnn.BatchNorm2d(16),
        pycnn.ReLU(),
        pycnn.MaxPool2d(2),  # 8x8 -> 4x4
        pycnn.Conv2d(16, 32, 3, padding=1, rng=rng),
        pycnn.BatchNorm2d(32),
        pycnn.ReLU(),
        pycnn.MaxPool2d(2),  # 4x4 -> 2x2
        pycnn.Flatten(),
        pycnn.Linear(32 * 2 * 2, 10, rng=rng),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y = datasets.load_digits()
    x_train, x_test, y_train, y_test = datasets.train_test_split(
        x, y, test_size=0.25, seed=args.seed
    )
    x_fit, x_val, y_fit, y_val = datasets.train_test_split(
        x_train, y_train, test_size=0.15, seed=args.seed
    )

    model = make_model(np.random.default_rng(args.seed))
    model.summary((1, 8, 8))
    model.fit(
        x_fit,
        y_fit,
        epochs=args.epochs,
        batch_size=32,
        optimizer=optim.Adam(3e-3),
        loss=pycnn.CrossEntropyLoss(),
        validation_data=(x_val, y_val),
        rng=args.seed,
    )
    _, accuracy = model.evaluate(x_test, y_test)
    print(f"test accuracy {accuracy:.2%}")
    return accuracy


if __name__ == "__main__":
    main()
