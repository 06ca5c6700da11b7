"""Fixtures self-tests share: the tox envs this project defines (the workflow and docs tests), and the
fake release index and case file of the bisect tests (tests/selftest/test_bisect_*.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import matrix.grid
from tests.selftest.bisect_support import CASE, PEFT, TRANSFORMERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tox_envs() -> set[str]:
    """Every tox env of tox.ini: what `tox list` shows, and the [testenv:NAME] sections it hides."""
    out = subprocess.run(
        [sys.executable, "-m", "tox", "list", "--no-desc", "-q"], cwd=ROOT, capture_output=True, text=True
    )
    listed = set(out.stdout.split())
    return listed | set(re.findall(r"^\[testenv:([\w-]+)\]", (ROOT / "tox.ini").read_text(), re.M))


# -- the command, with a fake index and injected verdicts -----------------------------------------
@pytest.fixture
def releases(monkeypatch):
    """A fake matrix.grid.releases (the interface bisect codes against)."""
    fake = types.ModuleType("matrix.grid.releases")

    class ReleasesError(ValueError):
        pass

    lists = {"peft": PEFT, "transformers": TRANSFORMERS, "accelerate": ["1.15.0"]}

    def versions_between(package, lo, hi, *, fetch=None):
        for end in (lo, hi):
            if end not in lists[package]:
                raise ReleasesError(f"{package} {end} is not a final release on https://pypi.org/simple/{package}/")
        return [
            v for v in lists[package] if lists[package].index(lo) <= lists[package].index(v) <= lists[package].index(hi)
        ]

    fake.ReleasesError = ReleasesError
    fake.versions_between = versions_between
    fake.accelerate_for = lambda peft, transformers, *, fetch=None: "1.15.0"
    fake.extras_for = lambda peft, transformers: []
    fake.release_history = lambda package, *, fetch=None: [types.SimpleNamespace(version=v) for v in lists[package]]
    monkeypatch.setitem(sys.modules, "matrix.grid.releases", fake)
    monkeypatch.setattr(matrix.grid, "releases", fake, raising=False)
    return fake


@pytest.fixture
def case_file(tmp_path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(CASE.to_dict()))
    return path
