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
            "--rounds",
            "2",
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
        # both passes timed on their own in each round, never a difference
        assert entry["fwd"] > 0 and entry["bwd"] > 0
        assert len(entry["fwd_rounds"]) == len(entry["bwd_rounds"]) == 2
        assert min(entry["fwd_rounds"] + entry["bwd_rounds"]) > 0
    assert "peak_extra" in data["results"]["compiled"]["conv"]["2,2,8,3,3,1,1"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["bench", "--shape", "1,2,3"], "`--shape` must be B,C,HW,F,K,S,P"),
        (["bench", "--shape", "garbage"], "`--shape` must be B,C,HW,F,K,S,P"),
        (["bench", "--libraries", "foo"], "choose from naive, numpy, compiled, torch"),
        (["bench", "--shapes", "vgg"], "unknown --shapes vgg; choose from lenet1"),
        (["bench", "--pool-shapes", "x"], "choose from lenet1-out, cifar-out"),
        (["bench", "--model", "vgg"], "choose from digits, lenet5, mnist7, resnet20"),
        (["bench", "--modes", "x"], "choose from train, infer1, infer64"),
        (["bench", "--rounds", "0"], "must be >= 1"),
        (["bench", "--json", "/nonexistent-folder/b.json"], "does not exist"),
        (["bench", "--plot", "/nonexistent-folder/b.png"], "does not exist"),
        (["train", "--mnist", "/nonexistent"], "--mnist: /nonexistent is not a folder"),
        (["train", "--save", "/nonexistent-folder/m.npz"], "does not exist"),
        (["train", "--plot", "/nonexistent-folder/c.png"], "does not exist"),
        (["demo", "--batch", "0"], "must be >= 1"),
    ],
)
def test_bad_arguments_are_one_argparse_line(capsys, argv, match):
    """Issue 19: a usage error, exit status 2, no traceback, no worker started."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert match in err and "error: argument" in err and "--worker" not in err


def test_errors_after_parsing_are_one_line_unless_debug(capsys, tmp_path):
    """A folder without MNIST files: `pycnn: error: ...` and 2; --debug re-raises."""
    assert cli.main(["train", "--mnist", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("pycnn: error: --mnist ") and "no MNIST images file" in line
    with pytest.raises(cli.CLIError, match="no MNIST images file"):
        cli.main(["--debug", "train", "--mnist", str(tmp_path)])


def test_bad_shape_has_no_traceback_from_the_command_line(tmp_path):
    home = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))
    proc = subprocess.run(
        [sys.executable, "-m", "pycnn", "bench", "--shape", "garbage"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=home),
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("pycnn bench: error: argument --shape")


def test_demo_compares_the_backends(capsys):
    assert cli.main(["demo", "--batch", "2", "--no-train"]) == 0
    out = capsys.readouterr().out
    assert "agree: yes" in out
    for row in ("naive loops", "NumPy reference", "compiled"):
        assert row in out


def test_bench_help_describes_every_option(capsys):
    """Issue 19: --pool-shapes and --libraries had no help text."""
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "from lenet1-out, cifar-out" in out
    assert "from naive, numpy, compiled, torch" in out


def test_demo_help_agrees_with_the_readme_on_its_duration(capsys):
    """Issue 19: 'a one-minute tour' in --help, 'about ten seconds' in the README."""
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "about ten seconds" in " ".join(capsys.readouterr().out.split())
    assert "about ten seconds" in (cli.demo.__doc__ or "")
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "README.md")
    if os.path.exists(readme):
        with open(readme, encoding="utf-8") as f:
            assert "about ten seconds" in " ".join(f.read().split())
