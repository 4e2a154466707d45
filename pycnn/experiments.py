"""The "from scratch" articles' experiments, rerun with pycnn's layers and optimizers.

Each experiment is a function that returns the numbers its figure plots (a dict of
NumPy arrays and lists), a `plot_*` function that draws that figure into a PNG file
(matplotlib, imported only there), and a table of the same numbers for the terminal
(`format_table`). ``pycnn experiment NAME [--plot FILE.png] [--seed S]`` runs one.

- ``activations`` (`activation_histograms`): a 5-layer, 100-unit network on random
  inputs; sigmoid with std 1 saturates, std 0.01 collapses to 0.5, Xavier spreads; ReLU
  with std 0.01 dies away, He keeps its scale.
- ``gradients`` (`gradient_norms`): the same networks' weight-gradient norms per layer;
  they vanish in the early layers of sigmoid with std 0.01.
- ``optimizers`` (`optimizer_comparison`): SGD, Momentum, Nesterov, AdaGrad, RMSprop and
  Adam on ``x**2/20 + y**2`` from (-7, 2), and their loss curves on the digits.
- ``batchnorm`` (`batchnorm_curves`): training accuracy with and without batch norm over
  a grid of initial weight scales.
- ``overfitting`` (`overfitting_curves`): train and test accuracy on 300 training
  digits: plain, with weight decay, with dropout.
- ``init`` (`init_curves`): training loss on the digits for weights of std 0.01, Xavier
  and He.

Everything runs offline (the digits ship with pycnn) in a few seconds, and the same
seed gives the same numbers. tests/test_experiments.py checks each conclusion on the
returned numbers for several seeds.
"""

import contextlib
import math
import warnings

import numpy as np

from pycnn import _validation as V
from pycnn.layers.base import BaseLayer

__all__ = [
    "EXPERIMENTS",
    "run",
    "plot",
    "format_table",
    "activation_histograms",
    "gradient_norms",
    "optimizer_comparison",
    "batchnorm_curves",
    "overfitting_curves",
    "init_curves",
    "plot_activations",
    "plot_gradients",
    "plot_optimizers",
    "plot_batchnorm",
    "plot_overfitting",
    "plot_init",
    "ALIVE",
]

# A ReLU activation counts as alive when it exceeds ALIVE. The random inputs have std 1
# and He's initialisation keeps the activations at that scale (rms ~1 in every layer),
# so ALIVE is 1e-3 of He's scale. Strictly non-zero is no test of life: the
# pre-activations are symmetric about 0 whatever the weights' std, so about half of
# them are positive in every layer for std 0.01 as for He (std 0.01 only shrinks them,
# by ~0.07 per layer, to ~1e-6 in the fifth).
ALIVE = 1e-3

# sigmoid / tanh: the width of the "saturated" zones at either end of the range and of
# the "collapsed" band around its centre, as a fraction of the range (0.05 of (0, 1)
# for the sigmoid, 0.1 of (-1, 1) for tanh)
_ZONE = 0.05

# (label, activation, initialisation); initialisation is a std or "xavier" / "he"
ACTIVATION_SETTINGS = (
    ("sigmoid, std 1", "sigmoid", 1.0),
    ("sigmoid, std 0.01", "sigmoid", 0.01),
    ("sigmoid, Xavier", "sigmoid", "xavier"),
    ("ReLU, std 0.01", "relu", 0.01),
    ("ReLU, Xavier", "relu", "xavier"),
    ("ReLU, He", "relu", "he"),
    ("tanh, Xavier", "tanh", "xavier"),
)

# the articles' learning rates on x**2/20 + y**2 (SGD 0.95, Momentum 0.1, AdaGrad 1.5,
# Adam 0.3); Nesterov takes Momentum's; the articles draw no RMSprop path (0.1 here)
PATH_OPTIMIZERS = {
    "SGD": 0.95,
    "Momentum": 0.1,
    "Nesterov": 0.1,
    "AdaGrad": 1.5,
    "RMSprop": 0.1,
    "Adam": 0.3,
}
# the articles' rates on handwritten digits (SGD, Momentum, AdaGrad 0.01, Adam 0.001);
# Nesterov takes Momentum's, RMSprop Adam's
DIGITS_OPTIMIZERS = {
    "SGD": 0.01,
    "Momentum": 0.01,
    "Nesterov": 0.01,
    "AdaGrad": 0.01,
    "RMSprop": 0.001,
    "Adam": 0.001,
}
START = (-7.0, 2.0)


# --- optimizers: every construction and step goes through these two ----------------------


