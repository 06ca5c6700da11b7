"""`python -m matrix bisect --registry`: registry entries' bounds measured on their witnesses, the
measured-facts file and its disagreement flags, and the upstream reports.

Every version's verdict is injected (`evaluate(plan, version)`: no environments, seconds to run)
over the real axes of matrix/grid/cells.toml and the real registry; the probe's part (the signature
of an entry, whatever the versions) runs in-process on one tiny example.
"""

from __future__ import annotations

import argparse
import json

import pytest

from matrix.bisect import commands as bisect_commands
from matrix.bisect.search import Verdict
from matrix.grid.cells import load as load_cells
from matrix.registry import commands, measure, scripts, upstream, witnesses
from prefixcheck import registry, verdicts
from prefixcheck.case import AttentionLayout, Case, ModelSpec, PrefixSpec
from prefixcheck.registry import cli as registry_cli
from prefixcheck.registry import measured as bounds

pytestmark = pytest.mark.selftest

ENTRY = "peft-disable-adapter-prompt-learning-no-generation"  # declared: peft >=0.3, transformers >=4.52
CASE = Case(
    model=ModelSpec(arch="llama", num_layers=2, layout=AttentionLayout(16, 4, 2, 4)),
    task="SEQ_CLS",
    prefix=PrefixSpec(num_virtual_tokens=3),
)
WITNESS = {
    "property": "prefix-acts",
    "point": "disable",
    "case": CASE.to_dict(),
    "case_key": CASE.key,
    "families": "curated",
}
ERROR = "AttributeError: 'LlamaForSequenceClassification' object has no attribute 'prepare_inputs_for_generation'"
TF_AXIS = [c.transformers for c in load_cells().transformers_axis()]
PEFT_AXIS = [c.peft for c in load_cells().peft_axis()]


def _summary(tmp_path, hits: dict, name="summary.json", versions=None):
    path = tmp_path / name
    versions = versions or {"peft": "0.21.2", "transformers": "5.23.0", "torch": "2.13.0+cpu"}
    path.write_text(json.dumps({"versions": versions, "known_hits": hits}))
    return path


@pytest.fixture
def summary(tmp_path):
    return _summary(tmp_path, {ENTRY: {"examples": 3, "stopped": {}, "also_matched": [], "witness": WITNESS}})


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bisect_commands.add_arguments(parser)
    return parser.parse_args(list(argv))


def _bad(signatures=(ENTRY,), error=ERROR):
    data = {"verdict": "fail", "point": "disable", "kind": error.split(":")[0], "error": error}
    return Verdict("fail", "prefix-acts:disable", {**data, "signatures": list(signatures), "known": None})


GOOD = Verdict("pass", "prefix-acts:disable", {"verdict": "pass", "point": "disable"})


def fake(bad_from: str | None = None, fixed_in: str | None = None, axis="transformers", other=(), calls=None):
    """evaluate(plan, version): bad on `axis` from `bad_from` up to (not including) `fixed_in`,
    good elsewhere; the versions in `other` fail another way. Only transformers' versions matter
    on the PEFT axis too (its cells' own transformers)."""
    from packaging.version import Version

    def evaluate(plan, version):
        assert plan.entry == ENTRY and (plan.prop, plan.claim) == ("prefix-acts", "disable")
        if calls is not None:
            calls.append((plan.package, version))
        tf = plan.cell(version).transformers
        if version in other:
            return _bad(signatures=("some-other-entry",), error="RuntimeError: something else")
        here = Version(tf if axis == "transformers" else plan.cell(version).peft)
        if bad_from and here >= Version(bad_from) and not (fixed_in and here >= Version(fixed_in)):
            return _bad()
        return GOOD

    return evaluate


def _run(tmp_path, summary, evaluate, *extra, axis="transformers"):
    lines = []
    measured = tmp_path / "measured.json"
    rc = commands.registry_command(
        _args(
            "--registry",
            ENTRY,
            "--summary",
            str(summary),
            "--axis",
            axis,
            "--measured",
            str(measured),
            "--out",
            str(tmp_path / "upstream"),
            "-j",
            "1",
            *extra,
        ),
        evaluate=evaluate,
        out=lines.append,
    )
    return rc, lines, (bounds.load(measured) if measured.exists() else {})


