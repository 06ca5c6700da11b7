"""The registry's commands across releases: `bisect --registry` (measure entries' bounds, record
them, flag disagreements, write the upstream reports) and `upstream-script` (one witness's
reproduction script, written inside a release's environment).

    python -m matrix bisect --registry [ID ...] --summary S.json [--summary S2.json] [--axis peft|transformers|both]
                            [--peft A..B] [--transformers A..B] [--envs DIR] [-j N] [--out docs/upstream]
    python -m matrix bisect --registry [ID ...] --sweep --summary S.json ... [-j N]
    python -m matrix bisect --registry ID --case CASE.json --property NAME --claim POINT [--sweep]
    python -m matrix bisect --registry --reports-only [--summary S.json ...]
    python -m matrix upstream-script --witness WITNESS.json --out SCRIPT.py

Exit 0: measured (or, --reports-only, written); 2: it could not start (one line `error: ...`).
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

from prefixcheck import registry
from prefixcheck.registry import measured

from ..bisect.search import BisectError
from ..grid.envs import ROOT
from . import upstream
from .axes import axes
from .measure import _envs, _measure, _sweep, merged_record
from .scripts import prepared_scripts, reproduction, scripts_anywhere
from .witnesses import given_witness, witnesses

DEFAULT_UPSTREAM = ROOT / "docs" / "upstream"


def register(sub) -> None:
    """`upstream-script` (`bisect --registry` is an option of `bisect`, matrix/bisect/commands.py)."""
    p = sub.add_parser("upstream-script", help="write one witness's reproduction script, here")
    p.add_argument("--witness", required=True, help="a witness JSON: property, point, case")
    p.add_argument("--out", required=True, help="where to write the reproduction script")
    p.set_defaults(handler=upstream_script_command)


def upstream_script_command(args) -> int:
    try:
        witness = json.loads(Path(args.witness).read_text())
    except (OSError, ValueError) as exc:
        print(f"error: --witness {args.witness}: {exc}", file=sys.stderr)
        return 2
    text, why = reproduction(witness)
    if text is None:
        print(f"error: {why}", file=sys.stderr)
        return 1
    Path(args.out).write_text(text)
    return 0


def registry_command(args, *, evaluate=None, out=print, today: str | None = None) -> int:
    """Measure (unless --reports-only), record, flag, and write the upstream reports. `evaluate(
    plan, version)` replaces building environments and probing (tests); `today` the date."""
    try:
        return _registry(args, evaluate, out, today or date.today().isoformat())
    except BisectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _registry(args, evaluate, out, today: str) -> int:
    reg = registry.default()
    measured_path = Path(args.measured) if args.measured else measured.MEASURED_FILE
    try:
        records = measured.load(measured_path)
    except measured.MeasuredError as exc:
        raise BisectError(str(exc)) from None
    ids = list(args.registry or ())
    for issue_id in ids:
        try:
            reg.by_id(issue_id)
        except KeyError:
            raise BisectError(
                f"--registry {issue_id}: no such registry entry (prefixcheck/registry/known_issues.toml)"
            ) from None
    found = _witnesses(args, ids)
    if not args.reports_only:
        records = _measure_and_record(reg, args, ids, found, records, measured_path, evaluate, out, today)
    _write_reports(reg, args, records, found, evaluate, out)
    return 0


def _witnesses(args, ids: list[str]) -> dict[str, dict]:
    """The witness of every entry: the summaries', and the one --case gives one entry by hand."""
    summaries = list(args.summary or ())
    if args.case and not args.reports_only:
        if len(ids) != 1:
            raise BisectError("--registry with --case measures one entry: name exactly one ID")
        found = witnesses(summaries) if summaries else {}
        found[ids[0]] = given_witness(args)
        return found
    if not summaries and not args.reports_only:
        raise BisectError(
            "--registry needs --summary S.json (a run summary whose known_hits hold witnesses) "
            "or, for one entry, --case with --property and --claim"
        )
    return witnesses(summaries)


def _measure_and_record(reg, args, ids, found, records, measured_path, evaluate, out, today) -> dict[str, dict]:
    """Measure the entries (each named one, else every witnessed one), record them, flag disagreements."""
    targets = ids or sorted(found)
    missing = [i for i in targets if i not in found]
    if missing:
        raise BisectError(
            f"no witness for {', '.join(missing)} in {', '.join(args.summary or ())}: no example of those runs hit it"
        )
    chosen = axes(args.axis, {"peft": args.peft, "transformers": args.transformers})
    out(
        f"registry: {len(targets)} entries; axes: "
        + ", ".join(f"{a.package} ({len(a.versions)} releases)" for a in chosen)
    )
    issues = [reg.by_id(i) for i in targets]
    if args.sweep:
        by_id = _sweep(issues, found, chosen, args, evaluate, out)
    else:
        by_id = {i.id: _measure(i, found[i.id], chosen, args, evaluate, out) for i in issues}
    updates = {i: merged_record(records.get(i), found[i], by_id[i], today) for i in targets}
    try:
        records = measured.save(updates, measured_path)
    except (measured.MeasuredError, OSError) as exc:
        raise BisectError(f"cannot record the measurements in {measured_path}: {exc}") from None
    out(f"measured: {measured_path} ({len(updates)} entries recorded, {today})")
    flagged = measured.flags(reg, {i: records[i] for i in updates})
    for issue_id, lines in flagged.items():
        for line in lines:
            out(f"FLAG {issue_id}: {line}")
    if not flagged:
        out("declared bounds agree with every measurement made now")
    return records


def _write_reports(reg, args, records: dict, found: dict, evaluate, out) -> None:
    """docs/upstream (or --out): every found_by_suite entry's report, its script written in a release measured bad."""
    folder = Path(args.out) if args.out else DEFAULT_UPSTREAM
    try:
        scripts = None
        if evaluate is None:
            jobs = []
            for issue in reg:
                witness = upstream.report_witness(issue, records.get(issue.id), found)
                if issue.found_by_suite and witness:
                    jobs.append((witness, records.get(issue.id)))
            scripts = prepared_scripts(scripts_anywhere(_envs(args), out), jobs, args.jobs)
        written = upstream.write_all(reg, records, found, folder, scripts)
    except OSError as exc:
        raise BisectError(f"cannot write the upstream reports under {folder}: {exc.strerror or exc}") from None
    out(f"reports: {folder} ({len(written)} entries, {folder / 'README.md'})")
