"""`python -m matrix bisect`: the pure search (regression, fix, skipped versions, no boundary), the
command's inputs (each bad one a one-line error, exit 2), the report's parts, the square and commit
modes, and the probe that judges one version inside its environment.

The release index is a fake (matrix.grid.releases.versions_between and friends, injected); a version's
verdict is injected too, except in the probe tests (the probe runs here, in-process and once as a
subprocess) and the opt-in end-to-end commit bisect (BISECT_E2E=1: real uv environments of a PEFT
git repository built here; see docs/bisect/README.md for its cost).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

import matrix.grid
from matrix.bisect import commands as bisect_commands
from matrix.bisect import evaluate as bisect_evaluate
from matrix.bisect import inputs as bisect_inputs
from matrix.bisect import plan as bisect_plan
from matrix.bisect import report as bisect_report
from matrix.bisect.search import Verdict, search
from prefixcheck import verdicts
from prefixcheck.case import AttentionLayout, Case, ModelSpec, PrefixSpec, Recipe

pytestmark = pytest.mark.selftest

PEFT = ["0.15.0", "0.15.1", "0.15.2", "0.16.0", "0.17.0", "0.17.1", "0.18.0", "0.18.1", "0.19.0", "0.20.0", "0.21.2"]
TRANSFORMERS = ["4.55.4", "4.56.2", "4.57.6", "5.0.0", "5.23.0", "5.24.0"]
CASE = Case(
    model=ModelSpec(arch="llama", num_layers=2, layout=AttentionLayout(16, 4, 2, 4)),
    task="CAUSAL_LM",
    prefix=PrefixSpec(num_virtual_tokens=3),
    recipe=Recipe(steps=2, learning_rate=5e-2, batch_size=2, seq_len=6, num_padded=2),
)
PROP, CLAIM = "input-paths", "left-padded-row-equals-alone"


# -- the pure search --------------------------------------------------------------------------------
def _by_threshold(versions, first_other: str, before: str, after: str, could_not_run=()):
    calls = []

    def evaluate(version):
        calls.append(version)
        if version in could_not_run:
            return Verdict(verdicts.COULD_NOT_RUN, "environment: no matching distribution")
        return before if versions.index(version) < versions.index(first_other) else after

    return evaluate, calls


@pytest.mark.parametrize("first_bad", PEFT[1:])
def test_search_finds_every_regression_boundary(first_bad):
    evaluate, calls = _by_threshold(PEFT, first_bad, "pass", "fail")
    result = search(PEFT, evaluate)
    i = PEFT.index(first_bad)
    assert result.boundary == (i - 1, i)
    assert result.direction == "regression"
    assert calls[:2] == [PEFT[0], PEFT[-1]]  # the ends first
    assert len(calls) == len(set(calls)) <= 2 + 4  # each version once; log2(11) rounds up to 4
    assert [v for v, _ in result.tested] == calls  # every evaluation recorded, in order


def test_search_finds_a_fix_boundary():
    evaluate, _ = _by_threshold(PEFT, "0.19.0", "fail", "pass")
    result = search(PEFT, evaluate)
    assert [result.versions[i] for i in result.boundary] == ["0.18.1", "0.19.0"]
    assert result.direction == "fix"


def test_search_skips_versions_that_cannot_run_ends_included():
    # the oldest two and the middle cannot install; the boundary is still found, and every version
    # that could not run is recorded as such, never as good or bad
    cannot = {"0.15.0", "0.15.1", "0.17.1"}
    evaluate, calls = _by_threshold(PEFT, "0.18.0", "pass", "fail", could_not_run=cannot)
    result = search(PEFT, evaluate)
    assert [result.versions[i] for i in result.boundary] == ["0.17.0", "0.18.0"]
    skipped = {v for v, verdict in result.tested if verdict.verdict == verdicts.COULD_NOT_RUN}
    assert skipped <= cannot and "0.15.0" in skipped and "0.15.1" in skipped
    assert all(v.decisive for n, v in result.tested if n not in cannot)


def test_boundary_spans_a_version_that_cannot_run():
    evaluate, _ = _by_threshold(PEFT, "0.18.1", "pass", "fail", could_not_run={"0.18.0"})
    result = search(PEFT, evaluate)
    assert [result.versions[i] for i in result.boundary] == ["0.17.1", "0.18.1"]
    assert result.skipped_between == ["0.18.0"]


def test_search_without_a_boundary():
    result = search(PEFT, lambda v: "fail")
    assert result.boundary is None and result.direction is None
    assert [v for v, _ in result.tested] == [PEFT[0], PEFT[-1]]  # equal ends: nothing to halve
    nothing = search(PEFT, lambda v: Verdict(verdicts.COULD_NOT_RUN))
    assert nothing.boundary is None and not nothing.decisive and len(nothing.tested) == len(PEFT)


def test_inconclusive_and_blocked_do_not_decide():
    verdicts = {"0.16.0": "inconclusive", "0.17.0": "blocked"}
    evaluate, _ = _by_threshold(PEFT, "0.17.1", "pass", "fail")
    result = search(PEFT, lambda v: verdicts.get(v) or evaluate(v))
    assert [result.versions[i] for i in result.boundary] == ["0.15.2", "0.17.1"]
    assert result.skipped_between == ["0.16.0", "0.17.0"]


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


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bisect_commands.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def case_file(tmp_path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(CASE.to_dict()))
    return path


FAIL_DATA = {
    "verdict": "fail",
    "point": CLAIM,
    "claim": f"{PROP}:{CLAIM}",
    "kind": "beyond-tolerance",
    "error": "BeyondTolerance: left-padded row vs the row alone: max |diff| 1.234e-02 > atol 1e-05",
    "max_diff": 0.01234,
    "known": "peft-before-0.19-drops-position-ids",
    "matching": [
        {
            "id": "peft-before-0.19-drops-position-ids",
            "title": "PEFT before 0.19 drops explicit position_ids for prefix tuning",
            "affects": {"peft": "<0.19"},
            "references": [],
        }
    ],
    "versions": {"peft": "0.18.1", "transformers": "4.57.6", "torch": "2.13.0+cpu"},
}


def _fake_probe(first_pass: str, versions=PEFT, known=True, script: Path | None = None, cannot=()):
    def evaluate(version):
        if version in cannot:
            return Verdict(verdicts.COULD_NOT_RUN, "environment: Because peft==X depends on transformers>=9")
        if versions.index(version) >= versions.index(first_pass):
            return Verdict("pass", f"{PROP}:{CLAIM}", {"verdict": "pass", "point": CLAIM, "versions": {}})
        data = {**FAIL_DATA, "versions": {**FAIL_DATA["versions"], "peft": version}}
        if not known:
            data["known"], data["matching"] = None, []
        if script:
            data["script"] = str(script)
        return Verdict("fail", bisect_evaluate.describe(data), data)

    return evaluate


def test_command_prints_one_line_per_version_and_the_boundary_last(releases, case_file, tmp_path):
    lines = []
    script = tmp_path / "repro.py"
    script.write_text('print("FAILED: left-padded row")\n')
    rc = bisect_commands.bisect_command(
        _args(
            "--property",
            PROP,
            "--claim",
            CLAIM,
            "--case",
            str(case_file),
            "--peft",
            "0.15.0..0.21.2",
            "--transformers",
            "4.57.6",
            "--out",
            str(tmp_path / "out"),
        ),
        evaluate=_fake_probe("0.19.0", script=script),
        out=lines.append,
    )
    assert rc == 0
    assert lines[-1] == "boundary: peft 0.18.1 (fail) -> 0.19.0 (pass)"
    tested = [line for line in lines if line.startswith("peft ")]
    assert tested[0].startswith("peft 0.15.0: fail (input-paths:left-padded-row-equals-alone; beyond-tolerance; known")
    assert tested[1].startswith("peft 0.21.2: pass")
    assert {line.split(":")[0] for line in tested} >= {"peft 0.18.1", "peft 0.19.0"}
    reports = list((tmp_path / "out").glob("*.md"))
    assert len(reports) == 1
    record = json.loads(reports[0].with_suffix(".json").read_text())
    assert record["boundary"] == ["0.18.1", "0.19.0"] and record["direction"] == "fix"
    assert [t["version"] for t in record["tested"]] == [line.split(":")[0].split()[1] for line in tested]


def test_command_exits_1_when_every_version_agrees(releases, case_file, tmp_path):
    lines = []
    rc = bisect_commands.bisect_command(
        _args(
            "--property",
            PROP,
            "--case",
            str(case_file),
            "--peft",
            "0.21.2",
            "--transformers",
            "4.55.4..5.24.0",
            "--out",
            str(tmp_path),
        ),
        evaluate=lambda v: Verdict("pass"),
        out=lines.append,
    )
    assert rc == 1
    assert lines[-1].startswith("no boundary: every version that ran gives pass")
    assert not list(tmp_path.glob("*.md"))


def test_command_exits_2_when_nothing_can_run(releases, case_file, tmp_path, capsys):
    rc = bisect_commands.bisect_command(
        _args(
            "--property",
            PROP,
            "--case",
            str(case_file),
            "--peft",
            "0.15.0..0.15.2",
            "--transformers",
            "4.57.6",
            "--out",
            str(tmp_path),
        ),
        evaluate=lambda v: Verdict(verdicts.COULD_NOT_RUN, "environment: broken"),
        out=lambda line: None,
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: no version could be evaluated")


def _bad_inputs(tmp_path, case_file):
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    not_a_case = tmp_path / "other.json"
    not_a_case.write_text(json.dumps({"model": {"arch": "llama"}, "task": "CAUSAL_LM"}))
    c = str(case_file)
    ok = ("--peft", "0.15.0..0.21.2", "--transformers", "4.57.6")
    return {
        "unknown property": (["--property", "no-such-property", "--case", c, *ok], "unknown property"),
        "no property": (["--case", c, *ok], "--property is required"),
        "unknown claim": (["--property", PROP, "--claim", "no-such-claim", "--case", c, *ok], "--claim"),
        "missing case": (["--property", PROP, "--case", str(tmp_path / "nope.json"), *ok], "cannot read it"),
        "case not JSON": (["--property", PROP, "--case", str(garbage), *ok], "not a case"),
        "case incomplete": (["--property", PROP, "--case", str(not_a_case), *ok], "not a case"),
        "range open": (["--property", PROP, "--case", c, "--peft", "0.15.0..", "--transformers", "4.57.6"], "range"),
        "range three dots": (
            ["--property", PROP, "--case", c, "--peft", "0.15.0...0.21.2", "--transformers", "4.57.6"],
            "range",
        ),
        "range reversed": (
            ["--property", PROP, "--case", c, "--peft", "0.21.2..0.15.0", "--transformers", "4.57.6"],
            "older",
        ),
        "range words": (["--property", PROP, "--case", c, "--peft", "latest", "--transformers", "4.57.6"], "range"),
        "two ranges": (
            ["--property", PROP, "--case", c, "--peft", "0.15.0..0.21.2", "--transformers", "4.55.4..5.0.0"],
            "exactly one",
        ),
        "no range": (["--property", PROP, "--case", c, "--peft", "0.21.2", "--transformers", "4.57.6"], "exactly one"),
        "no versions": (["--property", PROP, "--case", c], "give --peft and --transformers"),
        "not a release": (
            ["--property", PROP, "--case", c, "--peft", "0.15.7..0.21.2", "--transformers", "4.57.6"],
            "0.15.7 is not a",
        ),
        "fixed not a release": (
            ["--property", PROP, "--case", c, "--peft", "0.15.0..0.21.2", "--transformers", "4.57.9"],
            "4.57.9 is not a",
        ),
        "generate on classification": (
            ["--property", "generate-paths", "--case", str(_seq_cls(tmp_path)), *ok],
            "needs a generative task",
        ),
        "square without run": (["--square", "a:b"], "--run"),
        "square malformed": (["--square", "ab", "--run", str(tmp_path)], "PRODUCER:CONSUMER"),
        "square missing results": (["--square", "a:b", "--run", str(tmp_path)], "cannot read the consumer's results"),
        "git not a repository": (
            [
                "--property",
                PROP,
                "--case",
                c,
                "--git",
                str(tmp_path),
                "--good",
                "a",
                "--bad",
                "b",
                "--transformers",
                "4.57.6",
            ],
            "not a git repository",
        ),
        "git without refs": (
            ["--property", PROP, "--case", c, "--git", str(tmp_path), "--transformers", "4.57.6"],
            "--good",
        ),
    }


def _seq_cls(tmp_path):
    path = tmp_path / "seq_cls.json"
    path.write_text(json.dumps(CASE.replace(task="SEQ_CLS").to_dict()))
    return path


def test_bad_inputs_are_one_line_errors_with_exit_2(releases, case_file, tmp_path, capsys):
    for name, (argv, expected) in _bad_inputs(tmp_path, case_file).items():
        called = []
        rc = bisect_commands.bisect_command(
            _args(*argv), evaluate=lambda v, called=called: called.append(v) or "pass", out=lambda line: None
        )
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert rc == 2, name
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, captured.err)
        assert expected in lines[0], (name, lines[0])
        assert "Traceback" not in captured.err + captured.out and not called, name


def test_bad_git_refs(releases, case_file, tmp_path, capsys):
    repo = _git_repo(tmp_path / "repo", ["good"] * 3)
    for good, bad, expected in (
        ("nope", "HEAD", "no such commit"),
        ("HEAD", "HEAD", "same commit"),
        ("HEAD", "HEAD~2", "not an ancestor"),
    ):
        rc = bisect_commands.bisect_command(
            _args(
                "--property",
                PROP,
                "--case",
                str(case_file),
                "--git",
                str(repo),
                "--good",
                good,
                "--bad",
                bad,
                "--transformers",
                "4.57.6",
            ),
            evaluate=lambda v: "pass",
            out=lambda line: None,
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and expected in err[0], (good, bad, err)


def test_the_real_release_module_through_a_fake_index(monkeypatch, case_file, tmp_path):
    """matrix/grid/releases.py itself (not the fake), answering from recorded simple-API pages."""
    releases = pytest.importorskip("matrix.grid.releases")

    def page(package, versions):
        return {
            "files": [
                {"filename": f"{package}-{v}-py3-none-any.whl", "upload-time": f"2025-01-{i + 1:02d}T00:00:00Z"}
                for i, v in enumerate(versions)
            ]
        }

    pages = {"peft": page("peft", PEFT + ["0.22.0rc1"]), "transformers": page("transformers", TRANSFORMERS)}

    def fetch(url):
        return pages[url.rstrip("/").rsplit("/", 1)[-1]]

    assert releases.versions_between("peft", "0.18.0", "0.21.2", fetch=fetch) == [
        "0.18.0",
        "0.18.1",
        "0.19.0",
        "0.20.0",
        "0.21.2",
    ]
    lines = []
    rc = bisect_commands.bisect_command(
        _args(
            "--property",
            PROP,
            "--case",
            str(case_file),
            "--peft",
            "0.18.0..0.21.2",
            "--transformers",
            "4.57.6",
            "--out",
            str(tmp_path),
        ),
        fetch=fetch,
        evaluate=_fake_probe("0.19.0"),
        out=lines.append,
    )
    assert rc == 0 and lines[-1] == "boundary: peft 0.18.1 (fail) -> 0.19.0 (pass)"


# -- reading cases ----------------------------------------------------------------------------------
def test_case_from_a_reproduction_script_and_a_failure_record(tmp_path):
    from prefixcheck import repro

    script = tmp_path / "input-paths-x.py"
    repro.write(PROP, CASE, script, point=CLAIM)
    source = bisect_inputs.read_case(str(script))
    assert Case.from_dict(source.case) == CASE
    assert (source.prop, source.point) == (PROP, CLAIM)
    record = tmp_path / "failure.json"  # an entry of summary.json's "failures"
    record.write_text(json.dumps({"property": PROP, "case": CASE.key, "at": CLAIM, "repro": str(script)}))
    source = bisect_inputs.read_case(str(record))
    assert Case.from_dict(source.case) == CASE and (source.prop, source.point) == (PROP, CLAIM)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"case": CASE.to_dict(), "versions": {}}))
    assert Case.from_dict(bisect_inputs.read_case(str(manifest)).case) == CASE


def test_the_scripts_claim_decides_unless_another_is_given(releases, tmp_path):
    from prefixcheck import repro

    script = repro.write(PROP, CASE, tmp_path / "s.py", point=CLAIM)
    plan = bisect_plan.plan_from_args(
        _args("--property", PROP, "--case", str(script), "--peft", "0.15.0..0.21.2", "--transformers", "4.57.6")
    )
    assert plan.claim == CLAIM and plan.versions == PEFT
    plan = bisect_plan.plan_from_args(
        _args(
            "--property",
            PROP,
            "--claim",
            "embeds-equal-ids",
            "--case",
            str(script),
            "--peft",
            "0.21.2",
            "--transformers",
            "4.57.6..5.23.0",
        )
    )
    assert plan.claim == "embeds-equal-ids" and plan.package == "transformers"
    assert plan.versions == ["4.57.6", "5.0.0", "5.23.0"] and plan.fixed == {"peft": "0.21.2"}


# -- the report -------------------------------------------------------------------------------------
def _plan(**changes):
    base = dict(
        package="peft",
        versions=PEFT,
        fixed={"transformers": "4.57.6"},
        prop=PROP,
        claim=CLAIM,
        case=CASE.to_dict(),
        source="case case.json",
    )
    return bisect_plan.Plan(**{**base, **changes})


def test_the_report_has_every_part_for_a_known_issue():
    plan = _plan()
    result = search(PEFT, _fake_probe("0.19.0"))
    runs = {"0.18.1": {"rc": 1, "line": "FAILED: left-padded row"}, "0.19.0": {"rc": 0, "line": "OK: the check holds"}}
    text = bisect_report.report_markdown(plan, result, "print('the script')\n", runs, 42.0)
    assert text.startswith("# peft 0.19.0 fixes `input-paths:left-padded-row-equals-alone` on llama CAUSAL_LM")
    for part in (
        "## Versions",
        "| last failing | 0.18.1 | fail",
        "| first passing | 0.19.0 | pass",
        "Compare: https://github.com/huggingface/peft/compare/v0.18.1...v0.19.0",
        "transformers 4.57.6 fixed",
        "## Reproduction",
        "```python\nprint('the script')\n```",
        "peft 0.18.1: exit 1, `FAILED: left-padded row`",
        "## Observed vs expected",
        "max |diff| 1.234e-02",
        "Expected (`input-paths:left-padded-row-equals-alone`)",
        "## Registry",
        "This is known issue `peft-before-0.19-drops-position-ids`",
        "The boundary agrees with its range: peft <0.19 holds for 0.18.1 and not for 0.19.0",
    ):
        assert part in text, part
    for version, _ in result.tested:
        assert f"| {version} |" in text


def test_a_boundary_the_registry_range_disagrees_with_is_said():
    result = search(PEFT, _fake_probe("0.18.0"))  # fixed earlier than the entry says
    text = bisect_report.report_markdown(_plan(), result, None, {}, 1.0)
    assert "does NOT agree with its range peft <0.19" in text


def test_the_report_drafts_a_registry_entry_that_validates():
    from prefixcheck import registry

    result = search(
        TRANSFORMERS,
        lambda v: (
            "pass"
            if TRANSFORMERS.index(v) < 3
            else Verdict(
                "fail",
                "",
                {
                    **FAIL_DATA,
                    "known": None,
                    "matching": [],
                    "point": "embeds-equal-ids",
                    "kind": "RuntimeError",
                    "error": "RuntimeError: The size of tensor a (8) must match the size of tensor b (5)",
                    "max_diff": None,
                },
            )
        ),
    )
    plan = _plan(package="transformers", versions=TRANSFORMERS, fixed={"peft": "0.21.2"}, claim=None)
    text = bisect_report.report_markdown(plan, result, None, {}, 1.0)
    assert text.startswith("# transformers 5.0.0: `input-paths:embeds-equal-ids` fails on llama CAUSAL_LM")
    assert "Compare: https://github.com/huggingface/transformers/compare/v4.57.6...v5.0.0" in text
    assert "No registry entry explains it" in text and "validated by the registry loader" in text
    draft = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (entry,) = registry.parse(draft, "draft")
    assert entry.affects == {"transformers": ">=5.0.0"}
    assert entry.cases == {"arch": ("llama",), "task": ("CAUSAL_LM",)}
    assert entry.fails[0].at == ("input-paths:embeds-equal-ids",)
    assert entry.fails[0].exception == "RuntimeError"
    # the pattern matches the failure it was drafted from, and the same failure at other sizes
    assert entry.fails[0].matches(RuntimeError("The size of tensor a (9) must match the size of tensor b (6)"))


# -- square mode ---------------------------------------------------------------------------------------
def test_place_of_a_consume_row():
    assert bisect_inputs.place_of({"verdict": "load-error", "detail": "KeyError: 'x'"}) == ("reload-equality", "load")
    assert bisect_inputs.place_of({"verdict": "fail", "detail": "adapter logits: max |diff| 1e-2"}) == (
        "reload-equality",
        "reloaded-equals-trained",
    )
    assert bisect_inputs.place_of({"verdict": "fail", "detail": "generate(): [[1]] != producer's [[2]]"}) == (
        "generate-roundtrip",
        "tokens-survive",
    )
    assert bisect_inputs.place_of({"verdict": "known-issue", "detail": "ValueChanged: config num_layers: saved 2"}) == (
        "config-roundtrip",
        "loaded-equals-saved",
    )
    assert bisect_inputs.place_of({"verdict": "fail", "detail": "loaded prefix table: max |diff| 1e-3"}) == (
        "resave-identical",
        "tensors-identical",
    )


def _run_folder(tmp_path, producer_versions, consumer_versions, verdict="fail"):
    run = tmp_path / "run"
    folder = run / "artifacts" / "peft-0.15.2" / CASE.key
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"case": CASE.to_dict(), "versions": producer_versions}))
    rows = [
        {"producer": "peft-0.15.2", "case": "aaaa", "verdict": "pass", "detail": ""},
        {"producer": "peft-0.15.2", "case": CASE.key, "verdict": verdict, "detail": "adapter logits: max |diff| 3e-1"},
        {"producer": "other", "case": "bbbb", "verdict": "fail", "detail": "adapter logits"},
    ]
    (run / "results").mkdir()
    (run / "results" / "peft-latest.json").write_text(json.dumps({"versions": consumer_versions, "rows": rows}))
    return run


def test_square_mode_bisects_the_consumers_peft(releases, tmp_path):
    run = _run_folder(
        tmp_path, {"peft": "0.15.2", "transformers": "4.57.6"}, {"peft": "0.21.2", "transformers": "4.57.6"}
    )
    plan = bisect_plan.plan_from_args(_args("--square", "peft-0.15.2:peft-latest", "--run", str(run)))
    assert plan.package == "peft" and plan.fixed == {"transformers": "4.57.6"}
    assert plan.versions == PEFT[2:] and (plan.prop, plan.claim) == ("reload-equality", "reloaded-equals-trained")
    assert plan.artifact == (run / "artifacts" / "peft-0.15.2" / CASE.key).resolve()
    lines = []
    rc = bisect_commands.bisect_command(
        _args("--square", "peft-0.15.2:peft-latest", "--run", str(run), "--out", str(tmp_path / "r")),
        evaluate=lambda v: (
            "pass"
            if PEFT.index(v) < PEFT.index("0.17.0")
            else Verdict("fail", "", {**FAIL_DATA, "known": None, "matching": [], "point": "reloaded-equals-trained"})
        ),
        out=lines.append,
    )
    assert rc == 0 and lines[-1] == "boundary: peft 0.16.0 (pass) -> 0.17.0 (fail)"
    (report,) = (tmp_path / "r").glob("*.md")
    assert "matrix square (peft-0.15.2:peft-latest)" in report.read_text()


def test_square_mode_bisects_transformers_when_the_pefts_match(releases, tmp_path, capsys):
    run = _run_folder(
        tmp_path, {"peft": "0.21.2", "transformers": "5.24.0"}, {"peft": "0.21.2", "transformers": "4.57.6"}
    )
    plan = bisect_plan.plan_from_args(_args("--square", "peft-0.15.2:peft-latest", "--run", str(run)))
    assert plan.package == "transformers" and plan.fixed == {"peft": "0.21.2"}
    assert plan.versions == ["4.57.6", "5.0.0", "5.23.0", "5.24.0"]
    same = _run_folder(
        tmp_path / "same", {"peft": "0.21.2", "transformers": "5.24.0"}, {"peft": "0.21.2", "transformers": "5.24.0"}
    )
    assert (
        bisect_commands.bisect_command(
            _args("--square", "peft-0.15.2:peft-latest", "--run", str(same)), out=lambda line: None
        )
        == 2
    )
    assert "same peft and transformers" in capsys.readouterr().err
    passing = _run_folder(tmp_path / "passing", {"peft": "0.15.2"}, {"peft": "0.21.2"}, verdict="pass")
    assert (
        bisect_commands.bisect_command(
            _args("--square", "peft-0.15.2:peft-latest", "--run", str(passing)), out=lambda line: None
        )
        == 2
    )
    assert "no failing row" in capsys.readouterr().err


# -- commit mode ---------------------------------------------------------------------------------------
def _git_repo(path: Path, behaviours: list[str]) -> Path:
    """A git repository with one commit per behaviour ("good"/"bad" in behaviour.txt)."""
    path.mkdir(parents=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    for i, behaviour in enumerate(behaviours):
        (path / "behaviour.txt").write_text(behaviour + "\n")
        (path / "history.txt").write_text(f"commit {i}\n")
        subprocess.run(["git", "-C", str(path), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", f"change {i}: {behaviour}"], check=True, env=env)
    return path


def test_commit_mode_finds_the_first_bad_commit(releases, case_file, tmp_path):
    behaviours = ["good", "good", "good", "good", "bad", "bad", "bad"]  # commit 4 breaks it
    repo = _git_repo(tmp_path / "peft", behaviours)
    shas = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--reverse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert bisect_inputs.commit_range(repo, shas[1], "main") == shas[1:]

    def evaluate(sha):  # what the probe would say, read from the commit itself
        text = subprocess.run(
            ["git", "-C", str(repo), "show", f"{sha}:behaviour.txt"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if text == "good":
            return Verdict("pass", "", {"verdict": "pass", "versions": {"peft": "0.22.0.dev0"}})
        return Verdict(
            "fail",
            "",
            {
                **FAIL_DATA,
                "known": None,
                "matching": [],
                "kind": "beyond-tolerance",
                "versions": {"peft": "0.22.0.dev0"},
            },
        )

    lines = []
    rc = bisect_commands.bisect_command(
        _args(
            "--property",
            PROP,
            "--claim",
            CLAIM,
            "--case",
            str(case_file),
            "--git",
            str(repo),
            "--good",
            shas[0],
            "--bad",
            "main",
            "--transformers",
            "4.57.6",
            "--out",
            str(tmp_path / "r"),
        ),
        evaluate=evaluate,
        out=lines.append,
    )
    assert rc == 0
    assert lines[-1] == f"boundary: peft {shas[3][:12]} (pass) -> {shas[4][:12]} (fail)"
    assert "change 4: bad" in "\n".join(lines)
    (report,) = (tmp_path / "r").glob("*.md")
    text = report.read_text()
    assert f"https://github.com/huggingface/peft/compare/{shas[3][:12]}...{shas[4][:12]}" in text
    assert f"https://github.com/huggingface/peft/commit/{shas[4]}" in text
    assert "affects = { peft = '>=0.22.0.dev0' }" in text
    cell = bisect_plan.plan_from_args(
        _args(
            "--property",
            PROP,
            "--case",
            str(case_file),
            "--git",
            str(repo),
            "--good",
            shas[0],
            "--bad",
            "main",
            "--transformers",
            "4.57.6",
        )
    ).cell(shas[4])
    assert cell.requirements()[0] == f"peft @ git+file://{repo.resolve()}@{shas[4]}"
    assert cell.name == f"peft-git-{shas[4][:12]}-tf-4.57.6"


def test_released_pairs_reuse_the_matrix_cells_environments(releases):
    from matrix.grid import cells as cells_mod

    for cell in cells_mod.load():
        if cell.needs or cell.device != "cpu" or cell.unavailable or not cell.peft[:1].isdigit():
            continue
        plan = _plan(fixed={"transformers": cell.transformers})
        assert plan.cell(cell.peft) == cell  # same name, same requirements: `matrix run`'s env is reused
    made = _plan(fixed={"transformers": "4.56.2"}).cell("0.16.0")
    assert made.name == "peft-0.16.0-tf-4.56.2" and made.accelerate == "1.15.0"


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
    plan = _plan(prop="reload-equality", claim=None)
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


# -- end to end: real environments, a real PEFT git repository with one breaking commit -------------------
BREAK = "        model.prompt_encoder[adapter_name]._load_adapter_state_dict(peft_model_state_dict)\n"
PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "peft"
version = "0.22.0.dev0"
requires-python = ">=3.9"
dependencies = ["numpy>=1.17", "packaging>=20.0", "psutil", "pyyaml", "torch>=1.13.0", "transformers", "tqdm",
                "accelerate>=0.21.0", "safetensors", "huggingface_hub>=0.25.0"]

[tool.setuptools.packages.find]
include = ["peft*"]
"""


