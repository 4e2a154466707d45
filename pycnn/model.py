"""`Sequential`: a stack of layers that trains, evaluates, predicts, saves and loads."""
import sys
import time

import numpy as np

from pycnn import _validation as V
from pycnn.io import npz
from pycnn.layers.base import BaseLayer
from pycnn.losses import CrossEntropyLoss, check_labels
from pycnn.optim import named_parameters

__all__ = ["Sequential"]


class Sequential:
    """Layers applied in order; backward runs them in reverse (the articles' LayerManager).

    ``model = Sequential(Conv2d(1, 16, 3, padding=1), ReLU(), Flatten(), Linear(1024, 10))``

    `parameters()` yields ``(key, param, grad)`` triples with keys ``"<index>.<name>"``
    (``"0.weight"``), which is what the optimizers' ``step`` takes. `state_dict()` holds
    the parameters and the buffers (batch-norm running statistics) under the same keys;
    `save` writes it to an ``.npz`` file and `load` reads one back without pickle.

    Every layer must hold parameters of one dtype, the model's `dtype` (float32 unless
    the layers say otherwise); `fit`, `evaluate` and `predict` convert their inputs to
    it once.
    """

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, BaseLayer):
                raise TypeError(f"`layers` must be pycnn layers (BaseLayer instances). "
                                f"Received: layer {i} of type {type(layer).__name__}")
        self.layers = list(layers)
        dtypes = {arr.dtype for layer in self.layers
                  for arr in (*layer.params.values(), *layer.buffers.values())}
        if len(dtypes) > 1:
            raise TypeError("`layers` must all hold parameters of one dtype. Received: "
                            + ", ".join(sorted(d.name for d in dtypes)))
        self.dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        self.training = True
        self.history = None
        self.loss = None

    # --- the layer interface -----------------------------------------------------------

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def __call__(self, x):
        return self.forward(x)

    def train(self, mode=True):
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def parameters(self):
        """``(key, param, grad)`` for every parameter; `grad` is None before backward."""
        return named_parameters(self.layers)

    def state_dict(self):
        """Parameters and buffers by key (``"<index>.<name>"``); the arrays themselves."""
        state = {}
        for i, layer in enumerate(self.layers):
            for name, arr in (*layer.params.items(), *layer.buffers.items()):
                state[f"{i}.{name}"] = arr
        return state

    def num_parameters(self):
        return sum(p.size for _, p, _ in self.parameters())

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)" if lines else "Sequential()"

    # --- data ----------------------------------------------------------------------------

    def _inputs(self, x, name="x"):
        """`x` as a contiguous array of the model's dtype (one conversion, if any)."""
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must be a real-valued array. "
                            f"Received: {name}.dtype={arr.dtype}")
        if arr.ndim < 1 or len(arr) == 0:
            raise ValueError(f"`{name}` must hold at least one sample along its first "
                             f"axis. Received: {name}.shape={arr.shape}")
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _targets(self, x, y, name="y", x_name="x"):
        """Validated targets: same length as `x`; integer labels in [0, classes)."""
        y = np.asarray(y)
        if y.ndim < 1 or len(y) != len(x):
            raise ValueError(f"`{x_name}` and `{name}` must have the same length. "
                             f"Received: len({x_name})={len(x)}, {name}.shape={y.shape}")
        if y.dtype.kind in "iu":
            if y.ndim != 1:
                raise ValueError(f"`{name}` integer labels must be 1-d (N,). "
                                 f"Received: {name}.shape={y.shape}")
            out_shape = self.output_shape(x.shape[1:])
            if len(out_shape) != 2:
                raise ValueError(f"integer labels `{name}` need a model output of shape "
                                 f"(N, classes). Received: output shape {out_shape}")
            check_labels(y, out_shape[1], name)
        elif y.dtype.kind == "f":
            y = y.astype(self.dtype, copy=False)
        else:
            raise TypeError(f"`{name}` must hold integer labels or float targets. "
                            f"Received: {name}.dtype={y.dtype}")
        return y

    def output_shape(self, input_shape):
        """Output shape (batch axis None) for inputs of `input_shape` (no batch axis)."""
        return self._shapes(input_shape)[-1]

    def _shapes(self, input_shape):
        """Shape after each layer, from a dry forward of one zero sample in eval mode."""
        try:
            shape = tuple(V.integer(s, "input_shape") for s in input_shape)
        except TypeError:
            raise TypeError(f"`input_shape` must be a tuple of ints (no batch axis). "
                            f"Received: input_shape={input_shape!r}") from None
        mode = self.training
        self.eval()
        try:
            x = np.zeros((1,) + shape, dtype=self.dtype)
            shapes = [(None,) + shape]
            for layer in self.layers:
                x = layer.forward(x)
                shapes.append((None,) + x.shape[1:])
        finally:
            self.train(mode)
        return shapes

    @staticmethod
    def _correct(out, y):
        """Number of right answers of a batch, or None when it is not classification
        (outputs other than (N, classes >= 2), or targets of another shape)."""
        if out.ndim != 2 or out.shape[1] < 2:
            return None
        if y.ndim == 1 and y.dtype.kind in "iu":
            return int(np.count_nonzero(out.argmax(axis=1) == y))
        if y.shape == out.shape:
            return int(np.count_nonzero(out.argmax(axis=1) == y.argmax(axis=1)))
        return None

    # --- training and inference --------------------------------------------------------

    def fit(self, x, y, epochs, batch_size, optimizer, loss, validation_data=None,
            shuffle=True, rng=None, progress=True, *, scheduler=None):
        """Train with mini-batches; return the history of per-epoch metrics.

        Parameters
        ----------
        x : array (N, ...), converted once to the model's dtype
        y : (N,) integer class labels, or float targets of the output's shape
        epochs, batch_size : int
        optimizer : a `pycnn.optim` optimizer, stepped once a batch
        loss : a `pycnn.losses` loss, e.g. ``CrossEntropyLoss()``
        validation_data : optional ``(x_val, y_val)``, evaluated after every epoch
        shuffle : bool, a new order of the samples every epoch
        rng : numpy Generator or seed for the shuffling (fix it to repeat a run)
        progress : show a progress bar (tqdm, on a terminal) or one line per epoch
        scheduler : optional LR schedule (`StepLR`, `ExponentialLR`), stepped per epoch

        Returns
        -------
        dict of lists, one value per epoch: ``loss`` (mean over the epoch's samples,
        in train mode), ``accuracy`` (for classification), and ``val_loss``,
        ``val_accuracy`` with `validation_data`. Also kept as ``model.history``.

        Raises
        ------
        FloatingPointError
            when a batch's loss, or the model's arrays after its update, are not finite.
            The parameters, the buffers (batch-norm statistics) and the optimizer's state
            are then bit for bit those from before that batch, and ``model.history``
            holds the epochs that finished.
        """
        epochs = V.positive_int(epochs, "epochs")
        batch_size = V.positive_int(batch_size, "batch_size")
        x = self._inputs(x)
        y = self._targets(x, y)
        if validation_data is not None:
            try:
                x_val, y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("`validation_data` must be a pair (x_val, y_val).") \
                    from None
            x_val = self._inputs(x_val, "x_val")
            y_val = self._targets(x_val, y_val, "y_val", "x_val")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        per_sample = getattr(loss, "reduction", "mean") == "mean"
        self.loss = loss
        history = {"loss": []}
        n = len(x)
        bar = _Progress(progress, epochs, -(-n // batch_size))
        mode = self.training
        # what a batch changes, copied before each batch into arrays allocated once, so a
        # batch that diverges (issue 12) leaves no trace: parameters, buffers, optimizer
        snapshot = _Snapshot(self, optimizer)
        try:
            for epoch in range(epochs):
                start_time = time.perf_counter()
                self.train()
                order = rng.permutation(n) if shuffle else np.arange(n)
                total, correct = 0.0, 0
                bar.start(epoch)
                for batch, start in enumerate(range(0, n, batch_size)):
                    idx = order[start:start + batch_size]
                    xb, yb = x[idx], y[idx]
                    snapshot.take()
                    out = self.forward(xb)
                    value = float(loss(out, yb))
                    bad = ""
                    if np.isfinite(value):       # then the update must keep it all finite
                        self.backward(loss.backward())
                        optimizer.step(self.parameters())
                        bad = _non_finite(self.state_dict())
                    if not np.isfinite(value) or bad:
                        snapshot.restore()
                        self.history = history
                        what = (f"the loss became {value}" if not np.isfinite(value) else
                                f"the update made {bad} non-finite (the loss was {value:.6g})")
                        raise FloatingPointError(
                            f"fit stopped: {what} at epoch {epoch + 1}, batch {batch + 1}; "
                            "the parameters from before that batch were restored, with the "
                            "buffers (batch-norm statistics) and the optimizer's state. A "
                            "smaller learning rate, or inputs without NaN/inf, usually cure "
                            "it.")
                    total += value * len(idx) if per_sample else value
                    right = self._correct(out, yb)
                    correct = None if right is None or correct is None else correct + right
                    bar.update(total / (start + len(idx)))
                metrics = {"loss": total / n}
                if correct is not None:
                    metrics["accuracy"] = correct / n
                if validation_data is not None:
                    val_loss, val_acc = self.evaluate(x_val, y_val, loss=loss)
                    metrics["val_loss"] = val_loss
                    if val_acc is not None:
                        metrics["val_accuracy"] = val_acc
                for key, value in metrics.items():
                    history.setdefault(key, []).append(value)
                if scheduler is not None:
                    scheduler.step()
                bar.end(epoch, metrics, time.perf_counter() - start_time)
        finally:
            bar.close()
            self.train(mode)
        self.history = history
        return history

    def evaluate(self, x, y, batch_size=256, loss=None):
        """(mean loss per sample, accuracy) in eval mode; accuracy is None if not
        classification. `loss` defaults to the one last given to `fit`, else
        ``CrossEntropyLoss()``."""
        batch_size = V.positive_int(batch_size, "batch_size")
        loss = loss if loss is not None else self.loss or CrossEntropyLoss()
        x = self._inputs(x)
        y = self._targets(x, y)
        per_sample = getattr(loss, "reduction", "mean") == "mean"
        total, correct = 0.0, 0
        mode = self.training
        self.eval()
        try:
            for start in range(0, len(x), batch_size):
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                out = self.forward(xb)
                value = float(loss(out, yb))
                total += value * len(xb) if per_sample else value
                right = self._correct(out, yb)
                correct = None if right is None or correct is None else correct + right
        finally:
            self.train(mode)
        return total / len(x), (None if correct is None else correct / len(x))

    def predict(self, x, batch_size=256):
        """Outputs (e.g. logits) for `x` in eval mode, in batches; model's dtype."""
        batch_size = V.positive_int(batch_size, "batch_size")
        x = self._inputs(x)
        mode = self.training
        self.eval()
        try:
            outs = [self.forward(x[s:s + batch_size]) for s in range(0, len(x), batch_size)]
        finally:
            self.train(mode)
        return np.concatenate(outs)

    # --- inspection and persistence ------------------------------------------------------

    def summary(self, input_shape, file=None):
        """Print each layer, its output shape and parameter count, and the totals.

        `input_shape` is one sample's shape, without the batch axis, e.g. (1, 8, 8).
        The shapes come from a dry forward pass of one zero sample in eval mode.
        """
        shapes = self._shapes(input_shape)
        rows = [("#", "layer", "output shape", "params")]
        rows.append(("", "input", str(shapes[0]), ""))
        for i, (layer, shape) in enumerate(zip(self.layers, shapes[1:])):
            count = sum(p.size for p in layer.params.values())
            rows.append((str(i), repr(layer), str(shape), f"{count:,}"))
        widths = [max(len(r[k]) for r in rows) for k in range(4)]
        line = lambda r: (f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  "   # noqa: E731
                          f"{r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}").rstrip()
        rule = "-" * (sum(widths) + 6)
        total = self.num_parameters()
        buffers = sum(b.size for layer in self.layers for b in layer.buffers.values())
        text = [line(rows[0]), rule] + [line(r) for r in rows[1:]] + [rule,
                f"total parameters: {total:,} ({total * self.dtype.itemsize:,} bytes, "
                f"{self.dtype.name})"]
        if buffers:
            text.append(f"buffers (running statistics): {buffers:,}")
        print("\n".join(text), file=file or sys.stdout)

    def save(self, path):
        """Write parameters and buffers to an ``.npz`` file (no pickle); see `load`.

        Like ``numpy.savez``, ``.npz`` is appended to a name without it; the name of the
        file written is returned. The file gets the permissions of any new file
        (``0o666`` less the umask).

        Atomic: the archive is written to a temporary file ``.pycnn-save-<random>.npz``
        beside `path`, then renamed over it, so a crash mid-save never leaves a
        half-written file in place of the previous model. A save that is killed leaves
        that temporary file behind; the next save into the same folder removes such
        files of this user older than an hour (younger ones may be saves in progress).
        """
        return npz.save(self, path)

    def load(self, path):
        """Read parameters and buffers saved by `save` into this model, in place.

        `path` is the one given to `save`: ``model.save("m")`` wrote ``m.npz``, and
        ``load("m")`` reads ``m.npz`` when ``m`` itself is not a file. The archive must
        hold exactly this model's keys, each an ``.npy`` member of the model's shape and
        dtype. Every member's header is checked before any data is read, and only the
        bytes the model needs are read, so a hostile or corrupt file costs no more time
        and memory than the model itself. Anything else (not a zip, truncated, a member
        that is not an ``.npy``, pickled objects, trailing data, a wrong key, shape or
        dtype) raises one ValueError naming the file and the member, and leaves the model
        unchanged. A path that does not exist raises FileNotFoundError. Returns the model.
        """
        return npz.load_into(self, path)


def _non_finite(state):
    """'' when every array of `state` is finite, else how many values are NaN/inf, where."""
    bad = {key: int(np.count_nonzero(~np.isfinite(arr))) for key, arr in state.items()
           if not np.isfinite(arr).all()}
    if not bad:
        return ""
    total = sum(bad.values())
    return (f"{total:,} value{'s' if total > 1 else ''} ("
            + ", ".join(f"{count:,} in {key!r}" for key, count in bad.items()) + ")")


class _Snapshot:
    """Everything a training batch changes, kept so that `fit` can put it back.

    `take()` copies the model's parameters and buffers (`state_dict`) and the optimizer's
    per-key state (momentum buffers, moment estimates, step counts: ``optimizer.state``,
    a dict of dicts) into arrays allocated on first use and reused with `np.copyto`;
    `restore()` copies them back into the very arrays the layers and the optimizer held
    before the batch, and removes the state entries the batch created (a first step's
    momentum buffer). Values of the optimizer's state that are not arrays (step counts)
    are kept by reference, so they must be immutable, as Python numbers are.
    """

    def __init__(self, model, optimizer):
        self.model = model
        self.saved = {key: np.empty_like(arr) for key, arr in model.state_dict().items()}
        state = getattr(optimizer, "state", None)
        self.opt_state = state if isinstance(state, dict) else None
        self.opt_saved = {}    # key -> name -> _Kept(the optimizer's array, a copy) or value

    def take(self):
        for key, arr in self.model.state_dict().items():
            np.copyto(self.saved[key], arr)
        if self.opt_state is None:
            return
        previous, self.opt_saved = self.opt_saved, {}
        for key, entries in self.opt_state.items():
            if not isinstance(entries, dict):
                self.opt_saved[key] = entries
                continue
            old, kept = previous.get(key), {}
            for name, value in entries.items():
                if isinstance(value, np.ndarray):
                    was = old.get(name) if isinstance(old, dict) else None
                    copy = was.copy if isinstance(was, _Kept) else None
                    if copy is None or copy.shape != value.shape or copy.dtype != value.dtype:
                        copy = np.empty_like(value)
                    np.copyto(copy, value)
                    value = _Kept(value, copy)
                kept[name] = value
            self.opt_saved[key] = kept

    def restore(self):
        for key, arr in self.model.state_dict().items():
            np.copyto(arr, self.saved[key])
        if self.opt_state is None:
            return
        for key in [k for k in self.opt_state if k not in self.opt_saved]:
            del self.opt_state[key]
        for key, kept in self.opt_saved.items():
            if not isinstance(kept, dict):
                self.opt_state[key] = kept
                continue
            entries = self.opt_state.get(key)
            if not isinstance(entries, dict):
                entries = self.opt_state[key] = {}
            for name in [n for n in entries if n not in kept]:
                del entries[name]
            for name, value in kept.items():
                if isinstance(value, _Kept):
                    np.copyto(value.array, value.copy)
                    value = value.array
                entries[name] = value


class _Kept:
    """An array of the optimizer's state and its copy from before the batch."""
    __slots__ = ("array", "copy")

    def __init__(self, array, copy):
        self.array, self.copy = array, copy


class _Progress:
    """Training progress: a tqdm bar per epoch on a terminal, else one line per epoch.

    tqdm is optional (NumPy is pycnn's only dependency): without it, or when stderr is
    not a terminal (logs, CI, pipes), each epoch prints one plain line to stdout.
    """

    def __init__(self, enabled, epochs, batches):
        self.enabled, self.epochs, self.batches = bool(enabled), epochs, batches
        self.tqdm = None
        self.bar = None
        if self.enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            self.tqdm = tqdm

    def start(self, epoch):
        if self.tqdm is not None:
            self.bar = self.tqdm(total=self.batches, unit="batch", leave=True,
                                 desc=f"epoch {epoch + 1}/{self.epochs}",
                                 dynamic_ncols=True)

    def update(self, running_loss):
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {running_loss:.4f}", refresh=False)
            self.bar.update(1)

    def end(self, epoch, metrics, seconds):
        text = " - ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.close()
            self.bar = None
        elif self.enabled:
            print(f"epoch {epoch + 1}/{self.epochs} - {text} - {seconds:.1f}s", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
