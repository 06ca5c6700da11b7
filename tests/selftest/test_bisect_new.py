"""`python -m matrix bisect-new` and what `matrix track` attaches from it: which new failures get a
bisect (the new ones only, within the limit, one per square), the line each one comes to (boundary,
same verdict everywhere, could not bisect, not bisected), the per-bisect timeout, and the issue text
within GitHub's comment size limit.

No environment is built: the bisect subprocess is replaced by canned outputs (monkeypatch), except
where `python -m matrix bisect` really runs and stops at its input checks, and where the timeout
kills a stand-in process tree.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types
from pathlib import Path

import pytest

from matrix.bisect import new_failures as bisect_new
from matrix.ci import diff as changes
from matrix.ci import tracking
from matrix.cli import main as matrix_main
from tests.selftest.bisect_support import CASE

pytestmark = pytest.mark.selftest

GOOD = types.SimpleNamespace(peft="0.21.2", transformers="5.23.0")  # the known-good cell's pins
LATEST = {"peft": "0.21.2", "transformers": "5.24.0", "python": "3.11"}


def _failure(prop, case, error="OutputMismatch: max |diff| 0.25 > 0"):
    return {
        "property": prop,
        "case": case,
        "error": error,
        "kind": error.split(":")[0],
        "describe": "llama CAUSAL_LM",
        "repro": f"reports/peft-latest/repros/{prop}-{case}.py",
    }


def _summary(*failures, versions=LATEST) -> dict:
    props: dict = {}
    for f in failures:
        props.setdefault(f["property"], {"passed": 3, "failed": 0, "known": {}})["failed"] += 1
    return {"versions": versions, "properties": props, "failures": list(failures), "hypothesis_profile": "ci"}


def _row(case, verdict, producer="peft-0.17.1", consumer="peft-latest", issue=None):
    return {
        "producer": producer,
        "consumer": consumer,
        "case": case,
        "arch": "llama",
        "task": "CAUSAL_LM",
        "verdict": verdict,
        "issue": issue,
        "detail": "adapter logits: max |diff| 0.3",
    }


@pytest.fixture()
def nightly(tmp_path):
    """Last night and tonight, in one diff: a failure known from last night, one fixed, a stale
    known issue, a square that stayed bad, one that moved to a known issue, and the new ones: a
    suite failure and two bad rows of one square. Tonight's folder holds what bisect-new reads."""
    known = _failure("saved-shapes", "k1")
    baseline = {
        "matrix": {"rows": [_row("c1", "pass"), _row("c2", "pass"), _row("c3", "fail"), _row("c4", "pass")]},
        "suites": {"peft-latest": _summary(known, _failure("prefix-acts", "f1"))},
    }
    stale = _failure("multi-adapter", "s1", "StaleKnownIssue: multi-adapter passed although known issue 'x' fails")
    tonight = {
        "matrix": {
            "rows": [
                _row("c1", "fail"),
                _row("c2", "load-error"),
                _row("c3", "fail"),
                _row("c4", "known-issue", issue="y"),
            ]
        },
        "suites": {"peft-latest": _summary(known, stale, _failure("reload-equality", "n1"))},
    }
    run = tmp_path / "nightly"
    repros = run / "reports" / "peft-latest" / "repros"
    repros.mkdir(parents=True)
    (repros / "reload-equality-n1.py").write_text("# a reproduction script\n")
    (run / "results").mkdir()
    (run / "results" / "peft-latest.json").write_text(json.dumps({"rows": tonight["matrix"]["rows"]}))
    return changes.diff(baseline, tonight), run


# -- which new failures get a bisect --------------------------------------------------------------------
def test_only_the_new_failures_are_planned_each_with_its_arguments(nightly):
    diffed, run = nightly
    entries = bisect_new.plan(diffed, run, limit=3, good=GOOD)
    assert [(e["where"], e["what"]) for e in entries] == [
        ("suite peft-latest", "reload-equality on llama CAUSAL_LM"),
        ("matrix peft-0.17.1 -> peft-latest", "llama CAUSAL_LM case c1"),
        ("matrix peft-0.17.1 -> peft-latest", "llama CAUSAL_LM case c2"),
    ]
    suite, first, second = entries
    script = (run / "reports" / "peft-latest" / "repros" / "reload-equality-n1.py").resolve()
    assert suite["args"] == [
        "--property",
        "reload-equality",
        "--case",
        str(script),
        "--transformers",
        "5.23.0..5.24.0",
        "--peft",
        "0.21.2",
    ]
    assert "known-good pin 5.23.0 to the run's 5.24.0" in suite["why"]
    assert first["args"] == ["--square", "peft-0.17.1:peft-latest", "--run", str(run), "--row", "c1"]
    assert second == {
        **second,
        "status": "not-bisected",
        "line": "not bisected: same square as case c1 (one bisect per square)",
    }


