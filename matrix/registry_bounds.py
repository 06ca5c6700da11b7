"""`python -m matrix bisect --registry [ID ...]`: measure registry entries' bounds across releases.

    python -m matrix bisect --registry [ID ...] --summary S.json [--summary S2.json] [--axis peft|transformers|both]
                            [--peft A..B] [--transformers A..B] [--envs DIR] [-j N] [--out docs/upstream]
    python -m matrix bisect --registry [ID ...] --sweep --summary S.json ... [-j N]
    python -m matrix bisect --registry ID --case CASE.json --property NAME --claim POINT [--sweep]
    python -m matrix bisect --registry --reports-only [--summary S.json ...]

Each entry is measured on its *witness*: one example of a run that hit it (summary.json's
`known_hits[ID].witness`; across several summaries the one outcomes.witness_rank prefers). The
witness runs on each axis of matrix/cells.toml: the PEFT axis (one cell per PEFT minor, each
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
in one process per release (matrix.probe --batch): for the whole registry that costs one import
per release rather than one per entry and release, and a bug that came and went between two
releases a bisection would not test is seen too.

The entry's own failure where its declared range excludes the versions but another entry declared
there explains it as well is recorded as `another entry` and does not decide (entry_verdict): the
registry already accounts for that release, so it says nothing about this entry's bounds.

What was measured is recorded, with the date, in prefixcheck/known_issues_measured.json
(prefixcheck.bounds); an entry whose declared bounds disagree is flagged in the output (a flag,
not a failure). Then every found_by_suite entry's upstream report is written (matrix.upstream).
Exit 0: measured (or, --reports-only, written); 2: it could not start (one line `error: ...`).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from .bisect import (
    COULD_NOT_RUN,
    DEFAULT_ENVS,
    FAIL,
    PASS,
    BatchEvaluator,
    BisectError,
    Evaluator,
    Plan,
    Verdict,
    as_verdict,
    search,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_UPSTREAM = ROOT / "docs" / "upstream"
AXIS_NAMES = ("peft", "transformers")


class Axis:
    """One axis of released cells, oldest first: `package` is the one whose release order it
    follows (and whose versions name its points)."""

    def __init__(self, package: str, cells: list) -> None:
        self.package, self.cells = package, {getattr(c, package): c for c in cells}
        self.versions = list(self.cells)

    def pair(self, version: str) -> dict[str, str]:
        cell = self.cells[version]
        return {"peft": cell.peft, "transformers": cell.transformers}

    def restrict(self, lo: str, hi: str | None) -> Axis:
        """The releases from lo to hi (both included; hi None: lo alone)."""
        from packaging.version import Version

        top = Version(hi or lo)
        return Axis(self.package, [c for v, c in self.cells.items() if Version(lo) <= Version(v) <= top])

    def anchor(self, version: str | None) -> int | None:
        """The index of `version` on this axis, or of the newest release below it (None: none)."""
        from packaging.version import InvalidVersion, Version

        try:
            want = Version(version or "")
        except InvalidVersion:
            return None
        below = [i for i, v in enumerate(self.versions) if Version(v) <= want]
        return below[-1] if below else None


def axes(which: str, ranges: dict[str, str | None]) -> list[Axis]:
    """The axes to measure (matrix/cells.toml), each restricted to its --peft/--transformers range."""
    from .bisect import parse_range
    from .cells import CellError
    from .cells import load as load_cells

    try:
        cells = load_cells()
    except CellError as exc:
        raise BisectError(str(exc)) from None
    made = {"peft": Axis("peft", cells.peft_axis()), "transformers": Axis("transformers", cells.transformers_axis())}
    out = []
    for name in AXIS_NAMES if which == "both" else (which,):
        axis = made[name]
        if ranges.get(name):
            axis = axis.restrict(*parse_range(name, ranges[name]))
            if not axis.versions:
                raise BisectError(f"--{name} {ranges[name]}: no release of the {name} axis lies in that range")
        out.append(axis)
    return out


# -- witnesses -----------------------------------------------------------------------------------
def witnesses(paths: list[str]) -> dict[str, dict]:
    """entry id -> the witness the summaries hold for it (with the summary's versions), the one
    outcomes.witness_rank prefers where several summaries hold one."""
    from prefixcheck.outcomes import witness_rank

    found: dict[str, dict] = {}
    for path in paths:
        try:
            summary = json.loads(Path(path).read_text())
            hits = summary["known_hits"]
            versions = summary.get("versions") or {}
            if not isinstance(hits, dict):
                raise TypeError("known_hits is not an object")
        except (OSError, UnicodeDecodeError) as exc:
            raise BisectError(f"--summary {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise BisectError(f"--summary {path}: not a run summary (summary.json with known_hits): {exc}") from None
        for issue, hit in hits.items():
            witness = hit.get("witness") if isinstance(hit, dict) else None
            if not isinstance(witness, dict) or not {"property", "point", "case", "case_key"} <= set(witness):
                continue
            witness = {**witness, "summary_versions": versions}
            if issue not in found or witness_rank(witness) < witness_rank(found[issue]):
                found[issue] = witness
    if paths and not found:
        raise BisectError(
            f"{', '.join(paths)}: no known_hits entry has a witness (a summary written before witnesses "
            "were recorded, or no example hit an entry): run the property suite again"
        )
    return found


def given_witness(args) -> dict:
    """The witness --case/--property/--claim give (a case JSON or a reproduction script): for an
    entry no summary witnesses, e.g. one found in an every-family run whose summary is gone. Its
    verdict on each release is judged as any witness's is; nothing assumes it hits the entry."""
    from prefixcheck import architectures
    from prefixcheck.case import Case

    from .bisect import _check_property, read_case

    source = read_case(args.case)
    prop = args.property or source.prop
    claim = args.claim or (source.point if source.prop == prop else None)
    if not claim:
        raise BisectError("--registry with --case needs --claim: the step or claim the entry fails at")
    _check_property(prop, claim, source.case)
    case = Case.from_dict(source.case)
    try:
        curated = architectures.get(case.model.arch).curated
    except KeyError:  # a family this transformers does not have: discovered where it exists
        curated = False
    return {
        "property": prop,
        "point": claim,
        "case": case.to_dict(),
        "case_key": case.key,
        "families": "curated" if curated else "discovered",
        "summary_versions": {},
    }


# -- one entry on one axis -------------------------------------------------------------------------
_UNDECIDED = {"inconclusive", "blocked", "unsupported", COULD_NOT_RUN}


def entry_verdict(verdict: Verdict, issue) -> Verdict:
    """The probe's verdict as the entry's (`issue`, a known_issues.KnownIssue): fail with this
    entry's signature stays `fail` (bad), pass stays `pass` (good); a failure of another kind
    becomes `other failure`, which, like inconclusive, blocked, unsupported and could not run,
    does not decide. The entry's own failure where its declared range excludes the versions but
    another entry, declared there, explains it too (the probe's `explained_here`) becomes
    `another entry`: the registry already accounts for that version, and this one's bounds are
    no more wrong there than right."""
    from prefixcheck import bounds

    data = verdict.data
    if verdict.verdict == FAIL and issue.id not in (data.get("signatures") or ()):
        other = f"{data.get('kind') or '?'}: {(data.get('error') or '')[:200]}"
        return Verdict("other failure", other, data, verdict.seconds)
    if verdict.verdict == FAIL:
        others = [i for i in data.get("explained_here") or () if i != issue.id]
        versions = data.get("versions") or {}
        if others and versions and not bounds.declared_inside(issue.affects, versions):
            return Verdict(bounds.ANOTHER, f"explained here by {', '.join(others)}", data, verdict.seconds)
    if verdict.verdict not in (FAIL, PASS, *_UNDECIDED):
        return Verdict(COULD_NOT_RUN, verdict.line(), data, verdict.seconds)
    return verdict


def measured_verdict(verdict: Verdict) -> str:
    """A verdict in prefixcheck.bounds' words."""
    from prefixcheck import bounds

    return {FAIL: bounds.BAD, PASS: bounds.GOOD}.get(verdict.verdict, verdict.verdict)


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
    from prefixcheck import bounds

    order = [v for v in axis.versions if v in seen]
    tested = {v: measured_verdict(seen[v]) for v in order}
    pairs = {}
    for v in order:
        torch = (seen[v].data.get("versions") or {}).get("torch")
        pairs[v] = {**axis.pair(v), **({"torch": torch} if torch else {})}
    facts = {
        "tested": tested,
        "versions": pairs,
        "details": {v: seen[v].detail for v in order if seen[v].detail},
        **bounds.boundaries(axis.versions, tested),
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


# -- the command -----------------------------------------------------------------------------------
def _stack():
    """The registry and the measured-bounds module; both need the suite's stack (torch) here."""
    try:
        from prefixcheck import bounds, known_issues
    except ImportError as exc:
        raise BisectError(
            f"--registry needs the suite's stack in this Python ({exc}): run it with a tox env's "
            "python, e.g. .tox/known-good/bin/python -m matrix bisect --registry ..."
        ) from None
    return known_issues, bounds


def registry_command(args, *, evaluate=None, out=print, today: str | None = None) -> int:
    """Measure (unless --reports-only), record, flag, and write the upstream reports. `evaluate(
    plan, version)` replaces building environments and probing (tests); `today` the date."""
    try:
        return _registry(args, evaluate, out, today or date.today().isoformat())
    except BisectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _registry(args, evaluate, out, today: str) -> int:
    known_issues, bounds = _stack()
    from . import upstream

    measured_path = Path(args.measured) if args.measured else bounds.MEASURED_FILE
    folder = Path(args.out) if args.out else DEFAULT_UPSTREAM
    try:
        measured = bounds.load(measured_path)
    except bounds.MeasuredError as exc:
        raise BisectError(str(exc)) from None
    ids = list(args.registry or ())
    for issue_id in ids:
        try:
            known_issues.by_id(issue_id)
        except KeyError:
            raise BisectError(
                f"--registry {issue_id}: no such registry entry (prefixcheck/known_issues.toml)"
            ) from None
    summaries = list(args.summary or ())
    if args.case and not args.reports_only:
        if len(ids) != 1:
            raise BisectError("--registry with --case measures one entry: name exactly one ID")
        found = witnesses(summaries) if summaries else {}
        found[ids[0]] = given_witness(args)
    else:
        if not summaries and not args.reports_only:
            raise BisectError(
                "--registry needs --summary S.json (a run summary whose known_hits hold witnesses) "
                "or, for one entry, --case with --property and --claim"
            )
        found = witnesses(summaries)
    if not args.reports_only:
        targets = ids or sorted(found)
        missing = [i for i in targets if i not in found]
        if missing:
            raise BisectError(
                f"no witness for {', '.join(missing)} in {', '.join(summaries)}: no example of those runs hit it"
            )
        chosen = axes(args.axis, {"peft": args.peft, "transformers": args.transformers})
        out(
            f"registry: {len(targets)} entries; axes: "
            + ", ".join(f"{a.package} ({len(a.versions)} releases)" for a in chosen)
        )
        issues = [known_issues.by_id(i) for i in targets]
        if args.sweep:
            by_id = _sweep(issues, found, chosen, args, evaluate, out)
        else:
            by_id = {i.id: _measure(i, found[i.id], chosen, args, evaluate, out) for i in issues}
        updates = {i: merged_record(measured.get(i), found[i], by_id[i], today) for i in targets}
        try:
            measured = bounds.save(updates, measured_path)
        except (bounds.MeasuredError, OSError) as exc:
            raise BisectError(f"cannot record the measurements in {measured_path}: {exc}") from None
        out(f"measured: {measured_path} ({len(updates)} entries recorded, {today})")
        flagged = bounds.flags(known_issues.REGISTRY, {i: measured[i] for i in updates})
        for issue_id, lines in flagged.items():
            for line in lines:
                out(f"FLAG {issue_id}: {line}")
        if not flagged:
            out("declared bounds agree with every measurement made now")
    try:
        scripts = None
        if evaluate is None:
            jobs = []
            for issue in known_issues.REGISTRY:
                witness = upstream.report_witness(issue, measured.get(issue.id), found)
                if issue.found_by_suite and witness:
                    jobs.append((witness, measured.get(issue.id)))
            scripts = prepared_scripts(scripts_anywhere(_envs(args), out), jobs, args.jobs)
        written = upstream.write_all(known_issues.REGISTRY, measured, found, folder, scripts)
    except OSError as exc:
        raise BisectError(f"cannot write the upstream reports under {folder}: {exc.strerror or exc}") from None
    out(f"reports: {folder} ({len(written)} entries, {folder / 'README.md'})")
    return 0


def script_cell(witness: dict, record: dict | None, cells):
    """A released cell whose environment has the witness's family: the pair of a release where
    the entry was measured bad (first bad of each axis, then any bad), else the pair the witness
    was seen with; None where cells.toml has no such pair."""
    pairs = []
    for facts in (record or {}).get("axes", {}).values():
        bad = [v for v, verdict in facts["tested"].items() if verdict == "bad"]
        first = [facts["first_bad"]] if facts.get("first_bad") else []
        pairs += [facts["versions"][v] for v in first + bad if v in facts.get("versions", {})]
    seen = witness.get("summary_versions") or {}
    if seen.get("peft") and seen.get("transformers"):
        pairs.append(seen)
    usable = [c for c in cells if c.device == "cpu" and not c.unavailable and not c.needs and c.peft[:1].isdigit()]
    for pair in pairs:
        for cell in usable:
            if (cell.peft, cell.transformers) == (pair.get("peft"), pair.get("transformers")):
                return cell
    return None


def scripts_anywhere(envs: Path, out) -> Callable[[dict, dict | None], tuple[str | None, str]]:
    """script(witness, record) for upstream.write_all: written in the environment of script_cell's
    release (a release measured bad; built as `matrix run` builds it, kept in `envs`), so the
    script's config and TrainingArguments are those of the release the report names; here where
    no such release is known or that fails."""
    from . import upstream
    from .bisect import NoEnvironment, build_quietly
    from .cells import CellError
    from .cells import load as load_cells

    try:
        cells = list(load_cells())
    except CellError:
        cells = []
    envs.mkdir(parents=True, exist_ok=True)

    def script(witness: dict, record: dict | None) -> tuple[str | None, str]:
        cell = script_cell(witness, record, cells)
        there = ""
        if cell is not None:
            try:
                python, _ = build_quietly(cell, envs.resolve(), envs / f"{cell.name}-upstream-build.log")
            except NoEnvironment as exc:
                there = f"no environment for {cell.name} ({exc})"
            else:
                text, why = upstream.reproduction_in(python, witness)
                if text is not None:
                    out(f"reports: the script of case {witness['case_key']} was written in {cell.name}")
                    return text, ""
                there = f"in {cell.name}: {why}"
        text, why = upstream.reproduction(witness)
        if text is not None:
            return text, ""
        return None, f"{why}; {there}" if there else why

    return script


def prepared_scripts(script, jobs: list[tuple[dict, dict | None]], workers: int):
    """script() run for every (witness, record) at once (`workers` at a time: each is a process in
    another environment), then looked up by witness; anything not prepared is run when asked."""
    from concurrent.futures import ThreadPoolExecutor

    def key(witness: dict) -> tuple:
        return (witness["property"], witness["point"], witness["case_key"])

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        done = dict(zip([key(w) for w, _ in jobs], pool.map(lambda job: script(*job), jobs), strict=True))
    return lambda witness, record: done.get(key(witness)) or script(witness, record)


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
    from prefixcheck import bounds

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
                word = measured_verdict(verdict)
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
            out(f"[{issue.id}] {axis.package} axis: {bounds.axis_line(facts)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _sweep(issues: list, found: dict[str, dict], chosen: list[Axis], args, evaluate, out) -> dict[str, dict]:
    """--sweep: every release of each chosen axis, all entries' witnesses run in one process per
    release (matrix.bisect.BatchEvaluator), so no verdict rests on the bug staying put between two
    tested releases. The facts per entry, per axis."""
    from concurrent.futures import ThreadPoolExecutor

    from prefixcheck import bounds

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
                words = [measured_verdict(v) for v in verdicts]
                pair = ", ".join(f"{k} {v}" for k, v in axis.pair(version).items())
                counts = ", ".join(f"{words.count(w)} {w}" for w in bounds.VERDICTS if words.count(w))
                out(f"[sweep] {pair}: {counts} [{time.perf_counter() - start:.0f} s]")
                return version, verdicts

            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                per_version = dict(pool.map(one, axis.versions))
            for k, issue in enumerate(issues):
                seen = {v: per_version[v][k] for v in axis.versions}
                facts = axis_facts(axis, seen)
                results[issue.id][axis.package] = facts
                out(f"[{issue.id}] {axis.package} axis: {bounds.axis_line(facts)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results
