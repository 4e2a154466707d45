"""The `pycnn` command: info, demo and bench run and print what they promise."""

import json
import os
import subprocess
import sys

import pytest

import pycnn
from pycnn import cli


def test_info_reports_the_compiled_extension(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "compiled extension : loaded" in out
    assert "OpenMP" in out and "pycnn threads" in out and "SIMD dispatch" in out


def test_bench_runs_each_library_in_a_subprocess(tmp_path):
    out_json = tmp_path / "bench.json"
    # the pycnn under test, whether installed or built in place, from any folder
    home = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))
    env = dict(os.environ, PYTHONPATH=home)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pycnn",
            "bench",
            "--shapes",
            "",
            "--shape",
            "2,2,8,3,3,1,1",
            "--pool-shapes",
            "",
            "--libraries",
            "naive,numpy,compiled",
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
    assert "conv2d, milliseconds forward / backward" in proc.stdout
    data = json.loads(out_json.read_text())
    for lib in ("naive", "numpy", "compiled"):
        entry = data["results"][lib]["conv"]["2,2,8,3,3,1,1"]
        assert entry["fwd"] > 0 and entry["bwd"] >= 0
    assert "peak_extra" in data["results"]["compiled"]["conv"]["2,2,8,3,3,1,1"]


def test_bench_rejects_a_malformed_shape():
    with pytest.raises(ValueError, match="`--shape` must be"):
        cli.main(["bench", "--shapes", "", "--shape", "1,2,3", "--libraries", "numpy"])


def test_demo_compares_the_backends(capsys):
    assert cli.main(["demo", "--batch", "2", "--no-train"]) == 0
    out = capsys.readouterr().out
    assert "agree: yes" in out
    for row in ("naive loops", "NumPy reference", "compiled"):
        assert row in out