def _make_optimizer(name, lr, parameters, **options):
    """The optimizer `name` ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam")
    at learning rate `lr`, bound to ``parameters()`` (the ``parameters`` method of the
    model, or of the 2-D point), with `options` (``weight_decay``) passed on."""
    from pycnn import optim

    params = parameters()
    if name == "SGD":
        return optim.SGD(params, lr=lr, **options)
    if name == "Momentum":
        return optim.SGD(params, lr=lr, momentum=0.9, **options)
    if name == "Nesterov":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, **options)
    if name == "AdaGrad":
        return optim.Adagrad(params, lr=lr, **options)
    if name == "RMSprop":
        return optim.RMSprop(params, lr=lr, **options)
    if name == "Adam":
        return optim.Adam(params, lr=lr, **options)
    raise ValueError(f"unknown optimizer {name!r}")


def _step(optimizer, parameters):
    """One update, in place, from the gradients the last backward left; then the
    gradients are zeroed (they accumulate across backward calls otherwise). Every caller
    here runs exactly one backward (or sets ``grads`` once) per step."""
    del parameters  # the optimizer is bound to them
    optimizer.step()
    optimizer.zero_grad()


# --- shared pieces -------------------------------------------------------------------------


def _rng(seed, *stream):
    """An independent Generator per (seed, stream): each setting draws its own numbers,
    so adding a setting does not change the others'."""
    seed = V.integer(seed, "seed")
    if seed < 0:
        raise ValueError(f"`seed` must be >= 0. Received: seed={seed}")
    return np.random.default_rng([seed, *stream])


def _weights(shape, scheme, rng, dtype):
    """Initial weights: a float std (normal), or "xavier" / "he" (pycnn.init, normal)."""
    from pycnn import init

    if scheme == "xavier":
        return init.xavier_normal(shape, rng, dtype)
    if scheme == "he":
        return init.he_normal(shape, rng, dtype)
    return (rng.standard_normal(shape) * float(scheme)).astype(dtype)


def _activation_layer(kind):
    import pycnn

    return {"sigmoid": pycnn.Sigmoid, "relu": pycnn.ReLU, "tanh": pycnn.Tanh}[kind]()


def _mlp(sizes, scheme, rng, *, batchnorm=False, dropout=0.0, dtype=np.float32):
    """Linear(sizes[i], sizes[i+1]) [- BatchNorm1d] - ReLU [- Dropout] ..., then a last
    Linear; every weight drawn by `scheme` (a std, "xavier" or "he"), biases zero."""
    import pycnn

    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = pycnn.Linear(n_in, n_out, dtype=dtype, rng=rng)
        linear.params["weight"][...] = _weights((n_out, n_in), scheme, rng, dtype)
        layers.append(linear)
        if i < len(sizes) - 2:
            if batchnorm:
                layers.append(pycnn.BatchNorm1d(n_out, dtype=dtype))
            layers.append(pycnn.ReLU())
            if dropout:
                layers.append(pycnn.Dropout(dropout, rng=rng))
    return pycnn.Sequential(*layers)


def _digits(dtype=np.float32):
    """The digits as flat 64-pixel rows, split as `pycnn train` splits them (seed 0):
    (x_train, y_train, x_test, y_test), 1,347 / 450 images."""
    from pycnn import datasets

    x, y = datasets.load_digits(dtype=dtype)
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, 0.25, seed=0)
    return x_train.reshape(len(x_train), -1), y_train, x_test.reshape(len(x_test), -1), y_test


@contextlib.contextmanager
def _quiet():
    """No overflow warnings: networks without batch norm blow up at large initial
    scales, which the experiment shows; the warnings come from pycnn's worker threads
    too, where `np.errstate` (thread-local) does not reach."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _batches(n, batch_size, rng):
    """Index arrays of mini-batches, a fresh permutation every epoch, without end (the
    last partial batch of an epoch is dropped; batches hold at most `n`)."""
    batch_size = min(batch_size, n)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def _accuracy(model, x, y):
    """Accuracy in eval mode (running statistics, no dropout); training mode restored."""
    mode = model.training
    model.eval()
    with _quiet():
        out = model.forward(x)
    model.train(mode)
    return float(np.mean(np.argmax(out, axis=1) == y))


def _train(model, x, y, optimizer, steps, batch_size, rng, *, every=0, record=None):
    """`steps` SGD-style updates on mini-batches; the training loss of each step.

    Every `every` steps (and before the first) `record(step)` is called. A step whose
    loss is not finite stops the updates (a diverged setting: its later losses are
    NaN), which with large initial weights is part of what the experiments show.
    """
    from pycnn import losses

    loss_fn = losses.CrossEntropyLoss()
    history = np.full(steps, np.nan)
    batches = _batches(len(x), batch_size, rng)
    if record is not None:
        record(0)
    model.train()
    stopped = steps
    with _quiet():
        for step in range(steps):
            idx = next(batches)
            out = model.forward(x[idx])
            value = float(loss_fn(out, y[idx]))
            if not math.isfinite(value):
                stopped = step
                break
            history[step] = value
            model.backward(loss_fn.backward())
            _step(optimizer, model.parameters)
            if record is not None and every and (step + 1) % every == 0:
                record(step + 1)
    if record is not None and every:  # after a divergence: the model as it stands
        for s in range(every, steps + 1, every):
            if s > stopped:
                record(s)
    return history


# --- activations and gradients ---------------------------------------------------------


def _deep_net(kind, scheme, rng, units, depth, dtype):
    """`depth` x (Linear(units, units, bias=False) - activation), weights by `scheme`."""
    import pycnn

    layers = []
    for _ in range(depth):
        linear = pycnn.Linear(units, units, bias=False, dtype=dtype, rng=rng)
        linear.params["weight"][...] = _weights((units, units), scheme, rng, dtype)
        layers += [linear, _activation_layer(kind)]
    return pycnn.Sequential(*layers)


def _bounds(kind):
    """(low, high, centre) of a bounded activation's range; None for ReLU."""
    return {"sigmoid": (0.0, 1.0, 0.5), "tanh": (-1.0, 1.0, 0.0)}.get(kind)


