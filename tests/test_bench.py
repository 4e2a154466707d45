"""`pycnn bench` tells the truth on a busy machine (issue 19, item 1): both passes timed
on their own, rounds in new processes, the spread and the machine's load checked, and
`--strict` refusing to print numbers that cannot be trusted."""

import json
import math
import os
import re
import subprocess
import sys
import time

import pytest

import pycnn
from pycnn import _bench, _bench_check

HOME = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))
SHAPE = "8,4,12,8,3,1,1"
# the times in the tables: "fwd / bwd" and "min / median / max" cells
TIME_CELL = re.compile(r"\d[\d.]*(?: +/ +\d[\d.]*)+")


def _bench_cmd(tmp_path, name, *extra):
    out = tmp_path / f"{name}.json"
    cmd = [
        sys.executable,
        "-m",
        "pycnn",
        "bench",
        "--shapes",
        "",
        "--shape",
        SHAPE,
        "--pool-shapes",
        "",
        "--libraries",
        "numpy,compiled",
        "--min-time",
        "0.03",
        "--rounds",
        "2",
        "--json",
        str(out),
        *extra,
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=HOME),
    )
    return proc, out


def _ratio(json_path):
    """NumPy's time / compiled time (forward + backward) from a --json file."""
    res = json.loads(json_path.read_text())["results"]
    numpy, comp = res["numpy"]["conv"][SHAPE], res["compiled"]["conv"][SHAPE]
    return (numpy["fwd"] + numpy["bwd"]) / (comp["fwd"] + comp["bwd"])


def _table_lines(stdout):
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("conv2d, milliseconds"))
    return lines[start:]


def _assert_every_time_measured(json_path, stdout):
    data = json.loads(json_path.read_text())
    for lib in ("numpy", "compiled"):
        entry = data["results"][lib]["conv"][SHAPE]
        assert min(entry["fwd_rounds"] + entry["bwd_rounds"]) > 0
    times = []
    for line in _table_lines(stdout):
        if line.startswith(SHAPE):
            cells = TIME_CELL.findall(line[len(SHAPE) :])
            times += [float(t) for cell in cells for t in cell.split("/")]
    # numpy and compiled: fwd / bwd, then min / median / max, each measured (> 0)
    assert len(times) == 2 * 2 + 2 * 3, stdout
    assert min(times) > 0, stdout


def test_strict_under_a_competing_load_agrees_with_a_quiet_run_or_refuses(tmp_path):
    """The issue's check: a quiet run, then the same run with a busy loop on every core;
    the loaded `--strict` run either reports a ratio within 25% of the quiet run's or
    exits non-zero with a clear warning and no table."""
    quiet, quiet_json = _bench_cmd(tmp_path, "quiet")
    assert quiet.returncode == 0, quiet.stderr
    _assert_every_time_measured(quiet_json, quiet.stdout)
    quiet_ratio = _ratio(quiet_json)
    # the same threads everywhere, said in the header; rounds alternate the order
    threads = _bench.default_threads()
    assert f"threads: {threads} in every library's pools" in quiet.stdout
    assert "round 1/2: numpy compiled" in quiet.stdout
    assert "round 2/2: compiled numpy" in quiet.stdout
    assert "min / median / max" in quiet.stdout
    for lib, res in json.loads(quiet_json.read_text())["results"].items():
        assert res["threads"] == threads, lib
        assert all(p.endswith(f" x{threads}") for p in res.get("pools", [])), res["pools"]

    busy = []
    try:
        for _ in range(os.cpu_count() or 2):
            busy.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        time.sleep(0.5)  # let the loops take the cores
        loaded, loaded_json = _bench_cmd(tmp_path, "loaded", "--strict")
    finally:
        for proc in busy:
            proc.kill()
        for proc in busy:
            proc.wait()

    if loaded.returncode == 0:
        _assert_every_time_measured(loaded_json, loaded.stdout)
        assert abs(_ratio(loaded_json) / quiet_ratio - 1) <= 0.25
    else:
        assert loaded.returncode == 3, loaded.stderr
        assert "WARNING: unreliable numbers:" in loaded.stdout
        assert "--strict: the numbers are unreliable" in loaded.stderr
        assert "conv2d, milliseconds" not in loaded.stdout  # no table
        assert json.loads(loaded_json.read_text())["reliable"] is False


# --- the pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [2.0, 0.1636, 0.0245, 6.12e-3, 4.12e-5, 3e-7])
def test_ms_keeps_three_significant_digits(seconds):
    text = _bench.ms(seconds)
    assert float(text) > 0
    # within the rounding of three significant digits (or of whole milliseconds)
    assert math.isclose(float(text), seconds * 1e3, rel_tol=5e-3, abs_tol=0.5)


def test_spread_and_verdict_rules():
    assert _bench_check.spread([2.0, 1.0, 1.5]) == 2.0
    assert _bench_check.spread([1.0]) == 1.0
    limits = {"max_spread": 1.3, "max_other_cpu": 0.1, "min_core_share": 0.9}
    quiet = {"other_cpu_share": 0.02, "cpus": 2, "load_before": 0.1}
    line, warnings = _bench_check.verdict({"numpy a": 1.1}, quiet, [0.99], 3, limits)
    assert warnings == [] and line.startswith("reliability: 3 round(s)")
    _, warnings = _bench_check.verdict({"numpy a": 1.5, "torch a": 1.2}, quiet, [1], 3, limits)
    assert len(warnings) == 1 and "numpy a (x1.50)" in warnings[0]
    assert "torch a" not in warnings[0]
    busy = dict(quiet, other_cpu_share=0.6)
    _, warnings = _bench_check.verdict({}, busy, [1], 3, limits)
    assert warnings and "60% of the 2 CPUs" in warnings[0]
    _, warnings = _bench_check.verdict({}, quiet, [0.5], 3, limits)
    assert warnings and "50% of a core" in warnings[0]
    _, warnings = _bench_check.verdict({}, quiet, [1], 1, limits)
    assert warnings and "--rounds 1" in warnings[0]
    # without /proc/stat, the load average against the CPUs decides
    no_stat = {"other_cpu_share": None, "cpus": 2, "load_before": 3.0}
    _, warnings = _bench_check.verdict({}, no_stat, [1], 3, limits)
    assert warnings and "load average" in warnings[0]


def test_probe_measures_a_share_of_a_core():
    share = _bench_check.probe(0.02)
    assert 0 < share <= 1


def test_cpu_monitor_sees_a_busy_loop():
    if not os.path.exists("/proc/stat"):
        pytest.skip("needs /proc/stat (Linux)")
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        monitor = _bench_check.CpuMonitor().start()
        time.sleep(1.0)
        # stopped while the loop runs: not a waited-for child, so another process's
        machine = monitor.stop()
    finally:
        loop.kill()
        loop.wait()
    # one busy core of the machine's (or more, with other work): at least a quarter of
    # the CPU time of up to 2 CPUs, whatever else runs
    cpus = machine["cpus"]
    assert machine["other_cpu_share"] >= min(0.25, 0.5 / cpus)


def test_strict_is_refused_with_model(capsys):
    from pycnn import cli

    assert cli.main(["bench", "--model", "digits", "--strict"]) == 2
    assert "--strict and --threads apply to the op tables" in capsys.readouterr().err
