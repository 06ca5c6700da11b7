"""The bisect's upstream-ready report: title, versions with the compare link, every tested version,
the reproduction script and how it ran under the boundary versions, observed vs expected, and the
registry entry that explains the failure (or a draft of one, written by the registry's schema)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from prefixcheck import properties
from prefixcheck.registry import REPOS
from prefixcheck.repro import head
from prefixcheck.verdicts import FAIL, PASS

from .draft import draft_entry, validate_draft
from .inputs import _git
from .plan import Plan
from .search import BisectError, Search


def compare_link(plan: Plan, a: str, b: str) -> str:
    if plan.git:
        return f"https://github.com/{_github_repo(plan.git)}/compare/{a}...{b}"
    return f"https://github.com/{REPOS[plan.package]}/compare/v{a}...v{b}"


def _github_repo(repo: Path) -> str:
    try:
        url = _git(repo, "remote", "get-url", "origin")
    except BisectError:
        return REPOS["peft"]
    found = re.search(r"github\.com[:/]([\w.-]+/[\w.-]+?)(?:\.git)?$", url)
    return found.group(1) if found else REPOS["peft"]


def _cell(text: str) -> str:
    """Text for one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _in_spec(spec: str, version: str) -> bool | None:
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except Exception:  # noqa: BLE001
        return None


@dataclass
class Boundary:
    """The finished search, read for the report: the two adjacent versions, which one fails, and
    what the failing one's probe said."""

    plan: Plan
    result: Search

    def __post_init__(self) -> None:
        self.last, self.next = (self.result.versions[i] for i in self.result.boundary)
        self.regression = self.result.direction == "regression"
        self.failing, self.passing = (self.next, self.last) if self.regression else (self.last, self.next)
        self.fail = self.result.verdict(self.failing).data
        self.passed = self.result.verdict(self.passing).data
        self.point = self.fail.get("point") or self.plan.claim
        self.where = f"{self.plan.prop}:{self.point}" if self.point else self.plan.prop
        self.kind = self.fail.get("kind") or "failure"

    def short(self, version: str) -> str:
        return self.plan.short(version)


def report_markdown(
    plan: Plan, result: Search, script_text: str | None, script_runs: dict, wall: float, script_name: str = ""
) -> str:
    """The upstream-ready report: title, versions with the compare link, every tested version, the
    reproduction script, observed vs expected, and the registry entry (or a draft of one).
    `script_name`: the file beside the report that holds the whole script."""
    b = Boundary(plan, result)
    lines = _versions(b, wall) + _tested(b) + _reproduction(b, script_text, script_runs, script_name)
    lines += _observed(b) + ["", "## Registry", ""]
    lines += _known(b) if b.fail.get("known") else _unexplained(b)
    return "\n".join(lines) + "\n"


def _versions(b: Boundary, wall: float) -> list[str]:
    plan, result = b.plan, b.result
    arch, task = plan.case["model"]["arch"], plan.case["task"]
    fixed = ", ".join(f"{k} {v}" for k, v in plan.fixed.items())
    if b.regression:
        title = (
            f"{plan.package} {b.short(b.next)}: `{b.where}` fails on {arch} {task} ({b.kind}); {b.short(b.last)} passed"
        )
    else:
        title = (
            f"{plan.package} {b.short(b.next)} fixes `{b.where}` on {arch} {task} ({b.kind} up to {b.short(b.last)})"
        )
    other = {k: v for k, v in (b.fail.get("versions") or {}).items() if k not in (plan.package, *plan.fixed)}
    lines = [
        f"# {title}",
        "",
        f"Found by `python -m matrix bisect` (prefix-roundtrip) in {wall:.0f} s: {len(result.tested)} versions tested "
        f"of {len(result.versions)}; {plan.package} moves, {fixed} fixed"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(other.items()))})" if other else "")
        + ".",
        "",
        "## Versions",
        "",
        f"| | {plan.package} | verdict |",
        "|---|---|---|",
        f"| {'last good' if b.regression else 'last failing'} | {_cell(plan.label(b.last))} | "
        f"{_cell(result.verdict(b.last).line())} |",
        f"| {'first bad' if b.regression else 'first passing'} | {_cell(plan.label(b.next))} | "
        f"{_cell(result.verdict(b.next).line())} |",
        "",
        f"Compare: {compare_link(plan, b.short(b.last), b.short(b.next))}",
    ]
    if plan.git:
        lines.append(
            f"First {'bad' if b.regression else 'good'} commit: https://github.com/{_github_repo(plan.git)}/commit/{b.next}"
        )
    if result.skipped_between:
        between = ", ".join(b.short(v) for v in result.skipped_between)
        lines += ["", f"Between them, could not decide: {between} (the boundary spans these)."]
    return lines


