"""The probe that judges one version inside its environment (`python -m matrix probe`), in-process
and once as a subprocess, and the evaluator that runs it in each environment.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from matrix.bisect import evaluate as bisect_evaluate
from prefixcheck import verdicts
from prefixcheck.case import AttentionLayout, Case, ModelSpec
from tests.selftest.bisect_support import CASE, CLAIM, plan_with

pytestmark = pytest.mark.selftest


# -- the probe ---------------------------------------------------------------------------------------
def test_probe_verdicts_in_process(monkeypatch, tmp_path):
    from matrix.bisect import probe
    from tests.selftest import faults

    monkeypatch.setenv("PREFIXCHECK_REPORTS", str(tmp_path))  # a failure writes its reproduction script there
    clean = probe.run_case("reload-equality", CASE)
    assert clean["verdict"] == "pass" and clean["point"] is None
    faults.perturb_loaded_table(monkeypatch.setattr)  # a real fault: loading adds 1e-3 to the prefix table
    broken = probe.run_case("reload-equality", CASE)
    assert broken["verdict"] == "fail" and broken["point"] == "reloaded-equals-trained"
    assert broken["kind"] == "beyond-tolerance" and broken["known"] is None and broken["max_diff"] > 0
    gpt2 = Case(model=ModelSpec("gpt2", 2, AttentionLayout(8, 2, 2, 4)), task="SEQ_2_SEQ_LM", prefix=CASE.prefix)
    assert probe.run_case("reload-equality", gpt2)["verdict"] == "unsupported"  # no GPT-2 seq2seq head


def test_probe_verdict_rules():
    from prefixcheck import properties

    prop = properties.get("input-paths")
    claims = [c.name for c in prop.claims]
    allpass = {c: ("passed", None) for c in claims}

    def verdict_of(prop, points, claim):
        return verdicts.probe_verdict([*prop.steps, *claims], claims, points, claim)

    assert verdict_of(prop, allpass, None) == ("pass", None)
    assert verdict_of(prop, {**allpass, CLAIM: ("known", "x")}, None) == ("fail", CLAIM)
    assert verdict_of(prop, {**allpass, CLAIM: ("known", "x")}, "embeds-equal-ids") == (
        "pass",
        "embeds-equal-ids",
    )
    assert verdict_of(prop, {**allpass, CLAIM: ("inconclusive", None)}, CLAIM) == ("inconclusive", CLAIM)
    assert verdict_of(
        prop, {"train": ("failed", None), **{c: ("blocked", "step train failed") for c in claims}}, CLAIM
    ) == ("blocked", CLAIM)
    assert verdict_of(prop, {"train": ("failed", None)}, None) == ("fail", "train")


def test_the_probe_reports_an_entrys_signature_outside_its_declared_bounds(monkeypatch, tmp_path):
    """RESULT.json's `signatures`: the entries whose failure this is, whatever the versions (what
    `bisect --registry` measures bounds with); --entry judges as if one entry applied everywhere."""
    import dataclasses

    from matrix.bisect import probe
    from prefixcheck import registry
    from prefixcheck.registry import schema

    entry = "peft-disable-adapter-prompt-learning-no-generation"
    case = CASE.replace(task="SEQ_CLS")
    monkeypatch.setenv("PREFIXCHECK_REPORTS", str(tmp_path))
    declared_elsewhere = [
        dataclasses.replace(i, affects={"transformers": "<4.0"}) if i.id == entry else i for i in registry.default()
    ]
    (tmp_path / "registry.toml").write_text("\n".join(schema.render(i) for i in declared_elsewhere))
    monkeypatch.setenv(registry.ENV, str(tmp_path / "registry.toml"))  # this run's registry file
    outside = probe.run_case("prefix-acts", case, "disable")
    # the entry does not apply to these versions, so the registry does not explain the failure...
    assert outside["verdict"] == "fail" and outside["known"] is None
    # ...yet it is this entry's failure, which is what measuring its bounds asks
    assert entry in outside["signatures"]
    inside = probe.run_case("prefix-acts", case, "disable", entry=entry)  # --entry: as if it applied everywhere
    assert inside["known"] == entry and entry in inside["signatures"]
    assert registry.default().by_id(entry).affects == {"transformers": "<4.0"}  # the run's registry untouched


def test_a_probe_batch_judges_each_job_alone_and_goes_on_after_one_that_cannot_run(monkeypatch, tmp_path):
    """--batch (bisect --registry --sweep): each job as --entry alone would judge it, the registry
    restored between jobs and after; a job that raises, or runs past --timeout-each, is `could not
    run` and the next one runs."""
    from matrix.bisect import probe
    from prefixcheck import registry

    entry = "peft-disable-adapter-prompt-learning-no-generation"
    monkeypatch.setenv("PREFIXCHECK_REPORTS", str(tmp_path))
    declared = registry.default().by_id(entry).affects
    job = {
        "entry": entry,
        "property": "prefix-acts",
        "claim": "disable",
        "case": CASE.replace(task="SEQ_CLS").to_dict(),
    }
    jobs = [
        job,
        {**job, "property": "no-such-property"},
        {**job, "entry": None, "property": "reload-equality", "claim": None},
    ]
    first, broken, plain = probe.run_batch(jobs, timeout_each=600)
    assert first["verdict"] == "fail" and first["known"] == entry and entry in first["explained_here"]
    assert first["claim"] == "prefix-acts:disable"
    assert broken["verdict"] == "could not run" and "no-such-property" in broken["error"]
    assert plain["verdict"] == "pass" and registry.default().by_id(entry).affects == declared
    monkeypatch.setattr(probe, "run_case", lambda *args, **kwargs: time.sleep(30))  # a job that hangs
    (slow,) = probe.run_batch([job], timeout_each=0.5)
    assert slow == {"verdict": "could not run", "error": "no answer within 0.5 s", "seconds": slow["seconds"]}
    assert slow["seconds"] < 10


def test_the_batch_evaluator_runs_one_probe_per_release_for_every_job(tmp_path, monkeypatch):
    """The real BatchEvaluator with build_env stood in: a release that cannot install gives every
    job `could not run` with uv's reason; the other runs python -m matrix probe --batch in this Python."""
    from matrix.grid import cells as cells_mod
    from matrix.grid import envs

    def build_env(cell, where, log):
        if cell.transformers == "4.45.2":
            subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('  × No solution found')"])
            raise subprocess.CalledProcessError(1, ["uv", "pip", "install"])
        return Path(sys.executable), 0.0

    monkeypatch.setattr(envs, "build_env", build_env)
    axis = {c.transformers: c for c in cells_mod.load().transformers_axis()}
    work = tmp_path / "work"
    work.mkdir()
    run = bisect_evaluate.BatchEvaluator(axis, tmp_path / "envs", work, timeout=300)
    jobs = [{"entry": None, "property": "reload-equality", "claim": None, "case": CASE.to_dict()}] * 2
    cannot = run("4.45.2", jobs)
    assert [v.verdict for v in cannot] == [verdicts.COULD_NOT_RUN] * 2 and "No solution found" in cannot[0].detail
    here = run(sorted(axis)[-1], jobs + [{**jobs[0], "property": "no-such-property"}])
    assert [v.verdict for v in here] == ["pass", "pass", verdicts.COULD_NOT_RUN]
    assert here[0].data["cell"] == axis[sorted(axis)[-1]].name and here[0].data["versions"]["peft"]


