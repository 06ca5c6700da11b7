"""The known-issue registry, the outcome judge and the summary counts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from prefixcheck import known_issues, outcomes
from prefixcheck.case import AttentionLayout, Case, ModelSpec, PrefixSpec
from prefixcheck.known_issues import Failure, KnownIssue, StaleKnownIssue
from prefixcheck.versions import VersionSpecError, installed, parse_spec, satisfies

pytestmark = pytest.mark.selftest

CASE = Case(
    model=ModelSpec(arch="gpt2", num_layers=1, layout=AttentionLayout(8, 2, 2, 4)),
    task="CAUSAL_LM",
    prefix=PrefixSpec(num_virtual_tokens=2),
)
ENTRY = KnownIssue(
    id="test-entry",
    title="a pretend bug",
    references=("https://example.invalid/1",),
    affects={"peft": ">=0.0.1"},
    properties=("reload-equality",),
    cases={"arch": ("gpt2",)},
    failure=Failure("ValueError", r"pretend"),
)


@pytest.fixture
def recorder(monkeypatch, tmp_path):
    fresh = outcomes.Recorder()
    monkeypatch.setattr(outcomes, "RECORDER", fresh)
    monkeypatch.setenv("PREFIXCHECK_REPORTS", str(tmp_path))
    return fresh


@pytest.fixture
def registry(monkeypatch):
    def install(*entries):
        monkeypatch.setattr(known_issues, "REGISTRY", tuple(entries))

    return install


def test_the_registry_is_well_formed():
    known_issues.validate()


def test_every_entry_found_here_carries_a_report_and_every_other_a_reference():
    for issue in known_issues.REGISTRY:
        assert issue.references or (issue.found_by_suite and len(issue.report) > 200), issue.id


def test_the_seed_is_the_first_class_entry():
    seed = next(i for i in known_issues.REGISTRY if i.id.startswith("peft-2256"))
    assert "https://github.com/huggingface/peft/issues/2256" in seed.references
    assert "https://github.com/huggingface/transformers/pull/35087" in seed.references


@pytest.mark.parametrize(
    "broken, message",
    [
        (dict(properties=("no-such-property",)), "unknown property"),
        (dict(cases={"colour": ("red",)}), "unknown case fact"),
        (dict(affects={"peft": "~~1"}), "invalid version spec"),
        (dict(affects={"numpy": ">=1"}), "unknown package"),
        (dict(references=(), found_by_suite=False), "needs an upstream reference"),
        (dict(references=(), found_by_suite=True, report=""), "no report"),
    ],
)
def test_malformed_entries_are_refused_with_their_reason(broken, message):
    with pytest.raises((ValueError, VersionSpecError), match=message):
        known_issues.validate((dataclasses.replace(ENTRY, **broken),))


def test_a_matching_failure_counts_as_known(recorder, registry):
    registry(ENTRY)
    with outcomes.check("reload-equality", CASE):
        raise ValueError("a pretend failure")
    assert recorder.outcomes == {("reload-equality", CASE.key): ("known", "test-entry")}


def test_a_passing_case_under_an_entry_is_reported_stale(recorder, registry):
    registry(ENTRY)
    with pytest.raises(StaleKnownIssue, match="test-entry.*looks fixed"):
        with outcomes.check("reload-equality", CASE):
            pass
    assert recorder.outcomes[("reload-equality", CASE.key)][0] == "failed"


def test_a_different_failure_is_not_excused(recorder, registry):
    registry(ENTRY)
    with pytest.raises(RuntimeError) as info:
        with outcomes.check("reload-equality", CASE):
            raise RuntimeError("something else")
    notes = "\n".join(info.value.__notes__)
    assert "known issue test-entry applies but expects ValueError" in notes
    assert "Reproduction script" in notes


@pytest.mark.parametrize(
    "change",
    [dict(affects={"peft": "<0.0.1"}), dict(cases={"arch": ("llama",)}), dict(properties=("saved-shapes",))],
)
def test_entries_apply_only_to_their_versions_cases_and_properties(change):
    assert ENTRY.applies("reload-equality", CASE)
    assert not dataclasses.replace(ENTRY, **change).applies("reload-equality", CASE)


def test_dev_builds_of_peft_main_stay_inside_open_ranges():
    assert satisfies("peft", ">=0.21", {"peft": "0.21.3.dev0"})
    assert not satisfies("peft", "<=0.21.2", {"peft": "0.21.3.dev0"})


@pytest.mark.parametrize("package, spec", [("peft", "latest!"), ("peft", "==="), ("pefty", ">=1")])
def test_unknown_version_specs_get_a_one_line_error(package, spec):
    with pytest.raises(VersionSpecError) as info:
        parse_spec(package, spec)
    assert "\n" not in str(info.value) and (spec in str(info.value) or package in str(info.value))


def test_counts_are_per_example_and_shrinking_is_forgotten():
    rec = outcomes.Recorder()
    cases = [CASE.replace(seed=i) for i in range(6)]
    for c in cases[:2]:
        rec.record("reload-equality", c, outcomes.PASSED)
    start = rec.mark()
    rec.record("reload-equality", cases[2], outcomes.PASSED)
    rec.record("reload-equality", cases[3], outcomes.FAILED)  # first failure: kept
    rec.record("reload-equality", cases[4], outcomes.FAILED)  # a shrinking step: forgotten
    rec.record("reload-equality", cases[5], outcomes.PASSED)  # a shrinking step: forgotten
    rec.record("reload-equality", cases[0], outcomes.PASSED)  # a replayed example keeps one count
    rec.record("reload-equality", cases[4], outcomes.FAILED)  # the minimal example: kept
    rec.forget_shrinking(start)
    counts = rec.counts()["reload-equality"]
    assert counts == {"passed": 3, "failed": 2, "known": {}}


def test_summary_names_versions_and_counts(tmp_path):
    rec = outcomes.Recorder()
    rec.record("saved-shapes", CASE, outcomes.PASSED)
    rec.record("saved-shapes", CASE.replace(seed=1), outcomes.KNOWN, "some-entry")
    rec.write_part(tmp_path / "part.json")
    merged = outcomes.Recorder()
    merged.load_part(tmp_path / "part.json")
    summary = outcomes.summary(merged)
    assert summary["versions"] == installed()
    assert summary["properties"]["saved-shapes"] == {"passed": 1, "failed": 0, "known": {"some-entry": 1}}
    assert summary["totals"] == {"passed": 1, "failed": 0, "known": 1}
    json.dumps(summary)


def test_readme_lists_the_registry_as_it_is():
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text()
    assert known_issues.readme_with_table(text) == text, "run: python -m prefixcheck.known_issues --write-readme"