def _layer_stats(a, kind):
    """Summary of one layer's activations (the shares are fractions in [0, 1]).

    saturated: within _ZONE of the range's ends; collapsed: within _ZONE of its centre;
    spread: neither (the share left where the unit still responds and differs from
    input to input); band: max - min; nonzero: > 0; alive: > ALIVE."""
    stats = {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "band": float(a.max() - a.min()),
        "nonzero": float(np.mean(a > 0)),
        "alive": float(np.mean(a > ALIVE)),
    }
    bounds = _bounds(kind)
    if bounds is not None:
        low, high, centre = bounds
        zone = _ZONE * (high - low)
        saturated = (a < low + zone) | (a > high - zone)
        collapsed = np.abs(a - centre) < zone
        stats["saturated"] = float(np.mean(saturated))
        stats["collapsed"] = float(np.mean(collapsed))
        stats["spread"] = float(np.mean(~saturated & ~collapsed))
    return stats


def activation_histograms(seed=0, *, samples=1000, units=100, depth=5):
    """Activations of each layer of a deep fully connected network on random inputs.

    The articles' experiment: `samples` standard-normal inputs of `units` features
    through `depth` x (Linear(units, units, bias=False) - activation), for each of
    sigmoid with weight std 1, 0.01 and Xavier, ReLU with std 0.01, Xavier and He, and
    tanh with Xavier (`ACTIVATION_SETTINGS`; Xavier and He from `pycnn.init`, normal).

    Parameters
    ----------
    seed : int, the inputs' and the weights' seed
    samples, units, depth : int

    Returns
    -------
    dict with ``settings`` (labels), ``kind`` ({label: "sigmoid" | "relu" | "tanh"}),
    ``activations`` ({label: [depth arrays (samples, units), float32]}) and ``stats``
    ({label: [per-layer dict: mean, std, band, nonzero, alive, and for sigmoid / tanh
    saturated, collapsed, spread]}; see ALIVE and `_layer_stats`).
    """
    samples = V.positive_int(samples, "samples")
    units = V.positive_int(units, "units")
    depth = V.positive_int(depth, "depth")
    x = _rng(seed, 0).standard_normal((samples, units)).astype(np.float32)
    result = {"experiment": "activations", "seed": seed, "settings": [], "kind": {}}
    result["activations"], result["stats"] = {}, {}
    for i, (label, kind, scheme) in enumerate(ACTIVATION_SETTINGS):
        net = _deep_net(kind, scheme, _rng(seed, 1, i), units, depth, np.float32)
        outputs, a = [], x
        for layer in net:
            a = layer.forward(a)
            if "weight" not in layer.params:  # an activation's output
                outputs.append(a)
        result["settings"].append(label)
        result["kind"][label] = kind
        result["activations"][label] = outputs
        result["stats"][label] = [_layer_stats(a, kind) for a in outputs]
    return result


