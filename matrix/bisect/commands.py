"""The bisect commands: `bisect` (one failing example or matrix square, or with --registry the
registry's bounds: matrix.registry.commands), `bisect-new` (each new failure of a diff), and `probe`
(one version's verdict, run inside that version's environment by the evaluators).

    python -m matrix bisect --property NAME --case CASE --peft 0.15.0..0.21.2 --transformers 4.57.6
    python -m matrix bisect --property NAME --case CASE --peft 0.21.2 --transformers 5.0.0..5.24.0
    python -m matrix bisect --square PRODUCER:CONSUMER --run RUN_DIR
    python -m matrix bisect --property NAME --case CASE --git PATH --good REF --bad REF --transformers T
    python -m matrix bisect --registry [ID ...] --summary S.json [--axis peft|transformers|both]

Exit 0: a boundary, last line `boundary: <package> <last> (<verdict>) -> <next> (<verdict>)`;
1: every version that ran gives the same verdict; 2: it could not run (one line `error: ...`).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefixcheck.verdicts import COULD_NOT_RUN, FAIL

from .evaluate import DEFAULT_ENVS, Evaluator
from .plan import Plan, plan_from_args
from .report import report_markdown, report_name
from .search import BisectError, Search, Verdict, search

DEFAULT_OUT = Path("reports") / "bisect"


def register(sub) -> None:
    """Add `bisect`, `bisect-new` and `probe` to the `python -m matrix` parser's subparsers."""
    p_bis = sub.add_parser("bisect", help="last good / first bad release or commit for one failing example")
    add_arguments(p_bis)
    p_bis.set_defaults(handler=bisect_command)  # --registry: matrix.cli hands it to matrix.registry.commands
    p_new = sub.add_parser("bisect-new", help="bisect each new failure of `diff --out` (bounded: --limit, --timeout)")
    p_new.add_argument("changes", help="the folder `matrix diff --out` wrote (changes.json)")
    p_new.add_argument("--run", required=True, help="the results the diff compared (reports/, results/, artifacts/)")
    p_new.add_argument("--out", default="bisect", help="folder for the reports, logs and bisects.json")
    p_new.add_argument("--limit", type=int, default=3, help="bisects to run at most (default 3)")
    p_new.add_argument("--timeout", type=float, default=1200, help="seconds one bisect may take (default 1200)")
    p_new.set_defaults(handler=bisect_new_command)
    p_probe = sub.add_parser("probe", help="one version's verdict, here (what bisect runs in each environment)")
    _probe_arguments(p_probe)
    p_probe.set_defaults(handler=probe_command)


