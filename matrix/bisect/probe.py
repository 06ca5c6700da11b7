"""One version's verdict for `python -m matrix bisect`, run inside that version's environment.

    python -m matrix.probe --property NAME --case CASE.json --out RESULT.json [--claim POINT] [--script OUT.py]
                           [--entry ID]
    python -m matrix.probe --artifact RUN/artifacts/PRODUCER/KEY --producer PRODUCER --property NAME
                           --claim POINT --out RESULT.json [--script OUT.py]
    python -m matrix.probe --batch JOBS.json --out RESULTS.json [--timeout-each S]

The first form runs one example of the property (prefixcheck.checks.run_property, judged by the
registry as the suite judges it); the second consumes one matrix artifact as `matrix consume` does
(matrix.cellwork.consume_one), for `bisect --square`. RESULT.json:

    {"verdict": "pass" | "fail" | "inconclusive" | "blocked" | "unsupported",
     "point": the property's step or claim the verdict is about (the first failing one),
     "claim": "property:point", "kind": failure kind (beyond-tolerance, RuntimeError, ...),
     "error": the failure's first line, "max_diff": float or null,
     "known": registry id that explains the failure, or null (a known failure is still "fail"),
     "signatures": [ids of every entry whose signature the failure is, whatever the versions],
     "explained_here": [ids of the entries that explain the failure under the installed versions],
     "matching": [entries covering this property/case here: id, title, affects, references, places],
     "points": {step or claim: [outcome, issue or reason]}, "stale": [ids the run found stale],
     "script": path of the reproduction script (fail only), "versions": prefixcheck.versions.installed(),
     "seconds": float}

`--entry ID` (bisect --registry, measuring that entry's bounds) judges as if the entry applied to
every version (its declared `affects` dropped for this run), so its effect floor holds everywhere
and a version outside its declared range is judged the same way as one inside it.

`--batch` (bisect --registry --sweep) runs many examples in one process, so the imports are paid
once per version: JOBS.json is a list of {"entry", "property", "claim", "case"}, each judged as
--entry would judge it alone (the registry restored between jobs); RESULTS.json is the list of
their RESULT.json objects, in order, without reproduction scripts. A job that raises or runs past
--timeout-each seconds gives "could not run" and the next job runs.

Only "pass" and "fail" decide a bisect; the others are skipped like versions that could not run
(inconclusive: the claim held but the prefix moved the outputs too little to count; blocked: a step
or claim the point needs failed first; unsupported: this install has no such architecture or task).
Torch, transformers and PEFT are imported only in main(), so this module imports on any Python.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

FAILING = ("failed", "known")
# multi-adapter's second adapter when none is given (as the every-family cells use)
SECOND_PREFIX = {"num_virtual_tokens": 2, "adapter_name": "second"}


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"[:500]


def verdict_of(prop, points: dict, claim: str | None) -> tuple[str, str | None]:
    """(verdict, point) from an example's points {step or claim: (outcome, issue or reason)}.

    With `claim`: that point's outcome decides (failed or known -> fail, passed -> pass,
    inconclusive, else blocked: a step or claim it needs failed first). Without: the first failing
    step or claim in the property's order decides; pass only when every claim passed."""
    order = list(prop.steps) + [c.name for c in prop.claims]
    if claim:
        outcome = points.get(claim, ("blocked", None))[0]
        if outcome in FAILING:
            return "fail", claim
        if outcome == "passed":
            return "pass", claim
        return ("inconclusive" if outcome == "inconclusive" else "blocked"), claim
    for point in order:
        if points.get(point, (None,))[0] in FAILING:
            return "fail", point
    claims = [points.get(c.name, ("blocked", None))[0] for c in prop.claims]
    if all(o == "passed" for o in claims):
        return "pass", None
    return ("inconclusive" if "inconclusive" in claims else "blocked"), None


def _entries(prop: str, case) -> list[dict]:
    from prefixcheck import known_issues

    return [
        {
            "id": i.id,
            "title": i.title,
            "affects": i.affects,
            "references": list(i.references),
            "places": list(i.places(prop, case)),
        }
        for i in known_issues.matching(prop, case)
    ]


def _unsupported(case) -> str | None:
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