def test_evaluator_runs_the_probe_in_an_environment_and_skips_what_cannot_install(releases, tmp_path, monkeypatch):
    """The real Evaluator with build_env stood in: one version cannot install (uv's error becomes
    its one-line reason), the other's environment is this Python, where `python -m matrix probe` runs for real."""
    from matrix.grid import envs

    def build_env(cell, where, log):
        if cell.peft == "0.15.0":  # uv writes its resolver error to fd 2 and exits 1
            uv_says = (
                "  × No solution found when resolving dependencies:\n  ╰─▶ Because peft==0.15.0 depends on "
                "transformers<4 we can conclude that it is unsatisfiable.\n  hint: pre-releases"
            )
            subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write(sys.argv[1])", uv_says], check=False)
            raise subprocess.CalledProcessError(1, ["uv", "pip", "install"])
        return Path(sys.executable), 0.0

    monkeypatch.setattr(envs, "build_env", build_env)
    plan = plan_with(prop="reload-equality", claim=None)
    work = tmp_path / "work"
    work.mkdir()
    evaluator = bisect_evaluate.Evaluator(plan, tmp_path / "envs", work, timeout=300)
    cannot = evaluator("0.15.0")
    assert cannot.verdict == verdicts.COULD_NOT_RUN
    assert (
        cannot.detail
        == "environment: Because peft==0.15.0 depends on transformers<4 we can conclude that it is unsatisfiable."
    )
    ran = evaluator("0.21.2")
    assert ran.verdict == "pass", ran.data
    assert ran.data["versions"]["peft"] == "0.21.2" and ran.data["cell"] == plan.cell("0.21.2").name
    assert {"verdict", "point", "known", "matching", "versions", "seconds"} <= set(ran.data) | {"known"}
