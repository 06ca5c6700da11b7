"""What changed between two result folders, and the nightly tracking issue.

`python -m matrix diff OLD NEW` reads, from each folder, a `matrix.json` (the compatibility matrix)
and every `summary.json` below it (property-suite runs, keyed by their folder: the tox env). It
reports what CI has to act on (below: how failures are keyed):
- new failures: a property failure whose signature the baseline did not have, or a matrix
  square verdict that was good (or absent) and is not;
- newly passing: a failure that went away, a matrix row that now passes, and every
  `StaleKnownIssue` (a registry entry whose bug looks fixed);
- other changes: a row that went from pass to a known issue or from one known issue to another,
  and rows that disappeared (a consumer or producer that no longer judged them).
Known-issue counts are not compared: with a randomized profile they move every night.

How failures are keyed, the one home for the comparison that `matrix diff` (the nightly's change
detection) and `matrix validate` (a PEFT build against a baseline) both report:
- property-suite failures are keyed by their signature: (property, case, kind) where both runs drew
  the same cases (a derandomized profile: `ci`, `smoke`), else (property, kind, error with numbers
  folded), since a randomized profile draws other cases every night and the same bug would read
  as new each time. One fixed plus one new failure in the same property is two changes, not none.
- matrix rows are keyed by (consumer, producer, case): a good verdict going bad is a regression,
  a row that is new and bad is one too, anything going to pass is a fix, and the other moves
  (pass -> known-issue, one known issue for another, a row that disappeared) are changes to read.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefixcheck.verdicts import FAILED, GOOD_ROWS, KNOWN, KNOWN_ISSUE, PASS, fold_numbers

DERANDOMIZED_PROFILES = ("ci", "smoke")  # summaries written before `derandomized` was recorded


def derandomized(summary: dict) -> bool:
    """Whether the run drew a fixed list of cases (the same in every run of the same code)."""
    if "derandomized" in summary:
        return bool(summary["derandomized"])
    return summary.get("hypothesis_profile") in DERANDOMIZED_PROFILES


def failure_key(failure: dict, exact: bool) -> tuple[str, str, str]:
    kind = failure.get("kind") or failure.get("error", "").split(":")[0]
    if exact:
        return (failure["property"], failure.get("case", "?"), kind)
    return (failure["property"], kind, fold_numbers(failure.get("error", ""))[:160])


def failure_keys(summary: dict, exact: bool) -> dict[tuple, dict]:
    """The run's distinct failures by signature -> one example of each. A property whose failed
    count exceeds its listed failures (a summary without details) gets one key for the rest."""
    out: dict[tuple, dict] = {}
    listed: dict[str, int] = {}
    for f in summary.get("failures", []):
        out.setdefault(failure_key(f, exact), f)
        listed[f["property"]] = listed.get(f["property"], 0) + 1
    for prop, slot in summary.get("properties", {}).items():
        unlisted = slot.get(FAILED, 0) - listed.get(prop, 0)
        if unlisted > 0:
            key = (prop, "?", f"{unlisted} failed examples without details")
            out[key] = {"property": prop, "case": "?", "error": key[2]}
    return out


def _failure_row(failure: dict) -> dict:
    return {
        "property": failure["property"],
        "case": failure.get("case", "?"),
        "kind": failure.get("kind") or failure.get("error", "").split(":")[0],
        "error": failure.get("error", ""),
        "describe": failure.get("describe", ""),
        "repro": failure.get("repro"),
    }


def _suite_subject(failure: dict) -> str:
    """A property-suite change's subject (a row's `what`): the property and the case it failed on
    (family/task and sizes), so the row says which model broke, not only which property."""
    return f"{failure['property']} on {failure['describe']}" if failure.get("describe") else failure["property"]


def suite_diff(baseline: dict, candidate: dict) -> dict:
    """Failures of two summary.json files, compared by signature; known-issue counts that moved
    (information only: with a randomized profile they move every night)."""
    exact = derandomized(baseline) and derandomized(candidate)
    before, after = failure_keys(baseline, exact), failure_keys(candidate, exact)
    out = {
        "keyed_by": "property, case, kind" if exact else "property, kind, error (numbers folded)",
        "new_failures": [_failure_row(after[k]) for k in sorted(set(after) - set(before))],
        "fixed": [_failure_row(before[k]) for k in sorted(set(before) - set(after))],
        "known_changed": {},
    }
    for prop in sorted(set(baseline.get("properties", {})) | set(candidate.get("properties", {}))):
        b = baseline.get("properties", {}).get(prop, {}).get(KNOWN, {})
        c = candidate.get("properties", {}).get(prop, {}).get(KNOWN, {})
        if b != c:
            out["known_changed"][prop] = {"baseline": b, "candidate": c}
    return out


def _row_key(row: dict) -> tuple:
    return (row.get("consumer") or "", row["producer"], row["case"])


def matrix_diff(baseline: dict, candidate: dict) -> dict:
    """Per artifact (consumer where the rows name one, producer, case): verdicts that changed
    between two consume results or two matrix.json files."""
    before = {_row_key(r): r for r in baseline.get("rows", [])}
    after = {_row_key(r): r for r in candidate.get("rows", [])}
    out: dict[str, list] = {"regressions": [], "fixes": [], "changed": [], "disappeared": []}
    for key in sorted(set(after)):
        c = after[key]
        b = before.get(key)
        was = b["verdict"] if b else "absent"
        if c["verdict"] not in GOOD_ROWS and (b is None or b["verdict"] in GOOD_ROWS):
            out["regressions"].append({**c, "baseline": was})
        elif b is None:
            continue  # a new row with a good verdict: nothing to act on
        elif c["verdict"] == PASS and b["verdict"] != PASS:
            out["fixes"].append({**c, "baseline": was, "baseline_issue": b.get("issue")})
        elif (c["verdict"], c.get("issue")) != (b["verdict"], b.get("issue")):
            out["changed"].append({**c, "baseline": was, "baseline_issue": b.get("issue")})
    for key in sorted(set(before) - set(after)):
        out["disappeared"].append({**before[key], "baseline": before[key]["verdict"], "verdict": "absent"})
    return out


def verdict_text(row: dict, side: str = "") -> str:
    """`known-issue (id)` or the bare verdict."""
    verdict = row["baseline"] if side == "baseline" else row["verdict"]
    issue = row.get("baseline_issue") if side == "baseline" else row.get("issue")
    return f"{verdict} ({issue})" if issue and verdict == KNOWN_ISSUE else verdict


class ResultsError(ValueError):
    """A results folder or file that cannot be read; the message names it."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: not a readable results file ({exc.__class__.__name__}: {exc})") from None