def run_case(prop_name: str, case, claim: str | None = None, second: dict | None = None) -> dict:
    """Run one example of `prop_name` on `case` here and say what it gives (RESULT.json's fields)."""
    from prefixcheck import checks, example, outcomes, properties
    from prefixcheck.case import PrefixSpec

    prop = properties.get(prop_name)
    why = _unsupported(case)
    if why:
        return {"verdict": "unsupported", "point": claim, "error": why}
    seen: dict[str, BaseException] = {}
    held: list = []
    judge, finish = example.Example._judge, example.Example.finish

    def _judge(self, point, exc):  # every failure the example judges, with its exception
        seen.setdefault(point, exc)
        return judge(self, point, exc)

    def _finish(self, stopped, recorder):
        held.append(self)
        return finish(self, stopped, recorder)

    example.Example._judge, example.Example.finish = _judge, _finish
    context = {}
    if prop_name == "multi-adapter":
        context["second"] = PrefixSpec(**(second or SECOND_PREFIX))
    raised = None
    try:
        checks.run_property(prop_name, case, recorder=outcomes.Recorder(), **context)
    except Exception as exc:  # an unexplained failure (or a stale entry) is raised: its verdicts are recorded
        raised = exc
    finally:
        example.Example._judge, example.Example.finish = judge, finish
    if not held:  # the example never finished: a failure outside it
        return {"verdict": "fail", "point": "body", "kind": type(raised).__name__, "error": _first_line(raised)}
    ex = held[0]
    points = {k: list(v) for k, v in ex.points.items()}
    verdict, point = verdict_of(prop, ex.points, claim)
    out = {
        "verdict": verdict,
        "point": point,
        "points": points,
        "stale": sorted(i.id for i in ex._stale()),
        "notes": ex.notes[:5],
    }
    if verdict == "fail":
        from prefixcheck import known_issues

        exc = seen.get(point)
        outcome, issue = ex.points[point]
        out["known"] = issue if outcome == "known" else None
        if exc is not None:
            out["kind"] = getattr(exc, "kind", type(exc).__name__)
            out["error"] = _first_line(exc)
            out["max_diff"] = getattr(exc, "max_diff", None)
            out["signatures"] = list(known_issues.signatures(prop_name, point, case, exc))
            judged = known_issues.judge(prop_name, point, case, exc)
            out["explained_here"] = [judged.issue.id, *judged.also] if judged.issue else []
    elif verdict == "blocked" and point:
        out["error"] = f"{point} blocked: {ex.points.get(point, [None, 'not reached'])[1]}"
    return out


def run_batch(jobs: list[dict], timeout_each: float) -> list[dict]:
    """Each job's RESULT.json fields (see --batch), one job after another in this process."""
    import signal

    from prefixcheck import known_issues
    from prefixcheck.case import Case

    class TooLong(BaseException):  # not an Exception: neither the example nor run_case may judge it
        pass

    def too_long(signum, frame):
        raise TooLong(f"no answer within {timeout_each:g} s")

    original = known_issues.REGISTRY
    results = []
    before = signal.signal(signal.SIGALRM, too_long)
    try:
        for job in jobs:
            start = time.perf_counter()
            known_issues.REGISTRY = original
            try:
                if job.get("entry"):
                    unbounded(job["entry"])
                signal.setitimer(signal.ITIMER_REAL, timeout_each)
                try:
                    out = run_case(job["property"], Case.from_dict(job["case"]), job.get("claim"))
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                out["claim"] = f"{job['property']}:{out['point']}" if out.get("point") else None
            except TooLong as exc:
                out = {"verdict": "could not run", "error": str(exc)}
            except Exception as exc:  # noqa: BLE001 (one job that cannot run must not stop the others)
                out = {"verdict": "could not run", "error": _first_line(exc)}
            out["seconds"] = round(time.perf_counter() - start, 2)
            results.append(out)
    finally:
        known_issues.REGISTRY = original
        signal.signal(signal.SIGALRM, before)
    return results