def peft_repository(path: Path, commits: int = 6, breaking: int = 3) -> tuple[Path, list[str]]:
    """A git repository of the installed PEFT's source: `commits` commits, the one numbered
    `breaking` makes loading add 1e-3 to the prefix table (reload-equality fails from there on)."""
    import peft

    path.mkdir(parents=True)
    shutil.copytree(Path(peft.__file__).parent, path / "peft", ignore=shutil.ignore_patterns("__pycache__"))
    (path / "pyproject.toml").write_text(PYPROJECT)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    shas = []
    target = path / "peft" / "utils" / "save_and_load.py"
    for i in range(commits):
        if i == breaking:
            text = target.read_text()
            assert BREAK in text, "the installed PEFT has no line to break"
            target.write_text(
                text.replace(
                    BREAK,
                    BREAK + "        with torch.no_grad():\n"
                    "            model.prompt_encoder[adapter_name].embedding.weight.add_(1e-3)\n",
                )
            )
        (path / "CHANGES.txt").write_text(f"change {i}\n")
        subprocess.run(["git", "-C", str(path), "add", "-A"], check=True, env=env)
        subprocess.run(
            [
                "git",
                "-C",
                str(path),
                "commit",
                "-q",
                "-m",
                f"change {i}" + (" (breaks loading)" if i == breaking else ""),
            ],
            check=True,
            env=env,
        )
        shas.append(
            subprocess.run(
                ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    return path, shas


@pytest.mark.skipif(not os.environ.get("BISECT_E2E"), reason="BISECT_E2E=1 builds real uv environments (minutes)")
def test_commit_bisect_end_to_end(tmp_path):
    repo, shas = peft_repository(tmp_path / "peft")
    case = tmp_path / "case.json"
    case.write_text(json.dumps(CASE.to_dict()))
    envs = Path(os.environ.get("BISECT_E2E_ENVS") or tmp_path / "envs")
    lines = []
    rc = bisect_commands.bisect_command(
        _args(
            "--property",
            "reload-equality",
            "--case",
            str(case),
            "--git",
            str(repo),
            "--good",
            shas[0],
            "--bad",
            shas[-1],
            "--transformers",
            "5.23.0",
            "--accelerate",
            "1.15.0",
            "--envs",
            str(envs),
            "--out",
            str(tmp_path / "report.md"),
        ),
        out=lines.append,
    )
    print("\n".join(lines))
    assert rc == 0, lines
    assert lines[-1] == f"boundary: peft {shas[2][:12]} (pass) -> {shas[3][:12]} (fail)"
    text = (tmp_path / "report.md").read_text()
    assert "exit 1, `FAILED:" in text and "exit 0, `OK:" in text  # the script, run under both ends


def test_extra_pins_get_their_own_environment(releases, case_file):
    plan = _plan(fixed={"transformers": "4.57.6"}, extra=("numpy<2",))
    cell = plan.cell("0.17.1")  # cells.toml has 0.17.1/4.57.6: its env must not be rebuilt with other pins
    assert cell.name.startswith("peft-0.17.1-tf-4.57.6-x") and "numpy<2" in cell.requirements()
    argv = ["--property", PROP, "--case", str(case_file), "--peft", "0.15.0..0.21.2", "--transformers", "4.57.6"]
    assert bisect_plan.plan_from_args(_args(*argv, "--extra", "numpy<2", "--extra", "scipy<2")).extra == (
        "numpy<2",
        "scipy<2",
    )


@pytest.mark.parametrize("first_bad", PEFT[1:])
def test_two_jobs_find_the_same_boundaries_in_fewer_rounds(first_bad):
    rounds = []
    evaluate, calls = _by_threshold(PEFT, first_bad, "pass", "fail")
    result = search(PEFT, evaluate, on_tested=lambda version, verdict: rounds.append(version), jobs=2)
    i = PEFT.index(first_bad)
    assert result.boundary == (i - 1, i) and result.direction == "regression"
    assert len(calls) == len(set(calls)) <= 2 + 2 * 3  # log3(10) rounds of two, after the ends
    sequential = search(PEFT, _by_threshold(PEFT, first_bad, "pass", "fail")[0])
    assert sequential.boundary == result.boundary


def test_gives_up_after_max_skips_undecided_ends():
    result = search(PEFT, lambda v: Verdict("inconclusive", "the prefix barely moves the outputs"), max_skips=4)
    assert result.gave_up and result.boundary is None and len(result.tested) == 4


def test_command_says_it_gave_up(releases, case_file, tmp_path, capsys):
    rc = bisect_commands.bisect_command(
        _args(
            "--property",
            PROP,
            "--case",
            str(case_file),
            "--peft",
            "0.15.0..0.21.2",
            "--transformers",
            "4.57.6",
            "--max-skips",
            "2",
            "--out",
            str(tmp_path),
        ),
        evaluate=lambda v: Verdict("inconclusive", f"{PROP}:{CLAIM}"),
        out=lambda line: None,
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "could not decide" in err[0] and "--max-skips" in err[0]


def test_a_failure_known_elsewhere_in_the_range_says_to_widen_that_entry():
    entry = {
        "id": "gemma3-no-mask",
        "title": "t",
        "affects": {"transformers": ">=4.50,<4.57"},
        "references": [],
        "places": ["no-mask-equals-ones"],
    }

    def evaluate(version):
        i = TRANSFORMERS.index(version)
        if i >= 3:
            return "pass"
        data = {
            **FAIL_DATA,
            "point": "no-mask-equals-ones",
            "kind": "RuntimeError",
            "max_diff": None,
            "error": "RuntimeError: The size of tensor a (8) must match the size of tensor b (5)",
            "known": entry["id"] if i < 2 else None,
            "matching": [entry] if i < 2 else [],
        }
        return Verdict("fail", "", data)

    result = search(TRANSFORMERS, evaluate)
    plan = _plan(package="transformers", versions=TRANSFORMERS, fixed={"peft": "0.15.2"}, claim="no-mask-equals-ones")
    text = bisect_report.report_markdown(plan, result, None, {}, 1.0)
    assert "is known issue `gemma3-no-mask` with transformers 4.55.4" in text
    assert "(its range: transformers >=4.50,<4.57), but no entry covers transformers 4.57.6" in text
    assert "widen that entry's `affects`" in text and "```toml" in text
