"""A registry entry drafted from a bisect, for a failure no entry explains: written by the
registry's own schema (prefixcheck.registry.schema.render) and checked by its own parser."""

from __future__ import annotations

import json
import re

from prefixcheck import properties
from prefixcheck.mismatch import OUTPUT_KINDS
from prefixcheck.registry import Failure, KnownIssue, RegistryError, parse, schema

from .plan import Plan
from .search import Search


def _escape_match(error: str) -> str:
    """A registry `match` pattern for an exception message: its text escaped, numbers generalised."""
    message = error.split(": ", 1)[1] if ": " in error else error
    return re.sub(r"\d+", r"\\d+", re.escape(message[:100]).replace("\\ ", " "))


def _failure(where: str, fail: dict) -> Failure:
    """How the failing version failed there: its output kind, else its exception and message."""
    kind, error = fail.get("kind") or "", fail.get("error") or ""
    if kind in OUTPUT_KINDS:
        return Failure((where,), output=kind)
    exc_type = error.split(":", 1)[0].strip() if ":" in error else (kind or "Exception")
    return Failure((where,), exception=exc_type, match=_escape_match(error))


def draft_entry(plan: Plan, result: Search, compare_link: str) -> str:
    """A new entry in known_issues.toml's form: affects from the boundary (a regression: >= the
    first failing version, upper end open; a fix: < the first passing one), the case's architecture
    and task, the failing place and how it fails. `compare_link`: the boundary's compare URL."""
    last, nxt = (result.versions[i] for i in result.boundary)
    regression = result.direction == "regression"
    fail = result.verdict(nxt if regression else last).data
    # a commit is named by the version it installs as (PEFT main: X.Y.Z.devN)
    bound = (result.verdict(nxt).data.get("versions") or {}).get(plan.package) if plan.git else nxt
    point = fail.get("point") or plan.claim or "?"
    arch, task = plan.case["model"]["arch"], plan.case["task"]
    method = plan.case["prefix"].get("method", "PREFIX_TUNING")
    where = f"{plan.prop}:{point}"
    fixed = ", ".join(f"{k} {v}" for k, v in plan.fixed.items())
    pkg = "tf" if plan.package == "transformers" else "peft"
    since = f"{pkg}-{plan.short(nxt)}" if regression else f"{pkg}-before-{plan.short(nxt)}"
    release = f"{plan.package} {plan.short(nxt)}" if regression else f"{plan.package} before {plan.short(nxt)}"
    report = (
        f"Bisected with python -m matrix bisect ({fixed} fixed): {where} on a tiny {arch} {task} {method} "
        f"{'passes' if regression else 'fails'} with {plan.package} {plan.short(last)} and "
        f"{'fails' if regression else 'passes'} from {plan.short(nxt)} on ({compare_link}). "
        f"Observed: {(fail.get('error') or '')[:300].rstrip('.')}. "
        f"Expected: {properties.get(plan.prop).statement_of(point)}. Case: {json.dumps(plan.case, sort_keys=True)}"
    )
    issue = KnownIssue(
        id=re.sub(r"[^a-z0-9.-]+", "-", f"{since}-{arch}-{point}".lower()),
        title=f"{release}: {arch} {task} fails {where} ({fail.get('kind') or 'failure'})",
        affects={plan.package: f">={bound}" if regression else f"<{bound}"},
        fails=(_failure(where, fail),),
        cases={"method": (method,), "arch": (arch,), "task": (task,)},
        found_by_suite=True,
        report=report,
    )
    comment = (
        f"bisected: {plan.package} {plan.short(last)} {result.verdict(last).verdict}, "
        f"{plan.short(nxt)} {result.verdict(nxt).verdict} ({fixed})"
    )
    return schema.render(issue, comment)


def validate_draft(text: str) -> str:
    """'ok' if the draft loads as a registry entry (the registry's own parser), else why not."""
    try:
        parse(text, "draft")
    except RegistryError as exc:
        return str(exc)
    return "ok"