def test_the_limit_holds_and_what_cannot_be_bisected_does_not_count(nightly):
    diffed, run = nightly
    dev = {**diffed["new_failures"][0], "versions": {"peft": "0.22.0.dev0", "transformers": "5.24.0"}}
    pinned = {**diffed["new_failures"][0], "versions": {"peft": "0.21.2", "transformers": "5.23.0"}}
    other_square = {**diffed["new_failures"][1], "consumer": "peft-latest", "producer": "peft-0.15.2", "case": "c9"}
    diffed = {**diffed, "new_failures": [dev, pinned, *diffed["new_failures"], other_square]}
    entries = bisect_new.plan(diffed, run, limit=2, good=GOOD)
    assert [e.get("line") for e in entries] == [
        "not bisected: peft 0.22.0.dev0 is a development build, not a release (its commits: `matrix bisect --git`)",
        "not bisected: the run used the known-good pair (peft 0.21.2, transformers 5.23.0): no range",
        None,
        None,
        "not bisected: same square as case c1 (one bisect per square)",
        "not bisected: limit of 2 reached",
    ]
    assert [e for e in bisect_new.plan(diffed, run, limit=0, good=GOOD) if "args" in e] == []


def test_peft_moves_where_transformers_is_the_pinned_one(nightly, tmp_path):
    diffed, run = nightly
    failure = {**diffed["new_failures"][0], "versions": {"peft": "0.22.0", "transformers": "5.23.0"}}
    args, why = bisect_new.suite_arguments(failure, run, GOOD)
    assert args[-4:] == ["--peft", "0.21.2..0.22.0", "--transformers", "5.23.0"]
    assert why.startswith("peft moves from the known-good pin 0.21.2 to the run's 0.22.0")
    with pytest.raises(bisect_new.NotBisected, match="is not in"):
        bisect_new.suite_arguments(failure, tmp_path / "elsewhere", GOOD)


# -- running the bisects, and the line each comes to -------------------------------------------------------
CANNED = {
    # case -> (exit status, stdout, stderr); the report is written where a boundary was found
    "suite": (
        0,
        "bisect transformers 5.23.0..5.24.0 (2 releases), peft 0.21.2 fixed: ...\n"
        "transformers 5.23.0: pass [30 s]\ntransformers 5.24.0: fail (reload-equality; OutputMismatch) [31 s]\n"
        "report: x.md (70 s)\nboundary: transformers 5.23.0 (pass) -> 5.24.0 (fail)\n",
        "",
    ),
    "c1": (
        1,
        "peft 0.17.1: fail [20 s]\npeft 0.21.2: fail [22 s]\nno boundary: every version that ran gives fail (0.17.1, 0.21.2)\n",
        "",
    ),
    "c7": (2, "", "error: square peft-0.15.2:peft-latest: producer and consumer have the same peft and transformers\n"),
    "c8": (None, "peft 0.15.2: pass [40 s]\n", ""),
}


@pytest.fixture()
def canned(monkeypatch):
    calls = []

    def run_bisect(args, timeout):
        calls.append((args, timeout))
        key = args[args.index("--row") + 1] if "--row" in args else "suite"
        status, out, err = CANNED[key]
        if status == 0:
            Path(args[args.index("--out") + 1]).write_text(
                "# transformers 5.24.0: reload-equality fails\n\nthe report\n"
            )
        return status, out, err

    monkeypatch.setattr(bisect_new, "run_bisect", run_bisect)
    return calls


def _four_new_failures(diffed):
    rows = [r for r in diffed["new_failures"] if r.get("producer")]
    squares = [
        {
            **rows[0],
            "where": f"matrix {p} -> peft-latest",
            "property": f"llama CAUSAL_LM case {c}",
            "producer": p,
            "case": c,
        }
        for p, c in (("peft-0.15.0", "c7"), ("peft-0.16.0", "c8"))
    ]
    return {**diffed, "new_failures": [*diffed["new_failures"], *squares]}


