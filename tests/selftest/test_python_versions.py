"""The Pythons this project supports (PEFT's: 3.10-3.13) are the same everywhere they are named
(requires-python, classifiers, ruff's target, the vermin lint, ci.yml's matrix), the code needs no
newer Python than the minimum (vermin, as `tox -e lint` runs it), and prefixcheck/compat.py's 3.10
fallbacks behave like the 3.11 standard library they stand in for."""

from __future__ import annotations

import argparse
import ast
import configparser
import importlib
import importlib.util
import re
import shlex
import subprocess
import sys
import traceback
import types
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from prefixcheck import compat

ROOT = Path(__file__).resolve().parents[2]
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]
MINIMUM = SUPPORTED[0]
pytestmark = pytest.mark.selftest


def _pyproject() -> dict:
    return compat.tomllib.loads((ROOT / "pyproject.toml").read_text())


def _ci() -> dict:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads `on:` as True
    return data


def _vermin_args() -> list[str]:
    """The vermin command of `tox -e lint`, as tox.ini has it (without the program name)."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    lines = [line.strip() for line in ini["testenv:lint"]["commands"].splitlines()]
    found = [shlex.split(line)[1:] for line in lines if line.startswith("vermin ")]
    assert len(found) == 1, f"tox -e lint must run vermin once: {lines}"
    return found[0]


def _project_python_files() -> list[str]:
    """Every Python file of the project (tracked, or new and not ignored), as actions/checkout sees it."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file()]


