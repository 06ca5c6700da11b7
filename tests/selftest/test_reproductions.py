"""Reproduction scripts run on their own: they pass on a clean install and fail, printing
FAILED, when PEFT carries the fault (injected through sitecustomize in the subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from prefixcheck import repro
from prefixcheck.properties import NAMES as PROPERTIES
from tests.properties._common import SEED_CASE
from tests.selftest.test_properties_catch_faults import BASE, GPT2, PROJECTED, SECOND

pytestmark = pytest.mark.selftest


def _run_with_fault(script, tmp_path, fault: str):
    """Run `script` with `faults.<fault>` injected into PEFT through sitecustomize."""
    faulty = tmp_path / "fault"
    faulty.mkdir(exist_ok=True)
    (faulty / "sitecustomize.py").write_text(f"from prefixcheck import faults\nfaults.{fault}\n")
    return _run(script, tmp_path, extra_path=faulty)


def _run(script, cwd, extra_path=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["OMP_NUM_THREADS"] = "1"
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra_path), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("prop", PROPERTIES)
def test_every_property_gets_a_script_that_compiles_and_names_its_case(prop):
    text = repro.script(prop, PROJECTED, second=SECOND)
    compile(text, f"repro-{prop}.py", "exec")
    assert repro.case_from_script(text) == PROJECTED
    assert "prefixcheck" not in text.replace("prefix-roundtrip", ""), "the script must not need this suite"


def test_a_script_passes_clean_and_fails_with_the_fault(tmp_path):
    script = repro.write("reload-equality", BASE, tmp_path / "repro.py")
    clean = _run(script, tmp_path)
    assert clean.returncode == 0 and "OK" in clean.stdout, clean.stdout + clean.stderr
    broken = _run_with_fault(
        script, tmp_path, f"swap_key_and_value_on_load(faults.Patcher(), num_layers={BASE.model.num_layers})"
    )
    assert broken.returncode == 1 and "FAILED: reloaded logits differ" in broken.stdout, broken.stdout + broken.stderr


def test_the_seed_script_reproduces_the_seed(tmp_path):
    """The Trainer script for the seed's structure fails the way peft#2256 / transformers#35087 say."""
    script = repro.write("trainer-best-model", SEED_CASE, tmp_path / "seed.py")
    run = _run(script, tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "load_best_model_at_end=True can lead to errors" in run.stderr or "size mismatch" in run.stderr, run.stderr


@pytest.mark.parametrize("key", sorted(k for k in repro.CHECKS if ":" in k))
def test_claim_scripts_compile(key):
    prop, point = key.split(":")
    text = repro.script(prop, PROJECTED, second=SECOND, point=point)
    compile(text, f"repro-{prop}-{point}.py", "exec")
    assert f"property '{key}'" in text


def test_the_uses_prefix_script_catches_a_generate_that_drops_the_prefix(tmp_path):
    script = repro.write("generate-first-step", BASE, tmp_path / "uses.py", point="uses-prefix")
    clean = _run(script, tmp_path)
    broken = _run_with_fault(script, tmp_path, "generate_ignores_prefix(faults.Patcher())")
    assert broken.returncode == 1 and "the prefix is not used" in broken.stdout, broken.stdout + broken.stderr
    # clean: passes where generate() uses the prefix; where this install's generate() drops it, fails the same way
    from prefixcheck.known_issues import matching

    dropped = any("uses-prefix" in i.places("generate-first-step", BASE) for i in matching("generate-first-step", BASE))
    assert clean.returncode == (1 if dropped else 0), clean.stdout + clean.stderr


def test_the_trainer_script_catches_a_trainer_that_keeps_its_last_model(tmp_path):
    """The script evaluates on the suite's receding labels, so its best checkpoint is an early one
    and a load_best_model_at_end that restores nothing is caught outside the suite too."""
    script = repro.write("trainer-best-model", BASE, tmp_path / "best.py")
    clean = _run(script, tmp_path)
    assert clean.returncode == 0 and "OK" in clean.stdout, clean.stdout + clean.stderr
    broken = _run_with_fault(script, tmp_path, "trainer_keeps_last_model(faults.Patcher())")
    assert broken.returncode == 1 and "differs from the best checkpoint's" in broken.stdout, broken.stdout


def test_the_left_padding_script_catches_positions_left_unshifted(tmp_path):
    """The left-padded row's script passes positions as generate() does: a PEFT that no longer shifts
    them past the virtual tokens is caught outside the suite too."""
    case = BASE.with_recipe(padding_side="right")
    script = repro.write("input-paths", case, tmp_path / "left.py", point="left-padded-row-equals-alone")
    clean = _run(script, tmp_path)
    assert clean.returncode == 0 and "OK" in clean.stdout, clean.stdout + clean.stderr
    broken = _run_with_fault(script, tmp_path, "positions_not_shifted_past_prefix(faults.Patcher())")
    assert broken.returncode == 1 and "the left-padded row differs" in broken.stdout, broken.stdout + broken.stderr


def test_the_first_step_script_compares_the_unpadded_rows_as_the_suite_does(tmp_path):
    """generate-first-step judges rows without padding (a padded row's positions differ between
    generate() and a plain forward pass); its script must too, or it reports a failure the suite
    does not see (it did, for BigBird and RoFormer on transformers 5.9)."""
    case = GPT2.with_recipe(padding_side="right")
    script = repro.write("generate-first-step", case, tmp_path / "first.py", point="matches-forward")
    clean = _run(script, tmp_path)
    assert clean.returncode == 0 and "OK" in clean.stdout, clean.stdout + clean.stderr


def test_the_generate_step_script_raises_where_the_suites_generate_step_does(tmp_path):
    """generate-paths' `generate` step has its own script: greedy generate() on the reloaded
    model, as the suite's step calls it. It used to fall back to the round trip, which never calls
    generate(), so the reports of Gemma's hybrid-cache and OpenLlama's missing generate() printed OK
    on the very releases where the suite fails."""
    script = repro.write("generate-paths", BASE, tmp_path / "gen.py", point="generate")
    clean = _run(script, tmp_path)
    assert clean.returncode == 0 and "OK" in clean.stdout, clean.stdout + clean.stderr
    broken = _run_with_fault(script, tmp_path, "generate_raises(faults.Patcher())")
    assert broken.returncode == 1 and "generate() is broken here" in broken.stderr, broken.stdout + broken.stderr


def test_the_disable_script_compares_with_a_fresh_base_model(tmp_path):
    """prefix-acts:disable-restores-base has its own script (the adapter disabled vs a fresh base,
    bitwise); it used to check only that the prefix acts, so PEFT 0.17's trained head surviving
    disable_adapter() printed OK."""
    script = repro.write("prefix-acts", BASE, tmp_path / "disable.py", point="disable-restores-base")
    clean = _run(script, tmp_path)
    assert clean.returncode == 0 and "OK" in clean.stdout, clean.stdout + clean.stderr
    broken = _run_with_fault(script, tmp_path, "disable_adapter_does_nothing(faults.Patcher())")
    assert broken.returncode == 1 and "differ from a fresh base model" in broken.stdout, broken.stdout + broken.stderr


def test_the_dtype_script_runs_clean_through_bf16_and_back(tmp_path):
    """dtype-roundtrip's script also checks back-to-fp32 (the adapter resaved from a bf16 base,
    loaded on fp32: bitwise); PEFT 0.12-0.14, which did not track a prompt-learning classification
    head, fail it (measured: 6.3e-4 on GPT-2 TOKEN_CLS, 0.15.2 passes)."""
    script = repro.write("dtype-roundtrip", BASE, tmp_path / "dtype.py")
    assert "fp32 -> bf16 -> fp32 changes the outputs" in script.read_text()
    clean = _run(script, tmp_path)
    assert clean.returncode == 0 and ("OK" in clean.stdout or "INCONCLUSIVE" in clean.stdout), (
        clean.stdout + clean.stderr
    )


@pytest.mark.parametrize("prop", [p for p in PROPERTIES if p.startswith("trainer-")])
def test_trainer_scripts_train_through_trainer_only_and_name_its_arguments_where_they_run(prop):
    """A Trainer script must fail where the suite's Trainer steps fail: no plain training loop
    first (on transformers 4.40 it hit the encoder-decoder classification bug before the T5
    TOKEN_CLS Trainer one), and TrainingArguments' names read from the transformers that runs it
    (a script written on 5.x passed eval_strategy= to 4.40)."""
    text = repro.script(prop, BASE)
    assert "\ntrain(model)\n" not in text and "\ntrain(model)\n" in repro.script("reload-equality", BASE)
    assert "eval_strategy=" not in text and "evaluation_strategy=" not in text
    assert "**{EVAL_STRATEGY: " in text
