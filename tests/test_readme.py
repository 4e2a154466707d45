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
    monkeypatch.chdir(tmp_path)                  # the example saves digits_cnn.npz here
    namespace = {"__name__": "__readme__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy (\d+\.\d)%", out).group(1))
    assert accuracy >= 95
    assert (tmp_path / "digits_cnn.npz").exists()