def test_each_bisect_is_run_and_recorded_with_its_line(nightly, canned, tmp_path):
    diffed, run = nightly
    (tmp_path / "changes").mkdir()
    (tmp_path / "changes" / "changes.json").write_text(json.dumps(_four_new_failures(diffed)))
    index = bisect_new.bisect_new(tmp_path / "changes", run, tmp_path / "out", 3, 600, GOOD, log=lambda line: None)
    assert [c[1] for c in canned] == [600, 600, 600]  # the per-bisect timeout, for each of the limit's three
    lines = [e["line"] for e in index["entries"]]
    assert lines == [
        "boundary: transformers 5.23.0 (pass) -> 5.24.0 (fail)",
        "same verdict in every tested release: fail",
        "not bisected: same square as case c1 (one bisect per square)",
        "could not bisect: square peft-0.15.2:peft-latest: producer and consumer have the same peft and transformers",
        "not bisected: limit of 3 reached",
    ]
    suite = index["entries"][0]
    assert suite["verdicts"] == [
        "transformers 5.23.0: pass [30 s]",
        "transformers 5.24.0: fail (reload-equality; OutputMismatch) [31 s]",
    ]
    assert (tmp_path / "out" / suite["report"]).read_text().startswith("# transformers 5.24.0")
    assert suite["command"].startswith("python -m matrix bisect --property reload-equality --case ")
    assert "boundary: transformers" in (tmp_path / "out" / suite["log"]).read_text()
    assert index["entries"][1]["report"] is None and index["entries"][1]["verdicts"][-1] == "peft 0.21.2: fail [22 s]"
    assert json.loads((tmp_path / "out" / "bisects.json").read_text()) == index
    assert "**Bisects of the new failures** (3 of 5;" in (tmp_path / "out" / "bisects.md").read_text()


def test_a_bisect_stopped_at_its_timeout_says_so(nightly, canned, tmp_path):
    diffed, run = nightly
    diffed = _four_new_failures(diffed)
    diffed["new_failures"] = diffed["new_failures"][-1:]  # the square whose bisect runs out of time
    (tmp_path / "changes").mkdir()
    (tmp_path / "changes" / "changes.json").write_text(json.dumps(diffed))
    index = bisect_new.bisect_new(tmp_path / "changes", run, tmp_path / "out", 3, 5, GOOD, log=lambda line: None)
    (entry,) = index["entries"]
    assert entry["line"] == "could not bisect: stopped after 5 s" and entry["verdicts"] == ["peft 0.15.2: pass [40 s]"]


def test_the_timeout_stops_the_bisect_and_everything_it_started(tmp_path, monkeypatch):
    """run_bisect kills the process group: a probe (here a `sleep`) the bisect started dies too."""
    pid_file = tmp_path / "child.pid"
    stand_in = tmp_path / "python"
    stand_in.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {pid_file}\necho 'peft 0.15.2: pass [1 s]'\nwait\n")
    stand_in.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(stand_in))
    start = time.monotonic()
    status, out, _ = bisect_new.run_bisect(["--row", "x"], timeout=1.5)
    assert status is None and time.monotonic() - start < 10 and out == "peft 0.15.2: pass [1 s]\n"
    child = int(pid_file.read_text())
    for _ in range(50):  # gone, or a zombie waiting for init
        stat = Path(f"/proc/{child}/stat")
        if not stat.exists() or stat.read_text().split(")")[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        pytest.fail("the bisect's child outlived the timeout")


def test_a_real_bisect_that_cannot_start_is_one_line(tmp_path):
    """`python -m matrix bisect` really runs here, and stops at its input checks (exit 2)."""
    run = tmp_path / "nightly"
    folder = run / "artifacts" / "peft-0.21.2-tf-5.23" / CASE.key
    folder.mkdir(parents=True)
    same = {"peft": "0.21.2", "transformers": "5.23.0"}
    (folder / "manifest.json").write_text(json.dumps({"case": CASE.to_dict(), "versions": same}))
    row = _row(CASE.key, "fail", producer="peft-0.21.2-tf-5.23", consumer="known-good-again")
    (run / "results").mkdir()
    (run / "results" / "known-good-again.json").write_text(json.dumps({"versions": same, "rows": [row]}))
    diffed = changes.diff({"matrix": {"rows": []}, "suites": {}}, {"matrix": {"rows": [row]}, "suites": {}})
    (tmp_path / "changes").mkdir()
    (tmp_path / "changes" / "changes.json").write_text(json.dumps(diffed))
    index = bisect_new.bisect_new(tmp_path / "changes", run, tmp_path / "out", 3, 120, GOOD, log=lambda line: None)
    (entry,) = index["entries"]
    assert entry["exit"] == 2 and entry["line"] == (
        "could not bisect: square peft-0.21.2-tf-5.23:known-good-again: producer and consumer have the same "
        "peft and transformers"
    )


# -- what the tracking issue gets -----------------------------------------------------------------------------
@pytest.fixture()
def posted(monkeypatch):
    """The bodies `matrix track` sends, through a stand-in for the GitHub REST call."""
    bodies = []

    def api_call(method, path, body=None, token=None):
        if body:
            bodies.append(body["body"])
        return [] if method == "GET" else {"html_url": "http://fake/issues/1"}

    monkeypatch.setattr(tracking, "api_call", api_call)
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    return bodies


def _tracked(tmp_path, diffed, bisects: Path, posted) -> str:
    folder = tmp_path / "changes"
    folder.mkdir(exist_ok=True)
    (folder / "changes.json").write_text(json.dumps(diffed))
    (folder / "changes.md").write_text(changes.markdown(diffed, "Nightly"))
    argv = ["track", str(folder), "--repo", "me/repo", "--run-url", "http://run", "--bisects", str(bisects)]
    assert matrix_main(argv) == 0
    return posted[-1]


def test_track_attaches_each_new_failures_bisect(nightly, canned, posted, tmp_path):
    diffed, run = nightly
    diffed = _four_new_failures(diffed)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "changes.json").write_text(json.dumps(diffed))
    bisect_new.bisect_new(tmp_path / "c", run, tmp_path / "bisect", 3, 600, GOOD, log=lambda line: None)
    body = _tracked(tmp_path, diffed, tmp_path / "bisect", posted)
    for line in (
        "- suite peft-latest `reload-equality on llama CAUSAL_LM`: boundary: transformers 5.23.0 (pass) -> 5.24.0 (fail)",
        "- matrix peft-0.17.1 -> peft-latest `llama CAUSAL_LM case c1`: same verdict in every tested release: fail",
        "`llama CAUSAL_LM case c2`: not bisected: same square as case c1 (one bisect per square)",
        "- matrix peft-0.15.0 -> peft-latest `llama CAUSAL_LM case c7`: could not bisect: square peft-0.15.2",
        "`llama CAUSAL_LM case c8`: not bisected: limit of 3 reached",
    ):
        assert line in body
    assert body.count("<details>") == 3 and "the report\n" in body  # the report, collapsed
    assert "`nightly-bisect` artifact of [the run](http://run)" in body and body.endswith("Run: http://run\n")
    assert body.index("**New failures**") < body.index("**Bisects of the new failures**")


