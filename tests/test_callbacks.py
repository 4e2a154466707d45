"""`pycnn.callbacks` and fit's `callbacks=`: EarlyStopping on scripted metrics and in a
real fit, restore_best_weights bit for bit, ModelCheckpoint's file, the hooks' calls,
bad arguments."""

import numpy as np
import pytest

import pycnn
from pycnn import (
    BatchNorm1d,
    CrossEntropyLoss,
    Flatten,
    Linear,
    ReLU,
    Sequential,
    datasets,
    optim,
)
from pycnn.callbacks import Callback, EarlyStopping, ModelCheckpoint


class _FakeModel:
    """What the callbacks use of a model: `state_dict` (the arrays themselves) and
    `save`; its one weight is set by the fake loop to the epoch number."""

    def __init__(self):
        self.weight = np.zeros(3)
        self.saved = []

    def state_dict(self):
        return {"w": self.weight}

    def save(self, path):
        self.saved.append((path, self.weight.copy()))
        return path


def _fake_fit(callbacks, metrics, model=None):
    """fit's calling sequence over scripted per-epoch `metrics` (a dict of lists); the
    model's weight is the epoch number after each epoch. Returns the epochs run."""
    model = model or _FakeModel()
    for cb in callbacks:
        cb.on_train_begin(model)
    ran = 0
    for epoch in range(len(next(iter(metrics.values())))):
        model.weight[:] = epoch
        ran += 1
        logs = {key: values[epoch] for key, values in metrics.items()}
        if any([cb.on_epoch_end(epoch, logs) for cb in callbacks]):
            break
    for cb in callbacks:
        cb.on_train_end(model)
    return ran


VAL_LOSS = [1.0, 0.8, 0.85, 0.9, 0.7, 0.75, 0.76, 0.77, 0.6, 0.65]


# The rule, written out: an epoch improves when it beats the best so far by more than
# min_delta; training stops at the end of the (patience + 1)-th epoch in a row that does
# not. On VAL_LOSS the epochs that do not improve are 2, 3, 5, 6, 7, 9.
@pytest.mark.parametrize(
    "patience, stopped",
    [(0, 2), (1, 3), (2, 7), (3, None), (10, None)],
)
def test_early_stopping_stops_at_the_right_epoch(patience, stopped):
    es = EarlyStopping(patience=patience)
    ran = _fake_fit([es], {"val_loss": VAL_LOSS, "loss": [0.0] * len(VAL_LOSS)})
    assert es.stopped_epoch == stopped
    assert ran == (len(VAL_LOSS) if stopped is None else stopped + 1)
    best = min(VAL_LOSS[:ran])
    assert es.best == best and es.best_epoch == VAL_LOSS.index(best)


def test_early_stopping_min_delta_mode_and_nan():
    # min_delta 0.15: 0.8 improves on 1.0 (by 0.2), 0.7 does not improve on 0.8 (0.1)
    es = EarlyStopping(patience=1, min_delta=0.15)
    assert _fake_fit([es], {"val_loss": [1.0, 0.8, 0.7, 0.69, 0.1]}) == 4
    assert es.best == 0.8 and es.best_epoch == 1 and es.stopped_epoch == 3
    # 'auto' maximises accuracies: 0.5, 0.6 improve, then 0.55, 0.6 do not
    es = EarlyStopping("val_accuracy", patience=1)
    assert es.mode == "max"
    assert _fake_fit([es], {"val_accuracy": [0.5, 0.6, 0.55, 0.6, 0.9]}) == 4
    assert es.best == 0.6 and es.best_epoch == 1
    # an explicit mode wins over the name; NaN never improves
    es = EarlyStopping("val_accuracy", mode="min", patience=0)
    assert _fake_fit([es], {"val_accuracy": [0.5, 0.4, 0.45]}) == 3
    es = EarlyStopping(patience=0)
    assert _fake_fit([es], {"val_loss": [1.0, float("nan"), 0.5]}) == 2


def test_early_stopping_restores_the_best_epochs_weights_in_place():
    model = _FakeModel()
    weight = model.weight
    es = EarlyStopping(patience=2, restore_best_weights=True)
    _fake_fit([es], {"val_loss": VAL_LOSS}, model)  # stops after epoch 7, best 4
    assert model.weight is weight and np.array_equal(weight, np.full(3, 4.0))
    model = _FakeModel()
    _fake_fit([EarlyStopping(patience=2)], {"val_loss": VAL_LOSS}, model)
    assert np.array_equal(model.weight, np.full(3, 7.0))  # not restored by default


def test_model_checkpoint_saves_the_improving_epochs_or_all():
    model = _FakeModel()
    ck = ModelCheckpoint("best.npz")
    _fake_fit([ck], {"val_loss": VAL_LOSS}, model)
    improving = [0, 1, 4, 8]  # the epochs that beat every earlier one
    assert [float(w[0]) for _, w in model.saved] == improving
    assert ck.best_epoch == 8 and ck.last_saved == "best.npz"
    model = _FakeModel()
    ck = ModelCheckpoint("m-{epoch}-{val_loss:.2f}", save_best_only=False)
    _fake_fit([ck], {"val_loss": VAL_LOSS[:3]}, model)
    assert [p for p, _ in model.saved] == ["m-1-1.00", "m-2-0.80", "m-3-0.85"]


# --- in a real fit -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    x, y = datasets.load_digits()
    x_train, _, y_train, _ = datasets.train_test_split(x, y, 0.25, seed=0)
    return x_train[:300], y_train[:300]


def _tiny(seed=0):
    """flatten - linear(32) - batch norm - relu - linear(10): parameters and buffers."""
    rng = np.random.default_rng(seed)
    return Sequential(
        Flatten(), Linear(64, 32, rng=rng), BatchNorm1d(32), ReLU(), Linear(32, 10, rng=rng)
    )


