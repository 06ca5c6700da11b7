"""Reproduction scripts run on their own: they carry the suite's check code verbatim, need nothing
of this suite, pass on a clean install and fail, printing FAILED, when PEFT carries a fault
(injected through sitecustomize in the subprocess).

That a script gives every claim the suite's verdict, clean and under each fault, is shown for
every fault scenario in test_properties_catch_faults.py (in-process, through the script's judge()).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from prefixcheck import properties, repro
from prefixcheck.properties import NAMES as PROPERTIES
from tests.properties._common import SEED_CASE
from tests.selftest.test_properties_catch_faults import BASE, PROJECTED, SECOND

pytestmark = pytest.mark.selftest
ROOT = Path(__file__).resolve().parents[2]
# runs a script with prefixcheck made unimportable: the script must need none of this suite
BLOCKED = "import runpy, sys; sys.modules['prefixcheck'] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"


def _run(script, cwd, fault: str = ""):
    """Run `script` standalone, with `tests.selftest.faults.<fault>` injected into PEFT through sitecustomize."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["OMP_NUM_THREADS"] = "1"
    if fault:
        faulty = Path(cwd) / "fault"
        faulty.mkdir(exist_ok=True)
        (faulty / "sitecustomize.py").write_text(f"from tests.selftest import faults\nfaults.{fault}\n")
        env["PYTHONPATH"] = os.pathsep.join([str(faulty), str(ROOT)])
    cmd = [sys.executable, "-c", BLOCKED, str(script)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("prop", PROPERTIES)
def test_every_property_gets_a_script_that_compiles_names_its_case_and_needs_no_suite(prop):
    text = repro.script(prop, PROJECTED, second=SECOND)
    compile(text, f"repro-{prop}.py", "exec")
    assert repro.case_from_script(text) == PROJECTED
    assert not re.search(r"^\s*(import|from) prefixcheck\b", text, re.M), "the script must not import this suite"


@pytest.mark.parametrize("prop", PROPERTIES)
def test_a_script_carries_the_suites_own_modules_verbatim(prop):
    """The same check code: every module a script carries is the file, byte for byte."""
    namespace: dict = {}
    text = repro.script(prop, PROJECTED, second=SECOND)
    exec(compile(text.split("\n\ndef load_suite():")[0], "script", "exec"), namespace)
    carried = namespace["SOURCES"]
    assert "engine" in carried and f"checks.{namespace['GROUP']}" in carried
    for module, source in carried.items():
        path = repro.ROOT.joinpath(*module.split(".")).with_suffix(".py")
        if not path.exists():
            path = repro.ROOT.joinpath(*module.split("."), "__init__.py")
        assert source == path.read_text(), module


@pytest.mark.parametrize("point", [p for p in properties.get("input-paths").points])
def test_a_script_about_any_point_compiles(point):
    text = repro.script("input-paths", BASE, point=point)
    compile(text, f"repro-input-paths-{point}.py", "exec")
    assert f"property 'input-paths:{point}'" in text


def test_a_script_passes_clean_and_fails_with_the_fault(tmp_path):
    script = repro.write("reload-equality", BASE, tmp_path / "repro.py")
    clean = _run(script, tmp_path)
    assert clean.returncode == 0 and "OK" in clean.stdout, clean.stdout + clean.stderr
    assert "reload-equality:reloaded-equals-trained: passed" in clean.stdout, clean.stdout
    fault = f"swap_key_and_value_on_load(faults.Patcher(), num_layers={BASE.model.num_layers})"
    broken = _run(script, tmp_path, fault)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "FAILED: reload-equality:reloaded-equals-trained on llama/CAUSAL_LM" in broken.stdout, broken.stdout
    assert "reloaded vs trained logits" in broken.stdout and "Traceback" in broken.stderr, broken.stderr


def test_the_seed_script_reproduces_the_seed(tmp_path):
    """The Trainer script for the seed's structure fails the way peft#2256 / transformers#35087 say."""
    script = repro.write("trainer-best-model", SEED_CASE, tmp_path / "seed.py")
    run = _run(script, tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAILED: trainer-best-model:trainer-train" in run.stdout, run.stdout
    said = run.stdout + run.stderr
    assert "load_best_model_at_end=True can lead to errors" in said or "size mismatch" in said, said
