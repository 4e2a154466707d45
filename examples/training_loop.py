"""A hand-written training loop, PyTorch style: zero_grad, forward, loss, backward, step.

    python examples/training_loop.py [--epochs 10] [--accumulate 1]

With ``--accumulate K`` each optimizer step sums the gradients of K micro-batches (their
losses scaled by 1/K), which gives the step of one batch K times larger while holding
only a micro-batch of activations at a time.
"""

import argparse

import numpy as np

import pycnn
from pycnn import datasets, optim
from pycnn.lr_scheduler import CosineAnnealingLR
from pycnn.utils import clip_grad_norm_


def make_model(rng):
    return pycnn.Sequential(
        pycnn.Conv2d(1, 16, 3, padding=1, rng=rng),
        pycnn.ReLU(),
        pycnn.MaxPool2d(2),
        pycnn.Flatten(),
        pycnn.Linear(16 * 4 * 4, 10, rng=rng),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--accumulate", type=int, default=1, help="micro-batches a step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y = datasets.load_digits()
    x_train, x_test, y_train, y_test = datasets.train_test_split(
        x, y, test_size=0.25, seed=args.seed
    )
    rng = np.random.default_rng(args.seed)
    model = make_model(rng)
    loss_fn = pycnn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=3e-3)
    schedule = CosineAnnealingLR(opt, T_max=args.epochs)
    micro = args.batch_size // args.accumulate

    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(x_train))
        total = 0.0
        for start in range(0, len(order) - args.batch_size + 1, args.batch_size):
            opt.zero_grad()
            for part in range(args.accumulate):  # gradients add up until zero_grad
                idx = order[start + part * micro : start + (part + 1) * micro]
                loss = loss_fn(model(x_train[idx]), y_train[idx])
                model.backward(loss_fn.backward() / args.accumulate)
                total += float(loss) * len(idx)
            clip_grad_norm_(model.parameters(), max_norm=5.0)
            opt.step()
        schedule.step()
        print(
            f"epoch {epoch + 1}: loss {total / len(order):.4f}, "
            f"lr {schedule.get_last_lr()[0]:.2e}"
        )

    _, accuracy = model.evaluate(x_test, y_test)
    print(f"test accuracy {accuracy:.2%}")
    return accuracy


if __name__ == "__main__":
    main()
