"""Training interrupted after epoch k, saved (model, optimizer and schedule state, the
shuffling generator) and resumed in new objects gives the parameters of uninterrupted
training, bit for bit (issue 15)."""

import pickle

import numpy as np
import pytest

import pycnn
from pycnn import datasets, optim
from pycnn.lr_scheduler import OneCycleLR, StepLR


def make_model():
    rng = np.random.default_rng(0)
    return pycnn.Sequential(
        pycnn.Conv2d(1, 6, 3, padding=1, rng=rng),
        pycnn.BatchNorm2d(6),
        pycnn.ReLU(),
        pycnn.MaxPool2d(2),
        pycnn.Flatten(),
        pycnn.Linear(6 * 4 * 4, 10, rng=rng),
    )


SETUPS = {
    "adam_step": (
        lambda m: optim.Adam(m.parameters(), lr=3e-3, weight_decay=1e-4),
        lambda o: StepLR(o, step_size=2, gamma=0.5),
    ),
    "sgd_onecycle": (
        lambda m: optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True),
        lambda o: OneCycleLR(o, max_lr=0.1, total_steps=5),
    ),
    "nadam": (lambda m: optim.NAdam(m.parameters(), lr=2e-3), lambda o: None),
}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_resume_after_epoch_k_equals_uninterrupted(tmp_path, setup):
    make_opt, make_sched = SETUPS[setup]
    x, y = datasets.load_digits()
    x, y = x[:320], y[:320]
    epochs, k = 5, 2

    def train(model, opt, sched, n, rng):
        return model.fit(
            x, y, epochs=n, batch_size=32, optimizer=opt, loss=pycnn.CrossEntropyLoss(),
            rng=rng, progress=False, scheduler=sched,
        )  # fmt: skip

    model = make_model()
    opt = make_opt(model)
    sched = make_sched(opt)
    train(model, opt, sched, epochs, np.random.default_rng(3))

    first = make_model()
    opt1 = make_opt(first)
    sched1 = make_sched(opt1)
    rng1 = np.random.default_rng(3)
    train(first, opt1, sched1, k, rng1)
    first.save(tmp_path / "model.npz")
    with open(tmp_path / "state.pkl", "wb") as f:
        pickle.dump(
            {
                "optimizer": opt1.state_dict(),
                "scheduler": None if sched1 is None else sched1.state_dict(),
                "rng": rng1.bit_generator.state,
            },
            f,
        )
    del first, opt1, sched1, rng1

    resumed = make_model().load(tmp_path / "model.npz")
    with open(tmp_path / "state.pkl", "rb") as f:
        state = pickle.load(f)
    opt2 = make_opt(resumed)
    sched2 = make_sched(opt2)  # before loading: a new schedule sets the groups' rates
    opt2.load_state_dict(state["optimizer"])  # the saved rates and momenta
    if sched2 is not None:
        sched2.load_state_dict(state["scheduler"])
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = state["rng"]
    train(resumed, opt2, sched2, epochs - k, rng2)

    assert list(resumed.state_dict()) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert np.array_equal(resumed.state_dict()[key], value), key
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert not np.array_equal(model.state_dict()["0.weight"], make_model()[0].weight)