# -- measuring -------------------------------------------------------------------------------------
def test_a_regression_on_the_transformers_axis_is_found_and_agrees(tmp_path, summary):
    rc, lines, measured = _run(tmp_path, summary, fake(bad_from="4.52.4"))
    assert rc == 0, lines
    facts = measured[ENTRY]["axes"]["transformers"]
    assert (facts["last_good"], facts["first_bad"], facts["first_fixed"]) == ("4.51.3", "4.52.4", None)
    assert facts["tested"]["5.23.0"] == "bad" and facts["versions"]["4.51.3"] == {
        "peft": "0.21.2",
        "transformers": "4.51.3",
    }
    assert facts["observed"] == ERROR
    assert len(facts["tested"]) <= 3 + 7  # the anchor, the ends, log2 of each side
    assert f"[{ENTRY}] transformers axis: first bad 4.52.4 (last good 4.51.3)" in "\n".join(lines)
    assert "declared bounds agree with every measurement made now" in lines
    assert measured[ENTRY]["witness"]["case_key"] == CASE.key and measured[ENTRY]["date"]


def test_a_fix_after_the_witness_is_found_and_flagged(tmp_path, summary):
    """The witness's own release (5.23.0) anchors the search, so a bug that came (4.52.4) and went
    (5.24.0) inside the axis is found both ways; the declared `transformers >=4.52` includes
    5.24.0, measured good: a flag."""
    rc, lines, measured = _run(tmp_path, summary, fake(bad_from="4.52.4", fixed_in="5.24.0"))
    facts = measured[ENTRY]["axes"]["transformers"]
    assert rc == 0 and (facts["first_bad"], facts["last_bad"], facts["first_fixed"]) == ("4.52.4", "5.23.0", "5.24.0")
    assert any(line.startswith(f"FLAG {ENTRY}: measured good with peft 0.21.2, transformers 5.24.0") for line in lines)


def test_a_regression_and_a_fix_on_the_peft_axis(tmp_path):
    """A witness seen with peft 0.17.1 anchors the PEFT axis there: bad from 0.14.0, fixed in
    0.19.1, both found. (Where the anchor is good, the search runs from both ends of the axis and
    a bug that came and went between them is not seen: docs/known-issues.md says so.)"""
    hits = {ENTRY: {"witness": WITNESS}}
    summary = _summary(tmp_path, hits, versions={"peft": "0.17.1", "transformers": "4.55.3"})
    rc, _, measured = _run(tmp_path, summary, fake(bad_from="0.14.0", fixed_in="0.19.1", axis="peft"), axis="peft")
    facts = measured[ENTRY]["axes"]["peft"]
    assert rc == 0
    assert (facts["last_good"], facts["first_bad"]) == ("0.13.2", "0.14.0")
    assert (facts["last_bad"], facts["first_fixed"]) == ("0.18.1", "0.19.1")
    # both packages move on this axis: each point records its own pair
    assert facts["versions"]["0.14.0"] == {"peft": "0.14.0", "transformers": "4.47.0"}


def test_a_different_failure_never_counts_as_the_entrys_bad(tmp_path, summary):
    # 4.51.3 fails, but not with this entry's signature: it is skipped, never the first bad
    rc, lines, measured = _run(tmp_path, summary, fake(bad_from="4.52.4", other={"4.51.3"}))
    facts = measured[ENTRY]["axes"]["transformers"]
    assert rc == 0 and facts["tested"]["4.51.3"] == "other failure"
    assert "something else" in facts["details"]["4.51.3"]
    assert (facts["last_good"], facts["first_bad"]) == ("4.50.3", "4.52.4")
    # everywhere another failure: nothing decides, nothing is bad
    every = set(TF_AXIS)
    rc, lines, measured = _run(tmp_path, summary, fake(bad_from="4.45.2", other=every))
    facts = measured[ENTRY]["axes"]["transformers"]
    assert "bad" not in facts["tested"].values() and facts["first_bad"] is None
    assert f"[{ENTRY}] transformers axis: no tested release could decide" in "\n".join(lines)


