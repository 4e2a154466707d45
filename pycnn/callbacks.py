"""Callbacks for `Sequential.fit`: `EarlyStopping` and `ModelCheckpoint`.

`fit(..., callbacks=[...])` calls, on each object it is given, whichever of these
methods it has (`Callback` has them all, doing nothing):

- ``on_train_begin(model)``: once, before the first epoch;
- ``on_epoch_end(epoch, logs)``: after every epoch, with `epoch` counted from 0 and
  `logs` a dict of that epoch's metrics, the values `fit` appends to its history
  (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``); a true return value stops
  the training after this epoch;
- ``on_train_end(model)``: once, after the last epoch, stopped early or not (not when
  `fit` raises).

The names follow Keras's; ``val_`` metrics exist only with `validation_data` or
`validation_split`, so select on those (never on the test set).
"""

import math
import os

import numpy as np

from pycnn import _validation as V

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint"]


class Callback:
    """The callback interface `fit` calls; subclass it and override what you need."""

    def on_train_begin(self, model):
        """Called once, before the first epoch, with the model being trained."""

    def on_epoch_end(self, epoch, logs):
        """Called after each epoch (`epoch` from 0, `logs` its metrics); return True to
        stop the training."""
        return False

    def on_train_end(self, model):
        """Called once, after the last epoch."""


class _Monitor(Callback):
    """A metric watched for its best value: `monitor` is a key of the epoch's logs,
    `mode` 'min', 'max' or 'auto' (max for a name with 'acc' in it, else min)."""

    def __init__(self, monitor, mode):
        if not isinstance(monitor, str):
            raise TypeError(f"`monitor` must be a str. Received: monitor={monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"`mode` must be 'auto', 'min' or 'max'. Received: mode={mode!r}")
        self.monitor = monitor
        self.mode = mode if mode != "auto" else ("max" if "acc" in monitor else "min")
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None  # counted from 0, like fit's epochs and history's lists

    def _value(self, logs):
        if self.monitor not in logs:
            raise ValueError(
                f"`monitor` must name a metric fit reports ({', '.join(logs)}; val_ "
                f"metrics need validation_data or validation_split). Received: "
                f"monitor={self.monitor!r}"
            )
        return float(logs[self.monitor])

    def _improves(self, value, min_delta=0.0):
        """Whether `value` beats the best so far by more than `min_delta` (NaN never)."""
        if self.mode == "min":
            return value < self.best - min_delta
        return value > self.best + min_delta

    def on_train_begin(self, model):
        self.model = model
        self._reset()


class EarlyStopping(_Monitor):
    """Stop `fit` when the monitored metric has stopped improving.

    Parameters
    ----------
    monitor : str, the metric watched (default ``"val_loss"``)
    patience : int >= 0, the number of epochs in a row without improvement tolerated:
        the training stops at the end of the ``patience + 1``-th such epoch (0: at the
        first epoch that does not improve)
    min_delta : float >= 0, an epoch improves when it beats the best value so far by
        more than this
    mode : 'min', 'max' or 'auto' (max for a metric with 'acc' in its name, else min)
    restore_best_weights : bool; at the end of the training, put back the parameters
        and buffers (batch-norm statistics) of the best epoch, bit for bit

    Attributes
    ----------
    best : the best value seen; best_epoch : its epoch (from 0)
    stopped_epoch : the epoch (from 0) after which the training stopped, or None
    """

    def __init__(
        self,
        monitor="val_loss",
        patience=0,
        min_delta=0.0,
        mode="auto",
        restore_best_weights=False,
    ):
        super().__init__(monitor, mode)
        self.patience = V.integer(patience, "patience")
        if self.patience < 0:
            raise ValueError(f"`patience` must be >= 0. Received: patience={patience!r}")
        self.min_delta = V.real(min_delta, "min_delta", 0)
        self.restore_best_weights = V.flag(restore_best_weights, "restore_best_weights")
        self.model = None
        self.stopped_epoch = None
        self.wait = 0
        self.best_weights = None

    def on_train_begin(self, model):
        super().on_train_begin(model)
        self.stopped_epoch = None
        self.wait = 0
        self.best_weights = None

    def on_epoch_end(self, epoch, logs):
        value = self._value(logs)
        if self._improves(value, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._keep(self.model.state_dict())
            return False
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def _keep(self, state):
        """Copy `state` into arrays allocated on the first call and reused after."""
        if self.best_weights is None:
            self.best_weights = {key: arr.copy() for key, arr in state.items()}
        else:
            for key, arr in state.items():
                np.copyto(self.best_weights[key], arr)

    def on_train_end(self, model):
        if self.restore_best_weights and self.best_weights is not None:
            for key, arr in model.state_dict().items():
                np.copyto(arr, self.best_weights[key])  # into the layers' own arrays

    def __repr__(self):
        return (
            f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
            f"min_delta={self.min_delta:g}, mode={self.mode!r}, "
            f"restore_best_weights={self.restore_best_weights})"
        )


class ModelCheckpoint(_Monitor):
    """Save the model (`Sequential.save`, an ``.npz`` file) after the epochs that count.

    Parameters
    ----------
    path : str or path-like, the file `save` writes (``.npz`` is appended to a name
        without it); ``{epoch}`` (from 1) and the names of the logs (``{val_loss:.4f}``)
        are filled in with ``str.format``, so each save can have a file of its own
    monitor : str, the metric watched (default ``"val_loss"``)
    mode : 'min', 'max' or 'auto' (max for a metric with 'acc' in its name, else min)
    save_best_only : bool; True: save only the epochs that beat the best value so far
        (the file then holds the best epoch's weights); False: save after every epoch

    Attributes
    ----------
    best, best_epoch : the best value seen and its epoch (from 0)
    last_saved : the name of the file last written, or None
    """

    main_only = True  # with fit(distributed=True), rank 0 alone writes the file

    def __init__(self, path, monitor="val_loss", mode="auto", save_best_only=True):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"`path` must be a str or a path-like object. Received: path={path!r}"
            )
        super().__init__(monitor, mode)
        self.path = os.fspath(path)
        self.save_best_only = V.flag(save_best_only, "save_best_only")
        self.model = None
        self.last_saved = None

    def on_epoch_end(self, epoch, logs):
        value = self._value(logs)
        improved = self._improves(value)
        if improved:
            self.best, self.best_epoch = value, epoch
        if improved or not self.save_best_only:
            path = self.path.format(epoch=epoch + 1, **logs) if "{" in self.path else self.path
            self.last_saved = self.model.save(path)
        return False

    def __repr__(self):
        return (
            f"ModelCheckpoint({self.path!r}, monitor={self.monitor!r}, mode={self.mode!r}, "
            f"save_best_only={self.save_best_only})"
        )
