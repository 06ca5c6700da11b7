"""`Measuring registry entries' bounds across releases (`python -m matrix bisect --registry`).

    python -m matrix bisect --registry [ID ...] --summary S.json [--summary S2.json] [--axis peft|transformers|both]
                            [--peft A..B] [--transformers A..B] [--envs DIR] [-j N] [--out docs/upstream]
    python -m matrix bisect --registry [ID ...] --sweep --summary S.json ... [-j N]
    python -m matrix bisect --registry ID --case CASE.json --property NAME --claim POINT [--sweep]
    python -m matrix bisect --registry --reports-only [--summary S.json ...]

Each entry is measured on its *witness*: one example of a run that hit it (summary.json's
`known_hits[ID].witness`; across several summaries the one outcomes.witness_rank prefers). The
witness runs on each axis of matrix/grid/cells.toml: the PEFT axis (one cell per PEFT minor, each
with its own transformers, so both move) and the transformers axis (the newest PEFT with every
transformers minor). `--peft A..B` / `--transformers A..B` keep only that stretch of an axis.

A version is *bad* when the witness's deciding point fails with the entry's own signature
(known_issues.KnownIssue.signature_of: exception class and pattern, or output kind, at one of
its places), *good* when the point runs and holds. The probe judges as if the entry applied to
every version (matrix.probe --entry), so neither verdict depends on the declared `affects` being
checked. Anything else (another failure, inconclusive, blocked, unsupported, could not run) is
recorded and skipped, as bisect skips it.

The search per axis starts at the *anchor*: the axis version nearest the witness's own (the
summary's peft or transformers). `--case` (a case JSON or a reproduction script) with `--property`
and `--claim` gives one entry its witness by hand, e.g. an entry found in an every-family run whose
summary is gone; with no summary version to anchor on, a bisection searches each axis from its ends. Where the anchor is bad, it searches the releases below it for
the first bad one and those above for the first fixed one (matrix.bisect.search on each side),
so a bug that came and went inside the axis is found both ways; elsewhere it searches the whole
axis from both ends. Environments are bisect's own (matrix.bisect.Evaluator, one per cell, kept
in --envs for the next run).

`--sweep` tests every release of each axis instead of bisecting, with every entry's witness run
in one process per release (python -m matrix probe --batch): for the whole registry that costs one import
per release rather than one per entry and release, and a bug that came and went between two
releases a bisection would not test is seen too.

The entry's own failure where its declared range excludes the versions but another entry declared
there explains it as well is recorded as `another entry` and does not decide (entry_verdict): the
registry already accounts for that release, so it says nothing about this entry's bounds.

What was measured is recorded (prefixcheck.registry.measured) by matrix.registry.commands.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefixcheck.registry import measured
from prefixcheck.verdicts import (
    ANOTHER_ENTRY,
    BLOCKED,
    COULD_NOT_RUN,
    FAIL,
    INCONCLUSIVE,
    MEASURED_VERDICTS,
    OTHER_FAILURE,
    PASS,
    UNSUPPORTED,
    measured_verdict,
)

from ..bisect.evaluate import DEFAULT_ENVS, BatchEvaluator, Evaluator
from ..bisect.plan import Plan
from ..bisect.search import Verdict, as_verdict, search
from .axes import Axis

# -- one entry on one axis -------------------------------------------------------------------------
_UNDECIDED = {INCONCLUSIVE, BLOCKED, UNSUPPORTED, COULD_NOT_RUN}  # a probe verdict that decides nothing


def entry_verdict(verdict: Verdict, issue) -> Verdict:
    """The probe's verdict as the entry's (`issue`, a known_issues.KnownIssue): fail with this
    entry's signature stays `fail` (bad), pass stays `pass` (good); a failure of another kind
    becomes `other failure`, which, like inconclusive, blocked, unsupported and could not run,
    does not decide. The entry's own failure where its declared range excludes the versions but
    another entry, declared there, explains it too (the probe's `explained_here`) becomes
    `another entry`: the registry already accounts for that version, and this one's bounds are
    no more wrong there than right."""
    data = verdict.data
    if verdict.verdict == FAIL and issue.id not in (data.get("signatures") or ()):
        other = f"{data.get('kind') or '?'}: {(data.get('error') or '')[:200]}"
        return Verdict(OTHER_FAILURE, other, data, verdict.seconds)
    if verdict.verdict == FAIL:
        others = [i for i in data.get("explained_here") or () if i != issue.id]
        versions = data.get("versions") or {}
        if others and versions and not measured.declared_inside(issue.affects, versions):
            return Verdict(ANOTHER_ENTRY, f"explained here by {', '.join(others)}", data, verdict.seconds)
    if verdict.verdict not in (FAIL, PASS, *_UNDECIDED):
        return Verdict(COULD_NOT_RUN, verdict.line(), data, verdict.seconds)
    return verdict


def search_axis(
    versions: list[str],
    evaluate: Callable[[str], Verdict],
    anchor: int | None,
    jobs: int = 1,
    max_skips: int | None = None,
    on_tested=None,
) -> dict[str, Verdict]:
    """Every version evaluated (each once), by version. Anchor bad: search below it (first bad)
    and above it (first fixed); otherwise search the whole axis from both ends."""
    seen: dict[str, Verdict] = {}

    def once(version: str) -> Verdict:
        if version not in seen:
            start = time.perf_counter()
            verdict = as_verdict(evaluate(version))
            verdict.seconds = verdict.seconds or time.perf_counter() - start
            seen[version] = verdict
            if on_tested:
                on_tested(version, verdict)
        return seen[version]

    if anchor is not None and once(versions[anchor]).verdict == FAIL:
        search(versions[: anchor + 1], once, jobs=jobs, max_skips=max_skips)
        search(versions[anchor:], once, jobs=jobs, max_skips=max_skips)
    else:
        search(versions, once, jobs=jobs, max_skips=max_skips)
    return seen


def axis_facts(axis: Axis, seen: dict[str, Verdict]) -> dict:
    """The measured facts of one axis (prefixcheck.bounds' form)."""
    order = [v for v in axis.versions if v in seen]
    tested = {v: measured_verdict(seen[v].verdict) for v in order}
    pairs = {}
    for v in order:
        torch = (seen[v].data.get("versions") or {}).get("torch")
        pairs[v] = {**axis.pair(v), **({"torch": torch} if torch else {})}
    facts = {
        "tested": tested,
        "versions": pairs,
        "details": {v: seen[v].detail for v in order if seen[v].detail},
        **measured.boundaries(axis.versions, tested),
    }
    first_bad = facts["first_bad"]
    facts["observed"] = (seen[first_bad].data.get("error") or "") if first_bad else ""
    return facts


def _witness_record(witness: dict) -> dict:
    keep = ("property", "point", "case_key", "case", "families", "summary_versions")
    return {k: witness[k] for k in keep if k in witness}


def merged_record(old: dict | None, witness: dict, new_axes: dict[str, dict], today: str) -> dict:
    """The entry's new record: the axes measured now replace their old facts; the other axes'
    facts stay where the witness is the same one (a different witness starts the record afresh)."""
    same = old and all(old["witness"].get(k) == witness.get(k) for k in ("property", "point", "case_key"))
    kept = dict(old["axes"]) if same else {}
    return {"date": today, "witness": _witness_record(witness), "axes": {**kept, **new_axes}}


def _envs(args) -> Path:
    """Where environments are built and kept (--envs, else bisect's default), created."""
    envs = Path(args.envs) if args.envs else DEFAULT_ENVS
    envs.mkdir(parents=True, exist_ok=True)
    return envs


def _plan(issue, witness: dict, axis: Axis) -> Plan:
    """The bisect plan of one entry's witness on one axis."""
    return Plan(
        axis.package,
        axis.versions,
        {},
        witness["property"],
        witness["point"],
        witness["case"],
        f"witness of {issue.id}",
        entry=issue.id,
        cells=dict(axis.cells),
    )


def _announce(issue, witness: dict, out) -> None:
    case = witness["case"]
    what = f"{witness['property']}:{witness['point']} on {case['model']['arch']}/{case['task']} (case {witness['case_key']})"
    out(f"[{issue.id}] witness {what}")


def _measure(issue, witness: dict, chosen: list[Axis], args, evaluate, out) -> dict[str, dict]:
    """Measure one entry on each chosen axis by bisection; the facts per axis."""
    _announce(issue, witness, out)
    results = {}
    work = Path(tempfile.mkdtemp(prefix="matrix-registry-"))
    try:
        for axis in chosen:
            plan = _plan(issue, witness, axis)
            if evaluate is None:
                (work / axis.package).mkdir()
                probe = Evaluator(plan, _envs(args).resolve(), work / axis.package, args.timeout)
            else:
                probe = lambda version, plan=plan: evaluate(plan, version)  # noqa: E731

            def tested(version: str, verdict: Verdict, axis=axis) -> None:
                pair = ", ".join(f"{k} {v}" for k, v in axis.pair(version).items())
                word = measured_verdict(verdict.verdict)
                detail = f" ({verdict.detail[:160]})" if verdict.detail else ""
                out(f"[{issue.id}] {pair}: {word}{detail} [{verdict.seconds:.0f} s]")

            anchor = axis.anchor((witness.get("summary_versions") or {}).get(axis.package))
            seen = search_axis(
                axis.versions,
                lambda v, probe=probe: entry_verdict(as_verdict(probe(v)), issue),
                anchor,
                jobs=max(1, args.jobs),
                max_skips=args.max_skips,
                on_tested=tested,
            )
            facts = axis_facts(axis, seen)
            results[axis.package] = facts
            out(f"[{issue.id}] {axis.package} axis: {measured.axis_line(facts)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _sweep(issues: list, found: dict[str, dict], chosen: list[Axis], args, evaluate, out) -> dict[str, dict]:
    """--sweep: every release of each chosen axis, all entries' witnesses run in one process per
    release (matrix.bisect.BatchEvaluator), so no verdict rests on the bug staying put between two
    tested releases. The facts per entry, per axis."""

    for issue in issues:
        _announce(issue, found[issue.id], out)
    results: dict[str, dict] = {i.id: {} for i in issues}
    jobs = [
        {
            "entry": i.id,
            "property": found[i.id]["property"],
            "claim": found[i.id]["point"],
            "case": found[i.id]["case"],
        }
        for i in issues
    ]
    work = Path(tempfile.mkdtemp(prefix="matrix-sweep-"))
    try:
        for axis in chosen:
            if evaluate is None:
                (work / axis.package).mkdir()
                runner = BatchEvaluator(dict(axis.cells), _envs(args).resolve(), work / axis.package, args.timeout)
            else:
                plans = [_plan(i, found[i.id], axis) for i in issues]
                runner = lambda version, _jobs, plans=plans: [evaluate(p, version) for p in plans]  # noqa: E731

            def one(version: str, axis=axis, runner=runner) -> tuple[str, list[Verdict]]:
                start = time.perf_counter()
                raw = [as_verdict(v) for v in runner(version, jobs)]
                verdicts = [entry_verdict(v, i) for v, i in zip(raw, issues, strict=True)]
                words = [measured_verdict(v.verdict) for v in verdicts]
                pair = ", ".join(f"{k} {v}" for k, v in axis.pair(version).items())
                counts = ", ".join(f"{words.count(w)} {w}" for w in MEASURED_VERDICTS if words.count(w))
                out(f"[sweep] {pair}: {counts} [{time.perf_counter() - start:.0f} s]")
                return version, verdicts

            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                per_version = dict(pool.map(one, axis.versions))
            for k, issue in enumerate(issues):
                seen = {v: per_version[v][k] for v in axis.versions}
                facts = axis_facts(axis, seen)
                results[issue.id][axis.package] = facts
                out(f"[{issue.id}] {axis.package} axis: {measured.axis_line(facts)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results