def test_a_bad_release_that_another_declared_entry_explains_is_no_flag(tmp_path, summary):
    """4.51.3, below ENTRY's declared transformers >=4.52, fails with ENTRY's signature. Where
    the probe says another entry declared there explains it too (`explained_here`), it is
    `another entry`, undecided, and no flag; without that, the same failure is bad and flagged
    (the rule's absence: T5's and BART's generate entries read as bad on 5.24, where
    tf-5.24-generate-ignores-prefix is the bug)."""

    def evaluate(also):
        def answer(plan, version):
            if version != "4.51.3":
                return fake(bad_from="4.52.4")(plan, version)
            bad = _bad()
            versions = {"peft": "0.21.2", "transformers": "4.51.3", "torch": "2.13.0+cpu"}
            return Verdict("fail", bad.detail, {**bad.data, "versions": versions, "explained_here": [ENTRY, *also]})

        return answer

    rc, lines, measured = _run(tmp_path, summary, evaluate(["tf-other-entry"]), "--sweep")
    facts = measured[ENTRY]["axes"]["transformers"]
    assert rc == 0 and facts["tested"]["4.51.3"] == verdicts.ANOTHER_ENTRY
    assert facts["details"]["4.51.3"] == "explained here by tf-other-entry"
    assert (facts["last_good"], facts["first_bad"]) == ("4.50.3", "4.52.4")
    assert "declared bounds agree with every measurement made now" in lines
    rc, lines, measured = _run(tmp_path, summary, evaluate([]), "--sweep")
    assert measured[ENTRY]["axes"]["transformers"]["tested"]["4.51.3"] == "bad"
    assert any(line.startswith(f"FLAG {ENTRY}: measured bad with peft 0.21.2, transformers 4.51.3") for line in lines)
    # inside the declared range the entry's own failure stays its bad, whoever else explains it
    entry = registry.default().by_id(ENTRY)
    inside = {**_bad().data, "versions": {"peft": "0.21.2", "transformers": "5.0.0"}, "explained_here": [ENTRY, "x"]}
    assert measure.entry_verdict(Verdict("fail", "", inside), entry).verdict == "fail"


def test_a_sweep_tests_every_release_once_and_sees_a_bug_that_came_and_went(tmp_path, summary):
    """Bad on 5.0.0-5.2.0 only, with the witness's release (5.23.0) and both ends good: a
    bisection's ends agree and it never looks between them; --sweep tests every release."""
    calls = []
    came_and_went = fake(bad_from="5.0.0", fixed_in="5.3.0", calls=calls)
    rc, _, measured = _run(tmp_path, summary, came_and_went)
    assert rc == 0 and measured[ENTRY]["axes"]["transformers"]["first_bad"] is None
    calls.clear()
    rc, lines, measured = _run(tmp_path, summary, came_and_went, "--sweep")
    facts = measured[ENTRY]["axes"]["transformers"]
    assert rc == 0 and sorted(v for _, v in calls) == sorted(TF_AXIS) and list(facts["tested"]) == TF_AXIS
    assert (facts["last_good"], facts["first_bad"]) == ("4.57.6", "5.0.0")
    assert (facts["last_bad"], facts["first_fixed"]) == ("5.2.0", "5.3.0")
    assert "[sweep] peft 0.21.2, transformers 5.1.0: 1 bad [" in "\n".join(lines)
    assert any(line.startswith(f"FLAG {ENTRY}: measured good with peft 0.21.2, transformers 5.3.0") for line in lines)