def gradient_norms(seed=0, *, samples=1000, units=100, depth=5):
    """Norms of the gradient with respect to each layer's weights, through backward.

    The networks and inputs of `activation_histograms` (same seed, same weights); the
    loss is ``L = mean over samples of <output, g>`` with `g` a fixed standard-normal
    array (a random direction, so no target favours any setting), so backward starts
    from ``g / samples``.

    Returns
    -------
    dict with ``settings``, ``kind`` and ``norms`` ({label: array (depth,)}, the
    Frobenius norm of dL/dW of layers 1..depth).
    """
    samples = V.positive_int(samples, "samples")
    units = V.positive_int(units, "units")
    depth = V.positive_int(depth, "depth")
    x = _rng(seed, 0).standard_normal((samples, units)).astype(np.float32)
    g = _rng(seed, 2).standard_normal((samples, units)).astype(np.float32) / samples
    result = {"experiment": "gradients", "seed": seed, "settings": [], "kind": {}}
    result["norms"] = {}
    for i, (label, kind, scheme) in enumerate(ACTIVATION_SETTINGS):
        net = _deep_net(kind, scheme, _rng(seed, 1, i), units, depth, np.float32)
        net.forward(x)
        net.backward(g)
        norms = [
            float(np.linalg.norm(layer.grads["weight"].astype(np.float64)))
            for layer in net
            if "weight" in layer.params
        ]
        result["settings"].append(label)
        result["kind"][label] = kind
        result["norms"][label] = np.array(norms)
    return result


# --- optimizers ------------------------------------------------------------------------


class _Point(BaseLayer):
    """The 2-D parameter (x, y) as a layer's one parameter ``"xy"``, a float64 array of
    shape (2,), so that it reaches the optimizers the way a model's parameters do."""

    def __init__(self, start):
        super().__init__()
        self.params["xy"] = np.array(start, dtype=np.float64)

    @property
    def xy(self):
        return self.params["xy"]


def _f(p):
    return p[0] ** 2 / 20 + p[1] ** 2


def _grad_f(p):
    return np.array([p[0] / 10, 2 * p[1]])


def optimizer_comparison(seed=0, *, steps=30, digit_steps=200, batch_size=100):
    """Optimizers on ``f(x, y) = x**2/20 + y**2`` and on the handwritten digits.

    Paths: `steps` updates from (-7, 2) at the articles' learning rates
    (`PATH_OPTIMIZERS`); the parameter is one float64 array of shape (2,). Digits:
    `digit_steps` mini-batches of `batch_size` through a 64-100-100-100-10 ReLU MLP
    (He-initialised, the same initial weights for every optimizer) at the articles'
    rates (`DIGITS_OPTIMIZERS`).

    Returns
    -------
    dict with ``optimizers`` (names), ``paths`` ({name: array (steps + 1, 2)}, the
    start included), ``values`` ({name: f along the path}), ``path_lr`` and
    ``digits_lr`` ({name: learning rate}) and ``losses`` ({name: array (digit_steps,),
    the training loss of each mini-batch}).
    """
    steps = V.positive_int(steps, "steps")
    digit_steps = V.positive_int(digit_steps, "digit_steps")
    batch_size = V.positive_int(batch_size, "batch_size")
    result = {"experiment": "optimizers", "seed": seed, "optimizers": list(PATH_OPTIMIZERS)}
    result.update(path_lr=dict(PATH_OPTIMIZERS), digits_lr=dict(DIGITS_OPTIMIZERS))
    result.update(paths={}, values={}, losses={})
    for name, lr in PATH_OPTIMIZERS.items():
        point = _Point(START)
        optimizer = _make_optimizer(name, lr, point.parameters)
        path = [point.xy.copy()]
        for _ in range(steps):
            point.grads["xy"] = _grad_f(point.xy)  # what a backward would leave
            _step(optimizer, point.parameters)
            path.append(point.xy.copy())
        result["paths"][name] = np.array(path)
        result["values"][name] = np.array([_f(q) for q in path])
    x, y, _, _ = _digits()
    for name, lr in DIGITS_OPTIMIZERS.items():
        model = _mlp([64, 100, 100, 100, 10], "he", _rng(seed, 3))
        optimizer = _make_optimizer(name, lr, model.parameters)
        result["losses"][name] = _train(
            model, x, y, optimizer, digit_steps, batch_size, _rng(seed, 4)
        )
    return result


# --- batch norm, overfitting, initialisation ----------------------------------------------