class _Recorder(Callback):
    """Copies of the model's parameters and buffers after every epoch, and the calls."""

    def __init__(self):
        self.states, self.calls = [], []

    def on_train_begin(self, model):
        self.model = model
        self.calls.append("begin")

    def on_epoch_end(self, epoch, logs):
        self.calls.append(epoch)
        self.states.append({k: v.copy() for k, v in self.model.state_dict().items()})

    def on_train_end(self, model):
        self.calls.append("end")


def _fit(model, digits, callbacks, epochs=60):
    x, y = digits
    return model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=32,
        optimizer=optim.Adam(0.03),  # large: the validation loss soon turns up
        loss=CrossEntropyLoss(),
        validation_split=0.3,
        rng=0,
        progress=False,
        callbacks=callbacks,
    )


def _stop_epoch(values, patience):
    """The rule of EarlyStopping (mode min, min_delta 0), written out again."""
    best, wait = np.inf, 0
    for epoch, value in enumerate(values):
        if value < best:
            best, wait = value, 0
        else:
            wait += 1
            if wait > patience:
                return epoch
    return None


def _same_bits(a, b):
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a
    )


def test_early_stopping_in_a_real_fit_restores_the_best_weights_bit_for_bit(digits):
    recorder = _Recorder()
    es = EarlyStopping(patience=2, restore_best_weights=True)
    model = _tiny()
    history = _fit(model, digits, [recorder, es])
    ran = len(history["val_loss"])
    assert all(len(v) == ran for v in history.values()) and model.history is history
    # it stopped where the rule says, before the epochs ran out
    assert _stop_epoch(history["val_loss"], 2) == ran - 1 == es.stopped_epoch < 59
    best = int(np.argmin(history["val_loss"]))
    assert es.best_epoch == best < ran - 1 and es.best == history["val_loss"][best]
    assert recorder.calls == ["begin", *range(ran), "end"]
    assert _same_bits(model.state_dict(), recorder.states[best])
    assert not _same_bits(model.state_dict(), recorder.states[-1])


def test_model_checkpoint_in_a_real_fit_holds_the_best_epoch(digits, tmp_path):
    recorder = _Recorder()
    ck = ModelCheckpoint(tmp_path / "best", monitor="val_accuracy")
    history = _fit(_tiny(), digits, [recorder, ck], epochs=8)
    best = int(np.argmax(history["val_accuracy"]))  # the first of the best
    assert ck.best_epoch == best and ck.last_saved == str(tmp_path / "best.npz")
    restored = _tiny(seed=1).load(tmp_path / "best.npz")
    assert _same_bits(restored.state_dict(), recorder.states[best])


def test_a_callback_returning_true_stops_fit_after_that_epoch(digits):
    class StopAfterThird(_Recorder):
        def on_epoch_end(self, epoch, logs):
            super().on_epoch_end(epoch, logs)
            self.logs = logs
            return epoch == 2

    stopper, other = StopAfterThird(), _Recorder()
    history = _fit(_tiny(), digits, [stopper, other], epochs=10)
    assert len(history["loss"]) == 3
    assert stopper.calls == other.calls == ["begin", 0, 1, 2, "end"]  # both saw epoch 2
    assert stopper.logs == {k: v[-1] for k, v in history.items()}
    # an object with only some of the hooks is enough
    seen = []

    class OnlyEpochs:
        def on_epoch_end(self, epoch, logs):
            seen.append(epoch)

    _fit(_tiny(), digits, [OnlyEpochs()], epochs=2)
    assert seen == [0, 1]


def test_bad_arguments_name_what_was_received(digits):
    with pytest.raises(ValueError, match=r"`mode` must be 'auto', 'min' or 'max'"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match=r"`patience` must be >= 0. Received: patience=-1"):
        EarlyStopping(patience=-1)
    with pytest.raises(TypeError, match=r"`patience` must be an int"):
        EarlyStopping(patience=1.5)
    with pytest.raises(ValueError, match=r"`min_delta` must be >= 0"):
        EarlyStopping(min_delta=-0.1)
    with pytest.raises(TypeError, match=r"`restore_best_weights` must be a bool"):
        EarlyStopping(restore_best_weights="yes")
    with pytest.raises(TypeError, match=r"`monitor` must be a str"):
        ModelCheckpoint("m.npz", monitor=None)
    with pytest.raises(TypeError, match=r"`path` must be a str or a path-like"):
        ModelCheckpoint(3)
    with pytest.raises(TypeError, match=r"`callbacks` must be a list of callbacks"):
        _fit(_tiny(), digits, EarlyStopping(), epochs=1)
    with pytest.raises(TypeError, match=r"Received: callbacks\[1\]=3"):
        _fit(_tiny(), digits, [EarlyStopping(), 3], epochs=1)
    x, y = digits
    with pytest.raises(
        ValueError,
        match=r"`monitor` must name a metric fit reports \(loss, accuracy; val_ metrics "
        r"need validation_data or validation_split\). Received: monitor='val_loss'",
    ):
        _tiny().fit(
            x,
            y,
            epochs=1,
            batch_size=32,
            optimizer=optim.SGD(0.1),
            loss=CrossEntropyLoss(),
            progress=False,
            callbacks=[EarlyStopping()],
        )


def test_exported():
    assert pycnn.callbacks.EarlyStopping is EarlyStopping and "callbacks" in pycnn.__all__
    assert repr(EarlyStopping()) == (
        "EarlyStopping(monitor='val_loss', patience=0, min_delta=0, mode='min', "
        "restore_best_weights=False)"
    )