def load_results(path: str | Path) -> dict:
    """{"matrix": matrix.json or None, "suites": {env: summary.json}} from a folder or one file.
    A missing path is an empty result (the first nightly has no predecessor)."""
    path = Path(path)
    out: dict = {"matrix": None, "suites": {}}
    if not path.exists():
        return out
    files = [path] if path.is_file() else sorted(path.rglob("*.json"))
    for file in files:
        if file.name == "matrix.json":
            out["matrix"] = _read_json(file)
        elif file.name == "summary.json":
            out["suites"][file.parent.name] = _read_json(file)
    if path.is_file() and out["matrix"] is None and not out["suites"]:
        raise ResultsError(f"{path}: neither a matrix.json nor a summary.json")
    return out


def diff(baseline: dict, candidate: dict) -> dict:
    new_failures, newly_passing, other = [], [], []
    for env, summary in sorted(candidate["suites"].items()):
        if env not in baseline["suites"]:
            suite = suite_diff({}, summary)
            suite["fixed"] = []
        else:
            suite = suite_diff(baseline["suites"][env], summary)
        versions = {k: summary.get("versions", {}).get(k) for k in ("peft", "transformers")}
        for f in suite["new_failures"]:
            row = {"where": f"suite {env}", "property": f["property"], "error": fold_numbers(f["error"])[:160]}
            row["what"] = _suite_subject(f)
            # what `matrix bisect-new` needs: the run, its versions, the reproduction script
            row.update(case=f["case"], env=env, versions=versions, repro=f["repro"])
            (
                newly_passing
                if f["kind"] == "StaleKnownIssue" or f["error"].startswith("StaleKnownIssue")
                else new_failures
            ).append(row)
        for f in suite["fixed"]:
            newly_passing.append(
                {
                    "where": f"suite {env}",
                    "property": f["property"],
                    "what": _suite_subject(f),
                    "error": f"fixed: {fold_numbers(f['error'])[:160]}",
                }
            )
    for env in sorted(set(baseline["suites"]) - set(candidate["suites"])):
        other.append({"where": f"suite {env}", "property": "(whole run)", "error": "no summary.json in this run"})
    grid = matrix_diff(baseline["matrix"] or {}, candidate["matrix"] or {})

    def where(r):
        return f"matrix {r['producer']} -> {r.get('consumer', '?')}"

    def what(r):
        return f"{r.get('arch', '?')} {r.get('task', '?')} case {r['case']}"

    for r in grid["regressions"]:
        text = f"{verdict_text(r, 'baseline')} -> {r['verdict']}: " + fold_numbers(r.get("detail", ""))[:160]
        row = {"where": where(r), "property": what(r), "error": text}
        row.update(producer=r["producer"], consumer=r.get("consumer"), case=r["case"])  # the square, for bisect-new
        new_failures.append(row)
    for r in grid["fixes"]:
        newly_passing.append(
            {"where": where(r), "property": what(r), "error": f"{verdict_text(r, 'baseline')} -> pass"}
        )
    for r in grid["changed"]:
        other.append(
            {"where": where(r), "property": what(r), "error": f"{verdict_text(r, 'baseline')} -> {verdict_text(r)}"}
        )
    for r in grid["disappeared"]:
        other.append(
            {"where": where(r), "property": what(r), "error": f"{verdict_text(r, 'baseline')} -> no longer judged"}
        )
    has_baseline = bool(baseline["matrix"] or baseline["suites"])
    return {
        "baseline_found": has_baseline,
        "changed": has_baseline and bool(new_failures or newly_passing or other),
        "new_failures": new_failures,
        "newly_passing": newly_passing,
        "other_changes": other,
    }


def markdown(changes: dict, title: str) -> str:
    lines = [f"## {title}", ""]
    if not changes["baseline_found"]:
        return "\n".join(lines + ["No earlier results to compare with: this run is the baseline for the next."]) + "\n"
    if not changes["changed"]:
        return "\n".join(lines + ["Nothing changed: no new failures, nothing newly passing."]) + "\n"
    for key, head in (
        ("new_failures", "New failures"),
        ("newly_passing", "Newly passing (narrow or remove the registry entry)"),
        ("other_changes", "Other changes (a known issue appeared or changed, a row is no longer judged)"),
    ):
        rows = changes.get(key, [])
        if rows:
            lines += [f"**{head}** ({len(rows)}):", "", "| where | what | error |", "|---|---|---|"]
            for r in rows[:100]:
                lines.append(f"| {r['where']} | `{r.get('what') or r['property']}` | {r['error'].replace('|', '/')} |")
            if len(rows) > 100:
                lines.append(f"| ... | {len(rows) - 100} more in changes.json | |")
            lines.append("")
    return "\n".join(lines) + "\n"
