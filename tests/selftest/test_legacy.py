"""How a committed legacy artifact's verdict reads (matrix/grid/legacy.py): each rule can go red."""

from __future__ import annotations

import json

import pytest

from matrix.grid import legacy

pytestmark = pytest.mark.selftest

BAD = {"verdict": "load-error", "detail": "KeyError: 'base_model.classifier.weight' at 3", "issue": None}


def _recorded(row):
    return {"verdict": row["verdict"], "issue": row.get("issue"), "signature": legacy.signature(row)}


def test_a_good_verdict_passes():
    assert legacy.judge({"verdict": "pass"}, None, exact=True)[0] == "passed"
    assert legacy.judge({"verdict": "known-issue", "issue": "x"}, None, exact=True) == ("passed", "known-issue x")


def test_a_bad_verdict_the_matrix_records_is_recorded_not_failed():
    assert legacy.judge(BAD, _recorded(BAD), exact=True)[0] == "recorded"
    other_numbers = {**BAD, "detail": "KeyError: 'base_model.classifier.weight' at 7"}
    assert legacy.judge(other_numbers, _recorded(BAD), exact=True)[0] == "recorded"


def test_a_bad_verdict_the_matrix_does_not_record_fails():
    assert legacy.judge(BAD, None, exact=True)[0] == "failed"
    assert legacy.judge(BAD, {"verdict": "pass", "issue": None, "signature": ""}, exact=False)[0] == "failed"


def test_the_same_verdict_failing_another_way_fails():
    other = {**BAD, "detail": "RuntimeError: size mismatch for weight"}
    outcome, why = legacy.judge(other, _recorded(BAD), exact=True)
    assert outcome == "failed" and "size mismatch" in why


def test_a_good_verdict_where_the_record_says_bad_is_a_stale_record():
    outcome, why = legacy.judge({"verdict": "pass"}, _recorded(BAD), exact=True)
    assert outcome == "failed" and "stale record" in why
    # on versions the matrix has no column for, a fix is not stale: nothing recorded it for them
    assert legacy.judge({"verdict": "pass"}, _recorded(BAD), exact=False)[0] == "passed"


def test_versions_without_a_column_read_the_newest_consumer():
    bad, good = _recorded(BAD), {"verdict": "pass", "issue": None, "signature": ""}
    expected = {
        "consumers": {
            "old": {"versions": {"peft": "0.10.0", "transformers": "4.40.2"}, "rows": {"a": bad}},
            "new": {"versions": {"peft": "0.21.2", "transformers": "5.24.0"}, "rows": {"a": good}},
        }
    }
    assert legacy.record_for(expected, {"peft": "0.10.0", "transformers": "4.40.2"}) == ("old", {"a": bad}, True)
    new = legacy.record_for(expected, {"peft": "0.22.0.dev0", "transformers": "5.24.0"})
    assert new == ("new", {"a": {**good, "column": "new"}}, False)


def test_a_known_issue_record_whose_entry_no_longer_applies_gives_way_to_the_next_column():
    """peft-latest recorded known-issue where tf-5.24-cache-kwarg-classification masked the square;
    on a PEFT that fixed it the square computes again, and what it computes is judged against the
    newest column that judged it on its merits (here the known-good one's recorded failure)."""
    bad = _recorded(BAD)
    masked = {"verdict": "known-issue", "issue": "tf-5.24-cache-kwarg-classification", "signature": "ValueError: ..."}
    still = {"verdict": "known-issue", "issue": "peft-0.16-classification-modules-to-save-unset", "signature": "x"}
    expected = {
        "consumers": {
            "known-good": {"versions": {"peft": "0.21.2", "transformers": "5.23.0"}, "rows": {"a": bad, "b": bad}},
            "latest": {"versions": {"peft": "0.21.2", "transformers": "5.24.0"}, "rows": {"a": masked, "b": still}},
        }
    }
    newest = {"peft": "0.22.0", "transformers": "5.25.0"}
    live = ["peft-0.16-classification-modules-to-save-unset"]  # the cache entry ends at peft <0.22
    label, rows, exact = legacy.record_for(expected, newest, live=live)
    assert (label, exact) == ("latest", False)
    assert rows == {"a": {**bad, "column": "known-good"}, "b": {**still, "column": "latest"}}
    assert legacy.judge(BAD, rows["a"], exact)[0] == "recorded"  # the failure known-good records
    assert legacy.judge({**BAD, "detail": "RuntimeError: another failure"}, rows["a"], exact)[0] == "failed"
    # every entry live (no registry given): the newest record stands
    assert legacy.record_for(expected, newest)[1]["a"]["verdict"] == "known-issue"


def test_an_unreadable_record_is_one_line(tmp_path):
    path = tmp_path / "expected.json"
    path.write_text("{")
    with pytest.raises(legacy.LegacyError, match="cannot read the legacy record"):
        legacy.load_expected(path)
    path.write_text(json.dumps({"schema": 99}))
    with pytest.raises(legacy.LegacyError, match="schema 99"):
        legacy.load_expected(path)


def test_the_committed_record_covers_every_committed_artifact():
    expected = legacy.load_expected()
    kept = {f"{p}/{f.name}" for p, f in legacy.folders()}
    for label, column in expected["consumers"].items():
        assert set(column["rows"]) == kept, label


def test_the_ci_sample_keeps_every_release_once_and_every_task():
    every = legacy.folders()
    sample = legacy.one_per_release(every)
    task = lambda f: json.loads((f / "manifest.json").read_text())["case"]["task"]  # noqa: E731
    assert sorted(p for p, _ in sample) == sorted({p for p, _ in every})
    assert {task(f) for _, f in sample} == {task(f) for _, f in every}
    assert len(sample) < len(every) / 10


def test_only_consumers_that_judged_every_kept_artifact_get_a_column(tmp_path):
    run, out = tmp_path / "run", tmp_path / "legacy"
    for case in ("a", "b"):
        folder = run / "artifacts" / "old" / case
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"origin": "pinned", "case": {}}))
    versions = {"peft": "0.21.2", "transformers": "5.23.0"}
    rows = [{"producer": "old", "case": c, "verdict": "pass"} for c in ("a", "b")]
    (run / "results").mkdir()
    (run / "results" / "full.json").write_text(json.dumps({"versions": versions, "rows": rows}))
    # a transformers-axis consumer judges only its own and the anchors' artifacts
    (run / "results" / "axis.json").write_text(json.dumps({"versions": versions, "rows": rows[:1]}))
    expected = legacy.write(run, ["old"], out=out)
    assert list(expected["consumers"]) == ["full"]
    assert set(expected["consumers"]["full"]["rows"]) == {"old/a", "old/b"}
    (run / "results" / "full.json").unlink()
    with pytest.raises(legacy.LegacyError, match="no consumer judged every artifact"):
        legacy.write(run, ["old"], out=out)
