"""Train on several processes (and machines) with MPI: data-parallel `fit`.

    mpiexec -n 2 python examples/train_distributed.py [--epochs 10]

Every rank builds the same model; `fit(..., distributed=True)` gives each rank a
disjoint share of every global batch, averages the gradients, and reports metrics
reduced over the ranks; rank 0 prints. Needs ``pip install mpi4py mpich`` (or mpi4py
built against your cluster's MPI, and its ``mpiexec`` with a hostfile).
"""

import argparse

import numpy as np

import pycnn
from pycnn import datasets, optim
from pycnn import distributed as dist


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    dist.init()

    x, y = datasets.load_digits()
    x_train, x_test, y_train, y_test = datasets.train_test_split(
        x, y, test_size=0.25, seed=args.seed
    )
    rng = np.random.default_rng(args.seed)
    model = pycnn.Sequential(
        pycnn.Conv2d(1, 16, 3, padding=1, rng=rng),
        pycnn.BatchNorm2d(16),
        pycnn.ReLU(),
        pycnn.MaxPool2d(2),
        pycnn.Flatten(),
        pycnn.Linear(16 * 4 * 4, 10, rng=rng),
    )
    model = dist.convert_sync_batchnorm(model)  # batch statistics of the global batch
    model.fit(
        x_train, y_train, epochs=args.epochs, batch_size=64,
        optimizer=optim.Adam(model.parameters(), lr=3e-3),
        loss=pycnn.CrossEntropyLoss(), validation_split=0.15, rng=args.seed,
        progress=dist.is_main(), distributed=True,
    )  # fmt: skip
    _, accuracy = model.evaluate(x_test, y_test)  # every rank holds the same model
    if dist.is_main():
        print(f"{dist.world_size()} ranks, test accuracy {accuracy:.2%}")
    return accuracy


if __name__ == "__main__":
    main()
