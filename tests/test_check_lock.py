"""tools/check_lock.py: the check that fails a venv which drifted from requirements.lock."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("check_lock", REPO / "tools" / "check_lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_lock_pins_what_the_project_needs():
    tool = _tool()
    made_on, pins = tool.read_lock(REPO / "requirements.lock")
    assert made_on
    for name in ("torch", "numpy", "transformers", "faiss-cpu", "fastapi", "openvino", "pytest"):
        assert name in pins, f"{name} is not pinned in requirements.lock"
    assert pins["torch"].split("+")[0] == "2.13.0"


def test_a_drifted_environment_fails_and_names_the_package(tmp_path: Path, capsys):
    tool = _tool()
    have = tool.installed()
    numpy_version = have["numpy"]
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        f"# platform: {tool.this_platform()}\n"
        f"numpy=={numpy_version}\n"
        "Typing_Extensions==0.0.1\n"  # another version than any installed one
        "no-such-package-xyz==1.0\n"
    )
    assert tool.main([str(lock)]) == 1
    err = capsys.readouterr().err
    assert "typing-extensions: locked at 0.0.1, installed" in err
    assert "no-such-package-xyz: locked at 1.0, not installed" in err
    assert "numpy" not in err

    lock.write_text(f"# platform: {tool.this_platform()}\nnumpy=={numpy_version}\n")
    assert tool.main([str(lock)]) == 0  # other installed packages are allowed


def test_a_lock_of_another_platform_is_not_enforced(tmp_path: Path, capsys):
    tool = _tool()
    lock = tmp_path / "requirements.lock"
    lock.write_text("# platform: cpython3.99-plan9-mips\nnumpy==0.0.1\n")
    assert tool.main([str(lock)]) == 0
    assert "not checked" in capsys.readouterr().out


def test_write_then_check_round_trips(tmp_path: Path):
    tool = _tool()
    lock = tmp_path / "requirements.lock"
    assert tool.main(["--write", str(lock)]) == 0
    assert tool.main([str(lock)]) == 0
    assert sys.implementation.name in lock.read_text()


@pytest.mark.parametrize("line", ["numpy>=1", "just-a-name"])
def test_unreadable_lines_are_refused(tmp_path: Path, line: str):
    tool = _tool()
    lock = tmp_path / "requirements.lock"
    lock.write_text(line + "\n")
    with pytest.raises(SystemExit, match="expected name==version"):
        tool.read_lock(lock)
