"""Sequential: training, float32 end to end, compiled vs NumPy backends, evaluate and
predict, summary, save/load (and bad files), progress output, errors."""

import os
import re
import sys

import numpy as np
import pytest

import pycnn
from pycnn import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    MSELoss,
    ReLU,
    Sequential,
    Tanh,
    datasets,
    optim,
)


@pytest.fixture(scope="module")
def digits():
    """A fixed, stratified 400/150 subset of the real digits."""
    x, y = datasets.load_digits()
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, 0.25, seed=0)
    return x_train[:400], y_train[:400], x_test[:150], y_test[:150]


def small_cnn(backend="compiled", dtype=np.float32, seed=0, batchnorm=False, dropout=0.0):
    """conv - [bn] - relu - max pool - conv - relu - flatten - [dropout] - linear, for 8x8.

    A conv followed by batch norm has no bias: its gradient is zero up to rounding,
    which Adam would blow up into steps of size lr that differ between backends."""
    rng = np.random.default_rng(seed)
    layers = [
        Conv2d(1, 8, 3, padding=1, bias=not batchnorm, dtype=dtype, rng=rng, backend=backend)
    ]
    if batchnorm:
        layers.append(BatchNorm2d(8, dtype=dtype))
    layers += [
        ReLU(),
        MaxPool2d(2, backend=backend),
        Conv2d(8, 16, 3, padding=1, dtype=dtype, rng=rng, backend=backend),
        ReLU(),
        Flatten(),
    ]
    if dropout:
        layers.append(Dropout(dropout, rng=seed))
    layers.append(Linear(16 * 4 * 4, 10, dtype=dtype, rng=rng))
    return Sequential(*layers)


def test_fit_learns_the_digits_and_returns_history(digits):
    x_train, y_train, x_test, y_test = digits
    model = small_cnn()
    history = model.fit(
        x_train,
        y_train,
        epochs=4,
        batch_size=32,
        optimizer=optim.Adam(3e-3),
        loss=CrossEntropyLoss(),
        validation_data=(x_test, y_test),
        rng=0,
        progress=False,
    )
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in history.values()) and model.history is history
    assert history["loss"][-1] < history["loss"][0] / 3
    assert history["val_accuracy"][-1] > 0.8
    loss, acc = model.evaluate(x_test, y_test)
    assert loss == pytest.approx(history["val_loss"][-1]) and acc == history["val_accuracy"][-1]
    assert model.training  # fit and evaluate restore the mode


def test_same_seed_gives_identical_training(digits):
    x_train, y_train, *_ = digits
    runs = []
    for _ in range(2):
        model = small_cnn(seed=3, batchnorm=True, dropout=0.2)
        runs.append(
            model.fit(
                x_train[:200],
                y_train[:200],
                epochs=2,
                batch_size=25,
                optimizer=optim.SGD(0.05, momentum=0.9),
                loss=CrossEntropyLoss(),
                rng=5,
                progress=False,
            )
        )
        runs[-1]["pred"] = model.predict(x_train[:20])
    assert runs[0]["loss"] == runs[1]["loss"]
    np.testing.assert_array_equal(runs[0]["pred"], runs[1]["pred"])


def test_compiled_and_numpy_backends_give_the_same_loss_curve(digits):
    x_train, y_train, x_test, y_test = digits
    curves = {}
    for backend in ("compiled", "numpy"):
        model = small_cnn(backend, seed=1, batchnorm=True)
        history = model.fit(
            x_train[:240],
            y_train[:240],
            epochs=3,
            batch_size=32,
            optimizer=optim.Adam(3e-3),
            loss=CrossEntropyLoss(),
            validation_data=(x_test, y_test),
            rng=2,
            progress=False,
        )
        curves[backend] = history
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(
            curves["compiled"][key], curves["numpy"][key], rtol=2e-4, err_msg=key
        )
    assert curves["compiled"]["loss"][-1] < curves["compiled"]["loss"][0]