def test_a_case_given_by_hand_is_the_witness_of_one_entry(tmp_path, capsys):
    """--case/--property/--claim stand in for a summary's witness (an entry found in a run whose
    summary is gone); with no version to anchor on, the bisection searches from the axis ends."""
    case_file = tmp_path / "case.json"
    case_file.write_text(CASE.to_json())
    lines, measured = [], tmp_path / "measured.json"
    common = ["--measured", str(measured), "--out", str(tmp_path / "up"), "--axis", "transformers", "-j", "1"]
    given = ["--case", str(case_file), "--property", "prefix-acts"]
    rc = commands.registry_command(
        _args("--registry", ENTRY, *given, "--claim", "disable", *common),
        evaluate=fake(bad_from="4.52.4"),
        out=lines.append,
    )
    record = bounds.load(measured)[ENTRY]
    assert rc == 0 and record["axes"]["transformers"]["first_bad"] == "4.52.4"
    assert record["witness"] == {**WITNESS, "summary_versions": {}}
    for argv, expected in (
        (["--registry", ENTRY, "t5-inner-dim-prefix-width", *given, "--claim", "disable"], "name exactly one ID"),
        (["--registry", ENTRY, *given], "needs --claim"),
        (["--registry", ENTRY, *given, "--claim", "nope"], "--claim 'nope': not a step or claim of prefix-acts"),
    ):
        rc = commands.registry_command(
            _args(*argv, *common), evaluate=lambda plan, version: pytest.fail("evaluated"), out=lines.append
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and expected in err[0], (argv, err)


def test_the_probes_fail_is_the_entrys_only_with_its_signature():
    entry = registry.default().by_id(ENTRY)
    bad = measure.entry_verdict(_bad(), entry)
    other = measure.entry_verdict(_bad(signatures=("x",)), entry)
    assert (bad.verdict, other.verdict) == ("fail", "other failure") and not other.decisive
    assert measure.entry_verdict(Verdict("unsupported", "no such head"), entry).verdict == "unsupported"
    assert measure.entry_verdict(Verdict("weird"), entry).verdict == verdicts.COULD_NOT_RUN


def test_a_range_keeps_the_search_inside_it(tmp_path, summary):
    calls = []
    rc, _, measured = _run(tmp_path, summary, fake(bad_from="5.20.2", calls=calls), "--transformers", "5.19.0..5.24.0")
    assert rc == 0 and {v for _, v in calls} <= {"5.19.0", "5.20.2", "5.21.1", "5.22.2", "5.23.0", "5.24.0"}
    assert measured[ENTRY]["axes"]["transformers"]["first_bad"] == "5.20.2"


def test_remeasuring_one_axis_keeps_the_other_for_the_same_witness(tmp_path, summary):
    _run(tmp_path, summary, fake(bad_from="0.10.0", axis="peft"), axis="peft")
    _, _, measured = _run(tmp_path, summary, fake(bad_from="4.52.4"))
    assert set(measured[ENTRY]["axes"]) == {"peft", "transformers"}
    other = {**WITNESS, "case_key": "0" * 12}
    summary2 = _summary(tmp_path, {ENTRY: {"witness": other}}, name="other.json")
    _, _, measured = _run(tmp_path, summary2, fake(bad_from="4.52.4"))
    assert set(measured[ENTRY]["axes"]) == {"transformers"}  # another witness: the record starts afresh


# -- declared vs measured -----------------------------------------------------------------------
def _record(verdicts: dict[str, str]) -> dict:
    return {
        "date": "2026-11-30",
        "witness": {"property": "prefix-acts", "point": "disable", "case_key": CASE.key},
        "axes": {
            "transformers": {
                "tested": verdicts,
                "versions": {v: {"peft": "0.21.2", "transformers": v} for v in verdicts},
                **bounds.boundaries(list(verdicts), verdicts),
            }
        },
    }


def test_the_disagreement_flag_fires_for_a_bad_version_the_spec_excludes_and_is_quiet_when_they_agree():
    issue = registry.default().by_id(ENTRY)  # transformers >=4.52
    agree = _record({"4.51.3": "good", "4.52.4": "bad", "5.23.0": "bad", "4.50.3": "unsupported"})
    assert bounds.disagreements(issue, agree) == []
    early = _record({"4.50.3": "good", "4.51.3": "bad", "5.23.0": "bad"})
    assert bounds.disagreements(issue, early) == [
        "measured bad with peft 0.21.2, transformers 4.51.3, which its affects (peft >=0.3, transformers >=4.52) excludes"
    ]
    # an undecided version says nothing about the bounds
    assert bounds.disagreements(issue, _record({"4.51.3": "other failure", "5.23.0": "bad"})) == []
    flagged = bounds.flags(registry.default(), {ENTRY: early, "gone-entry": agree})
    assert set(flagged) == {ENTRY, "gone-entry"} and "no such entry" in flagged["gone-entry"][0]


def test_boundaries_read_the_decided_verdicts_in_axis_order():
    order = ["1", "2", "3", "4", "5", "6"]
    assert bounds.boundaries(order, {"1": "good", "3": "good", "4": "bad", "6": "bad"}) == {
        "first_bad": "4",
        "last_good": "3",
        "first_fixed": None,
        "last_bad": None,
    }
    fixed = bounds.boundaries(order, {"1": "bad", "2": "blocked", "3": "bad", "5": "good"})
    assert fixed == {"first_bad": "1", "last_good": None, "first_fixed": "5", "last_bad": "3"}


def test_python_m_prefixcheck_registry_lists_the_flags(tmp_path, monkeypatch, capsys):
    path = tmp_path / "measured.json"
    bounds.save({ENTRY: _record({"4.50.3": "good", "4.51.3": "bad", "5.23.0": "bad"})}, path)
    monkeypatch.setattr(bounds, "MEASURED_FILE", path)
    assert registry_cli.main([]) == 0
    printed = capsys.readouterr().out
    assert "1 entries measured, 1 disagree with `affects`" in printed and f"FLAG {ENTRY}: measured bad with" in printed


def test_the_committed_measured_file_loads():
    bounds.load()  # one-line MeasuredError otherwise


# -- witnesses ---------------------------------------------------------------------------------------
def test_across_summaries_the_same_rule_picks_the_witness(tmp_path):
    late = {**WITNESS, "case_key": "f" * 12}
    early = {**WITNESS, "case_key": "0" * 12}
    a = _summary(tmp_path, {ENTRY: {"witness": late}}, "a.json")
    b = _summary(tmp_path, {ENTRY: {"witness": early}}, "b.json", versions={"peft": "0.17.1"})
    for order in ([a, b], [b, a]):
        found = witnesses.witnesses([str(p) for p in order])
        assert found[ENTRY]["case_key"] == "0" * 12 and found[ENTRY]["summary_versions"] == {"peft": "0.17.1"}


# -- the upstream reports ------------------------------------------------------------------------------
def test_a_report_is_written_for_every_entry_found_by_this_suite_and_names_the_reproduction(tmp_path, summary):
    _run(tmp_path, summary, fake(bad_from="4.52.4"))
    folder = tmp_path / "upstream"
    found = [i.id for i in registry.default() if i.found_by_suite]
    assert sorted(p.stem for p in folder.glob("*.md") if p.name != "README.md") == sorted(found)
    text = (folder / f"{ENTRY}.md").read_text()
    for part in (
        "# disable_adapter() crashes for prompt-learning models",
        "File in **huggingface/peft**",
        "- Declared in the registry: peft >=0.3, transformers >=4.52.",
        "First bad: peft 0.21.2 / transformers 4.52.4 (last good: peft 0.21.2 / transformers 4.51.3); compare "
        "https://github.com/huggingface/transformers/compare/v4.51.3...v4.52.4",
        "## Reproduction",
        '```python\n"""Reproduction: prefix tuning, property \'prefix-acts:disable\'.',
        f"CASE = json.loads('{CASE.to_json()}')",
        "## Observed vs expected",
        f"- Measured failure at the first bad release of the transformers axis (peft 0.21.2 / transformers 4.52.4): `{ERROR}`",
        registry.default().by_id(ENTRY).report,
        "## Registry entry",
    ):
        assert part in text, part
    index = (folder / "README.md").read_text()
    assert f"| [`{ENTRY}`]({ENTRY}.md) | peft | transformers 4.52.4 | measured " in index
    assert (
        "| [`tf-5.24-generate-ignores-prefix`](tf-5.24-generate-ignores-prefix.md) | transformers | - | no witness yet |"
        in index
    )
    unmeasured = (folder / "tf-5.24-generate-ignores-prefix.md").read_text()
    assert "Not yet bisected: run `python -m matrix bisect --registry tf-5.24-generate-ignores-prefix" in unmeasured
    assert "No witness yet" in unmeasured


def test_reports_only_measures_nothing_and_removes_reports_of_entries_gone(tmp_path, summary):
    folder = tmp_path / "upstream"
    folder.mkdir()
    (folder / "gone-entry.md").write_text("# old\n\n" + upstream.MARK + "\n")
    (folder / "notes.md").write_text("kept: not written by the command\n")
    lines = []
    rc = commands.registry_command(
        _args(
            "--reports-only", "--summary", str(summary), "--measured", str(tmp_path / "m.json"), "--out", str(folder)
        ),
        evaluate=lambda plan, version: pytest.fail("--reports-only evaluated a version"),
        out=lines.append,
    )
    assert rc == 0 and not (tmp_path / "m.json").exists()
    assert not (folder / "gone-entry.md").exists() and (folder / "notes.md").exists()
    assert "| not yet bisected |" in (folder / "README.md").read_text()  # a witness, no measurement


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input_is_one_line_and_exit_2(tmp_path, summary, capsys):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema": 1, "entries": {"x": {"date": 3}}}')
    old = _summary(tmp_path, {ENTRY: {"examples": 3, "stopped": {}}}, name="old.json")
    cases = {
        "unknown id": (["--registry", "no-such-entry", "--summary", str(summary)], "no such registry entry"),
        "no summary": (["--registry", ENTRY], "needs --summary"),
        "summary without witnesses": (["--registry", "--summary", str(old)], "no known_hits entry has a witness"),
        "summary not JSON": (["--registry", "--summary", str(corrupt.with_name("nope.json"))], "cannot read it"),
        "no witness for the entry": (
            ["--registry", "t5-inner-dim-prefix-width", "--summary", str(summary)],
            "no witness for t5-inner-dim-prefix-width",
        ),
        "corrupt measured file": (
            ["--registry", "--summary", str(summary), "--measured", str(corrupt)],
            "entry 'x': 'date' missing or not a str",
        ),
        "range outside the axis": (
            ["--registry", "--summary", str(summary), "--axis", "transformers", "--transformers", "3.0.0..3.1.0"],
            "no release of the transformers axis",
        ),
    }
    for name, (argv, expected) in cases.items():
        called = []
        if "--measured" not in argv:  # never the committed file, whatever goes wrong
            argv = [*argv, "--measured", str(tmp_path / "measured.json")]
        rc = commands.registry_command(
            _args(*argv, "--out", str(tmp_path / "up")),
            evaluate=lambda plan, version, called=called: called.append(version) or GOOD,
            out=lambda line: None,
        )
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and expected in err[0], (name, err)
        assert not called and "Traceback" not in captured.err, name


def test_the_axes_are_the_released_cells_in_release_order():
    from packaging.version import Version

    cells = load_cells()
    peft, tf = cells.peft_axis(), cells.transformers_axis()
    assert [c.name for c in peft] == [f"peft-{c.peft}" for c in peft]  # one cell per PEFT minor
    assert [Version(c.peft) for c in peft] == sorted(Version(c.peft) for c in peft)
    assert all(c.peft == peft[-1].peft for c in tf) and not any(c.unavailable for c in peft + tf)
    assert [Version(c.transformers) for c in tf] == sorted({Version(c.transformers) for c in tf})
    assert {cells.known_good().name, "peft-latest"} <= {c.name for c in tf}


def _with(change) -> str:
    record = _record({"4.51.3": "good", "4.52.4": "bad"})
    change(record)
    return json.dumps({"schema": 1, "entries": {ENTRY: record}})


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ('{"schema": 2, "entries": {}}', "schema 1 expected"),
        (_with(lambda r: r["axes"]["transformers"]["tested"].update({"4.52.4": "meh"})), "unknown verdict 'meh'"),
        (_with(lambda r: r["axes"]["transformers"].update(first_bad="9.9")), "first_bad '9.9' was not tested"),
        (_with(lambda r: r["axes"].update(torch=r["axes"]["transformers"])), "unknown axis 'torch'"),
        (_with(lambda r: r["axes"]["transformers"]["versions"].pop("4.51.3")), "4.51.3 has no 'versions' record"),
        (_with(lambda r: r["witness"].pop("point")), "witness has no 'point'"),
    ],
)
def test_a_corrupt_measured_file_is_refused_with_one_line(tmp_path, text, message):
    path = tmp_path / "measured.json"
    path.write_text(_with(lambda r: None))
    assert bounds.load(path)[ENTRY]["axes"]["transformers"]["first_bad"] == "4.52.4"  # the unbroken form loads
    path.write_text(text)
    with pytest.raises(bounds.MeasuredError) as info:
        bounds.load(path)
    assert message in str(info.value) and "\n" not in str(info.value) and str(path) in str(info.value)