def _act():
    spec = importlib.util.spec_from_file_location("act", ROOT / ".ci" / "act.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- one list of versions everywhere -------------------------------------------------------------


def test_requires_python_is_the_minimum_peft_supports():
    project = _pyproject()["project"]
    assert project["requires-python"] == f">={MINIMUM}"
    listed = sorted(
        (c.rsplit(":: ", 1)[1] for c in project["classifiers"] if re.fullmatch(r".*:: 3\.\d+", c)),
        key=lambda v: tuple(map(int, v.split("."))),
    )
    assert listed == SUPPORTED, f"classifiers name {listed}"
    assert _pyproject()["tool"]["ruff"]["target-version"] == "py" + MINIMUM.replace(".", "")


def test_tomli_is_a_dependency_exactly_where_tomllib_is_missing():
    reqs = [Requirement(r) for r in _pyproject()["project"]["dependencies"]]
    (tomli,) = [r for r in reqs if r.name == "tomli"]
    assert tomli.marker is not None
    for version in SUPPORTED:
        assert tomli.marker.evaluate({"python_version": version}) is (version == "3.10"), version


def test_ci_runs_the_property_suite_on_every_supported_python(tmp_path):
    job = _ci()["jobs"]["properties"]
    matrix = job["strategy"]["matrix"]
    assert matrix["python"] == SUPPORTED
    # the only hole: the known-good pin (transformers 5.23.0) does not install on 3.10
    assert matrix.get("exclude") == [{"env": "known-good", "python": "3.10"}]
    # the combinations, as GitHub (and .ci/act.py) expand them
    act = _act()
    args = argparse.Namespace(store=str(tmp_path), input=[], var=[], token="", only=[], env=[], skip_job=[])
    run = act.Run(ROOT / ".github" / "workflows" / "ci.yml", args)
    combos = run.combos("properties", job, run.context("properties"))
    assert sorted((c["env"], c["python"]) for c in combos) == sorted(
        [("peft-latest", v) for v in SUPPORTED] + [("known-good", v) for v in SUPPORTED if v != "3.10"]
    )
    # each job builds the tox env on the Python under test, and keeps its reports apart
    steps = job["steps"]
    (setup,) = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    (tox,) = [s for s in steps if "tox -e" in s.get("run", "")]
    assert '--override "testenv.base_python=$PYTHON_UNDER_TEST"' in tox["run"]
    assert tox["env"]["PYTHON_UNDER_TEST"] == f"${{{{ steps.{setup['id']}.outputs.python-path }}}}"
    (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert "${{ matrix.python }}" in upload["with"]["name"] and "${{ matrix.env }}" in upload["with"]["name"]
    # the upstream comparison merges one Python's two runs, never several Pythons' into one folder
    (download,) = [s for s in _ci()["jobs"]["upstream"]["steps"] if s.get("uses", "").startswith("actions/download")]
    assert download["with"]["pattern"].endswith("-py3.11")


def test_local_runner_gives_setup_python_the_version_asked_for():
    act = _act()
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    python, version = act.local_python(here)
    assert version.startswith(f"{here}.")
    out = subprocess.run([str(python), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert out.stdout.strip() == str(sys.version_info[:2])
    with pytest.raises(RuntimeError, match=r"no Python 3\.99 on this machine"):
        act.local_python("3.99")
    with pytest.raises(act.WorkflowError, match="is not X.Y"):
        act.local_python("3.x")


# --- vermin: the code needs no newer Python than the minimum --------------------------------------


def test_vermin_lint_targets_the_minimum_and_covers_every_python_file():
    args = _vermin_args()
    assert f"--target={MINIMUM}-" in args and "--violations" in args
    paths = [a for a in args if not a.startswith("-")]
    uncovered = [
        f for f in _project_python_files() if not any(f == p or f.startswith(p.rstrip("/") + "/") for p in paths)
    ]
    assert uncovered == [], f"not checked by vermin in tox -e lint: {uncovered}"


def _vermin(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """vermin's console script (it has no `python -m vermin`), on this interpreter."""
    script = "import sys, vermin; sys.exit(vermin.main())"
    return subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, capture_output=True, text=True)


def test_vermin_finds_nothing_newer_than_the_minimum():
    proc = _vermin(*_vermin_args())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"Minimum required versions: (?:~2, )?(3\.\d+)", proc.stdout)
    assert found, proc.stdout
    assert tuple(map(int, found[1].split("."))) <= tuple(map(int, MINIMUM.split("."))), proc.stdout


def test_vermin_is_live(tmp_path):
    """The same command flags 3.11-only standard library: tomllib, datetime.UTC, typing.Self."""
    (tmp_path / "new.py").write_text("import tomllib\nfrom datetime import UTC\nfrom typing import Self\n")
    flags = [a for a in _vermin_args() if a.startswith("-")]
    proc = _vermin(*flags, "new.py", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for name in ("tomllib", "UTC", "Self"):
        assert name in proc.stdout, f"{name} not reported:\n{proc.stdout}"


def test_add_note_goes_through_compat():
    """vermin cannot tell `exc.add_note(...)` (3.11+) from any other method call: only compat may call it."""
    calls = []
    for name in _project_python_files():
        if name == "prefixcheck/compat.py":
            continue
        for node in ast.walk(ast.parse((ROOT / name).read_text(), name)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_note":
                if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "compat"):
                    calls.append(f"{name}:{node.lineno}")
    assert calls == [], f"use prefixcheck.compat.add_note(exc, note) instead (3.10 has no add_note): {calls}"


# --- compat: the 3.10 fallbacks ------------------------------------------------------------------


def test_compat_tomllib_loads_a_string():
    assert compat.tomllib.loads('a = 1\n[b]\nc = "x"\n') == {"a": 1, "b": {"c": "x"}}
    with pytest.raises(compat.tomllib.TOMLDecodeError):
        compat.tomllib.loads("a = ")


@pytest.mark.parametrize("add_note", [compat.add_note, compat._append_note], ids=["add_note", "fallback"])
def test_add_note_keeps_pep_678_semantics(add_note):
    exc = ValueError("boom")
    add_note(exc, "first")
    add_note(exc, "second")
    assert exc.__notes__ == ["first", "second"]
    with pytest.raises(TypeError, match="note must be a str"):
        add_note(exc, 3)
    odd = KeyError("k")
    odd.__notes__ = ("not", "a list")
    with pytest.raises(TypeError, match="__notes__ is not a list"):
        add_note(odd, "x")


def test_fallback_notes_are_what_the_interpreter_prints():
    native, fallback = RuntimeError("x"), RuntimeError("x")
    for note in ("known issue y applies", "Reproduction script: r.py"):
        compat.add_note(native, note)
        compat._append_note(fallback, note)
    assert fallback.__notes__ == native.__notes__
    printed = "".join(traceback.format_exception(fallback))
    if sys.version_info >= (3, 11):  # 3.10's traceback module predates notes; pytest prints them there
        assert "known issue y applies\nReproduction script: r.py" in printed


def test_compat_on_python_3_10_takes_tomli_and_the_fallback(monkeypatch):
    """compat's 3.10 branch, taken here by making this interpreter say it is 3.10."""
    real = compat.tomllib
    tomli = types.ModuleType("tomli")  # a stand-in, so that the test sees which module compat took
    tomli.loads, tomli.TOMLDecodeError = real.loads, real.TOMLDecodeError
    appended = []
    try:
        monkeypatch.setitem(sys.modules, "tomli", tomli)
        monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
        reloaded = importlib.reload(compat)
        monkeypatch.setattr(reloaded, "_append_note", lambda exc, note: appended.append(note))
        assert reloaded.tomllib is tomli and reloaded.tomllib.loads("v = 2") == {"v": 2}
        note = reloaded.add_note
        note(ValueError(), "n")
        assert appended == ["n"]
    finally:
        monkeypatch.undo()
        importlib.reload(compat)
    assert compat.tomllib is real