def test_float32_model_stays_float32_through_a_training_step(digits):
    x_train, y_train, *_ = digits
    model = small_cnn(batchnorm=True, dropout=0.1)
    model.layers.insert(-1, Tanh())
    model.layers.insert(-1, BatchNorm1d(256))
    model = Sequential(*model.layers)
    assert model.dtype == np.float32
    x = x_train[:16].astype(np.float64)  # converted once, by fit/predict
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4, l1=1e-5)
    loss = CrossEntropyLoss()
    # one step by hand, checking every activation and gradient
    a = np.ascontiguousarray(x, dtype=np.float32)
    for layer in model:
        a = layer(a)
        assert a.dtype == np.float32, repr(layer)
    value = loss(a, y_train[:16])
    assert value.dtype == np.float32
    g = loss.backward()
    for layer in reversed(model.layers):
        g = layer.backward(g)
        assert g.dtype == np.float32, repr(layer)
    opt.step()
    for key, param in model.named_parameters():
        assert param.dtype == param.grad.dtype == np.float32, key
        assert all(
            v.dtype == np.float32
            for v in opt.state[param].values()
            if isinstance(v, np.ndarray)
        ), key
    for key, value in model.state_dict().items():
        want = np.int64 if key.endswith("num_batches_tracked") else np.float32
        assert value.dtype == want, key
    # and through fit / evaluate / predict with float64 and uint8 inputs
    model.fit(
        x, y_train[:16], epochs=1, batch_size=8, optimizer=opt, loss=loss, rng=0, progress=False
    )
    for key, value in model.state_dict().items():
        want = np.int64 if key.endswith("num_batches_tracked") else np.float32
        assert value.dtype == want, key
    assert model.predict(x).dtype == np.float32
    assert model.predict((x * 16).astype(np.uint8)).dtype == np.float32


def test_float64_model(digits):
    x_train, y_train, *_ = digits
    model = small_cnn(dtype=np.float64)
    assert model.dtype == np.float64
    model.fit(
        x_train[:32],
        y_train[:32],
        1,
        16,
        optim.SGD(0.1),
        CrossEntropyLoss(),
        progress=False,
        rng=0,
    )
    assert all(v.dtype == np.float64 for v in model.state_dict().values())
    assert model.predict(x_train[:4]).dtype == np.float64


def test_predict_and_evaluate_run_in_eval_mode(digits):
    x_train, y_train, *_ = digits
    model = small_cnn(dropout=0.5, batchnorm=True)
    p1 = model.predict(x_train[:50], batch_size=7)
    p2 = model.predict(x_train[:50], batch_size=50)
    np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=1e-6)  # no dropout, running stats
    assert p1.shape == (50, 10) and model.training
    model.eval()
    np.testing.assert_allclose(model(x_train[:50]), p1, rtol=1e-6, atol=1e-6)
    loss, acc = model.evaluate(x_train[:50], y_train[:50], batch_size=16)
    assert not model.training  # the mode it was in
    ce = CrossEntropyLoss()(p2, y_train[:50])
    assert loss == pytest.approx(float(ce), rel=1e-5)
    assert acc == np.mean(p2.argmax(1) == y_train[:50])


def test_fit_with_one_hot_targets_mse_and_scheduler(digits):
    x_train, y_train, *_ = digits
    onehot = np.eye(10)[y_train[:64]]
    model = small_cnn()
    opt = optim.SGD(0.05)
    history = model.fit(
        x_train[:64],
        onehot,
        3,
        32,
        opt,
        MSELoss(),
        rng=0,
        progress=False,
        scheduler=optim.StepLR(opt, 1, gamma=0.5),
    )
    assert "accuracy" in history and opt.param_groups[0]["lr"] == 0.05 * 0.5**3
    regression = Sequential(Linear(3, 1, rng=0))
    xr = np.random.default_rng(0).standard_normal((40, 3))
    history = regression.fit(
        xr,
        xr @ [[1.0], [-2.0], [0.5]],
        30,
        8,
        optim.Adam(0.05),
        MSELoss(),
        rng=0,
        progress=False,
    )
    assert set(history) == {"loss"} and history["loss"][-1] < 0.05 * history["loss"][0]
    assert regression.evaluate(xr, xr @ [[1.0], [-2.0], [0.5]], loss=MSELoss())[1] is None