def batchnorm_curves(
    seed=0, *, scales=None, steps=60, train_size=1000, batch_size=100, lr=0.01, every=5
):
    """Training accuracy with and without batch norm, for several initial weight scales.

    The articles' setting on the digits: `train_size` training images, a
    64-100-100-100-100-100-10 ReLU MLP whose weights are drawn with std `scale`, with
    or without BatchNorm1d after every hidden Linear, SGD at `lr`, `steps` mini-batches
    of `batch_size`; accuracy on those training images (eval mode) every `every` steps.
    Both networks of a scale start from the same weights and see the same batches.

    Returns
    -------
    dict with ``scales`` (array; default 8 from 1e-3 to 10, log-spaced), ``steps``
    (array of the recorded steps, 0 first) and ``accuracy`` ({"batch norm" |
    "no batch norm": array (len(scales), len(steps))}).
    """
    scales = np.logspace(-3, 1, 8) if scales is None else np.asarray(scales, dtype=float)
    steps = V.positive_int(steps, "steps")
    every = V.positive_int(every, "every")
    x, y, _, _ = _digits()
    pick = _rng(seed, 5).permutation(len(x))[: V.positive_int(train_size, "train_size")]
    x, y = x[pick], y[pick]
    recorded = np.arange(0, steps + 1, every)
    acc = {"batch norm": np.zeros((len(scales), len(recorded)))}
    acc["no batch norm"] = np.zeros_like(acc["batch norm"])
    for i, scale in enumerate(scales):
        for key in acc:
            model = _mlp(
                [64] + [100] * 5 + [10],
                float(scale),
                _rng(seed, 6, i),
                batchnorm=key == "batch norm",
            )
            optimizer = _make_optimizer("SGD", lr, model.parameters)
            row = acc[key][i]

            def record(step, row=row, model=model):
                row[step // every] = _accuracy(model, x, y)

            _train(
                model,
                x,
                y,
                optimizer,
                steps,
                batch_size,
                _rng(seed, 7, i),
                every=every,
                record=record,
            )
    return {
        "experiment": "batchnorm",
        "seed": seed,
        "scales": scales,
        "steps": recorded,
        "accuracy": acc,
    }


OVERFITTING_SETTINGS = {
    "plain": {},
    "weight decay 0.1": {"weight_decay": 0.1},
    "dropout 0.2": {"dropout": 0.2},
}


def overfitting_curves(
    seed=0, *, train_size=300, epochs=150, batch_size=100, lr=0.01, hidden=(100,) * 6
):
    """Train and test accuracy per epoch of an MLP that can memorise `train_size` images.

    The articles' setting on the digits: `train_size` training images (drawn with the
    seed from `pycnn train`'s training part), the 450 test images, a ReLU MLP
    64-`hidden`-10 (six hidden layers of 100 by default; He-initialised, the same initial
    weights in every setting), SGD at `lr`, mini-batches of `batch_size`, for `epochs` epochs:
    plain, with weight decay 0.1 (L2, on every parameter) and with dropout 0.2 after
    every hidden layer (`OVERFITTING_SETTINGS`).

    Returns
    -------
    dict with ``settings``, ``epochs`` (array 0..epochs) and ``train`` / ``test``
    ({setting: array (epochs + 1,) of accuracies, before training first}).
    """
    epochs = V.positive_int(epochs, "epochs")
    batch_size = V.positive_int(batch_size, "batch_size")
    x_train, y_train, x_test, y_test = _digits()
    pick = _rng(seed, 8).permutation(len(x_train))[: V.positive_int(train_size, "train_size")]
    x_train, y_train = x_train[pick], y_train[pick]
    per_epoch = max(1, len(x_train) // batch_size)
    result = {"experiment": "overfitting", "seed": seed, "settings": list(OVERFITTING_SETTINGS)}
    result.update(epochs=np.arange(epochs + 1), train={}, test={}, hidden=list(hidden))
    result["train_size"] = len(x_train)
    for label, options in OVERFITTING_SETTINGS.items():
        model = _mlp(
            [64, *hidden, 10], "he", _rng(seed, 9), dropout=options.get("dropout", 0.0)
        )
        decay = {"weight_decay": options["weight_decay"]} if "weight_decay" in options else {}
        optimizer = _make_optimizer("SGD", lr, model.parameters, **decay)
        train = result["train"][label] = np.zeros(epochs + 1)
        test = result["test"][label] = np.zeros(epochs + 1)

        def record(step, model=model, train=train, test=test):
            train[step // per_epoch] = _accuracy(model, x_train, y_train)
            test[step // per_epoch] = _accuracy(model, x_test, y_test)

        _train(
            model,
            x_train,
            y_train,
            optimizer,
            epochs * per_epoch,
            batch_size,
            _rng(seed, 10),
            every=per_epoch,
            record=record,
        )
    return result


INIT_SETTINGS = {"std 0.01": 0.01, "Xavier": "xavier", "He": "he"}


def init_curves(seed=0, *, steps=300, batch_size=100, lr=0.01):
    """Training loss on the digits for three initial weight distributions.

    The articles' setting: a 64-100-100-100-100-10 ReLU MLP with weights of std 0.01,
    Xavier or He (`pycnn.init`, normal), SGD at `lr`, `steps` mini-batches of
    `batch_size` (the same batches for each).

    Returns
    -------
    dict with ``settings`` and ``losses`` ({setting: array (steps,)}).
    """
    x, y, _, _ = _digits()
    result = {"experiment": "init", "seed": seed, "settings": list(INIT_SETTINGS), "losses": {}}
    for label, scheme in INIT_SETTINGS.items():
        model = _mlp([64, 100, 100, 100, 100, 10], scheme, _rng(seed, 11))
        optimizer = _make_optimizer("SGD", lr, model.parameters)
        result["losses"][label] = _train(
            model, x, y, optimizer, steps, batch_size, _rng(seed, 12)
        )
    return result


EXPERIMENTS = {
    "activations": activation_histograms,
    "gradients": gradient_norms,
    "optimizers": optimizer_comparison,
    "batchnorm": batchnorm_curves,
    "overfitting": overfitting_curves,
    "init": init_curves,
}


def run(name, seed=0, **options):
    """Run experiment `name` (a key of EXPERIMENTS) with `seed` and its `options`."""
    if name not in EXPERIMENTS:
        raise ValueError(
            f"`name` must be one of {', '.join(EXPERIMENTS)}. Received: name={name!r}"
        )
    return EXPERIMENTS[name](seed, **options)


# --- figures ---------------------------------------------------------------------------


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or an ImportError saying what to
    install."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "the experiments' figures need matplotlib, which is not installed: "
            "pip install matplotlib (from a source checkout: pip install '.[plot]')"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    fig.savefig(path, dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)


def _smooth(values, window):
    """Means of `window` consecutive values (len(values) - window + 1 of them)."""
    return np.convolve(values, np.ones(window) / window, mode="valid")


_RELU_RANGE = 3.0  # ReLU histograms span (0, 3]; larger values go into the last bin


def plot_activations(result, path):
    """Histograms of each layer's activations (rows: settings, columns: layers)."""
    plt = _pyplot()
    settings = result["settings"]
    depth = len(result["activations"][settings[0]])
    fig, axes = plt.subplots(
        len(settings), depth, figsize=(2.3 * depth + 1.2, 1.75 * len(settings)), squeeze=False
    )
    for row, label in enumerate(settings):
        kind = result["kind"][label]
        for col, a in enumerate(result["activations"][label]):
            ax = axes[row, col]
            a = a.ravel()
            if kind == "relu":
                positive = a[a > 0]
                shares = np.histogram(
                    np.minimum(positive, _RELU_RANGE), 30, range=(0, _RELU_RANGE)
                )[0]
                ax.bar(
                    np.linspace(0, _RELU_RANGE, 31)[:-1],
                    100 * shares / a.size,
                    width=_RELU_RANGE / 30,
                    align="edge",
                    color="tab:green",
                )
                ax.text(
                    0.97,
                    0.92,
                    f"{100 * np.mean(a == 0):.0f}% are 0",
                    ha="right",
                    va="top",
                    transform=ax.transAxes,
                    fontsize=8,
                )
                ax.set_xlim(0, _RELU_RANGE)
            else:
                low, high, _ = _bounds(kind)
                shares = np.histogram(a, 30, range=(low, high))[0]
                color = "tab:blue" if kind == "sigmoid" else "tab:purple"
                ax.bar(
                    np.linspace(low, high, 31)[:-1],
                    100 * shares / a.size,
                    width=(high - low) / 30,
                    align="edge",
                    color=color,
                )
                ax.set_xlim(low, high)
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title(f"layer {col + 1}", fontsize=10)
            if col == 0:
                ax.set_ylabel(f"{label}\n% of activations", fontsize=8)
            if row == len(settings) - 1 or result["kind"][settings[row + 1]] != kind:
                what = "ReLU output (last bin: >= 3)" if kind == "relu" else f"{kind} output"
                ax.set_xlabel(what, fontsize=8)
    fig.suptitle(
        "Activations of a 5-layer, 100-unit network on random inputs, by activation "
        "and initial weights",
        fontsize=11,
    )
    fig.tight_layout()
    _save(fig, path)


def plot_gradients(result, path):
    """Gradient norm per layer, one line per setting, log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    styles = {"sigmoid": "o-", "relu": "s--", "tanh": "^:"}
    for label in result["settings"]:
        norms = result["norms"][label]
        ax.plot(np.arange(1, len(norms) + 1), norms, styles[result["kind"][label]], label=label)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, len(norms) + 1))
    ax.set_xlabel("layer (1 = next to the input)")
    ax.set_ylabel("‖∂L/∂W‖ (Frobenius norm, log scale)")
    ax.set_title("Weight-gradient norm per layer: where gradients vanish")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best", ncol=2)
    fig.tight_layout()
    _save(fig, path)


def plot_optimizers(result, path):
    """Paths on x**2/20 + y**2 (one panel per optimizer) and the digits' loss curves."""
    plt = _pyplot()
    names = result["optimizers"]
    fig = plt.figure(figsize=(13, 9.5))
    grid = fig.add_gridspec(3, 3, height_ratios=(1, 1, 1.25))
    xs, ys = np.meshgrid(np.linspace(-10, 10, 200), np.linspace(-5, 5, 100))
    zs = xs**2 / 20 + ys**2
    for i, name in enumerate(names):
        ax = fig.add_subplot(grid[i // 3, i % 3])
        ax.contour(xs, ys, zs, levels=[0.25, 1, 2.5, 5, 10, 20], colors="0.75", linewidths=0.8)
        p = result["paths"][name]
        ax.plot(p[:, 0], p[:, 1], "o-", color="tab:red", markersize=3, linewidth=1)
        ax.plot(0, 0, "+", color="k", markersize=10)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-5, 5)
        ax.set_title(
            f"{name} (lr {result['path_lr'][name]}): ends at ({p[-1, 0]:.2f}, {p[-1, 1]:.2f})",
            fontsize=10,
        )
        ax.set_xlabel("x", fontsize=9)
        ax.set_ylabel("y", fontsize=9)
        ax.tick_params(labelsize=8)
    ax = fig.add_subplot(grid[2, :])
    window = 1
    for i, name in enumerate(names):
        losses = result["losses"][name]
        window = max(1, min(10, len(losses)))
        ax.plot(
            np.arange(window, len(losses) + 1),
            _smooth(losses, window),
            "--" if i % 2 else "-",  # dashes show curves that run on top of each other
            label=f"{name} (lr {result['digits_lr'][name]})",
        )
    ax.set_xlabel("training step (mini-batch of 100 digits)")
    ax.set_ylabel(f"training loss (cross-entropy,\nmean of {window} steps)")
    ax.set_title("The same optimizers on the handwritten digits (64-100-100-100-10 ReLU MLP)")
    ax.legend(fontsize=8, ncol=3)
    ax.grid(True, alpha=0.3)
    fig.suptitle(
        f"Optimizers on f(x, y) = x²/20 + y² from (-7, 2), "
        f"{len(result['paths'][names[0]]) - 1} steps (+ marks the minimum)",
        fontsize=12,
    )
    fig.tight_layout()
    _save(fig, path)


def plot_batchnorm(result, path):
    """Training accuracy with and without batch norm, one panel per initial scale."""
    plt = _pyplot()
    scales = result["scales"]
    cols = 4
    rows = -(-len(scales) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.7 * rows + 0.6), squeeze=False, sharey=True
    )
    for i, scale in enumerate(scales):
        ax = axes[i // cols, i % cols]
        ax.plot(result["steps"], result["accuracy"]["batch norm"][i], "-", label="batch norm")
        ax.plot(
            result["steps"], result["accuracy"]["no batch norm"][i], "--", label="no batch norm"
        )
        ax.set_title(f"initial weight std {scale:.2g}", fontsize=10)
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        if i % cols == 0:
            ax.set_ylabel("training accuracy", fontsize=9)
        if i // cols == rows - 1:
            ax.set_xlabel("training step (SGD, batch 100)", fontsize=9)
    for j in range(len(scales), rows * cols):
        axes[j // cols, j % cols].axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9)
    fig.suptitle(
        "Batch norm against none over initial weight scales (digits, 5 hidden layers of 100)",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, path)


def plot_overfitting(result, path):
    """Train and test accuracy per epoch, one panel per setting."""
    plt = _pyplot()
    settings = result["settings"]
    fig, axes = plt.subplots(1, len(settings), figsize=(4.3 * len(settings), 4), sharey=True)
    for ax, label in zip(np.atleast_1d(axes), settings):
        train, test = result["train"][label], result["test"][label]
        ax.plot(result["epochs"], train, label=f"train ({result['train_size']} images)")
        ax.plot(result["epochs"], test, "--", label="test (450 images)")
        tr, te = 100 * np.mean(train[-10:]), 100 * np.mean(test[-10:])
        ax.set_title(
            f"{label}: train {tr:.0f}%, test {te:.0f}%\n(gap {tr - te:.1f} points, "
            "last 10 epochs)",
            fontsize=10,
        )
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("accuracy")
    fig.suptitle(
        f"Overfitting {result['train_size']} training digits: a "
        f"{len(result['hidden']) + 1}-layer MLP plain, with weight decay, with dropout (SGD)",
        fontsize=12,
    )
    fig.tight_layout()
    _save(fig, path)


def plot_init(result, path):
    """Training loss per step for each initialisation."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    window = 1
    for label in result["settings"]:
        losses = result["losses"][label]
        window = max(1, min(10, len(losses)))
        ax.plot(np.arange(window, len(losses) + 1), _smooth(losses, window), label=label)
    ax.axhline(math.log(10), color="0.5", linewidth=0.8, linestyle=":", label="ln 10 (chance)")
    ax.set_xlabel("training step (SGD, mini-batch of 100 digits)")
    ax.set_ylabel(f"training loss (cross-entropy, mean of {window} steps)")
    ax.set_title("Initial weights and learning: 64-100-100-100-100-10 ReLU MLP on the digits")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


PLOTS = {
    "activations": plot_activations,
    "gradients": plot_gradients,
    "optimizers": plot_optimizers,
    "batchnorm": plot_batchnorm,
    "overfitting": plot_overfitting,
    "init": plot_init,
}


def plot(result, path):
    """Draw the figure of `result` (what an experiment returned) into `path` (PNG)."""
    _pyplot()  # the ImportError first
    PLOTS[result["experiment"]](result, path)


# --- tables ----------------------------------------------------------------------------


def _pct(stats, key, width):
    """stats[key] as a right-aligned percentage, or "-" where it does not apply."""
    if key not in stats:
        return f"{'-':>{width}}"
    return f"{100 * stats[key]:>{width - 1}.0f}%"


def format_table(result):
    """The numbers of `result` as a plain-text table, for a terminal without plots."""
    name = result["experiment"]
    lines = [f"pycnn experiment {name} (seed {result['seed']})"]
    if name == "activations":
        lines.append(
            f"{'setting':<20}{'layer':>6}{'mean':>10}{'std':>10}{'saturated':>11}"
            f"{'collapsed':>11}{'spread':>8}{'> 0':>7}{'alive':>7}"
        )
        for label in result["settings"]:
            relu = result["kind"][label] == "relu"
            for i, st in enumerate(result["stats"][label]):
                shown = st if relu else {k: v for k, v in st.items() if k != "alive"}
                lines.append(
                    f"{label:<20}{i + 1:>6}{st['mean']:>10.3g}{st['std']:>10.3g}"
                    + _pct(shown, "saturated", 11)
                    + _pct(shown, "collapsed", 11)
                    + _pct(shown, "spread", 8)
                    + _pct(shown, "nonzero", 7)
                    + _pct(shown, "alive", 7)
                )
        lines.append(
            "saturated: within 5% of the range's ends; collapsed: within 5% of its "
            f"centre; spread: neither; alive (ReLU): > {ALIVE:g}"
        )
    elif name == "gradients":
        depth = len(result["norms"][result["settings"][0]])
        lines.append(
            f"{'setting':<20}" + "".join(f"{'layer ' + str(i + 1):>11}" for i in range(depth))
        )
        for label in result["settings"]:
            lines.append(
                f"{label:<20}" + "".join(f"{v:>11.2e}" for v in result["norms"][label])
            )
        lines.append("Frobenius norm of dL/dW per layer (layer 1 next to the input)")
    elif name == "optimizers":
        lines.append(
            f"{'optimizer':<10}{'lr':>6}{'end x':>9}{'end y':>9}{'distance':>10}"
            f"{'y flips':>9}{'  digits lr':>11}{'loss first 10':>15}{'last 10':>9}"
        )
        for opt in result["optimizers"]:
            p = result["paths"][opt]
            flips = int(np.sum(np.sign(p[1:, 1]) != np.sign(p[:-1, 1])))
            losses = result["losses"][opt]
            lines.append(
                f"{opt:<10}{result['path_lr'][opt]:>6g}{p[-1, 0]:>9.3f}{p[-1, 1]:>9.3f}"
                f"{np.hypot(*p[-1]):>10.3f}{flips:>5}/{len(p) - 1:<3}"
                f"{result['digits_lr'][opt]:>11g}{np.mean(losses[:10]):>15.3f}"
                f"{np.mean(losses[-10:]):>9.3f}"
            )
        lines.append("distance: from the end of the path to the minimum (0, 0)")
    elif name == "batchnorm":
        lines.append(f"{'weight std':>10}{'batch norm':>12}{'no batch norm':>15}")
        for i, scale in enumerate(result["scales"]):
            lines.append(
                f"{scale:>10.2g}{result['accuracy']['batch norm'][i, -1]:>12.3f}"
                f"{result['accuracy']['no batch norm'][i, -1]:>15.3f}"
            )
        lines.append(f"training accuracy after {result['steps'][-1]} steps")
    elif name == "overfitting":
        lines.append(f"{'setting':<20}{'train':>8}{'test':>8}{'gap':>8}")
        for label in result["settings"]:
            train, test = result["train"][label][-10:], result["test"][label][-10:]
            lines.append(
                f"{label:<20}{train.mean():>8.3f}{test.mean():>8.3f}"
                f"{np.mean(train - test):>8.3f}"
            )
        lines.append("accuracies averaged over the last 10 epochs")
    elif name == "init":
        lines.append(f"{'setting':<12}{'first 10 steps':>16}{'last 10 steps':>15}")
        for label in result["settings"]:
            losses = result["losses"][label]
            lines.append(
                f"{label:<12}{np.mean(losses[:10]):>16.3f}{np.mean(losses[-10:]):>15.3f}"
            )
        lines.append("mean training loss (cross-entropy)")
    return "\n".join(lines)
