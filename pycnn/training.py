"""Training and inference loops over a model: `fit` (mini-batches, per-epoch history,
a validation split, callbacks, a progress bar, and a rollback that leaves no trace of a
batch whose loss or update is not finite), `evaluate` and `predict`, and the checks of
their inputs and labels.
`Sequential.fit`, `.evaluate` and `.predict` delegate here; a model is anything with
Sequential's interface (forward, backward, train, parameters, zero_grad, state_dict,
evaluate, output_shape, dtype)."""

import math
import sys
import time

import numpy as np

from pycnn import _validation as V
from pycnn.losses import CrossEntropyLoss, check_labels
from pycnn.lr_scheduler import ReduceLROnPlateau

__all__ = ["fit", "evaluate", "predict"]


def fit(
    model,
    x,
    y,
    epochs,
    batch_size,
    optimizer,
    loss,
    validation_data=None,
    shuffle=True,
    rng=None,
    progress=True,
    *,
    scheduler=None,
    validation_split=None,
    callbacks=None,
    distributed=False,
):
    """Train `model` with mini-batches; return the history. See `Sequential.fit`."""
    epochs = V.positive_int(epochs, "epochs")
    batch_size = V.positive_int(batch_size, "batch_size")
    if validation_split is not None:
        if validation_data is not None:
            raise ValueError(
                "`validation_data` and `validation_split` cannot both be given. Received: "
                f"validation_split={validation_split!r} and a validation_data pair"
            )
        validation_split = V.real(
            validation_split, "validation_split", 0, 1, min_open=True, max_open=True
        )
    callbacks = _callbacks(callbacks)
    _check_reduction(loss)
    x = _inputs(model, x)
    y = _targets(model, x, y, loss=loss)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    job = _Ranks(model, rng) if distributed else _Alone(model)
    if not job.main:
        progress = False
        callbacks = tuple(c for c in callbacks if not getattr(c, "main_only", False))
    if validation_split is not None:
        x, y, x_val, y_val = _split(x, y, validation_split, rng)
        validation_data = (x_val, y_val)
    elif validation_data is not None:
        try:
            x_val, y_val = validation_data
        except (TypeError, ValueError):
            raise ValueError("`validation_data` must be a pair (x_val, y_val).") from None
        x_val = _inputs(model, x_val, "x_val")
        y_val = _targets(model, x_val, y_val, "y_val", "x_val", loss=loss)
    _bind(model, optimizer)
    per_sample = getattr(loss, "reduction", "mean") == "mean"
    model.loss = loss
    history = {"loss": []}
    n = len(x)
    bar = _Progress(progress, epochs, -(-n // batch_size))
    mode = model.training
    # what a batch changes, copied before each batch into arrays allocated once, so a
    # batch that diverges (issue 12) leaves no trace: parameters, buffers, optimizer
    snapshot = _Snapshot(model, optimizer)
    for callback in callbacks:
        _hook(callback, "on_train_begin", model)
    try:
        for epoch in range(epochs):
            start_time = time.perf_counter()
            model.train()
            order = rng.permutation(n) if shuffle else np.arange(n)
            total, correct = 0.0, 0
            bar.start(epoch)
            for batch, start in enumerate(range(0, n, batch_size)):
                idx = order[start : start + batch_size]
                mine = job.share(idx)  # every index with one process; a rank's share
                xb, yb = x[mine], y[mine]
                snapshot.take()
                model.zero_grad()  # gradients accumulate over backward calls
                # a rank with an empty share (a last batch smaller than the job) runs
                # the forward too, for the collectives and the dropout draws in it
                out = job.net.forward(xb)
                value = float(loss(out, yb)) if len(mine) else 0.0
                value = job.batch_loss(loss, value, len(mine), per_sample)
                bad = ""
                if np.isfinite(value):  # then the update must keep it all finite
                    job.backward(loss, out, len(mine), per_sample)
                    if getattr(optimizer, "_takes_loss", False):
                        optimizer.step(loss=value)  # Eve: feedback from the loss
                    else:
                        optimizer.step()
                    bad = _non_finite(model.state_dict())
                if not np.isfinite(value) or bad:
                    snapshot.restore()
                    model.history = history
                    what = (
                        f"the loss became {value}"
                        if not np.isfinite(value)
                        else f"the update made {bad} non-finite (the loss was {value:.6g})"
                    )
                    raise FloatingPointError(
                        f"fit stopped: {what} at epoch {epoch + 1}, batch {batch + 1}; "
                        "the parameters from before that batch were restored, with the "
                        "buffers (batch-norm statistics) and the optimizer's state. A "
                        "smaller learning rate, or inputs without NaN/inf, usually cure "
                        "it."
                    )
                total += value * len(idx) if per_sample else value
                right = _correct(out, yb)  # 0 or None alike on an empty share
                correct = None if right is None or correct is None else correct + right
                bar.update(total / (start + len(idx)))
            metrics = {"loss": total / n}
            if correct is not None:
                metrics["accuracy"] = job.sum(correct) / n
            if validation_data is not None:
                val_loss, val_acc = job.evaluate(x_val, y_val, loss)
                metrics["val_loss"] = val_loss
                if val_acc is not None:
                    metrics["val_accuracy"] = val_acc
            for key, value in metrics.items():
                history.setdefault(key, []).append(value)
            if isinstance(scheduler, ReduceLROnPlateau):  # steps on a metric
                scheduler.step(metrics.get("val_loss", metrics["loss"]))
            elif scheduler is not None:
                scheduler.step()
            bar.end(epoch, metrics, time.perf_counter() - start_time)
            # every callback sees the epoch (a checkpoint is saved even when another
            # callback stops the training)
            stop = [bool(_hook(c, "on_epoch_end", epoch, dict(metrics))) for c in callbacks]
            if any(stop):
                break
    finally:
        bar.close()
        model.train(mode)
        job.close()
    job.finish()
    model.history = history
    for callback in callbacks:
        _hook(callback, "on_train_end", model)
    return history


# --- one process, or one rank of many ------------------------------------------------------


class _Alone:
    """fit on one process: the whole batch, the model itself."""

    main = True

    def __init__(self, model):
        self.net = model

    def share(self, idx):
        return idx

    def batch_loss(self, loss, value, n_mine, per_sample):
        return value

    def backward(self, loss, out, n_mine, per_sample):
        self.net._backward_params(loss.backward())  # no input gradient to compute

    def sum(self, value):
        return value

    def evaluate(self, x, y, loss):
        return self.net.evaluate(x, y, loss=loss)

    def finish(self):
        pass

    def close(self):
        pass


class _Ranks:
    """fit on one rank of an MPI job (``distributed=True``).

    Every rank takes the same seed-determined order of the samples (rank 0's `rng`
    state is broadcast first) and, of each global batch, the disjoint share
    ``batch[rank::world_size]``. Each rank's loss gradient is weighted by its share of
    the batch, and `DistributedDataParallel` averages the gradients, so the step is the
    one a single process takes on the global batch, whatever the number of ranks. The
    batch loss, the accuracy and the validation metrics are reduced across ranks, so
    every rank sees the same history and stops at the same epoch; only rank 0 shows
    progress and runs callbacks marked ``main_only`` (checkpoints). Dropout layers
    draw the global batch's mask and keep this rank's rows of it, so with equal
    dropout seeds (a model built from one seed) the ranks drop what one process drops.
    """

    def __init__(self, model, rng):
        from pycnn import distributed
        from pycnn.layers.dropout import Dropout

        self._mpi = distributed._mpi()
        self.net = distributed.DistributedDataParallel(model)  # checks, broadcasts
        self.comm = self.net.comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.main = self.rank == 0
        rng.bit_generator.state = self.comm.bcast(rng.bit_generator.state, root=0)
        self._dropouts = [
            layer for _, layer in model.named_layers() if isinstance(layer, Dropout)
        ]

    def share(self, idx):
        for layer in self._dropouts:
            layer._share = (self.rank, self.size, len(idx))
        return idx[self.rank :: self.size]

    def sum(self, value):
        """The sum of a number over every rank."""
        buf = np.array([float(value)])
        self.comm.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)
        return float(buf[0])

    def batch_loss(self, loss, value, n_mine, per_sample):
        """The global batch's loss from each rank's. A mean is the sum of every rank's
        losses over the sum of what each divided by (its counted samples, or their class
        weights: `loss._denom`), as one process takes it over the whole batch; each
        rank's share of that divisor then weights its gradient (`backward`)."""
        if not per_sample:
            return self.sum(value)
        # a loss of pycnn's says what its mean divided by; any other, the sample count
        denom = getattr(loss, "_denom", None) if n_mine else 0.0
        denom = float(n_mine if denom is None else denom)
        sums = np.array([value * denom if denom else 0.0, denom])
        self.comm.Allreduce(self._mpi.IN_PLACE, sums, op=self._mpi.SUM)
        self._share_of_mean = float(denom / sums[1]) if sums[1] else 0.0
        return float(sums[0] / sums[1]) if sums[1] else float("nan")

    def backward(self, loss, out, n_mine, per_sample):
        if n_mine == 0 or (per_sample and self._share_of_mean == 0):
            # an empty share, or one whose labels all weigh 0 (its mean's gradient is
            # 0/0): nothing to add, zero gradients from the backward
            self.net._backward_params(np.zeros_like(out))
            return
        # DDP divides the sum of the ranks' gradients by their number
        weight = self._share_of_mean * self.size if per_sample else self.size
        self.net._backward_params(loss.backward() * weight)

    def evaluate(self, x, y, loss):
        """Validation with rank 0's batch-norm statistics, each batch split over the
        ranks and reduced as one process takes it (`evaluate` with this job)."""
        self.net.broadcast_state()
        return evaluate(self.net.module, x, y, loss=loss, job=self)

    def finish(self):
        self.net.broadcast_state()  # every rank ends with rank 0's model

    def close(self):
        for layer in self._dropouts:
            layer._share = None


def evaluate(model, x, y, batch_size=256, loss=None, job=None):
    """(mean loss per sample, accuracy) in eval mode. See `Sequential.evaluate`.

    With `job` (fit's `_Ranks`), each rank computes its share of every batch and the
    batch's loss and the right answers are reduced over the ranks, as in training."""
    batch_size = V.positive_int(batch_size, "batch_size")
    loss = loss if loss is not None else model.loss or CrossEntropyLoss()
    _check_reduction(loss)
    x = _inputs(model, x)
    y = _targets(model, x, y, loss=loss)
    per_sample = getattr(loss, "reduction", "mean") == "mean"
    total, correct = 0.0, 0
    mode = model.training
    model.eval()
    try:
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            n_batch = len(xb)
            if job is not None:
                mine = job.share(np.arange(start, start + n_batch))
                xb, yb = x[mine], y[mine]
            out = model.forward(xb)  # on every rank, an empty share too
            value = float(loss(out, yb)) if len(xb) else 0.0
            if job is not None:
                value = job.batch_loss(loss, value, len(xb), per_sample)
            total += value * n_batch if per_sample else value
            right = _correct(out, yb)
            correct = None if right is None or correct is None else correct + right
    finally:
        model.train(mode)
    if job is not None and correct is not None:
        correct = job.sum(correct)
    return total / len(x), (None if correct is None else correct / len(x))


def predict(model, x, batch_size=256):
    """Outputs for `x` in eval mode, in batches. See `Sequential.predict`."""
    batch_size = V.positive_int(batch_size, "batch_size")
    x = _inputs(model, x)
    mode = model.training
    model.eval()
    try:
        outs = [model.forward(x[s : s + batch_size]) for s in range(0, len(x), batch_size)]
    finally:
        model.train(mode)
    return np.concatenate(outs)


# --- validation split and callbacks ------------------------------------------------------

_HOOKS = ("on_train_begin", "on_epoch_end", "on_train_end")


def _split(x, y, fraction, rng):
    """(x_fit, y_fit, x_val, y_val): `fraction` of the samples (rounded up) held out for
    validation, drawn with `rng`. For integer labels each class gives its share,
    ``fraction * count`` rounded down or up (the largest remainders are rounded up until
    the total is reached), so it is within one sample of it; float targets are drawn
    plainly at random. Both parts keep the samples' order and are new arrays."""
    n = len(x)
    n_val = math.ceil(fraction * n)
    if n_val >= n:
        raise ValueError(
            f"`validation_split` must leave at least one training sample. "
            f"Received: validation_split={fraction!r} of {n} samples"
        )
    if y.ndim == 1 and y.dtype.kind in "iu":
        _, inverse = np.unique(y, return_inverse=True)
        share = np.bincount(inverse) * fraction
        take = np.floor(share).astype(np.int64)
        rest = n_val - int(take.sum())  # at most the number of classes: one each
        take[np.argsort(take - share, kind="stable")[:rest]] += 1
        val_idx = np.concatenate(
            [rng.permutation(np.flatnonzero(inverse == c))[:k] for c, k in enumerate(take)]
        )
    else:
        val_idx = rng.permutation(n)[:n_val]
    val = np.zeros(n, dtype=bool)
    val[val_idx] = True
    return x[~val], y[~val], x[val], y[val]


def _callbacks(callbacks):
    """`callbacks` as a tuple of objects with at least one of the hooks of `_HOOKS`."""
    if callbacks is None:
        return ()
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise TypeError(
            f"`callbacks` must be a list of callbacks. Received: callbacks={callbacks!r}"
        )
    callbacks = tuple(callbacks)
    for i, callback in enumerate(callbacks):
        if not any(callable(getattr(callback, hook, None)) for hook in _HOOKS):
            raise TypeError(
                "`callbacks` must hold objects with on_train_begin(model), "
                "on_epoch_end(epoch, logs) or on_train_end(model) methods (see "
                f"pycnn.callbacks). Received: callbacks[{i}]={callback!r}"
            )
    return callbacks


def _hook(callback, name, *args):
    """Call `callback.<name>(*args)` if it has that method; return its result."""
    method = getattr(callback, name, None)
    return method(*args) if callable(method) else None


# --- inputs and labels -------------------------------------------------------------------


def _inputs(model, x, name="x"):
    """`x` as a contiguous array of the model's dtype (one conversion, if any)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"`{name}` must be a real-valued array. Received: {name}.dtype={arr.dtype}"
        )
    if arr.ndim < 1 or len(arr) == 0:
        raise ValueError(
            f"`{name}` must hold at least one sample along its first "
            f"axis. Received: {name}.shape={arr.shape}"
        )
    return np.ascontiguousarray(arr, dtype=model.dtype)


def _check_reduction(loss):
    """fit and evaluate sum batch losses: the loss must reduce to a number."""
    reduction = getattr(loss, "reduction", "mean")
    if reduction not in ("mean", "sum"):
        raise ValueError(
            "`loss` must reduce each batch to a number (reduction 'mean' or 'sum') for "
            f"fit and evaluate. Received: reduction={reduction!r}"
        )


def _targets(model, x, y, name="y", x_name="x", loss=None):
    """Validated targets: same length as `x`; integer labels in [0, classes)."""
    y = np.asarray(y)
    if y.ndim < 1 or len(y) != len(x):
        raise ValueError(
            f"`{x_name}` and `{name}` must have the same length. "
            f"Received: len({x_name})={len(x)}, {name}.shape={y.shape}"
        )
    if y.dtype.kind in "iu":
        if y.ndim != 1:
            raise ValueError(
                f"`{name}` integer labels must be 1-d (N,). Received: {name}.shape={y.shape}"
            )
        out_shape = model.output_shape(x.shape[1:])
        if len(out_shape) != 2:
            raise ValueError(
                f"integer labels `{name}` need a model output of shape "
                f"(N, classes). Received: output shape {out_shape}"
            )
        check_labels(y, out_shape[1], name, getattr(loss, "ignore_index", None))
    elif y.dtype.kind == "f":
        # checked here, so that the message names `y` and not the loss's `target`
        out_shape = tuple(model.output_shape(x.shape[1:]))
        if y.shape[1:] != out_shape[1:]:
            expected = "(" + ", ".join(("N",) + tuple(map(str, out_shape[1:]))) + ")"
            raise ValueError(
                f"`{name}` float targets must have the model's output shape {expected}; "
                f"integer class labels need an integer dtype. "
                f"Received: {name}.shape={y.shape}, {name}.dtype={y.dtype}"
            )
        y = y.astype(model.dtype, copy=False)
    else:
        raise TypeError(
            f"`{name}` must hold integer labels or float targets. "
            f"Received: {name}.dtype={y.dtype}"
        )
    return y


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


# --- the optimizer ------------------------------------------------------------------------


def _bind(model, optimizer):
    """An unbound optimizer (``optim.Adam(lr=1e-3)``) is bound to the model's parameters
    here, silently; a bound one must hold parameters of this model."""
    if not getattr(optimizer, "_bound", True):
        optimizer._bind(model.parameters())
        return
    groups = getattr(optimizer, "param_groups", None)
    if groups is None:
        return
    ours = {id(p) for p in model.parameters()}
    held = [p for group in groups for p in group["params"]]
    if held and not any(id(p) in ours for p in held):
        raise ValueError(
            "`optimizer` is bound to parameters of another model: build it with "
            "this model's, `optim.SGD(model.parameters(), lr=...)`"
        )


# --- divergence: detect, and put the batch back ------------------------------------------


def _non_finite(state):
    """'' when every array of `state` is finite, else how many values are NaN/inf, where."""
    bad = {
        key: int(np.count_nonzero(~np.isfinite(arr)))
        for key, arr in state.items()
        if not np.isfinite(arr).all()
    }
    if not bad:
        return ""
    total = sum(bad.values())
    return (
        f"{total:,} value{'s' if total > 1 else ''} ("
        + ", ".join(f"{count:,} in {key!r}" for key, count in bad.items())
        + ")"
    )


class _Snapshot:
    """Everything a training batch changes, kept so that `fit` can put it back.

    `take()` copies the model's parameters and buffers (`state_dict`) and the optimizer's
    per-parameter state (momentum buffers, moment estimates, step counts: ``optimizer.state``,
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
        self.opt_saved = {}  # key -> name -> _Kept(the optimizer's array, a copy) or value

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


# --- progress ----------------------------------------------------------------------------


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
            self.bar = self.tqdm(
                total=self.batches,
                unit="batch",
                desc=f"epoch {epoch + 1}/{self.epochs}",
                dynamic_ncols=True,
                leave=False,
            )

    def update(self, running_loss):
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {running_loss:.4f}", refresh=False)
            self.bar.update(1)

    def end(self, epoch, metrics, seconds):
        if self.bar is not None:
            # the bar's postfix would be cut at 80 columns before val_accuracy (issue
            # 19): the finished epoch gets its own line, abbreviated to fit in 80
            text = " ".join(
                f"{k.replace('accuracy', 'acc')} {v:.4f}" for k, v in metrics.items()
            )
            self.bar.close()
            self.bar = None
            self.tqdm.write(
                f"epoch {epoch + 1}/{self.epochs} - {text} - {seconds:.1f}s", file=sys.stderr
            )
        elif self.enabled:
            text = " - ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            print(f"epoch {epoch + 1}/{self.epochs} - {text} - {seconds:.1f}s", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