# --- save and load ------------------------------------------------------------------------


def _trained(digits, seed=0):
    x_train, y_train, *_ = digits
    model = small_cnn(seed=seed, batchnorm=True)
    model.fit(
        x_train[:64],
        y_train[:64],
        1,
        16,
        optim.Adam(1e-2),
        CrossEntropyLoss(),
        rng=0,
        progress=False,
    )
    return model


def test_save_load_round_trip_gives_identical_predictions(digits, tmp_path):
    model = _trained(digits)
    path = tmp_path / "model.npz"
    model.save(path)
    other = small_cnn(seed=9, batchnorm=True)
    x = digits[2][:30]
    assert not np.array_equal(other.predict(x), model.predict(x))
    assert other.load(path) is other
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    for key, value in model.state_dict().items():  # running stats included
        np.testing.assert_array_equal(other.state_dict()[key], value, err_msg=key)
    assert "1.running_mean" in model.state_dict()
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == sorted(model.state_dict())


def _write(path, state):
    np.savez(path, **state)
    return path


def test_load_rejects_mismatched_files_naming_the_key(digits, tmp_path):
    model = _trained(digits)
    state = {k: v.copy() for k, v in model.state_dict().items()}
    target = small_cnn(seed=9, batchnorm=True)
    before = {k: v.copy() for k, v in target.state_dict().items()}

    missing = dict(state)
    del missing["1.running_var"]
    cases = [
        (missing, r"missing key '1.running_var'"),
        (
            dict(state, **{"4.weight": state["4.weight"][:, :4]}),
            r"key '4.weight' has shape \(16, 4, 3, 3\), the model expects \(16, 8, 3, 3\)",
        ),
        (
            dict(state, **{"4.bias": state["4.bias"].astype(np.float64)}),
            r"key '4.bias' has dtype float64, the model expects float32",
        ),
        (dict(state, extra=np.zeros(2)), r"unexpected key 'extra'"),
    ]
    for i, (bad, match) in enumerate(cases):
        with pytest.raises(ValueError, match=match):
            target.load(_write(tmp_path / f"bad{i}.npz", bad))
    # a mismatched file changes nothing
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    # another architecture
    with pytest.raises(
        ValueError,
        match=r"key '0.weight' has shape \(8, 1, 3, 3\), the "
        r"model expects \(10, 64\)",
    ):
        Sequential(Linear(64, 10)).load(_write(tmp_path / "good.npz", state))
    with pytest.raises(ValueError, match=r"unexpected key '4.bias'"):
        Sequential(Conv2d(1, 8, 3, bias=False), BatchNorm2d(8)).load(tmp_path / "good.npz")


def test_load_rejects_files_that_are_not_models(digits, tmp_path):
    model = small_cnn()
    not_zip = tmp_path / "junk.npz"
    not_zip.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ValueError, match=r"`path` must be an .npz file written by"):
        model.load(not_zip)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match=r"`path` must end with one of .npz, .safetensors"):
        model.load(single)
    os.replace(single, tmp_path / "single.npz")  # a .npy named .npz
    with pytest.raises(ValueError, match=r"not a single array"):
        model.load(tmp_path / "single.npz")
    pickled = dict(model.state_dict())
    pickled["0.weight"] = np.array([{"a": 1}], dtype=object)
    with pytest.raises(ValueError, match=r"key '0.weight' cannot be read"):
        model.load(_write(tmp_path / "pickled.npz", pickled))
    truncated = tmp_path / "truncated.npz"
    model.save(tmp_path / "full.npz")
    truncated.write_bytes((tmp_path / "full.npz").read_bytes()[:200])
    with pytest.raises(ValueError):
        model.load(truncated)
    with pytest.raises(FileNotFoundError):
        model.load(tmp_path / "absent.npz")


# --- summary, repr, progress ------------------------------------------------------------


