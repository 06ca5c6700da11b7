"""The every-family items and the coverage table: a family that breaks never hides another, and a
run that never reaches some axis value says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefixcheck import architectures, coverage, records
from prefixcheck.case import AttentionLayout, Case, ModelSpec, PrefixSpec
from tests.properties._common import INPUT_PATH_PROPERTIES, TASKS, every_family_cells, tasks_of

pytestmark = pytest.mark.selftest
ROOT = Path(__file__).resolve().parents[2]  # the faults live in tests/selftest


def test_every_available_architecture_task_and_projection_has_its_own_item():
    cells = every_family_cells("rotate")
    seen = {(c.model.arch, c.task, c.prefix.prefix_projection) for _, c in cells}
    for arch in architectures.available_architectures():
        for task in set(arch.available_tasks()) & set(TASKS):
            assert {(arch.name, task, False), (arch.name, task, True)} <= seen, arch.name
    # the pinned cross-product: every family x task x projection through every input-path property
    for arch, task, projection in seen:
        want = {p for p in INPUT_PATH_PROPERTIES if task in tasks_of(p)}
        got = {p for p, c in cells if (c.model.arch, c.task, c.prefix.prefix_projection) == (arch, task, projection)}
        assert want <= got and len(got - want) <= 1, (arch, task, projection, got)
    # and one turning property per family x task, which meets both projections over the run
    turning = {(p, c.prefix.prefix_projection) for p, c in cells if p not in INPUT_PATH_PROPERTIES}
    assert {p for p, _ in turning} == {p for p, proj in turning if proj} == {p for p, proj in turning if not proj}


def test_all_mode_runs_every_property_of_the_task_per_cell():
    rotate, every = every_family_cells("rotate"), every_family_cells("all")
    assert len(every) > 5 * len(rotate)
    props = {p for p, _ in every}
    assert {"input-paths", "generate-paths", "reload-equality"} <= props


def test_a_family_broken_at_build_leaves_every_other_family_judged(tmp_path):
    """Inject a fault that makes GPT-2 unbuildable and run the CAUSAL_LM every-family items in one
    process: GPT-2's items fail at build, and every other causal LM is still judged and counted."""
    faulty = tmp_path / "fault"
    faulty.mkdir()
    (faulty / "sitecustomize.py").write_text(
        "from tests.selftest import faults\nfaults.family_cannot_be_built(faults.Patcher(), 'gpt2')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(faulty), str(ROOT), env.get("PYTHONPATH")) if p),
        PREFIXCHECK_FAMILIES="curated",
        PREFIXCHECK_REPORTS=str(tmp_path / "reports"),
        PREFIXCHECK_ENV="broken-family",
        HYPOTHESIS_PROFILE="ci",
        OMP_NUM_THREADS="1",
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/properties/test_every_family.py", "-n", "0", "-q",
         "-p", "no:cacheprovider", "-k", "CAUSAL_LM"],  # fmt: skip
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "reports" / "broken-family" / "summary.json").read_text())
    by_arch = summary["coverage"]["architecture"]
    assert set(by_arch["gpt2"]) == {"failed"}, by_arch["gpt2"]
    assert all(f["at"] == "build" for f in summary["failures"] if f["describe"].startswith("gpt2/")), summary
    others = {a.name for a in architectures.available_architectures("curated") if "CAUSAL_LM" in a.available_tasks()}
    others.discard("gpt2")
    assert others <= set(by_arch), sorted(others - set(by_arch))
    for arch in others:
        assert "failed" not in by_arch[arch], (arch, by_arch[arch], summary["failures"])
        # input-paths and generate-paths with projection on and off, and the turning property on one
        assert sum(by_arch[arch].values()) in (4, 5), (arch, by_arch[arch])


def _record(case: Case, prop: str = "reload-equality") -> records.ExampleRecord:
    return records.ExampleRecord(outcome="passed", axes=coverage.axes(prop, case, curated=True))


def test_coverage_counts_every_axis_and_names_what_no_example_reached():
    case = Case(
        model=ModelSpec(arch="llama", num_layers=2, layout=AttentionLayout(16, 4, 2, 4)),
        task="CAUSAL_LM",
        prefix=PrefixSpec(num_virtual_tokens=3),
    )
    table = coverage.table([_record(case), _record(case.with_prefix(prefix_projection=True))])
    assert table["projection"] == {"false": {"passed": 1}, "true": {"passed": 1}}
    assert table["kv layout"] == {"gqa": {"passed": 2}}
    expected = {"projection": {"true", "false"}, "kv layout": {"mha", "gqa", "mqa"}, "task": {"CAUSAL_LM"}}
    assert coverage.gaps(table, expected) == ["kv layout=mha", "kv layout=mqa"]
    assert "| kv layout | gqa 2/0/0/0 |" in "\n".join(coverage.markdown(table))


def test_a_whole_ci_run_must_reach_every_axis_value():
    """What the property session checks at its end under the ci profile (tests/conftest.py)."""
    expected = coverage.expected(architectures.available_architectures(), TASKS, cuda=False)
    assert expected["input path"] >= {"ids+mask", "embeds", "generate-beam", "no-cache"}
    assert expected["families"] == {"curated", "discovered"} or architectures.family_set() == "curated"
    assert expected["kv layout"] == {"mha", "gqa", "mqa"}
    assert coverage.gaps({}, expected)  # an empty run reaches nothing
