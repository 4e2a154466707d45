"""The README's Python examples run as written (one namespace, in a scratch folder)."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "README.md")


def _python_blocks():
    if not os.path.exists(README):
        pytest.skip("README.md is not beside the tests (an installed test run)")
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_examples_run(tmp_path, monkeypatch, capsys):
    blocks = _python_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)  # the example saves digits_cnn.npz here
    namespace = {"__name__": "__readme__"}
    ran = []
    for i, block in enumerate(blocks):
        if _missing_optional_package(block):
            continue  # e.g. the PyTorch interop example without torch installed
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        ran.append(block)
    if any("pycnn.from_torch" in block for block in ran):
        assert (tmp_path / "from_torch.safetensors").exists()
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy (\d+\.\d)%", out).group(1))
    assert accuracy >= 95
    assert (tmp_path / "digits_cnn.npz").exists()


def _missing_optional_package(block):
    """The optional package (torch, safetensors) a block imports that is not installed."""
    import importlib.util

    for name in re.findall(r"^(?:import|from) (torch|safetensors)\b", block, flags=re.M):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def _skeleton(value):
    """A value's form without its particulars: every word, number or path becomes `w`,
    then every run of words (a list, a phrase) one `w`: "x (can run: a, b)" -> "w (w: w)"."""
    words = re.sub(r"[\w./+-]+", "w", value)
    return re.sub(r"w(?:[ ,]+w)*", "w", words)


def test_readme_pycnn_info_sample_has_the_current_format():
    """The `pycnn info` sample shows the lines `pycnn info` prints, in its order and in
    the form of their values (issue 12: the SIMD dispatch line had changed)."""
    from pycnn import _info

    with open(README, encoding="utf-8") as f:
        sample = re.search(r"```text\n\$ pycnn info\n(.*?)```", f.read(), flags=re.S).group(1)
    shown = dict(line.split(" : ", 1) for line in sample.splitlines())
    shown = {k.strip(): v for k, v in shown.items()}
    # lines that only the environment adds: PYCNN_SIMD set (as tools/verify_simd.py
    # runs the suite) adds "SIMD requested"
    current = {
        k: v for k, v in _info.config().items() if k not in ("environment", "SIMD requested")
    }
    if (
        not current["compiled extension"].startswith("loaded")
        or not current["OpenMP"].startswith("yes")
        or "unknown" in current["BLAS"]
        or "CPU SIMD support" not in current
        or current["build"] != shown["build"]
    ):
        pytest.skip(
            "the sample is of an x86 Linux release build (not a debug or a "
            "sanitizer one) with the extension, OpenMP and threadpoolctl"
        )
    assert list(shown) == list(current)
    for key, value in current.items():
        if key == "avx512 verified" and not value.startswith("yes"):
            # the sample is of a verified build; sources changed since the record (and
            # tools/verify_simd.py's own suite runs, before it writes one) say "no"
            assert shown[key].startswith("yes, on hardware") and value.startswith(
                "no, not on hardware"
            ), key
            continue
        assert _skeleton(shown[key]) == _skeleton(value), key


def test_install_hints_name_packages_that_exist():
    """Issue 19: pycnn is not on the package index, so `pip install "pycnn[extra]"`
    fails; hints name the package itself (`pip install tqdm`) or the source checkout's
    extras (`pip install ".[progress]"`)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
    if not os.path.exists(os.path.join(root, "README.md")):
        pytest.skip("README.md is not beside the tests (an installed test run)")
    paths = [os.path.join(root, "README.md"), os.path.join(root, "CONTRIBUTING.md")]
    for folder, _, files in os.walk(os.path.join(root, "pycnn")):
        paths += [os.path.join(folder, f) for f in files if f.endswith((".py", ".pyx"))]
    offenders = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if re.search(
                    r"pip install\W*pycnn\[|pycnn\[(plot|progress|bench|test)\]", line
                ):
                    offenders.append(f"{os.path.relpath(path, root)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
