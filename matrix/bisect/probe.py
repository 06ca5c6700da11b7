"""One version's verdict for `python -m matrix bisect`, worked out inside that version's environment
(`python -m matrix probe ...`, matrix/bisect/commands.py, writes what these functions return).

`run_case` runs one example of a property as the suite runs it (prefixcheck.runner, judged by the
registry) and reads the verdict off what was judged; `run_artifact` consumes one matrix artifact
as `matrix consume` does (matrix.grid.consume), for `bisect --square`; `run_batch` runs many jobs
in one process (`bisect --registry --sweep`). Their result (RESULT.json):

    {"verdict": "pass" | "fail" | "inconclusive" | "blocked" | "unsupported",
     "point": the property's step or claim the verdict is about (the first failing one),
     "kind": failure kind (beyond-tolerance, RuntimeError, ...), "error": the failure's first line,
     "max_diff": float or null, "known": registry id that explains the failure, or null (a known
     failure is still "fail"),
     "signatures": [ids of every entry whose signature the failure is, whatever the versions],
     "explained_here": [ids of the entries that explain the failure under the installed versions],
     "points": {step or claim: [outcome, issue or reason]}, "stale": [ids the run found stale], ...}

`entry` (bisect --registry, measuring that entry's bounds) judges by a registry in which that entry
applies to every version (Registry.without_bounds): its effect floor holds everywhere, and a
version outside its declared range is judged the same way as one inside it. Only "pass" and "fail"
decide a bisect (prefixcheck.verdicts: PROBE_VERDICTS). Torch, transformers and PEFT are imported
inside the functions, so this module imports on any Python.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from prefixcheck import registry
from prefixcheck.case import SECOND_PREFIX, Case, PrefixSpec
from prefixcheck.verdicts import BLOCKED, COULD_NOT_RUN, FAIL, KNOWN, ROW_TO_PROBE, UNSUPPORTED, probe_verdict


def first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"[:500]


def judging_registry(entry: str | None) -> registry.Registry:
    """The run's registry; with `entry`, that entry applying to every version."""
    reg = registry.default()
    return reg.without_bounds(entry) if entry else reg


def entries(reg: registry.Registry, prop: str, case: Case) -> list[dict]:
    """The entries covering this property and case here, as a report lists them."""
    return [
        {
            "id": i.id,
            "title": i.title,
            "affects": i.affects,
            "references": list(i.references),
            "places": list(i.places(prop, case)),
        }
        for i in reg.matching(prop, case)
    ]


def unsupported(case: Case) -> str | None:
    """Why this install cannot build the case at all, or None."""
    from prefixcheck import architectures
    from prefixcheck.versions import features

    try:
        arch = architectures.get(case.model.arch)
    except KeyError:
        return f"this transformers has no architecture {case.model.arch!r}"
    if not arch.available() or case.task not in arch.available_tasks():
        return f"this transformers has no {case.model.arch} {case.task} model"
    if case.prefix.init_weights is not None and not features().prefix_init_weights:
        return "this PEFT has no PrefixTuningConfig.init_weights"
    return None


def run_case(prop_name: str, case: Case, claim: str | None = None, second: dict | None = None, entry=None) -> dict:
    """Run one example of `prop_name` on `case` here and say what it gives (RESULT.json's fields)."""
    from prefixcheck import properties, records, runner

    prop = properties.get(prop_name)
    why = unsupported(case)
    if why:
        return {"verdict": UNSUPPORTED, "point": claim, "error": why}
    reg = judging_registry(entry)
    context = (
        {"second": PrefixSpec.from_dict(second) if second else SECOND_PREFIX} if prop_name == "multi-adapter" else {}
    )
    judged = runner.run_property(
        prop_name, case, recorder=records.Recorder(), registry=reg, raise_failure=False, **context
    )
    order, claims = [*prop.steps, *(c.name for c in prop.claims)], [c.name for c in prop.claims]
    verdict, point = probe_verdict(order, claims, judged.points, claim)
    out = {
        "verdict": verdict,
        "point": point,
        "points": {k: list(v) for k, v in judged.points.items()},
        "stale": sorted(judged.stale),
        "notes": judged.notes[:5],
    }
    if verdict == FAIL:
        out.update(_failure(judged, reg, prop_name, point, case))
    elif verdict == BLOCKED and point:
        out["error"] = f"{point} blocked: {judged.points.get(point, [None, 'not reached'])[1]}"
    return out


def _failure(judged, reg: registry.Registry, prop_name: str, point: str, case: Case) -> dict:
    """What failed at `point`: the entry that knows it, its kind, message, size and signatures."""
    outcome, issue = judged.points[point]
    out = {"known": issue if outcome == KNOWN else None}
    exc = judged.errors.get(point)
    if exc is not None:
        out["kind"] = getattr(exc, "kind", type(exc).__name__)
        out["error"] = first_line(exc)
        out["max_diff"] = getattr(exc, "max_diff", None)
        out["signatures"] = list(reg.signatures(prop_name, point, case, exc))
        judgement = reg.judge(prop_name, point, case, exc)
        out["explained_here"] = [judgement.issue.id, *judgement.also] if judgement.issue else []
    return out


def run_batch(jobs: list[dict], timeout_each: float) -> list[dict]:
    """Each job's RESULT.json fields (see --batch), one job after another in this process; a job
    that raises or runs past `timeout_each` seconds gives "could not run" and the next job runs."""

    class TooLong(BaseException):  # not an Exception: neither the example nor run_case may judge it
        pass

    def too_long(signum, frame):
        raise TooLong(f"no answer within {timeout_each:g} s")

    results = []
    before = signal.signal(signal.SIGALRM, too_long)
    try:
        for job in jobs:
            start = time.perf_counter()
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout_each)
                try:
                    case = Case.from_dict(job["case"])
                    out = run_case(job["property"], case, job.get("claim"), entry=job.get("entry"))
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                out["claim"] = f"{job['property']}:{out['point']}" if out.get("point") else None
            except TooLong as exc:
                out = {"verdict": COULD_NOT_RUN, "error": str(exc)}
            except Exception as exc:  # noqa: BLE001 (one job that cannot run must not stop the others)
                out = {"verdict": COULD_NOT_RUN, "error": first_line(exc)}
            out["seconds"] = round(time.perf_counter() - start, 2)
            results.append(out)
    finally:
        signal.signal(signal.SIGALRM, before)
    return results


def run_artifact(folder: Path, producer: str, device: str = "cpu") -> dict:
    """One matrix artifact consumed here, as a bisect verdict (ROW_TO_PROBE; any other row verdict:
    this version cannot judge it, unsupported)."""
    from ..grid import consume

    row = consume.consume_one(folder, producer, device)
    verdict = ROW_TO_PROBE.get(row.verdict, UNSUPPORTED)
    out = {"verdict": verdict, "consume": row.verdict, "error": row.detail or None, "known": row.issue}
    if verdict == FAIL:
        out["kind"] = row.verdict
    return out