def test_the_issue_text_fits_githubs_comment_limit(nightly, canned, posted, tmp_path, monkeypatch):
    diffed, run = nightly
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "changes.json").write_text(json.dumps(diffed))
    index = bisect_new.bisect_new(tmp_path / "c", run, tmp_path / "bisect", 3, 600, GOOD, log=lambda line: None)
    # a report far over the limit, cut inside a code block
    report = tmp_path / "bisect" / index["entries"][0]["report"]
    report.write_text("# big\n\n```python\n" + "x = 1\n" * 20000 + "```\n")
    body = _tracked(tmp_path, diffed, tmp_path / "bisect", posted)
    assert len(body) <= tracking.COMMENT_LIMIT
    assert "boundary: transformers 5.23.0 (pass) -> 5.24.0 (fail)" in body and "same verdict in every" in body
    cut = body[body.index("<details>") : body.index("</details>")]
    assert "Cut here:" in cut and cut.count("```") % 2 == 0  # the code block closed before the note
    assert body.endswith("Run: http://run\n")
    # the changes text alone over the limit: cut too, the run's link kept
    monkeypatch.setattr(changes, "markdown", lambda *a: "y" * 70000)
    body = _tracked(tmp_path, diffed, tmp_path / "bisect", posted)
    assert len(body) <= tracking.COMMENT_LIMIT and "comment size limit" in body and body.endswith("Run: http://run\n")


def test_track_says_when_the_bisect_job_left_nothing(nightly, posted, tmp_path):
    diffed, _ = nightly
    body = _tracked(tmp_path, diffed, tmp_path / "never-downloaded", posted)
    assert "No bisect results for the new failures" in body
    quiet = {**diffed, "new_failures": []}  # nothing new: nothing bisected, nothing said
    assert "bisect" not in _tracked(tmp_path, quiet, tmp_path / "never-downloaded", posted).lower()


def test_bad_input_is_one_line(tmp_path, capsys):
    assert matrix_main(["bisect-new", str(tmp_path), "--run", str(tmp_path)]) == 2
    assert "no changes.json" in capsys.readouterr().err
    (tmp_path / "changes.json").write_text(json.dumps({"new_failures": []}))
    assert matrix_main(["bisect-new", str(tmp_path), "--run", str(tmp_path / "nope")]) == 2
    assert "no such results folder" in capsys.readouterr().err
    assert matrix_main(["bisect-new", str(tmp_path), "--run", str(tmp_path), "--limit", "-1"]) == 2


def test_a_case_broken_since_its_family_was_added_says_so_not_same_verdict():
    out = "\n".join(
        [
            "transformers 5.23.0: unsupported (this transformers has no architecture 'ergo') [3 s]",
            "transformers 5.25.0: fail (generate-first-step; PrefixNotReceived) [40 s]",
            "since added: broken since it was added in transformers 5.25.0 (transformers 5.24.0: this transformers "
            "has no architecture 'ergo')",
            "no boundary: every version that ran gives fail (5.25.0)",
        ]
    )
    got = bisect_new.outcome(1, out, "", 600)
    assert got["status"] == "since-added"
    assert got["line"].startswith("broken since it was added in transformers 5.25.0 (transformers 5.24.0:")