def unbounded(entry_id: str) -> None:
    """Let registry entry `entry_id` apply to every version in this process (--entry)."""
    import dataclasses

    from prefixcheck import known_issues

    known_issues.by_id(entry_id)  # KeyError: no such entry
    known_issues.REGISTRY = tuple(
        dataclasses.replace(i, affects={}) if i.id == entry_id else i for i in known_issues.REGISTRY
    )


# -- square mode: one matrix artifact, consumed here --------------------------------------------
CONSUME_VERDICTS = {
    "pass": "pass",
    "fail": "fail",
    "load-error": "fail",
    "known-issue": "fail",
    "inconclusive": "inconclusive",
}  # unsupported, base-mismatch (not PEFT's doing), invalid-artifact: this version cannot judge it


def run_artifact(folder: Path, producer: str, device: str = "cpu") -> dict:
    from . import cellwork

    row = cellwork.consume_one(folder, producer, device)
    verdict = CONSUME_VERDICTS.get(row.verdict, "unsupported")
    out = {"verdict": verdict, "consume": row.verdict, "error": row.detail or None, "known": row.issue}
    if verdict == "fail":
        out["kind"] = row.verdict
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matrix.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--property")
    parser.add_argument("--batch", help="a JSON list of jobs {entry, property, claim, case} to run in this process")
    parser.add_argument("--timeout-each", type=float, default=600, help="with --batch: seconds one job may take")
    parser.add_argument("--case", help="a case JSON file (Case.to_dict form)")
    parser.add_argument("--claim", help="the step or claim that decides (default: the first failing one)")
    parser.add_argument("--second", help="multi-adapter's second adapter, a PrefixSpec JSON object")
    parser.add_argument("--artifact", help="a matrix artifact folder to consume instead of running the property")
    parser.add_argument("--producer", default="producer")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--script", help="where to write the reproduction script when the verdict is fail")
    parser.add_argument(
        "--entry", help="judge as if this registry entry applied to every version (its bounds measured)"
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if not args.batch and not args.property:
        parser.error("one of --property and --batch is required")
    start = time.perf_counter()
    if args.batch:
        from prefixcheck.versions import installed

        results = run_batch(json.loads(Path(args.batch).read_text()), args.timeout_each)
        here = installed()
        for result in results:
            result["versions"] = here
        Path(args.out).write_text(json.dumps(results, indent=1, sort_keys=True, default=str))
        return 0
    out: dict = {}
    try:
        from prefixcheck.case import Case
        from prefixcheck.versions import installed

        if args.entry:
            unbounded(args.entry)
        if args.artifact:
            meta = json.loads((Path(args.artifact) / "manifest.json").read_text())
            case = Case.from_dict(meta["case"]).replace(device=args.device)
            out = run_artifact(Path(args.artifact), args.producer, args.device)
            out["point"] = args.claim
        else:
            case = Case.from_json(Path(args.case).read_text())
            out = run_case(args.property, case, args.claim, json.loads(args.second) if args.second else None)
        out["versions"] = installed()
        out["claim"] = f"{args.property}:{out['point']}" if out.get("point") else None
        try:
            out["matching"] = _entries(args.property, case)
        except Exception as exc:  # noqa: BLE001 (the verdict matters more than the registry lookup)
            out["matching"] = []
            out["matching_error"] = _first_line(exc)
        if out["verdict"] == "fail" and args.script:
            from prefixcheck import repro
            from prefixcheck.case import PrefixSpec

            point = out.get("point") if out.get("point") not in (None, "body") else ""
            context = {}
            if args.property == "multi-adapter":
                context["second"] = PrefixSpec(**(json.loads(args.second) if args.second else SECOND_PREFIX))
            try:
                Path(args.script).write_text(repro.script(args.property, case, point=point, **context))
                out["script"] = args.script
            except Exception as exc:  # noqa: BLE001
                out["script_error"] = _first_line(exc)
    except Exception as exc:  # the probe itself could not run here: say why, in the result
        out = {"verdict": "could not run", "error": _first_line(exc), "traceback": traceback.format_exc()[-3000:]}
        try:
            from prefixcheck.versions import installed

            out["versions"] = installed()
        except Exception:  # noqa: BLE001
            pass
    out["seconds"] = round(time.perf_counter() - start, 2)
    Path(args.out).write_text(json.dumps(out, indent=1, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
