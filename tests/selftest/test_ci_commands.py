"""The commands the workflows call, one by one: `matrix cells|diff|track|pr-spec`, `run --stage`,
the property run's Markdown summary, and the TORCH_DEVICE switch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from matrix.ci import diff as changes
from matrix.ci import pr_spec, tracking
from matrix.cli import main as matrix_main
from prefixcheck import records, verdicts
from prefixcheck import summary as summary_mod
from tests.selftest.test_registry_and_reports import CASE

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import toxfile  # noqa: E402

pytestmark = pytest.mark.selftest


def _summary(*failures, known=None, passed=3, profile="ci") -> dict:
    props: dict = {}
    for f in failures:
        props.setdefault(f["property"], {"passed": passed, "failed": 0, "known": known or {}})["failed"] += 1
    props.setdefault("reload-equality", {"passed": passed, "failed": 0, "known": known or {}})
    return {
        "versions": {"peft": "0.21.2", "transformers": "5.24.0", "python": "3.11"},
        "totals": {"passed": passed, "failed": len(failures), "known": 0},
        "properties": props,
        "failures": list(failures),
        "hypothesis_profile": profile,
    }


def _failure(prop="reload-equality", error="OutputMismatch: max |diff| 0.25 > 0", case="abc"):
    return {"property": prop, "case": case, "error": error, "describe": "llama CAUSAL_LM", "repro": f"r/{case}.py"}


def _write(folder: Path, env: str, summary: dict) -> Path:
    (folder / env).mkdir(parents=True, exist_ok=True)
    (folder / env / "summary.json").write_text(json.dumps(summary))
    return folder


def _row(verdict, case="c1", issue=None):
    return {
        "consumer": "B",
        "producer": "A",
        "case": case,
        "arch": "llama",
        "task": "CAUSAL_LM",
        "verdict": verdict,
        "issue": issue,
        "detail": "max |diff| 0.3",
    }


# --- diff ---------------------------------------------------------------------------------------


def test_nightly_diff_finds_a_new_failure_by_property_and_error_not_by_example(tmp_path):
    """The nightly draws other cases every night: the same bug on another case is not new."""
    old = _write(tmp_path / "old", "peft-main", _summary(_failure(case="x1"), profile="nightly"))
    same_bug_other_example = _summary(
        _failure(case="x2", error="OutputMismatch: max |diff| 0.31 > 0"), profile="nightly"
    )
    new = _write(tmp_path / "new", "peft-main", same_bug_other_example)
    assert not changes.diff(changes.load_results(old), changes.load_results(new))["changed"]
    new = _write(
        tmp_path / "new2",
        "peft-main",
        _summary(_failure(), _failure("saved-shapes", "KeyError: 'w'"), profile="nightly"),
    )
    result = changes.diff(changes.load_results(old), changes.load_results(new))
    assert result["changed"] and [r["property"] for r in result["new_failures"]] == ["saved-shapes"]
    # the table names the case the property failed on (family and task), not only the property
    assert "| suite peft-main | `saved-shapes on llama CAUSAL_LM` | KeyError: 'w' |" in changes.markdown(result, "t")


def test_derandomized_diff_keys_failures_by_case(tmp_path):
    """`ci` draws the same cases in both runs: case x1 fixed and case x2 broken are two changes."""
    old = _write(tmp_path / "old", "s", _summary(_failure(case="x1")))
    new = _write(tmp_path / "new", "s", _summary(_failure(case="x2")))
    result = changes.diff(changes.load_results(old), changes.load_results(new))
    assert [r["case"] for r in result["new_failures"]] == ["x2"]
    assert [r["error"].split(":")[0] for r in result["newly_passing"]] == ["fixed"]


def test_diff_reports_a_stale_known_issue_and_a_fixed_failure_as_newly_passing(tmp_path):
    old = _write(tmp_path / "old", "s", _summary(_failure()))
    stale = _failure("prefix-acts", "StaleKnownIssue: prefix-acts passed although known issue 'x' says it fails")
    new = _write(tmp_path / "new", "s", _summary(stale))
    result = changes.diff(changes.load_results(old), changes.load_results(new))
    assert result["new_failures"] == []
    assert {r["property"] for r in result["newly_passing"]} == {"prefix-acts", "reload-equality"}


def test_diff_on_matrix_rows(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "old" / "matrix.json").write_text(json.dumps({"rows": [_row("pass"), _row("known-issue", "c2", "i")]}))
    (tmp_path / "new" / "matrix.json").write_text(json.dumps({"rows": [_row("fail"), _row("pass", "c2")]}))
    result = changes.diff(changes.load_results(tmp_path / "old"), changes.load_results(tmp_path / "new"))
    assert [r["error"].split(":")[0] for r in result["new_failures"]] == ["pass -> fail"]
    assert [r["error"] for r in result["newly_passing"]] == ["known-issue (i) -> pass"]
    text = changes.markdown(result, "t")
    assert "**New failures** (1)" in text and "**Newly passing" in text


def test_diff_reports_a_square_going_to_a_known_issue_and_rows_that_disappeared(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "old" / "matrix.json").write_text(json.dumps({"rows": [_row("pass"), _row("pass", "c2")]}))
    (tmp_path / "new" / "matrix.json").write_text(json.dumps({"rows": [_row("known-issue", issue="j")]}))
    result = changes.diff(changes.load_results(tmp_path / "old"), changes.load_results(tmp_path / "new"))
    assert result["changed"] and result["new_failures"] == []
    assert [r["error"] for r in result["other_changes"]] == ["pass -> known-issue (j)", "pass -> no longer judged"]
    assert "**Other changes" in changes.markdown(result, "t")


def test_diff_without_a_previous_run_is_a_baseline_not_a_change(tmp_path, capsys, monkeypatch):
    out = tmp_path / "gh_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    new = _write(tmp_path / "new", "s", _summary(_failure()))
    assert matrix_main(["diff", str(tmp_path / "missing"), str(new), "--out", str(tmp_path / "c")]) == 0
    assert "this run is the baseline" in capsys.readouterr().out
    assert json.loads((tmp_path / "c" / "changes.json").read_text())["changed"] is False
    assert "changed=false" in out.read_text()


def test_diff_two_summary_files_compares_them_whatever_their_env(tmp_path):
    good = _write(tmp_path, "known-good", _summary()) / "known-good" / "summary.json"
    latest = _write(tmp_path, "peft-latest", _summary(_failure())) / "peft-latest" / "summary.json"
    assert matrix_main(["diff", str(good), str(latest), "--fail-on-new"]) == 1
    assert matrix_main(["diff", str(good), str(good), "--fail-on-new"]) == 0


def test_diff_bad_input_is_one_line(tmp_path):
    (tmp_path / "summary.json").write_text("{truncated")
    with pytest.raises(SystemExit, match=r"summary.json: not a readable results file"):
        matrix_main(["diff", str(tmp_path), str(tmp_path)])
    with pytest.raises(SystemExit, match="no such results folder"):
        matrix_main(["diff", str(tmp_path), str(tmp_path / "nope")])


# --- track ---------------------------------------------------------------------------------------


class FakeAPI(tracking.GitHub):
    def __init__(self, open_issues):
        super().__init__("me/repo", "token")
        self.open_issues = open_issues

    def request(self, method, path, body=None):
        self.calls.append((method, path, body))
        return self.open_issues if method == "GET" else {"html_url": "u", "number": 9}


def test_track_opens_one_issue_then_comments_on_it():
    changed = {"changed": True}
    api = FakeAPI([])
    assert "opened" in tracking.track(changed, "body", api, "http://run")
    assert api.calls[-1] == (
        "POST",
        "/issues",
        {"title": tracking.TITLE, "body": "body\nRun: http://run\n", "labels": [tracking.LABEL]},
    )
    api = FakeAPI([{"number": 4, "title": tracking.TITLE}, {"number": 5, "title": tracking.TITLE, "pull_request": {}}])
    assert tracking.track(changed, "body", api) == "commented on tracking issue #4"
    assert api.calls[-1][:2] == ("POST", "/issues/4/comments")
    api = FakeAPI([])
    assert "nothing changed" in tracking.track({"changed": False}, "body", api) and api.calls == []


def test_track_needs_a_token_and_a_repo(monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(SystemExit, match="GITHUB_TOKEN is not set"):
        tracking.GitHub("me/repo", None)
    with pytest.raises(SystemExit, match="is not OWNER/NAME"):
        tracking.GitHub("me/repo; rm -rf", "t")


# --- pr-spec -------------------------------------------------------------------------------------


def test_pr_spec_resolves_a_pull_request_to_its_head_commit():
    sha = "a" * 40
    answer = {"head": {"sha": sha, "repo": {"full_name": "someone/peft"}}}
    assert pr_spec.pr_spec(pr="2256", fetch=lambda url: answer) == f"git+https://github.com/someone/peft@{sha}"
    with pytest.raises(SystemExit, match="deleted fork"):
        pr_spec.pr_spec(pr="2256", fetch=lambda url: {"head": {"sha": sha, "repo": None}})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of"),
        ({"pr": "1", "spec": "0.17.1"}, "exactly one of"),
        ({"pr": "12; echo"}, "not a pull-request number"),
        ({"repository": "a/b c", "ref": "main"}, "not OWNER/NAME"),
        ({"repository": "a/b", "ref": "../x"}, "not a branch"),
        ({"repository": "a/b", "ref": "$(id)"}, "not a branch"),
    ],
)
def test_pr_spec_refuses_bad_input(kwargs, message):
    with pytest.raises(SystemExit, match=message):
        pr_spec.pr_spec(**kwargs, fetch=lambda url: pytest.fail("no API call for bad input"))


def test_pr_spec_repository_and_spec():
    assert pr_spec.pr_spec(repository="me/peft", ref="fix/prefix") == "git+https://github.com/me/peft@fix/prefix"
    assert pr_spec.pr_spec(spec=" 0.17.1 ") == "0.17.1"


# --- cells and run --stage -----------------------------------------------------------------------


def test_cells_json_is_a_github_matrix(capsys):
    assert matrix_main(["cells", "--device", "cpu", "--json", "--cells", "peft-0.17.1,peft-main"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == [{"cell": "peft-0.17.1", "device": "cpu"}]
    assert "[peft-main] skipped: needs GitHub" in out.err
    assert matrix_main(["cells", "--github", "--released"]) == 0
    released = capsys.readouterr().out.strip().split(",")
    assert "peft-main" not in released and "peft-0.21.2-tf-5.23" in released


def test_consume_stage_without_artifacts_says_so(tmp_path):
    with pytest.raises(SystemExit, match="nothing to consume"):
        matrix_main(["run", "--stage", "consume", "--cells", "peft-0.17.1", "--out", str(tmp_path)])


# --- the property run's Markdown summary ---------------------------------------------------------


def test_summary_markdown_names_an_upstream_regression():
    text = summary_mod.markdown(_summary(_failure()), "peft-latest", pinned=False)
    assert "Property suite `peft-latest`: FAILED" in text
    assert "**Upstream change, not a suite bug**" in text and "`r/abc.py`" in text
    pinned = summary_mod.markdown(_summary(_failure()), "known-good", pinned=True)
    assert "a bug in the suite" in pinned and "Upstream change" not in pinned
    assert "passed" in summary_mod.markdown(_summary(), "known-good", pinned=True).splitlines()[0]


def test_recorded_failures_reach_the_summary(tmp_path):
    rec = records.Recorder()
    case = CASE
    failure = {"error": "E: x", "repro": "p.py", "describe": "d"}
    rec.record("reload-equality", case, records.ExampleRecord(verdicts.FAILED, failure=failure))
    rec.write_part(tmp_path / "part.json")
    merged = records.Recorder()
    merged.load_part(tmp_path / "part.json")
    summary = summary_mod.build(merged, summary_mod.RunFacts("ci", True))
    assert summary["failures"] == [
        {"property": "reload-equality", "case": case.key, "error": "E: x", "repro": "p.py", "describe": "d"}
    ]


# --- TORCH_DEVICE -------------------------------------------------------------------------------


def test_torch_device_switch(tmp_path):
    cpu = toxfile.torch_settings({"TORCH_WHEELS": str(tmp_path)})
    assert cpu["UV_FIND_LINKS"] == str(tmp_path.resolve())
    assert cpu["PREFIX_TORCH_CONSTRAINTS"].endswith("constraints-torch-cpu.txt")
    cuda = toxfile.torch_settings({"TORCH_DEVICE": "cuda", "TORCH_WHEELS": str(tmp_path)})
    assert cuda["UV_INDEX"] == f"pytorch-cuda={toxfile.PYTORCH_CUDA_INDEX}"  # TORCH_WHEELS is for CPU only
    assert Path(cuda["PREFIX_TORCH_CONSTRAINTS"]).read_text().strip() == "torch==2.13.0"
    with pytest.raises(toxfile.SpecError, match="TORCH_DEVICE='tpu'"):
        toxfile.torch_settings({"TORCH_DEVICE": "tpu"})
    with pytest.raises(toxfile.SpecError, match="TORCH_CUDA_WHEELS="):
        toxfile.torch_settings({"TORCH_DEVICE": "cuda", "TORCH_CUDA_WHEELS": str(tmp_path / "none")})


def test_track_api_failure_is_one_line(monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    github = tracking.GitHub("me/repo", "token")
    with pytest.raises(SystemExit, match=r"^error: GitHub API GET /repos/me/repo/issues"):
        tracking.track({"changed": True}, "body", github)