def _tested(b: Boundary) -> list[str]:
    plan, result = b.plan, b.result
    lines = ["", "Every version tested, in the order tested:", "", f"| {plan.package} | verdict | seconds |"]
    lines.append("|---|---|---|")
    for version, verdict in result.tested:
        lines.append(f"| {_cell(plan.label(version))} | {_cell(verdict.line())} | {verdict.seconds:.0f} |")
    untested = [v for v in result.versions if result.verdict(v) is None]
    if untested:
        lines += ["", "Not tested (the search did not need them): " + ", ".join(b.short(v) for v in untested)]
    return lines


def _reproduction(b: Boundary, script_text: str | None, script_runs: dict, script_name: str) -> list[str]:
    plan = b.plan
    lines = ["", "## Reproduction", ""]
    if plan.square:
        lines += [
            f"The failure is a matrix square ({plan.square}): the artifact `{plan.artifact.name}` made by "
            f"{plan.producer} is consumed under each version (`python -m matrix probe --artifact ...`). The "
            f"script below is the in-version check of `{b.where}` on the same case.",
            "",
        ]
    if not script_text:
        return lines + ["(no reproduction script could be written: " + (b.fail.get("script_error") or "none") + ")"]
    runs = [
        f"{plan.package} {b.short(v)}: exit {script_runs[v]['rc']}, `{script_runs[v]['line']}`"
        for v in (b.last, b.next)
        if script_runs.get(v)
    ]
    lines.append(
        f"Standalone (torch, transformers and peft only): `{script_name or 'the script'}`, beside this report. It "
        "runs the suite's own check code, which it carries; it exits 1 and prints `FAILED` while the bug is there. "
        "Its head (the case and what it checks):"
    )
    lines.append("")
    if runs:
        lines += ["Run here: " + "; ".join(runs) + ".", ""]
    return lines + ["```python", head(script_text).rstrip(), "```"]


def _observed(b: Boundary) -> list[str]:
    plan, fail = b.plan, b.fail
    prop = properties.get(plan.prop)
    lines = [
        "",
        "## Observed vs expected",
        "",
        f"- Property `{plan.prop}`: {prop.statement_of(None)}",
        f"- Expected (`{b.where}`): {prop.statement_of(b.point)}; it holds with {plan.package} {b.short(b.passing)}.",
        f"- Observed with {plan.package} {b.short(b.failing)} ({b.kind}"
        + (f", max |diff| {float(fail['max_diff']):.3e}" if fail.get("max_diff") is not None else "")
        + (f", known issue `{fail['known']}`" if fail.get("known") else "")
        + f"): `{fail.get('error') or '(no message)'}`",
    ]
    if b.passed.get("point") and b.passed.get("verdict") == PASS:
        lines.append(f"- With {plan.package} {b.short(b.passing)}: `{plan.prop}:{b.passed['point']}` passed.")
    return lines + [
        "",
        f"The case ({plan.source}):",
        "",
        "```json",
        json.dumps(plan.case, indent=1, sort_keys=True),
        "```",
    ]


