"""`pycnn bench --model`: the network specs build in pycnn, compute the same function as
their torch twins (same weights), and the command runs end to end."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import pycnn
from pycnn import _bench_model as bm
from pycnn import cli


@pytest.mark.parametrize("name", list(bm.NETWORKS))
def test_spec_builds_in_pycnn_forward_and_backward_shapes(name, dtype):
    shape, spec, _ = bm.NETWORKS[name]
    model = bm.build_pycnn(spec, dtype, rng=0)
    x, _ = bm._inputs(name, 2, dtype)
    out = model.forward(x)
    assert out.shape == (2, bm.N_CLASSES) and out.dtype == dtype
    grad_x = model.backward(np.ones_like(out))
    assert grad_x.shape == x.shape and grad_x.dtype == dtype
    for key, param in model.named_parameters():
        assert param.grad is not None and param.grad.shape == param.shape, key


def test_digits_spec_is_the_train_command_model_without_dropout():
    spec_model = bm.build_pycnn(bm.NETWORKS["digits"][1], np.float32, rng=0)
    cli_model = cli.build_model(8, dropout=0, rng=0)
    got = {k: v.shape for k, v in spec_model.state_dict().items()}
    assert got == {k: v.shape for k, v in cli_model.state_dict().items()}


@pytest.mark.parametrize("name", list(bm.NETWORKS))
def test_torch_twin_computes_the_same_function(name):
    torch = pytest.importorskip("torch")
    spec = bm.NETWORKS[name][1]
    model = bm.build_pycnn(spec, np.float64, rng=0)
    tmodel = bm.build_torch(spec, np.float64)
    bm.copy_weights(model, tmodel)
    x, y = bm._inputs(name, 4, np.float64)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    # one training step each: forward, loss, backward, SGD with momentum
    loss = pycnn.CrossEntropyLoss()
    out = model.forward(x)
    loss.forward(out, y)
    model.backward(loss.backward())
    opt = pycnn.optim.SGD(model.parameters(), lr=bm.LR, momentum=bm.MOMENTUM)
    grads = {k: p.grad.copy() for k, p in model.named_parameters()}
    opt.step()

    topt = torch.optim.SGD(tmodel.parameters(), lr=bm.LR, momentum=bm.MOMENTUM)
    tout = tmodel(xt)
    torch.nn.CrossEntropyLoss()(tout, yt).backward()
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-8, atol=1e-8)
    tgrads = {k: p.grad.numpy().copy() for k, p in tmodel.named_parameters()}
    assert grads.keys() == tgrads.keys()
    for key in grads:
        np.testing.assert_allclose(grads[key], tgrads[key], rtol=1e-8, atol=1e-8, err_msg=key)
    topt.step()
    tstate = tmodel.state_dict()
    for key, arr in model.state_dict().items():
        # parameters after the step; running_var differs by design (torch keeps the
        # unbiased variance), the rest of the buffers must agree
        if not key.endswith("running_var"):
            np.testing.assert_allclose(
                arr, tstate[key].numpy(), rtol=1e-8, atol=1e-8, err_msg=key
            )
    # and in eval mode, after the step
    model.eval()
    tmodel.eval()
    with torch.no_grad():
        if any(k.endswith("running_var") for k in tstate):
            bm.copy_weights(model, tmodel)  # same running statistics
        np.testing.assert_allclose(model.forward(x), tmodel(xt).numpy(), rtol=1e-8, atol=1e-8)


def test_copy_weights_rejects_a_different_architecture():
    pytest.importorskip("torch")
    model = bm.build_pycnn(bm.NETWORKS["digits"][1], np.float64, rng=0)
    tmodel = bm.build_torch(bm.NETWORKS["lenet5"][1], np.float64)
    with pytest.raises(ValueError, match="state-dict keys differ|shape of"):
        bm.copy_weights(model, tmodel)


@pytest.mark.parametrize(
    "value, match",
    [
        ("resnet", r"unknown --model resnet; choose from digits, lenet5, mnist7, resnet20"),
        ("", r"choose from"),
    ],
)
def test_unknown_model_names_the_valid_ones(value, match):
    with pytest.raises(SystemExit, match=match):
        bm.parse_models(value)


def test_parse_models_all():
    assert bm.parse_models("all") == list(bm.NETWORKS)
    assert bm.parse_models("lenet5,digits") == ["lenet5", "digits"]


def test_bench_model_end_to_end(tmp_path):
    out_json = tmp_path / "model.json"
    home = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))
    env = dict(os.environ, PYTHONPATH=home)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pycnn",
            "bench",
            "--model",
            "digits",
            "--modes",
            "infer1",
            "--rounds",
            "1",
            "--min-time",
            "0.01",
            "--json",
            str(out_json),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "whole networks, float32" in proc.stdout and "geomean" in proc.stdout
    (entry,) = json.loads(out_json.read_text())["results"]
    assert entry["network"] == "digits" and entry["mode"] == "infer1"
    assert entry["pycnn"]["median_ms"] > 0 and entry["pycnn"]["peak_rss_mib"] >= 0


def test_bench_model_unknown_name_has_no_traceback(tmp_path):
    home = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))
    proc = subprocess.run(
        [sys.executable, "-m", "pycnn", "bench", "--model", "vgg"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=home),
    )
    assert proc.returncode != 0
    assert "choose from digits, lenet5, mnist7, resnet20" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_table_ratios_and_geomeans_per_mode():
    def s(ms):
        return {"median_ms": ms, "q1_ms": ms, "q3_ms": ms, "peak_rss_mib": 1.0}

    summary = {
        ("digits", "train"): {"pycnn": s(3.0), "torch": s(2.0)},
        ("digits", "infer1"): {"pycnn": s(1.0), "torch": s(4.0), "onnxruntime": s(0.5)},
        ("lenet5", "infer1"): {"pycnn": s(1.0), "torch": s(1.0), "onnxruntime": s(2.0)},
    }
    lines = bm.format_table(summary, "float32", 2, 1)
    rows = {tuple(line.split()[:2]): line for line in lines if line.split()[:1]}
    # the last cells are the two ratios and the memory, "1.0 / 1.0"
    assert rows[("digits", "train")].split()[-5:-3] == ["1.50x", "-"]  # ort: no training
    assert rows[("digits", "infer1")].split()[-5:-3] == ["0.25x", "2.00x"]
    # geomeans per mode: infer1 sqrt(0.25 * 1) = 0.5 against torch, sqrt(2 * 0.5) = 1
    assert rows[("geomean", "infer1")].split()[-2:] == ["0.50x", "1.00x"]
    assert rows[("geomean", "train")].split()[-2:] == ["1.50x", "-"]


@pytest.mark.skipif(
    not (importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx")),
    reason="needs onnxruntime and onnx",
)
def test_onnxruntime_worker_runs_the_exported_model():
    out = bm.worker("onnxruntime", "digits", np.dtype(np.float32), "infer1", 1, 0.01)
    assert out["library"] == "onnxruntime" and len(out["times"]) >= 3