# -- the command --------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    """The options of `python -m matrix bisect`."""
    parser.add_argument("--property", help="the property whose example to bisect (prefixcheck.properties)")
    parser.add_argument(
        "--case", help="case JSON (Case.to_dict, manifest.json, summary failure record) or repro script"
    )
    parser.add_argument(
        "--claim", help="the step or claim that decides (default: the script's, else the first failing)"
    )
    parser.add_argument(
        "--peft", help="a release (fixed) or a range A..B (bisected); with --registry, the PEFT axis' stretch"
    )
    parser.add_argument(
        "--transformers",
        help="a release (fixed) or a range A..B (bisected); with --registry, the transformers axis' stretch",
    )
    parser.add_argument(
        "--accelerate", help="accelerate for every environment (default: matrix/grid/releases.py's pick)"
    )
    parser.add_argument(
        "--extra", action="append", default=[], help="an extra requirement for every environment (repeatable)"
    )
    parser.add_argument("--git", help="a local PEFT clone: bisect its commits from --good to --bad")
    parser.add_argument("--good", help="with --git: the older end (a ref)")
    parser.add_argument("--bad", help="with --git: the newer end (a ref)")
    parser.add_argument("--square", help="PRODUCER:CONSUMER: bisect the consumer side of a failing matrix square")
    parser.add_argument("--run", help="with --square: the finished `matrix run` folder")
    parser.add_argument("--row", help="with --square: the artifact (case key) to bisect (default: the first failing)")
    parser.add_argument(
        "--registry",
        nargs="*",
        metavar="ID",
        help="measure these registry entries' bounds (none named: every entry the summaries witness)",
    )
    parser.add_argument(
        "--summary", action="append", help="with --registry: a run's summary.json holding witnesses (repeatable)"
    )
    parser.add_argument(
        "--axis",
        choices=("peft", "transformers", "both"),
        default="both",
        help="with --registry: the axis of matrix/grid/cells.toml to measure on (default both)",
    )
    parser.add_argument(
        "--reports-only", action="store_true", help="with --registry: write docs/upstream only, measure nothing"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="with --registry: test every release of each axis, all entries' witnesses in one process per release",
    )
    parser.add_argument(
        "--measured",
        help="with --registry: the measured-bounds file (default prefixcheck/registry/known_issues_measured.json)",
    )
    parser.add_argument(
        "--envs", help=f"where environments live, kept (default: RUN/envs with --square, else {DEFAULT_ENVS})"
    )
    parser.add_argument(
        "--out", help="report folder, or a .md file (default reports/bisect; with --registry docs/upstream)"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds one version's probe may take")
    parser.add_argument(
        "-j", "--jobs", type=int, default=2, help="versions evaluated at once (default 2: each round splits in thirds)"
    )
    parser.add_argument(
        "--max-skips",
        type=int,
        default=6,
        help="give up (exit 2) after this many end versions in a row could not decide (default 6)",
    )
    parser.add_argument(
        "--no-script-check",
        action="store_true",
        help="do not run the reproduction script under the two boundary versions",
    )


def bisect_command(args, *, fetch=None, evaluate=None, out=print) -> int:
    """Run a bisect from parsed arguments (not --registry: matrix.registry.commands). `fetch`: the
    package index's answers (tests); `evaluate(version) -> Verdict`: replaces building environments
    and probing (tests)."""
    start = time.perf_counter()
    try:
        plan = plan_from_args(args, fetch)
    except BisectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fixed = ", ".join(f"{k} {v}" for k, v in plan.fixed.items())
    ends = f"{plan.short(plan.versions[0])}..{plan.short(plan.versions[-1])}"
    focus = f"{plan.prop}:{plan.claim}" if plan.claim else f"{plan.prop} (any failing point)"
    out(
        f"bisect {plan.package} {ends} ({len(plan.versions)} {'commits' if plan.git else 'releases'}), {fixed} "
        f"fixed: {focus} on {plan.source}"
    )
    work = Path(tempfile.mkdtemp(prefix="matrix-bisect-"))
    try:
        evaluator = None
        if evaluate is None:
            envs = Path(args.envs) if args.envs else (Path(args.run) / "envs" if plan.square else DEFAULT_ENVS)
            envs.mkdir(parents=True, exist_ok=True)
            evaluate = evaluator = Evaluator(plan, envs.resolve(), work, args.timeout)
        result = _search(plan, evaluate, args, out)
        if not isinstance(result, Search):
            return result
        return _report(plan, result, evaluator, args, out, time.perf_counter() - start)
    except BisectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _search(plan: Plan, evaluate, args, out) -> Search | int:
    """The search, one line per tested version; an exit status where it ends without a boundary."""

    def tested(version: str, verdict: Verdict) -> None:
        env = verdict.data.get("env_seconds")
        took = f"{verdict.seconds:.0f} s" + (f", environment {env:.0f} s" if env is not None else "")
        out(f"{plan.package} {plan.label(version)}: {verdict.line()} [{took}]")

    result = search(plan.versions, evaluate, tested, jobs=max(1, args.jobs), max_skips=args.max_skips)
    if result.gave_up:
        skipped = [v for _, v in result.tested if not v.decisive]
        print(
            f"error: {len(skipped)} versions at the ends of the range could not decide (last: "
            f"{skipped[-1].line()[:200]}); try another case, --claim, or --max-skips",
            file=sys.stderr,
        )
        return 2
    if not result.decisive:
        print(
            f"error: no version could be evaluated ({len(result.tested)} tried; {result.tested[0][1].detail[:200]})",
            file=sys.stderr,
        )
        return 2
    if result.boundary is None:
        verdicts = sorted({v.verdict for _, v in result.decisive})
        if result.added_in:
            previous = plan.versions[plan.versions.index(result.added_in) - 1]
            out(
                f"since added: broken since it was added in {plan.package} {plan.short(result.added_in)} "
                f"({plan.package} {plan.short(previous)}: {result.verdict(previous).detail[:160]})"
            )
        out(
            f"no boundary: every version that ran gives {' / '.join(verdicts)} "
            f"({', '.join(plan.short(n) for n, _ in result.decisive)})"
        )
        return 1
    return result


def _report(plan: Plan, result: Search, evaluator, args, out, wall: float) -> int:
    """Write the report (.md), its reproduction script (.py) and the record (.json); say the boundary."""
    last, nxt = (result.versions[i] for i in result.boundary)
    failing = nxt if result.direction == "regression" else last
    script_path = Path(result.verdict(failing).data.get("script") or "")
    script_text = script_path.read_text() if script_path.is_file() else None
    runs = {}
    if script_text and evaluator is not None and not args.no_script_check:
        with ThreadPoolExecutor(max_workers=2) as pool:
            checked = pool.map(lambda v: evaluator.run_script(v, script_path), (last, nxt))
            runs = dict(zip((last, nxt), checked, strict=True))
    target = Path(args.out or DEFAULT_OUT)
    if target.suffix != ".md":
        target = target / f"{report_name(plan)}.md"
    text = report_markdown(plan, result, script_text, runs, wall, target.with_suffix(".py").name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if script_text:
            target.with_suffix(".py").write_text(script_text)
        record = _record(plan, result, runs, wall)
        target.with_suffix(".json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    except OSError as exc:
        print(f"error: cannot write the report {target}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if result.skipped_between:
        skipped = ", ".join(plan.short(v) for v in result.skipped_between)
        out(f"note: {skipped} could not decide; the boundary spans them")
    out(f"report: {target} ({wall:.0f} s)")
    out(
        f"boundary: {plan.package} {plan.short(last)} ({result.verdict(last).verdict}) -> "
        f"{plan.short(nxt)} ({result.verdict(nxt).verdict})"
    )
    return 0


def _record(plan: Plan, result: Search, runs: dict, wall: float) -> dict:
    """The bisect's record (.json beside the report): every probe result."""
    last, nxt = (result.versions[i] for i in result.boundary)
    tested = [
        {"version": n, "verdict": v.verdict, "detail": v.detail, "seconds": round(v.seconds, 1), "result": v.data}
        for n, v in result.tested
    ]
    return {
        "package": plan.package,
        "fixed": plan.fixed,
        "property": plan.prop,
        "claim": plan.claim,
        "case": plan.case,
        "source": plan.source,
        "versions": plan.versions,
        "tested": tested,
        "boundary": [last, nxt],
        "direction": result.direction,
        "script_runs": runs,
        "wall_seconds": round(wall, 1),
    }


def bisect_new_command(args) -> int:
    from ..grid import cells as cells_mod
    from .new_failures import INDEX, bisect_new

    changes_dir, run = Path(args.changes), Path(args.run)
    if not (changes_dir / "changes.json").is_file():
        print(f"error: {changes_dir}: no changes.json (the --out of `matrix diff`)", file=sys.stderr)
        return 2
    if not run.is_dir():
        print(f"error: --run {run}: no such results folder", file=sys.stderr)
        return 2
    if args.limit < 0 or args.timeout <= 0:
        print("error: --limit must be 0 or more and --timeout above 0", file=sys.stderr)
        return 2
    index = bisect_new(changes_dir, run, Path(args.out), args.limit, args.timeout, cells_mod.load().known_good())
    ran = sum(e["status"] != "not-bisected" for e in index["entries"])
    print(f"{ran} of {len(index['entries'])} new failures bisected: {Path(args.out) / INDEX}")
    return 0


def _probe_arguments(parser) -> None:
    """python -m matrix probe --property NAME --case CASE.json --out RESULT.json [--claim POINT] [--script OUT.py] [--entry ID]
    python -m matrix probe --artifact RUN/artifacts/PRODUCER/KEY --producer P --property NAME --claim POINT --out R.json
    python -m matrix probe --batch JOBS.json --out RESULTS.json [--timeout-each S]"""
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


def probe_command(args) -> int:
    """Write what one version gives to --out (RESULT.json, or a list of them with --batch): always
    exit 0 once the file is written; the verdict says what happened ("could not run" included)."""
    import traceback

    from prefixcheck.versions import installed

    from . import probe

    if not args.batch and not args.property:
        print("error: one of --property and --batch is required", file=sys.stderr)
        return 2
    start = time.perf_counter()
    if args.batch:
        results = probe.run_batch(json.loads(Path(args.batch).read_text()), args.timeout_each)
        for result in results:
            result["versions"] = installed()
        Path(args.out).write_text(json.dumps(results, indent=1, sort_keys=True, default=str))
        return 0
    try:
        out = _probe_one(args, probe)
    except Exception as exc:  # the probe itself could not run here: say why, in the result
        out = {"verdict": COULD_NOT_RUN, "error": probe.first_line(exc), "traceback": traceback.format_exc()[-3000:]}
        out["versions"] = installed()
    out["seconds"] = round(time.perf_counter() - start, 2)
    Path(args.out).write_text(json.dumps(out, indent=1, sort_keys=True, default=str))
    return 0


def _probe_one(args, probe) -> dict:
    from prefixcheck.case import Case
    from prefixcheck.versions import installed

    if args.artifact:
        meta = json.loads((Path(args.artifact) / "manifest.json").read_text())
        case = Case.from_dict(meta["case"]).replace(device=args.device)
        out = probe.run_artifact(Path(args.artifact), args.producer, args.device)
        out["point"] = args.claim
    else:
        case = Case.from_json(Path(args.case).read_text())
        second = json.loads(args.second) if args.second else None
        out = probe.run_case(args.property, case, args.claim, second, entry=args.entry)
    out["versions"] = installed()
    out["claim"] = f"{args.property}:{out['point']}" if out.get("point") else None
    try:
        out["matching"] = probe.entries(probe.judging_registry(args.entry), args.property, case)
    except Exception as exc:  # noqa: BLE001 (the verdict matters more than the registry lookup)
        out["matching"], out["matching_error"] = [], probe.first_line(exc)
    if out["verdict"] == FAIL and args.script:
        _probe_script(args, case, out)
    return out


def _probe_script(args, case, out: dict) -> None:
    """The failing version's reproduction script, written to --script (or why it could not be)."""
    from prefixcheck import repro
    from prefixcheck.case import PrefixSpec

    point = out.get("point") if out.get("point") not in (None, "body") else ""
    second = PrefixSpec.from_dict(json.loads(args.second)) if args.second else None
    try:
        Path(args.script).write_text(repro.script(args.property, case, second=second, point=point))
        out["script"] = args.script
    except Exception as exc:  # noqa: BLE001
        out["script_error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:500]