def _known(b: Boundary) -> list[str]:
    """The entry that explains the failure, and whether the boundary agrees with its range."""
    plan, known = b.plan, b.fail["known"]
    entries = {e["id"]: e for e in b.fail.get("matching") or []}
    entry = entries.get(known, {"id": known, "title": "", "affects": {}, "references": []})
    affects = entry.get("affects") or {}
    lines = [
        f"This is known issue `{known}`: {entry.get('title', '')}",
        f"- affects: {', '.join(f'{k} {v}' for k, v in affects.items()) or '(any)'}; references: "
        f"{', '.join(entry.get('references') or []) or 'found by this suite (report in the entry)'}",
    ]
    spec = affects.get(plan.package)
    if spec and not plan.git:
        inside = _in_spec(spec, b.failing), _in_spec(spec, b.passing)
        if inside == (True, False):
            lines.append(
                f"- The boundary agrees with its range: {plan.package} {spec} holds for {b.failing} and not for {b.passing}."
            )
        elif None not in inside:
            lines.append(
                f"- The boundary does NOT agree with its range {plan.package} {spec} "
                f"({b.failing}: {inside[0]}, {b.passing}: {inside[1]}): narrow the entry."
            )
    elif not spec:
        lines.append(
            f"- Its range does not bound {plan.package}: the bisect says {plan.package} "
            f"{'>=' if b.regression else '<'}{b.short(b.next)}."
        )
    return lines


def _unexplained(b: Boundary) -> list[str]:
    """No entry explains it: the entries that cover the case elsewhere, the same failure known under
    other versions of the range, and a drafted entry."""
    plan, point = b.plan, b.point
    entries = {e["id"]: e for e in b.fail.get("matching") or []}
    here = [i for i, e in entries.items() if point in e.get("places", [point])]
    lines = []
    if here:
        covering = ", ".join(f"`{i}`" for i in here)
        lines += [f"Entries that cover this case at `{b.where}` here, but do not explain this failure: {covering}.", ""]
    other = {i: e for i, e in entries.items() if i not in here}
    if other:
        named = ", ".join(f"`{i}` ({', '.join(e.get('places') or [])}: {e.get('title', '')})" for i, e in other.items())
        lines += [
            f"Entries that cover this case at other places of `{plan.prop}` here (the same bug, met elsewhere?): {named}.",
            "",
        ]
    lines += _known_elsewhere(b)
    draft = draft_entry(plan, b.result, compare_link(plan, b.short(b.last), b.short(b.next)))
    checked = validate_draft(draft)
    said = " (validated by the registry loader)" if checked == "ok" else f" (it does not validate yet: {checked})"
    return lines + [
        f"No registry entry explains it. A draft for `prefixcheck/registry/known_issues.toml`{said}:",
        "",
        "```toml",
        draft.rstrip(),
        "```",
    ]


def _known_elsewhere(b: Boundary) -> list[str]:
    """The same failure (kind, place), known under other versions of the range: widen that entry instead."""
    plan, result = b.plan, b.result
    elsewhere: dict[str, list[str]] = {}
    for version, verdict in result.tested:
        data = verdict.data
        if verdict.verdict == FAIL and data.get("known") and data.get("point") == b.point:
            if (data.get("kind") or "") == (b.fail.get("kind") or ""):
                elsewhere.setdefault(data["known"], []).append(version)
    lines = []
    for issue, versions in elsewhere.items():
        entry = next(
            (e for v in versions for e in result.verdict(v).data.get("matching") or [] if e["id"] == issue), {}
        )
        spec = (entry.get("affects") or {}).get(plan.package)
        lines += [
            f"The same failure ({b.kind} at `{b.where}`) is known issue `{issue}` with {plan.package} "
            f"{', '.join(b.short(v) for v in versions)}"
            + (f" (its range: {plan.package} {spec})" if spec else "")
            + f", but no entry covers {plan.package} {b.short(b.failing)}: if it is the same bug, widen "
            f"that entry's `affects` to take in {b.short(b.failing)} (the bisect puts the "
            f"{'start' if b.regression else 'fix'} at {b.short(b.next)}) instead of adding the draft below.",
            "",
        ]
    return lines


def report_name(plan: Plan) -> str:
    point = plan.claim or "any"
    ends = f"{plan.short(plan.versions[0])}-{plan.short(plan.versions[-1])}"
    arch = plan.case["model"]["arch"]
    return re.sub(r"[^\w.-]+", "_", f"{plan.prop}-{point}-{arch}-{plan.package}-{ends}")
