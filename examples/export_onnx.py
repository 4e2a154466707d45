"""Train a small CNN, export it to ONNX, run the file with onnxruntime, load it back.

    python examples/export_onnx.py [--out digits.onnx] [--epochs 5]

Needs ``pip install onnx onnxruntime``.
"""

import argparse

import numpy as np

import pycnn
from pycnn import datasets, optim


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="digits.onnx")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    import onnxruntime

    x, y = datasets.load_digits()
    rng = np.random.default_rng(0)
    model = pycnn.Sequential(
        pycnn.Conv2d(1, 16, 3, padding=1, rng=rng),
        pycnn.BatchNorm2d(16),
        pycnn.ReLU(),
        pycnn.MaxPool2d(2),
        pycnn.Flatten(),
        pycnn.Linear(16 * 4 * 4, 10, rng=rng),
    )
    model.fit(
        x, y, epochs=args.epochs, batch_size=32,
        optimizer=optim.Adam(model.parameters(), lr=3e-3),
        loss=pycnn.CrossEntropyLoss(), rng=0, progress=False,
    )  # fmt: skip
    model.eval()

    pycnn.onnx.export(model, args.out, input_shape=(1, 8, 8))
    session = onnxruntime.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": x[:100]})
    ours = model.predict(x[:100])
    print(f"wrote {args.out}; onnxruntime vs pycnn, largest difference "
          f"{np.abs(logits - ours).max():.2e}")  # fmt: skip
    again = pycnn.onnx.load(args.out)
    same = np.array_equal(again.predict(x[:100]), ours)
    print(f"loaded back: {type(again).__name__} of {len(again)} layers, same outputs: {same}")
    return float(np.abs(logits - ours).max()), same


if __name__ == "__main__":
    main()