def test_summary_lists_shapes_and_parameter_counts(capsys):
    model = small_cnn(batchnorm=True)
    model.summary((1, 8, 8))
    out = capsys.readouterr().out
    assert "(None, 1, 8, 8)" in out and "(None, 16, 4, 4)" in out and "(None, 256)" in out
    assert "(None, 10)" in out
    total = 8 * 9 + 8 * 2 + 16 * 8 * 9 + 16 + 256 * 10 + 10
    assert model.num_parameters() == total
    assert f"total parameters: {total:,}" in out
    assert "buffers (running statistics): 16" in out
    assert "2,570" in out  # the Linear layer's count
    assert model.training


def test_repr_and_container_protocol():
    model = Sequential(Linear(4, 3), ReLU())
    assert repr(model) == "Sequential(\n  (0): Linear(4, 3)\n  (1): ReLU()\n)"
    assert len(model) == 2 and isinstance(model[0], Linear) and list(model)[1] is model[1]
    assert [k for k, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert [p.grad for p in model.parameters()] == [None, None]
    assert model.output_shape((4,)) == (None, 3)


def _fit_quietly(progress):
    model = Sequential(Flatten(), Linear(64, 10, rng=0))
    x, y = np.random.default_rng(0).random((20, 1, 8, 8)), np.arange(20) % 10
    model.fit(
        x,
        y,
        2,
        8,
        optim.SGD(0.1),
        CrossEntropyLoss(),
        validation_data=(x, y),
        rng=0,
        progress=progress,
    )


def test_progress_prints_one_line_per_epoch_when_not_a_terminal(capsys):
    _fit_quietly(True)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("epoch 1/2 - loss ")
    assert "- accuracy " in out[0] and "- val_loss " in out[0] and "val_accuracy" in out[0]
    _fit_quietly(False)
    assert capsys.readouterr().out == ""


def test_progress_uses_tqdm_on_a_terminal(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    _fit_quietly(True)
    captured = capsys.readouterr()
    assert captured.out == "" and "epoch 2/2" in captured.err and "batch" in captured.err


def test_progress_on_an_80_column_terminal_shows_the_validation_metrics(capsys, monkeypatch):
    """Issue 19: the bar's postfix was cut at 80 columns before val_loss/val_accuracy;
    each finished epoch now gets its own line that fits."""
    tqdm = pytest.importorskip("tqdm")

    class Tqdm80(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.update(ncols=80, dynamic_ncols=False)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tqdm, "tqdm", Tqdm80)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    _fit_quietly(True)
    lines = re.split(r"[\r\n]", capsys.readouterr().err)
    epochs = [line for line in lines if line.startswith("epoch 2/2 - ")]
    assert epochs, lines
    (line,) = epochs
    assert len(line) <= 80 and "val_loss " in line and "val_acc " in line


def test_progress_on_a_terminal_without_tqdm_prints_lines(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    _fit_quietly(True)
    captured = capsys.readouterr()
    assert captured.out.startswith("epoch 1/2 - loss ") and captured.err == ""


# --- errors ----------------------------------------------------------------------------------


def test_fit_validates_its_inputs():
    model = Sequential(Flatten(), Linear(64, 10, rng=0))
    x = np.zeros((6, 1, 8, 8), np.float32)
    ok = np.arange(6) % 10

    def fit(xx, yy, **kw):
        options = dict(
            epochs=1,
            batch_size=2,
            optimizer=optim.SGD(0.1),
            loss=CrossEntropyLoss(),
            progress=False,
        )
        return model.fit(xx, yy, **{**options, **kw})

    with pytest.raises(
        ValueError,
        match=r"`x` and `y` must have the same length. "
        r"Received: len\(x\)=6, y.shape=\(5,\)",
    ):
        fit(x, ok[:5])
    with pytest.raises(
        ValueError,
        match=r"`y` labels must be in \[0, 10\) for 10 classes. "
        r"Received: labels from 0 to 10",
    ):
        fit(x, np.array([0, 1, 2, 3, 4, 10]))
    with pytest.raises(TypeError, match=r"`y` must hold integer labels or float targets"):
        fit(x, np.array(list("abcdef")))
    # issue 19: float labels were blamed on the loss's `target`, not on `y`
    with pytest.raises(
        ValueError,
        match=r"`y` float targets must have the model's output shape \(N, 10\); "
        r"integer class labels need an integer dtype. "
        r"Received: y.shape=\(6,\), y.dtype=float64",
    ):
        fit(x, ok.astype(np.float64))
    with pytest.raises(ValueError, match=r"`y_val` float targets must have"):
        fit(x, ok, validation_data=(x, ok.astype(np.float32)))
    with pytest.raises(TypeError, match=r"`x` must be a real-valued array"):
        fit(np.array(["a"] * 6), ok)
    with pytest.raises(ValueError, match=r"`epochs` must be >= 1"):
        fit(x, ok, epochs=0)
    with pytest.raises(ValueError, match=r"`validation_data` must be a pair"):
        fit(x, ok, validation_data=x)
    with pytest.raises(ValueError, match=r"`x_val` and `y_val` must have the same length"):
        fit(x, ok, validation_data=(x, ok[:3]))
    with pytest.raises(ValueError, match=r"`x` must hold at least one sample"):
        fit(x[:0], ok[:0])
    with pytest.raises(
        ValueError, match=r"^layer 1 \(Linear\(64, 10\)\): expected input with in_features=64"
    ):
        fit(np.zeros((6, 1, 4, 4)), ok)


def test_sequential_rejects_bad_layers():
    with pytest.raises(TypeError, match=r"layer 1 of type function"):
        Sequential(ReLU(), lambda x: x)
    with pytest.raises(
        TypeError,
        match=r"`layers` must all hold parameters of one dtype. "
        r"Received: float32, float64",
    ):
        Sequential(Linear(2, 2), Linear(2, 2, dtype=np.float64))


def test_top_level_exports():
    assert pycnn.Sequential is Sequential and pycnn.datasets is datasets
    assert pycnn.optim is optim and pycnn.CrossEntropyLoss is CrossEntropyLoss


def test_fit_stops_on_a_diverging_loss_and_keeps_the_last_good_parameters(digits):
    x_train, y_train, *_ = digits
    x = x_train[:64].copy()
    x[40] = np.nan  # sample 40 lands in batch 3 (no shuffle)
    model = small_cnn(batchnorm=True)
    seen = {}

    class Recording(optim.SGD):
        def step(self, *args, **kwargs):
            super().step(*args, **kwargs)
            seen["after"] = {k: v.copy() for k, v in model.state_dict().items()}

    with pytest.raises(
        FloatingPointError,
        match=r"loss became nan at epoch 1, batch 3; "
        r"the parameters from before that batch",
    ):
        model.fit(
            x,
            y_train[:64],
            2,
            16,
            Recording(0.01),
            CrossEntropyLoss(),
            shuffle=False,
            progress=False,
        )
    # the state after batch 2's update, BatchNorm running statistics included
    for key, value in model.state_dict().items():
        assert np.isfinite(value).all(), key
        np.testing.assert_array_equal(value, seen["after"][key], err_msg=key)


def test_save_is_atomic(digits, tmp_path, monkeypatch):
    model = _trained(digits)
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()
    other = small_cnn(seed=5, batchnorm=True)

    def crash(file, **arrays):
        file.write(b"half an archive")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the previous model is intact
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left
    model.save(tmp_path / "plain")  # numpy's rule: .npz is appended
    assert (tmp_path / "plain.npz").exists()


# --- issue 12: a diverging batch leaves no trace -------------------------------------------


def _bits(arrays):
    """Bit-exact fingerprint of a dict of arrays (and Python numbers), NaN-safe."""
    return {
        k: (v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v
        for k, v in arrays.items()
    }


def _optimizer_bits(opt):
    return {key: _bits(entries) for key, entries in opt.state.items()}


def _issue_repro(n):
    r = np.random.default_rng(0)
    x = r.random((n, 1, 8, 8)).astype(np.float32) * 100
    y = r.integers(0, 10, n)
    model = Sequential(
        Conv2d(1, 4, 3, padding=1, rng=r), ReLU(), Flatten(), Linear(256, 10, rng=r)
    )
    return model, x, y


@pytest.mark.parametrize("n", [64, 256], ids=["one-batch", "four-batches"])
def test_fit_restores_the_parameters_when_an_update_makes_them_non_finite(n):
    # issue 12: the loss of the step is finite, the update is not; the snapshot used to
    # be taken after the previous step, so the last step's update stayed in place
    model, x, y = _issue_repro(n)
    before = _bits(model.state_dict())
    opt = optim.SGD(1e38)
    with (
        pytest.warns(RuntimeWarning, match="overflow"),
        pytest.raises(
            FloatingPointError,
            match=r"fit stopped: the update made [\d,]+ values \([\d,]+ in "
            r"'0.weight', .*\) non-finite \(the loss was [\d.]+\) at "
            r"epoch 1, batch 1; the parameters from before that batch "
            r"were restored",
        ),
    ):
        model.fit(x, y, 1, 64, opt, CrossEntropyLoss(), progress=False, shuffle=False)
    assert _bits(model.state_dict()) == before
    assert opt.state == {}  # the step counts of the bad step are gone


class _Blowup:
    """Makes batch `bad` (1-based) diverge: a NaN sample (the loss is NaN) or, after a
    finite loss, an optimizer step of 1e39 (the update is inf). Records the model's and
    the optimizer's state after every good step: the state before the next batch."""

    def __init__(self, model, opt, how, bad):
        self.model, self.opt, self.how, self.bad = model, opt, how, bad
        self.steps, self.after = 0, []
        original = opt.step

        def step(*args, **kwargs):
            self.steps += 1
            if self.how == "update" and self.steps == self.bad:
                opt.param_groups[0]["lr"] = 1e39
            count = original(*args, **kwargs)
            self.after.append(
                (
                    _bits(model.state_dict()),
                    _optimizer_bits(opt),
                    {k: {n: id(v) for n, v in e.items()} for k, e in opt.state.items()},
                )
            )
            return count

        opt.step = step


@pytest.mark.parametrize("how", ["loss", "update"])
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda: optim.SGD(0.01, momentum=0.9),
        lambda: optim.Adam(1e-3),
        lambda: optim.NAdam(lr=1e-3),  # a float in the state: the running product
        lambda: optim.Eve(lr=1e-3),  # floats fed back from the loss
    ],
    ids=["sgd-momentum", "adam", "nadam", "eve"],
)
@pytest.mark.parametrize("bad", [1, 3])
def test_fit_restores_parameters_statistics_and_optimizer_state(digits, how, make_opt, bad):
    x_train, y_train, *_ = digits
    x = x_train[:64].copy()
    model = small_cnn(batchnorm=True)
    opt = make_opt()
    blowup = _Blowup(model, opt, how, bad)
    if how == "loss":
        x[16 * (bad - 1) + 5] = np.nan  # a sample of batch `bad`
    start = (_bits(model.state_dict()), {}, {})
    message = (
        r"the loss became nan"
        if how == "loss"
        else r"the update made .* non-finite \(the loss was [\d.]+\)"
    )
    with (
        np.errstate(all="ignore"),
        pytest.raises(
            FloatingPointError,
            match=message + rf" at epoch 1, batch {bad}; the parameters"
            r" from before that batch were restored, "
            r"with the buffers \(batch-norm statistics\)"
            r" and the optimizer's state",
        ),
    ):
        model.fit(
            x, y_train[:64], 2, 16, opt, CrossEntropyLoss(), shuffle=False, progress=False
        )
    state, opt_state, ids = blowup.after[bad - 2] if bad > 1 else start
    got = _bits(model.state_dict())
    assert got.keys() == state.keys() and "1.running_var" in got
    for key in state:  # bit for bit, stats included
        assert got[key] == state[key], key
    assert _optimizer_bits(opt) == opt_state  # buffers, moments, steps
    # the optimizer keeps the very arrays it had (copied back, not replaced)
    assert {k: {n: id(v) for n, v in e.items()} for k, e in opt.state.items()} == ids
    assert all(np.isfinite(v).all() for v in model.state_dict().values())


# --- validation_split ----------------------------------------------------------------------


def _recording_split(model, x, y, **kw):
    """Fit `model` on samples whose first feature is their index; return the indices it
    trained on and those it validated on (with the labels evaluate received)."""
    trained, validated = [], []
    forward, evaluate = model.forward, model.evaluate

    def recording_forward(xb):
        if model.training:
            trained.append(xb[:, 0].copy())
        return forward(xb)

    def recording_evaluate(xv, yv, **kws):
        validated.append((xv[:, 0].copy(), np.array(yv)))
        return evaluate(xv, yv, **kws)

    model.forward, model.evaluate = recording_forward, recording_evaluate
    options = dict(epochs=2, batch_size=16, optimizer=optim.SGD(0.01), progress=False)
    history = model.fit(x, y, **{**options, **kw})
    fit_ids = np.sort(np.concatenate(trained[: len(trained) // 2])).astype(np.int64)
    val_ids = validated[0][0].astype(np.int64)
    assert all(np.array_equal(v[0], validated[0][0]) for v in validated)  # every epoch
    return history, fit_ids, val_ids, validated[0][1]


def _indexed(n, features=4, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, features)).astype(np.float32)
    x[:, 0] = np.arange(n)  # exact in float32
    return x


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.35])
def test_validation_split_is_stratified_disjoint_and_seeded(fraction):
    counts = [40, 23, 17, 9, 3]  # unbalanced classes, interleaved
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    y = y[np.random.default_rng(1).permutation(len(y))]
    x = _indexed(len(y))
    x_before, y_before = x.copy(), y.copy()
    model = Sequential(Linear(4, 5, rng=0))
    history, fit_ids, val_ids, y_val = _recording_split(
        model, x, y, loss=CrossEntropyLoss(), validation_split=fraction, rng=3
    )
    n = len(y)
    assert len(val_ids) == int(np.ceil(fraction * n))
    assert len(set(val_ids)) == len(val_ids) and set(val_ids).isdisjoint(fit_ids)
    assert np.array_equal(np.sort(np.concatenate([fit_ids, val_ids])), np.arange(n))
    assert np.array_equal(y_val, y[val_ids])
    # each class's count in the validation set is within one sample of its share
    share = fraction * np.bincount(y, minlength=5)
    assert np.all(np.abs(np.bincount(y_val, minlength=5) - share) < 1)
    assert np.array_equal(x, x_before) and np.array_equal(y, y_before)  # not modified
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in history.values())
    # the history's validation metrics are those of the held-out samples
    loss, acc = model.evaluate(x[val_ids], y[val_ids], loss=CrossEntropyLoss())
    assert history["val_loss"][-1] == pytest.approx(loss) and history["val_accuracy"][-1] == acc
    # the same rng draws the same split; another draws another
    again = _recording_split(
        Sequential(Linear(4, 5, rng=0)),
        x,
        y,
        loss=CrossEntropyLoss(),
        validation_split=fraction,
        rng=3,
    )
    assert np.array_equal(again[2], val_ids)
    other = _recording_split(
        Sequential(Linear(4, 5, rng=0)),
        x,
        y,
        loss=CrossEntropyLoss(),
        validation_split=fraction,
        rng=4,
    )
    assert not np.array_equal(other[2], val_ids)


def test_validation_split_of_float_targets_is_random():
    n = 50
    x = _indexed(n)
    y = np.random.default_rng(2).standard_normal((n, 3)).astype(np.float32)
    y_before = y.copy()
    model = Sequential(Linear(4, 3, rng=0))
    history, fit_ids, val_ids, y_val = _recording_split(
        model, x, y, loss=MSELoss(), validation_split=0.3, rng=0
    )
    assert len(val_ids) == 15 and set(val_ids).isdisjoint(fit_ids)
    assert np.array_equal(np.sort(np.concatenate([fit_ids, val_ids])), np.arange(n))
    assert np.array_equal(y_val, y[val_ids]) and np.array_equal(y, y_before)
    assert len(history["val_loss"]) == 2


def test_validation_split_rejects_bad_values():
    model = Sequential(Flatten(), Linear(64, 10, rng=0))
    x = np.zeros((6, 1, 8, 8), np.float32)
    y = np.arange(6)
    kw = dict(epochs=1, batch_size=2, optimizer=optim.SGD(0.1), loss=CrossEntropyLoss())
    with pytest.raises(
        ValueError, match=r"`validation_data` and `validation_split` cannot both be given"
    ):
        model.fit(x, y, validation_data=(x, y), validation_split=0.2, **kw)
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(
            ValueError,
            match=rf"`validation_split` must be in \(0, 1\). Received: validation_split={bad}",
        ):
            model.fit(x, y, validation_split=bad, **kw)
    with pytest.raises(TypeError, match=r"`validation_split` must be a real number"):
        model.fit(x, y, validation_split="0.1", **kw)
    with pytest.raises(
        ValueError, match=r"`validation_split` must leave at least one training sample"
    ):
        model.fit(x[:1], y[:1], validation_split=0.5, **kw)


def test_fit_takes_labels_equal_to_the_loss_ignore_index():
    x, y = datasets.load_digits()
    x, y = x[:64], y[:64].copy()
    y[::4] = -1  # ignored by the loss, so fit must not refuse them
    model = Sequential(Flatten(), Linear(64, 10, rng=0))
    loss = CrossEntropyLoss(ignore_index=-1)
    history = model.fit(
        x, y, epochs=2, batch_size=16, optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=loss, rng=0, progress=False,
    )  # fmt: skip
    assert np.isfinite(history["loss"]).all()
    with pytest.raises(ValueError, match=r"`y` labels must be in \[0, 10\)"):
        model.fit(
            x, y, epochs=1, batch_size=16, optimizer=optim.SGD(model.parameters(), lr=0.1),
            loss=CrossEntropyLoss(), rng=0, progress=False,
        )  # fmt: skip


def test_fit_refuses_a_loss_that_does_not_reduce():
    x, y = datasets.load_digits()
    model = Sequential(Flatten(), Linear(64, 10, rng=0))
    with pytest.raises(ValueError, match=r"reduction 'mean' or 'sum'.*reduction='none'"):
        model.fit(
            x[:8], y[:8], epochs=1, batch_size=4, optimizer=optim.SGD(lr=0.1),
            loss=CrossEntropyLoss(reduction="none"), progress=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"reduction='none'"):
        model.evaluate(x[:8], y[:8], loss=CrossEntropyLoss(reduction="none"))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("backend", ["compiled", "numpy"])
def test_backward_without_input_grad_gives_the_same_parameter_gradients(bias, backend):
    # input_grad=False lets the first convolution skip its input gradient; every
    # parameter gradient must equal that of a full backward, bit for bit
    def build():
        rng = np.random.default_rng(0)
        return pycnn.Sequential(
            pycnn.Conv2d(2, 4, 3, padding=1, bias=bias, rng=rng, backend=backend),
            pycnn.ReLU(),
            pycnn.Sequential(pycnn.Conv2d(4, 3, 3, bias=bias, rng=rng, backend=backend)),
            pycnn.Flatten(),
            pycnn.Linear(3 * 4 * 4, 5, rng=rng),
        )

    x = np.random.default_rng(1).standard_normal((3, 2, 6, 6)).astype(np.float32)
    grad = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    full, params_only = build(), build()
    full.forward(x)
    grad_x = full.backward(grad)
    params_only.forward(x)
    assert params_only.backward(grad, input_grad=False) is None
    assert grad_x.shape == x.shape
    for (key, a), (_, b) in zip(full.named_parameters(), params_only.named_parameters()):
        np.testing.assert_array_equal(a.grad, b.grad, err_msg=key)
    # a nested Sequential first: the flag reaches its first layer
    nested = pycnn.Sequential(build())
    nested.forward(x)
    assert nested.backward(grad, input_grad=False) is None
    for (key, a), (_, b) in zip(full.named_parameters(), nested.named_parameters()):
        np.testing.assert_array_equal(a.grad, b.grad, err_msg=key)
