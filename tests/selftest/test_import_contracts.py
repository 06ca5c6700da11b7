"""The import contracts of pyproject.toml (`lint-imports`, run by `tox -e lint`) hold, and they go
red on what they forbid: a deliberate import circle, a layer imported upwards, and a module a
reproduction script carries importing the suite around it. Each is tried on a copy of the code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.selftest
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("prefixcheck", "strategies", "matrix")


def _lint_imports(folder: Path) -> subprocess.CompletedProcess:
    program = Path(sys.executable).with_name("lint-imports")
    if not program.exists():
        pytest.skip(f"no lint-imports beside {sys.executable} (pip install import-linter)")
    return subprocess.run([str(program), "--no-cache"], cwd=folder, capture_output=True, text=True, timeout=300)


@pytest.fixture
def copy(tmp_path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(copy: Path, module: str, line: str) -> None:
    path = copy / module
    text = path.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    path.write_text(head + sep + line + "\n" + rest)


def test_the_code_keeps_every_contract(copy):
    run = _lint_imports(copy)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_a_deliberate_import_circle_is_red(copy):
    """summary imports records; records importing summary closes a circle."""
    _add_import(copy, "prefixcheck/records.py", "from . import summary  # noqa: F401")
    run = _lint_imports(copy)
    assert run.returncode == 1, run.stdout
    assert "No cycles are allowed in prefixcheck" in run.stdout and "BROKEN" in run.stdout


def test_a_layer_imported_upwards_is_red(copy):
    _add_import(copy, "matrix/grid/cells.py", "from ..bisect import search  # noqa: F401")
    run = _lint_imports(copy)
    assert run.returncode == 1, run.stdout
    assert "matrix.grid is not allowed to import matrix.bisect" in run.stdout


def test_the_carried_code_may_not_import_the_registry(copy):
    """What a reproduction script carries must need only torch, transformers and PEFT."""
    _add_import(copy, "prefixcheck/engine.py", "from . import registry  # noqa: F401")
    run = _lint_imports(copy)
    assert run.returncode == 1, run.stdout
    assert "prefixcheck.engine is not allowed to import prefixcheck.registry" in run.stdout