def test_the_committed_reports_cover_every_entry_found_here():
    """docs/upstream holds one report per found_by_suite entry and an index row for each
    (regenerate: python -m matrix bisect --registry --reports-only --summary ...)."""
    folder = commands.DEFAULT_UPSTREAM
    found = sorted(i.id for i in registry.default() if i.found_by_suite)
    assert sorted(p.stem for p in folder.glob("*.md") if p.name != "README.md") == found
    index = (folder / "README.md").read_text()
    assert all(f"| [`{i}`]({i}.md) |" in index for i in found)


def test_a_reports_script_is_written_in_a_release_measured_bad(tmp_path, monkeypatch):
    """A report's script comes from the environment of a release measured bad (`python -m matrix upstream-script` run
    there): Moshi, Fuyu, ERNIE-M... exist only in older transformers, and a config or Trainer
    argument written by today's transformers can fail another way on 4.40 (FSMT's vocab_size)."""
    import subprocess
    import sys
    from pathlib import Path

    from matrix.grid import envs

    cells = list(load_cells())
    record = _record({"5.22.2": "good", "5.23.0": "bad"})
    record["axes"]["transformers"]["first_bad"] = "5.23.0"
    assert scripts.script_cell(WITNESS, record, cells).name == load_cells().known_good().name
    seen = {**WITNESS, "summary_versions": {"peft": "0.17.1", "transformers": "4.55.3"}}
    assert scripts.script_cell(seen, None, cells).name == "peft-0.17.1"  # where it was seen
    assert scripts.script_cell(WITNESS, None, cells) is None

    built = []

    def build_env(cell, where, log):
        built.append(cell.name)
        if cell.name == "peft-0.17.1":  # uv says no
            subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('  × No solution found')"])
            raise subprocess.CalledProcessError(1, ["uv"])
        return Path(sys.executable), 0.0

    monkeypatch.setattr(envs, "build_env", build_env)
    monkeypatch.setattr(scripts, "reproduction", lambda witness: (None, "KeyError: unknown architecture 'llama'"))
    lines = []
    script = scripts.scripts_anywhere(tmp_path / "envs", lines.append)
    text, why = script(WITNESS, record)  # in a fresh process: there the family exists
    assert why == "" and "Reproduction: prefix tuning, property 'prefix-acts:disable'" in text, why
    assert built == [load_cells().known_good().name] and "was written in" in lines[-1]
    text, why = script(seen, None)
    assert text is None and "unknown architecture 'llama'; no environment for peft-0.17.1" in why
    assert script(WITNESS, None) == (None, "KeyError: unknown architecture 'llama'")
    calls = []
    once = scripts.prepared_scripts(lambda w, r: calls.append(w["case_key"]) or ("text", ""), [(WITNESS, None)], 2)
    assert once(WITNESS, None) == ("text", "") and calls == [WITNESS["case_key"]]  # prepared, not run again
