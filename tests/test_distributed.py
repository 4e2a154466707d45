"""pycnn.distributed on real MPI ranks: `mpiexec -n 2 python script.py`, one process
per rank over loopback. Skipped without mpi4py or an `mpiexec` beside the Python
running the tests (``pip install mpi4py mpich`` provides both)."""

import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import run_python

pytest.importorskip("mpi4py")


def _mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


def run_ranks(tmp_path, source, n=2, timeout=120, model=False):
    """Run `source` on `n` ranks from `tmp_path`, on the pycnn under test (installed or
    built in place: its folder goes first on PYTHONPATH, as `conftest.run_python` does).
    -> (CompletedProcess, seconds)"""
    import pycnn

    script = tmp_path / "script.py"
    script.write_text((MODEL if model else "") + textwrap.dedent(source))
    env = dict(os.environ)
    home = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([home] + [p for p in [env.get("PYTHONPATH")] if p])
    start = time.monotonic()
    result = subprocess.run(
        [MPIEXEC, "-n", str(n), sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.monotonic() - start


MODEL = """
import numpy as np
import pycnn

def make_model(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return pycnn.Sequential(
        pycnn.Conv2d(1, 4, 3, padding=1, rng=rng, dtype=dtype),
        pycnn.ReLU(),
        pycnn.MaxPool2d(2),
        pycnn.Flatten(),
        pycnn.Linear(4 * 4 * 4, 3, rng=rng, dtype=dtype),
    )

def sgd_step(model, lr):
    for _, layer in model.named_layers():
        for name, p in layer.params.items():
            p -= lr * layer.grads[name]
        layer.grads.clear()
"""


TOL = {"float64": dict(rtol=1e-12, atol=1e-14), "float32": dict(rtol=1e-5, atol=1e-7)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_ranks_take_the_full_batch_step(tmp_path, dtype):
    # each rank trains on half of every global batch; after 5 steps the averaged
    # gradients must give the parameters of one process training on the whole batch
    source = """
    from pycnn import distributed as dist
    comm = dist.init()
    r, size = dist.rank(), dist.world_size()
    rng = np.random.default_rng(123)
    x = rng.standard_normal((5, 8, 1, 8, 8)).astype(DTYPE)  # 5 global batches of 8
    y = rng.integers(0, 3, (5, 8))
    model = dist.DistributedDataParallel(make_model(r, DTYPE))  # rank 0's weights win
    loss = pycnn.CrossEntropyLoss()
    share = 8 // size
    for xb, yb in zip(x, y):
        part = slice(r * share, (r + 1) * share)
        loss(model(xb[part]), yb[part])
        model.backward(loss.backward())
        sgd_step(model, 0.1)
    state = {k: v.copy() for k, v in model.module.state_dict().items()}
    np.savez(f"rank{r}.npz", **state)
    if r == 0:
        alone = make_model(0, DTYPE)
        for xb, yb in zip(x, y):
            loss(alone(xb), yb)
            alone.backward(loss.backward())
            sgd_step(alone, 0.1)
        np.savez("alone.npz", **alone.state_dict())
    """.replace("DTYPE", f"np.{dtype}")
    result, _ = run_ranks(tmp_path, source, model=True)
    assert result.returncode == 0, result.stderr
    rank0, rank1, alone = (
        np.load(tmp_path / f) for f in ("rank0.npz", "rank1.npz", "alone.npz")
    )
    assert (
        sorted(rank0.files)
        == sorted(alone.files)
        == ["0.bias", "0.weight", "4.bias", "4.weight"]
    )
    for key in alone.files:
        assert rank0[key].dtype == dtype
        assert np.array_equal(rank0[key], rank1[key]), key  # the copies never drift
        np.testing.assert_allclose(rank0[key], alone[key], **TOL[dtype])
        assert not np.allclose(alone[key], make_state_at_seed0()[key])  # it trained


def test_accumulated_gradients_in_place_take_the_full_batch_step(tmp_path):
    # gradients zeroed in place (`zero_grad(set_to_none=False)`) and accumulated over two
    # backward calls before one average: after the first step they live in DDP's flat
    # buffer, so this holds the reuse of that buffer to one process's arithmetic
    source = """
    from pycnn import distributed as dist
    comm = dist.init()
    r, size = dist.rank(), dist.world_size()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 8, 1, 8, 8))
    y = rng.integers(0, 3, (4, 8))
    loss = pycnn.CrossEntropyLoss()

    def train(model, module, share, parts):
        opt = pycnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for xb, yb in zip(x, y):
            xb, yb = xb[share], yb[share]
            opt.zero_grad(set_to_none=False)
            for part in np.array_split(np.arange(len(yb)), parts):
                loss(module(xb[part]), yb[part])
                module.backward(loss.backward())
            if module is not model:
                model.allreduce_gradients()
            opt.step()
        return {k: v.copy() for k, v in model.state_dict().items()}

    model = dist.DistributedDataParallel(make_model(r))
    share = slice(r * 4, (r + 1) * 4)
    np.savez(f"rank{r}.npz", **train(model, model.module, share, 2))
    if r == 0:
        alone = make_model(0)
        np.savez("alone.npz", **train(alone, alone, slice(None), 2))
    """
    result, _ = run_ranks(tmp_path, source, model=True)
    assert result.returncode == 0, result.stderr
    rank0, rank1, alone = (
        np.load(tmp_path / f) for f in ("rank0.npz", "rank1.npz", "alone.npz")
    )
    start = make_state_at_seed0()
    for key in alone.files:
        mine = "module." + key
        assert np.array_equal(rank0[mine], rank1[mine]), key
        np.testing.assert_allclose(rank0[mine], alone[key], **TOL["float64"])
        assert not np.allclose(alone[key], start[key])  # it trained


def make_state_at_seed0():
    namespace = {}
    exec(textwrap.dedent(MODEL), namespace)
    return namespace["make_model"](0).state_dict()


def test_rank_with_a_different_model_is_refused_on_every_rank(tmp_path):
    source = """
    from pycnn import distributed as dist
    dist.init()
    r = dist.rank()
    model = make_model(0) if r == 0 else make_model(0, dtype=np.float32)
    try:
        dist.DistributedDataParallel(model)
    except ValueError as err:
        with open(f"rank{r}.txt", "w") as f:  # not stdout: mpiexec interleaves ranks
            f.write(f"rank {r} refused: {err}")
    """
    result, _ = run_ranks(tmp_path, source, model=True)
    assert result.returncode == 0, result.stderr
    lines = [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)]
    for r, line in enumerate(lines):
        assert line.startswith(f"rank {r} refused") and line.endswith(f"this is rank {r})")
        assert "rank 1 differs from rank 0" in line
        assert "'0.weight'" in line and "float32" in line and "float64" in line


def test_buffers_and_parameters_start_from_rank_0(tmp_path):
    source = """
    import numpy as np
    import pycnn
    from pycnn import distributed as dist
    dist.init()
    r = dist.rank()
    model = pycnn.Sequential(pycnn.Conv2d(2, 3, 3, rng=r), pycnn.BatchNorm2d(3))
    model[1].buffers["running_mean"][:] = r + 1.0
    ddp = dist.DistributedDataParallel(model)
    w = ddp.module[0].params["weight"]
    first = pycnn.Conv2d(2, 3, 3, rng=0).params["weight"]
    with open(f"rank{r}.txt", "w") as f:
        f.write(f"{np.array_equal(w, first)} {ddp.module[1].buffers['running_mean'][0]}")
    """
    result, _ = run_ranks(tmp_path, source)
    assert result.returncode == 0, result.stderr
    for r in range(2):
        assert (tmp_path / f"rank{r}.txt").read_text() == "True 1.0"


def test_an_error_on_one_rank_ends_every_rank(tmp_path):
    source = """
    import time
    from pycnn import distributed as dist
    comm = dist.init()
    if dist.rank() == 1:
        time.sleep(0.5)
        raise RuntimeError("rank one broke")
    dist.barrier()  # rank 0 would wait here forever without the abort
    print("rank 0 passed the barrier")
    """
    result, seconds = run_ranks(tmp_path, source, timeout=60)
    assert result.returncode != 0
    assert seconds < 30
    assert result.stderr.count("RuntimeError: rank one broke") == 1
    assert "rank 1 failed" in result.stderr
    assert "passed the barrier" not in result.stdout


def test_import_pycnn_never_imports_mpi(tmp_path):
    result = run_python(
        ["-c", "import sys, pycnn, pycnn.distributed; print('mpi4py' in sys.modules)"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_ddp_refuses_what_is_not_a_layer(tmp_path):
    source = """
    from pycnn import distributed as dist
    dist.init()
    try:
        dist.DistributedDataParallel([1, 2])
    except TypeError as err:
        print(err)
    """
    result, _ = run_ranks(tmp_path, source, n=1)
    assert result.returncode == 0, result.stderr
    assert (
        "`module` must be a pycnn layer or model. Received: module of type list"
        in result.stdout
    )


def test_missing_mpi4py_names_the_install(tmp_path, monkeypatch):
    import pycnn.distributed as dist

    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match="pip install mpi4py mpich"):
        dist._mpi()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sync_batchnorm_takes_the_full_batch_step(tmp_path, dtype):
    # a conv + batch norm model: with SyncBatchNorm, two ranks on halves of each global
    # batch equal one process with BatchNorm2d on the whole batch, running stats included
    source = """
    import numpy as np
    import pycnn
    from pycnn import distributed as dist

    def make_model():
        rng = np.random.default_rng(0)
        return pycnn.Sequential(
            pycnn.Conv2d(2, 3, 3, padding=1, rng=rng, dtype=DTYPE),
            pycnn.BatchNorm2d(3, dtype=DTYPE),
            pycnn.ReLU(),
            pycnn.Flatten(),
            pycnn.Linear(3 * 5 * 5, 4, rng=rng, dtype=DTYPE),
        )

    def sgd_step(model):
        for _, layer in model.named_layers():
            for name, p in layer.params.items():
                p -= 0.1 * layer.grads[name]
            layer.grads.clear()

    dist.init()
    r, size = dist.rank(), dist.world_size()
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((5, 6, 2, 5, 5)) * 3 + 1).astype(DTYPE)
    y = rng.integers(0, 4, (5, 6))
    model = dist.DistributedDataParallel(dist.convert_sync_batchnorm(make_model()))
    assert type(model.module[1]).__name__ == "SyncBatchNorm"
    loss = pycnn.CrossEntropyLoss()
    part = [slice(0, 2), slice(2, 6)][r]  # unequal shares: 2 and 4 of 6
    for xb, yb in zip(x, y):
        out = model(xb[part])
        loss(out, yb[part])
        # each rank's mean loss, weighted to its share of the global batch mean
        share = (part.stop - part.start) / 6
        model.backward(loss.backward() * share * size)
        sgd_step(model)
    np.savez(f"rank{r}.npz", **model.module.state_dict())
    if r == 0:
        alone = make_model()
        for xb, yb in zip(x, y):
            loss(alone(xb), yb)
            alone.backward(loss.backward())
            sgd_step(alone)
        np.savez("alone.npz", **alone.state_dict())
    """
    result, _ = run_ranks(tmp_path, source.replace("DTYPE", f"np.{dtype}"))
    assert result.returncode == 0, result.stderr
    rank0, rank1, alone = (
        np.load(tmp_path / f) for f in ("rank0.npz", "rank1.npz", "alone.npz")
    )
    assert "1.running_var" in alone.files
    for key in alone.files:
        assert np.array_equal(rank0[key], rank1[key]), key
        np.testing.assert_allclose(rank0[key], alone[key], **TOL[dtype], err_msg=key)


def test_fit_distributed_equals_one_process(tmp_path):
    # fit(distributed=True) on two ranks: the same parameters and history as fit on one
    # process with the same seed (float64), batches of 7 split 4 + 3, a last batch of 1
    # (rank 1 has no share of it). The dropout layers drop what one process drops: each
    # rank takes its rows of the global batch's mask, and rank 1's rngs skip that draw
    # for the last batch
    source = """
    import json
    import numpy as np
    import pycnn
    from pycnn import datasets, distributed as dist, optim
    from pycnn.callbacks import ModelCheckpoint

    def make_model():
        rng = np.random.default_rng(0)
        return pycnn.Sequential(
            pycnn.Conv2d(1, 4, 3, padding=1, rng=rng, dtype=np.float64),
            pycnn.ReLU(),
            pycnn.MaxPool2d(2),
            pycnn.Dropout2d(0.2, rng=1),
            pycnn.Flatten(),
            pycnn.Dropout(0.2, rng=2),
            pycnn.Linear(4 * 4 * 4, 10, rng=rng, dtype=np.float64),
        )

    def train(model, **kwargs):
        forward = model.forward  # count the samples this process computes
        model.forward = lambda xb: (seen.append(len(xb)), forward(xb))[1]
        return model.fit(
            x, y, epochs=3, batch_size=7, optimizer=optim.SGD(lr=0.05, momentum=0.5),
            loss=pycnn.CrossEntropyLoss(), validation_split=0.2, rng=5, **kwargs,
        )

    x, y = datasets.load_digits()
    x, y = x[:115].astype(np.float64), y[:115]
    dist.init()
    r = dist.rank()
    model, seen = make_model(), []
    history = train(model, distributed=True, callbacks=[ModelCheckpoint("best.npz")])
    np.savez(f"rank{r}.npz", **model.state_dict())
    with open(f"history{r}.json", "w") as f:
        json.dump({"history": history, "seen": sum(seen)}, f)
    if r == 0:
        alone, seen = make_model(), []
        with open("history_alone.json", "w") as f:
            json.dump({"history": train(alone, progress=False), "seen": sum(seen)}, f)
        np.savez("alone.npz", **alone.state_dict())
    """
    result, _ = run_ranks(tmp_path, source)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("epoch 3/3") == 1  # rank 0 alone shows progress
    assert (tmp_path / "best.npz").exists()
    rank0, rank1, alone = (
        np.load(tmp_path / f) for f in ("rank0.npz", "rank1.npz", "alone.npz")
    )
    for key in alone.files:
        assert np.array_equal(rank0[key], rank1[key]), key
        np.testing.assert_allclose(rank0[key], alone[key], rtol=1e-12, atol=1e-14, err_msg=key)
    import json

    (h0, seen0), (h1, seen1), (h_alone, seen_alone) = (
        tuple(json.loads((tmp_path / f).read_text()).values())
        for f in ("history0.json", "history1.json", "history_alone.json")
    )
    # each rank computed about half of the samples one process computes (training and
    # validation shares)
    assert seen0 + seen1 == seen_alone
    assert 0.4 * seen_alone < seen1 <= seen0 < 0.6 * seen_alone
    assert h0 == h1
    assert sorted(h0) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for key in h_alone:
        np.testing.assert_allclose(h0[key], h_alone[key], rtol=1e-12, err_msg=key)
    assert h_alone["loss"][-1] < h_alone["loss"][0] - 0.1  # it learns: the masks matter


def test_fit_with_batch_norm_and_an_empty_share(tmp_path):
    # 92 training samples in batches of 7 end with a batch of 1, which rank 1 has no
    # share of: it still runs the forward and backward (empty), so the buffer broadcast
    # and SyncBatchNorm's collectives meet on every rank. SyncBatchNorm equals one
    # process with BatchNorm2d; plain batch norm trains, the ranks' parameters equal
    source = """
    import numpy as np
    import pycnn
    from pycnn import datasets, distributed as dist, optim

    def make_model():
        rng = np.random.default_rng(0)
        return pycnn.Sequential(
            pycnn.Conv2d(1, 4, 3, padding=1, rng=rng, dtype=np.float64),
            pycnn.BatchNorm2d(4, dtype=np.float64),
            pycnn.ReLU(),
            pycnn.MaxPool2d(2),
            pycnn.Flatten(),
            pycnn.Linear(4 * 4 * 4, 10, rng=rng, dtype=np.float64),
        )

    def train(model, **kwargs):
        model.fit(
            x, y, epochs=2, batch_size=7, optimizer=optim.SGD(lr=0.05, momentum=0.5),
            loss=pycnn.CrossEntropyLoss(), validation_split=0.2, rng=5, **kwargs,
        )
        return {k: v.copy() for k, v in model.state_dict().items()}

    x, y = datasets.load_digits()
    x, y = x[:115].astype(np.float64), y[:115]
    dist.init()
    r = dist.rank()
    synced = dist.convert_sync_batchnorm(make_model())
    np.savez(f"sync{r}.npz", **train(synced, distributed=True))
    np.savez(f"plain{r}.npz", **train(make_model(), distributed=True))
    if r == 0:
        np.savez("alone.npz", **train(make_model(), progress=False))
    """
    result, _ = run_ranks(tmp_path, source)
    assert result.returncode == 0, result.stderr
    sync0, sync1, plain0, plain1, alone = (
        np.load(tmp_path / f"{f}.npz") for f in ("sync0", "sync1", "plain0", "plain1", "alone")
    )
    assert "1.running_mean" in alone.files and int(alone["1.num_batches_tracked"]) == 2 * 14
    for key in alone.files:
        assert np.array_equal(sync0[key], sync1[key]), key
        np.testing.assert_allclose(sync0[key], alone[key], rtol=1e-12, atol=1e-14, err_msg=key)
        assert np.array_equal(plain0[key], plain1[key]), key  # fit ends on rank 0's state
    assert not np.allclose(plain0["0.weight"], alone["0.weight"], rtol=1e-6)


def test_fit_weighted_loss_regression_and_tiny_splits_equal_one_process(tmp_path):
    # a class-weighted cross-entropy with ignored labels divides by the weights of the
    # counted labels: the ranks pool those divisors, so the step is one process's (a rank
    # whose labels all weigh 0 too). A regression (no accuracy) with fewer validation
    # samples than ranks, one with a single training sample (rank 1 never has one) and
    # a loss of the user's (divided by the sample count) reduce their metrics alike
    source = """
    import json
    import numpy as np
    import pycnn
    from pycnn import datasets, distributed as dist, optim

    def classifier():
        rng = np.random.default_rng(0)
        return pycnn.Sequential(
            pycnn.Flatten(), pycnn.Linear(64, 10, rng=rng, dtype=np.float64)
        )

    def regressor():
        return pycnn.Sequential(pycnn.Linear(2, 1, rng=1, dtype=np.float64))

    x, y = datasets.load_digits()
    x, y = x[:60].astype(np.float64), y[:60].copy()
    y[::4] = -100  # ignored
    weight = np.linspace(0.5, 2.0, 10)
    rx = np.random.default_rng(2).normal(size=(11, 2))
    ry = rx.sum(axis=1, keepdims=True)

    class SquaredError:  # a loss of the user's: no `_denom`, the sample count divides
        reduction = "mean"

        def __call__(self, out, target):
            self.diff = out - target
            return float((self.diff**2).sum() / len(out))

        def backward(self):
            return 2 * self.diff / len(self.diff)

    zero_weight = (x[:8], np.array([0, 1] * 4))  # rank 0's share of a batch weighs 0

    def runs(distributed):
        out = {}
        for name, make, data, split, loss, shuffle in [
            ("weighted", classifier, (x, y), 0.2, pycnn.CrossEntropyLoss(weight=weight), True),
            ("zero_weight", classifier, zero_weight, None,
             pycnn.CrossEntropyLoss(weight=np.r_[0.0, np.ones(9)]), False),
            ("regression", regressor, (rx, ry), 0.1, pycnn.MSELoss(), True),
            ("one_sample", regressor, (rx[:2], ry[:2]), 0.5, pycnn.MSELoss(), True),
            ("own_loss", regressor, (rx, ry), 0.1, SquaredError(), True),
        ]:
            model = make()
            history = model.fit(
                *data, epochs=3, batch_size=7 if shuffle else 4, optimizer=optim.SGD(lr=0.05),
                loss=loss, validation_split=split, rng=3, progress=False, shuffle=shuffle,
                distributed=distributed,
            )
            out[name] = {"history": history, "state": {
                k: v.tolist() for k, v in model.state_dict().items()}}
        return out

    dist.init()
    r = dist.rank()
    with open(f"ranks{r}.json", "w") as f:
        json.dump(runs(True), f)
    if r == 0:
        with open("alone.json", "w") as f:
            json.dump(runs(False), f)
    """
    import json

    result, _ = run_ranks(tmp_path, source)
    assert result.returncode == 0, result.stderr
    files = ("ranks0.json", "ranks1.json", "alone.json")
    rank0, rank1, alone = (json.loads((tmp_path / f).read_text()) for f in files)
    assert rank0 == rank1
    assert sorted(alone["weighted"]["history"]) == sorted(
        ["accuracy", "loss", "val_accuracy", "val_loss"]
    )
    assert sorted(alone["regression"]["history"]) == ["loss", "val_loss"]
    for name, run in alone.items():
        for key, values in run["history"].items():
            np.testing.assert_allclose(rank0[name]["history"][key], values, rtol=1e-12)
        for key, value in run["state"].items():
            np.testing.assert_allclose(rank0[name]["state"][key], value, rtol=1e-12)


def test_cli_train_distributed(tmp_path):
    # `mpiexec -n 2 pycnn train --distributed`: rank 0 alone prints; SyncBatchNorm keeps
    # the batch statistics global and dropout draws the global batch's mask, so the run
    # matches one process's to every printed digit in float64 (float32 sums in another
    # order drift by about 1e-4 in the loss over two epochs)
    source = """
    import sys
    from pycnn import cli
    args = ["train", "--epochs", "2", "--quiet", "--dtype", "float64"]
    sys.exit(cli.main(args + sys.argv[1:]))
    """
    distributed, _ = run_ranks(tmp_path, source.replace("sys.argv[1:]", '["--distributed"]'))
    assert distributed.returncode == 0, distributed.stderr
    (tmp_path / "alone.py").write_text(textwrap.dedent(source))
    alone = run_python([str(tmp_path / "alone.py")], cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    assert distributed.stdout.count("test accuracy") == 1
    assert "2 ranks" in distributed.stdout
    pick = [line for line in distributed.stdout.splitlines() if "accuracy:" in line]
    assert len(pick) == 2
    for line in pick:  # validation and test lines, without the training time
        assert line.split(", training time")[0] in alone.stdout


def test_plain_batchnorm_behaves_as_pytorch_ddp(tmp_path):
    # plain BatchNorm2d under DistributedDataParallel: each rank normalises with its own
    # share's statistics and, before each training forward, takes rank 0's running
    # statistics (PyTorch's broadcast_buffers=True). The two ranks' run must equal that
    # rule simulated in one process, and differ from one process on the whole batch.
    source = """
    import numpy as np
    import pycnn
    from pycnn import distributed as dist

    def make_model():
        rng = np.random.default_rng(0)
        return pycnn.Sequential(
            pycnn.Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64),
            pycnn.BatchNorm2d(3, dtype=np.float64),
            pycnn.ReLU(),
            pycnn.Flatten(),
            pycnn.Linear(3 * 5 * 5, 4, rng=rng, dtype=np.float64),
        )

    def sgd_step(model, grads):
        for key, p in model.named_parameters():
            p.data[...] -= 0.1 * grads[key]
        model.zero_grad()

    def grads_of(model):
        return {key: p.grad.copy() for key, p in model.named_parameters()}

    dist.init()
    r = dist.rank()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 6, 2, 5, 5)) * 3 + 1
    y = rng.integers(0, 4, (5, 6))
    halves = [slice(0, 3), slice(3, 6)]
    loss = pycnn.CrossEntropyLoss()
    model = dist.DistributedDataParallel(make_model())
    for xb, yb in zip(x, y):
        loss(model(xb[halves[r]]), yb[halves[r]])
        model.backward(loss.backward())
        sgd_step(model.module, grads_of(model.module))
    np.savez(f"rank{r}.npz", **model.module.state_dict())
    if r == 0:
        sim = [make_model(), make_model()]  # the two ranks, in one process
        alone = make_model()
        for xb, yb in zip(x, y):
            for name, value in sim[0][1].buffers.items():  # rank 0's buffers to rank 1
                sim[1][1].buffers[name][...] = value
            grads = []
            for copy, half in zip(sim, halves):
                loss(copy(xb[half]), yb[half])
                copy.backward(loss.backward())
                grads.append(grads_of(copy))
            mean = {key: (grads[0][key] + grads[1][key]) / 2 for key in grads[0]}
            for copy in sim:
                sgd_step(copy, mean)
            loss(alone(xb), yb)
            alone.backward(loss.backward())
            sgd_step(alone, grads_of(alone))
        for i, copy in enumerate(sim):
            np.savez(f"sim{i}.npz", **copy.state_dict())
        np.savez("alone.npz", **alone.state_dict())
    """
    result, _ = run_ranks(tmp_path, source)
    assert result.returncode == 0, result.stderr
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    sims = [np.load(tmp_path / f"sim{r}.npz") for r in range(2)]
    alone = np.load(tmp_path / "alone.npz")
    for r in range(2):
        for key in sims[r].files:
            np.testing.assert_allclose(ranks[r][key], sims[r][key], rtol=1e-12, atol=1e-14)
    assert not np.allclose(ranks[0]["0.weight"], alone["0.weight"], rtol=1e-6)
    # the ranks' parameters agree; their running statistics differ by the last batch
    assert np.array_equal(ranks[0]["0.weight"], ranks[1]["0.weight"])
    assert not np.array_equal(ranks[0]["1.running_mean"], ranks[1]["1.running_mean"])
