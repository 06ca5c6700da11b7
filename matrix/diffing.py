"""What changed between two runs, keyed by what failed, never by counts.

One home for the comparison that `matrix diff` (the nightly's change detection) and `matrix
validate` (a PEFT build against a baseline) both report:
- property-suite failures are keyed by their signature: (property, case, kind) where both runs drew
  the same cases (a derandomized profile: `ci`, `smoke`), else (property, kind, error with numbers
  folded), since a randomized profile draws other cases every night and the same bug would read
  as new each time. One fixed plus one new failure in the same property is two changes, not none.
- matrix rows are keyed by (consumer, producer, case): a good verdict going bad is a regression,
  a row that is new and bad is one too, anything going to pass is a fix, and the other moves
  (pass -> known-issue, one known issue for another, a row that disappeared) are changes to read.
"""

from __future__ import annotations

from .report import fold_numbers

GOOD = ("pass", "known-issue", "unsupported")
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
        unlisted = slot.get("failed", 0) - listed.get(prop, 0)
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
        b = baseline.get("properties", {}).get(prop, {}).get("known", {})
        c = candidate.get("properties", {}).get(prop, {}).get("known", {})
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
        if c["verdict"] not in GOOD and (b is None or b["verdict"] in GOOD):
            out["regressions"].append({**c, "baseline": was})
        elif b is None:
            continue  # a new row with a good verdict: nothing to act on
        elif c["verdict"] == "pass" and b["verdict"] != "pass":
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
    return f"{verdict} ({issue})" if issue and verdict == "known-issue" else verdict
