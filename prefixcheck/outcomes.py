"""Judging one example against the known-issue registry, and counting outcomes.

`check(prop, case)` wraps the body of one property example:
- no registry entry applies: the body's result stands (pass, or the failure propagates with a
  reproduction script attached);
- entries apply: the body must fail the way one of them says; it is then counted as known under
  that entry and the example passes; passing instead raises `StaleKnownIssue`; failing another
  way propagates.

Counts are per distinct example (property, case key). When a test item fails, the examples
Hypothesis runs while shrinking are dropped again (`Recorder.forget_shrinking`): the summary
counts the generated examples plus the one minimal failing example it reports. Each process
writes its own part file; the pytest session merges them into `reports/<env>/summary.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from . import known_issues, repro
from .case import Case
from .versions import installed

PASSED, FAILED, KNOWN = "passed", "failed", "known"


class Recorder:
    def __init__(self) -> None:
        self.outcomes: dict[tuple[str, str], tuple[str, str | None]] = {}
        self.failures: dict[tuple[str, str], dict] = {}  # (prop, key) -> what a failed example says
        self.log: list[tuple[str, str]] = []  # (prop, key) in the order examples ran

    def record(self, prop: str, case: Case, outcome: str, issue_id: str | None = None, failure: dict | None = None):
        self.outcomes[(prop, case.key)] = (outcome, issue_id)
        if failure is not None:
            self.failures[(prop, case.key)] = failure
        self.log.append((prop, case.key))

    def mark(self) -> int:
        return len(self.log)

    def forget_shrinking(self, start: int) -> None:
        """After a failed test item: keep what ran up to its first failure, and its last failure
        (Hypothesis' minimal example); forget the shrinking runs in between."""
        run = self.log[start:]
        failed = [i for i, k in enumerate(run) if self.outcomes[k][0] == FAILED]
        if not failed:
            return
        keep = set(run[: failed[0] + 1]) | {run[failed[-1]]} | set(self.log[:start])
        for k in set(run) - keep:
            self.outcomes.pop(k, None)
            self.failures.pop(k, None)
        self.log[start:] = [k for k in run if k in keep]

    def counts(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for (prop, _), (outcome, issue_id) in sorted(self.outcomes.items()):
            slot = out.setdefault(prop, {"passed": 0, "failed": 0, "known": {}})
            if outcome == KNOWN:
                slot["known"][issue_id] = slot["known"].get(issue_id, 0) + 1
            else:
                slot[outcome] += 1
        return out

    def write_part(self, path: str | Path) -> None:
        rows = [[p, k, o, i, self.failures.get((p, k))] for (p, k), (o, i) in self.outcomes.items()]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(rows))

    def load_part(self, path: str | Path) -> None:
        for prop, key, outcome, issue_id, failure in json.loads(Path(path).read_text()):
            self.outcomes[(prop, key)] = (outcome, issue_id)
            if failure is not None:
                self.failures[(prop, key)] = failure


RECORDER = Recorder()


def _failure(case: Case, exc: BaseException, repro_path) -> dict:
    first = (str(exc).strip().splitlines() or [""])[0]
    return {
        "describe": case.describe(),
        "error": f"{type(exc).__name__}: {first}"[:300],
        "repro": str(repro_path) if repro_path else None,
    }


def reports_dir() -> Path:
    # PREFIXCHECK_ENV names a run apart from its tox env (the nightly runs peft-pr for two mains)
    env = os.environ.get("PREFIXCHECK_ENV") or os.environ.get("TOX_ENV_NAME") or "local"
    return Path(os.environ.get("PREFIXCHECK_REPORTS", "reports")) / env


def summary(recorder: Recorder) -> dict:
    counts = recorder.counts()
    totals = {"passed": 0, "failed": 0, "known": 0}
    for slot in counts.values():
        totals["passed"] += slot["passed"]
        totals["failed"] += slot["failed"]
        totals["known"] += sum(slot["known"].values())
    failures = [
        {"property": prop, "case": key, **recorder.failures.get((prop, key), {})}
        for (prop, key), (outcome, _) in sorted(recorder.outcomes.items())
        if outcome == FAILED
    ]
    return {"versions": installed(), "totals": totals, "properties": counts, "failures": failures}


def markdown(summary: dict, env: str, pinned: bool) -> str:
    """The run's Markdown job summary. On versions this project does not pin, a failure outside
    the registry is named for what it most likely is: an upstream regression, or a fixed bug."""
    versions = ", ".join(f"{k} {v}" for k, v in sorted(summary["versions"].items()) if k != "python")
    totals = summary["totals"]
    mark = "passed" if totals["failed"] == 0 else "FAILED"
    lines = [
        f"## Property suite `{env}`: {mark}",
        "",
        f"{versions}; Hypothesis profile `{summary.get('hypothesis_profile', '?')}`.",
        f"{totals['passed']} examples passed, {totals['known']} hit a known issue as the registry says, "
        f"**{totals['failed']} failed**.",
    ]
    if totals["failed"]:
        stale = [f for f in summary.get("failures", []) if f.get("error", "").startswith("StaleKnownIssue")]
        if pinned:
            lines += ["", "These versions are pinned by this project: a failure here is a bug in the suite."]
        else:
            lines += [
                "",
                f"**Upstream change, not a suite bug**: {env} is not pinned by this project. A failure here "
                "that the pinned known-good run does not show is an upstream regression "
                f"({len(stale)} of them a known issue that now passes: narrow its registry entry). "
                "Each reproduction script below runs standalone; attach it to the upstream report.",
            ]
        lines += ["", "| property | failed | known issues hit |", "|---|---|---|"]
        for prop, slot in sorted(summary["properties"].items()):
            if slot["failed"]:
                known = ", ".join(f"{i} ({n})" for i, n in sorted(slot["known"].items())) or "-"
                lines.append(f"| `{prop}` | {slot['failed']} | {known} |")
        lines += ["", "| property | case | error | reproduction |", "|---|---|---|---|"]
        for f in summary.get("failures", [])[:50]:
            error = f.get("error", "").replace("|", "/").replace("\n", " ")[:160]
            lines.append(
                f"| `{f['property']}` | `{f['case']}` {f.get('describe', '')} | {error} | `{f.get('repro', '-')}` |"
            )
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def check(
    prop: str, case: Case, recorder: Recorder | None = None, **context
) -> Iterator[tuple[known_issues.KnownIssue, ...]]:
    """Judge one example of property `prop` on `case` (see the module docstring). `context` goes
    to the reproduction script (e.g. `second=` the other adapter of a multi-adapter case)."""
    if prop not in known_issues.PROPERTIES:
        raise ValueError(f"unknown property {prop!r}")
    recorder = recorder or RECORDER
    issues = known_issues.matching(prop, case)
    try:
        yield issues
    except Exception as exc:
        for issue in issues:
            if issue.failure.matches(exc):
                recorder.record(prop, case, KNOWN, issue.id)
                return
        for issue in issues:
            exc.add_note(f"known issue {issue.id} applies but expects {issue.failure}; this failure is different")
        note, path = repro.attach(prop, case, **context)
        exc.add_note(note)
        recorder.record(prop, case, FAILED, failure=_failure(case, exc, path))
        raise
    if issues:
        issue = issues[0]
        stale = known_issues.StaleKnownIssue(
            f"{prop} passed on {case.describe()} although known issue {issue.id!r} "
            f"({', '.join(issue.references) or 'found by this suite'}) says it fails with {issue.failure} "
            f"for {issue.affects}: the bug looks fixed; narrow or remove the entry"
        )
        recorder.record(prop, case, FAILED, failure=_failure(case, stale, None))
        raise stale
    recorder.record(prop, case, PASSED)
