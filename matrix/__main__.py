"""python -m matrix run|report|cells|diff|track|validate|produce|consume

python -m matrix run [--cells A,B,...] [--out DIR] [-j N] [--drawn N] [--stage all|produce|consume]
    build one uv environment per cell (matrix/cells.toml), produce artifacts in each, let every
    cell consume every cell's artifacts, then write the report. Finished work is reused: a
    cell's environment is kept, artifacts that verify are not re-made, and a consumer whose
    inputs' manifests did not change is not re-run. --stage splits this across CI jobs: produce
    in one job per cell, gather OUT/artifacts, consume in one job per cell, then `report`.
python -m matrix report DIR        matrix.json, matrix.md and matrix.html from a run folder
python -m matrix cells [--json]    the runnable cells (the nightly's GitHub Actions matrix)
python -m matrix cells --refresh   regenerate the released cells of matrix/cells.toml from the package index
python -m matrix diff OLD NEW      what changed between two result folders (nightly change detection)
python -m matrix track CHANGES     open or update the nightly tracking issue (GitHub REST API)
python -m matrix validate          one PEFT build against a baseline, only the difference
python -m matrix pr-spec --pr N    the PEFT_SPEC of a PEFT pull request (its head commit)
python -m matrix bisect ...       last good / first bad release or commit for one failing example
python -m matrix bisect-new CHANGES --run DIR   bisect each new failure of a diff (the nightly's bisect job)
python -m matrix legacy RUN_DIR     commit a run's released artifacts and verdicts under tests/legacy
python -m matrix produce|consume|produce-consume   what `run` calls inside each cell's environment
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .cells import CellError


def cells_command(args) -> int:
    """Print the runnable cells (a GitHub Actions matrix with --json); skipped ones go to stderr.
    --refresh rewrites the released cells from the package index instead (matrix/releases.py)."""
    if args.refresh:
        from .releases import refresh_command

        return refresh_command(args)
    from .runner import chosen_cells

    runnable, skipped = chosen_cells(args.cells, github=args.github, cuda=args.device == "cuda" or None)
    runnable = [c for c in runnable if args.device in (None, c.device)]
    if args.released:
        runnable = [c for c in runnable if c.needs is None]
    for name, why in skipped.items():
        print(f"[{name}] skipped: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps([{"cell": c.name, "device": c.device} for c in runnable], separators=(",", ":")))
    else:
        print(",".join(c.name for c in runnable))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matrix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--cells", help="comma-separated cell names (default: all runnable)")
    p_run.add_argument("--out", default="matrix-run")
    p_run.add_argument("-j", "--jobs", type=int, default=2)
    p_run.add_argument("--drawn", type=int, default=8, help="Hypothesis-drawn cases per producer, besides pinned")
    p_run.add_argument("--github", action="store_true", help="this machine reaches GitHub (enables peft-main)")
    p_run.add_argument(
        "--stage",
        choices=("all", "produce", "consume"),
        default="all",
        help="produce: envs + artifacts only; consume: read OUT/artifacts (every producer's) only; all: both + report",
    )
    p_cells = sub.add_parser("cells", help="the runnable cells, comma-separated or as a GitHub Actions matrix")
    p_cells.add_argument("--cells", help="comma-separated cell names to choose from (default: all)")
    p_cells.add_argument("--github", action="store_true")
    p_cells.add_argument("--device", choices=("cpu", "cuda"), help="only cells of this device (cuda: assume a GPU)")
    p_cells.add_argument("--released", action="store_true", help="only pinned cells (no GitHub, no PEFT_SPEC)")
    p_cells.add_argument("--json", action="store_true")
    from .releases import add_refresh_arguments

    add_refresh_arguments(p_cells)  # --refresh [--no-probe] [--envs DIR] [--probe-jobs N] [--file PATH]
    p_diff = sub.add_parser("diff", help="what changed between two result folders (matrix.json, */summary.json)")
    p_diff.add_argument("baseline", help="folder (or file) of the earlier/reference results; may be missing")
    p_diff.add_argument("candidate", help="folder (or file) of the new results")
    p_diff.add_argument("--title", default="Prefix-tuning results: what changed")
    p_diff.add_argument("--out", help="folder for changes.md and changes.json")
    p_diff.add_argument("--fail-on-new", action="store_true", help="exit 1 when there are new failures")
    p_track = sub.add_parser("track", help="open or update the tracking issue from `diff --out` (GitHub REST)")
    p_track.add_argument("changes", help="folder holding changes.json and changes.md")
    p_track.add_argument("--repo", required=True, help="owner/name of the repository to file the issue in")
    p_track.add_argument("--run-url", default="", help="link to the run, put into the issue")
    p_track.add_argument("--dry-run", action="store_true", help="print the API calls instead of making them")
    p_track.add_argument("--bisects", help="the --out of `matrix bisect-new`: attached when present")
    p_val = sub.add_parser("validate")
    p_val.add_argument("--peft", required=True, help="the PEFT under test: version, git URL or path")
    p_val.add_argument("--baseline", help="the PEFT to compare with (default: the known-good cell's)")
    p_val.add_argument("--transformers", help="transformers for both sides (default: the known-good cell's)")
    p_val.add_argument("--accelerate", help="accelerate for both sides (default: the known-good cell's)")
    p_val.add_argument("--artifacts", help="artifacts of a finished `matrix run` (RUN/artifacts) to consume")
    p_val.add_argument("--out", default="validate-run")
    p_val.add_argument(
        "--workers",
        type=int,
        default=os.environ.get("PYTEST_WORKERS") or "2",  # a string default goes through type=int too
        help="pytest-xdist workers for the property suite (default: PYTEST_WORKERS, as tox reads it, else 2)",
    )
    p_spec = sub.add_parser("pr-spec", help="the PEFT_SPEC for a PEFT pull request, repository+ref, or a spec")
    p_spec.add_argument("--pr", default="", help="a huggingface/peft pull-request number")
    p_spec.add_argument("--repository", default="", help="a GitHub repository OWNER/NAME (with --ref)")
    p_spec.add_argument("--ref", default="", help="branch, tag or commit in --repository")
    p_spec.add_argument("--spec", default="", help="any PEFT_SPEC: a version, requirement, git URL")
    p_bis = sub.add_parser("bisect", help="last good / first bad release or commit for one failing example")
    from .bisect import add_arguments as add_bisect_arguments

    add_bisect_arguments(p_bis)
    p_bnew = sub.add_parser("bisect-new", help="bisect each new failure of `diff --out` (bounded: --limit, --timeout)")
    from .bisect_new import add_arguments as add_bisect_new_arguments

    add_bisect_new_arguments(p_bnew)
    p_leg = sub.add_parser("legacy", help="keep a finished run's released artifacts and verdicts in tests/legacy")
    p_leg.add_argument("run", help="the --out of a finished `python -m matrix run` of the released cells")
    p_leg.add_argument("--cells", help="producer cells to keep (default: the PEFT axis cells the run produced)")
    p_rep = sub.add_parser("report")
    p_rep.add_argument("dir")
    p_pro = sub.add_parser("produce", help="make this cell's artifacts in OUT (its folder name is the producer cell)")
    p_con = sub.add_parser("consume", help="judge the artifacts under ARTIFACTS, verdicts to OUT")
    # one interpreter start instead of two (~14 s of imports here) for a cell that judges only
    # producers that are done before it starts (`consumes`)
    p_both = sub.add_parser("produce-consume", help="produce into OUT, then judge ARTIFACTS into RESULTS")
    for p in (p_pro, p_both):
        p.add_argument("--out", required=True)
        p.add_argument("--drawn", type=int, default=8)
    for p in (p_con, p_both):
        p.add_argument("--artifacts", required=True)
        p.add_argument("--producers", help="comma-separated producer cells to judge (default: every folder)")
    p_con.add_argument("--out", required=True)
    p_both.add_argument("--results", required=True)
    for p in (p_pro, p_con, p_both):
        p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except CellError as exc:  # an unknown or unusable cell: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args) -> int:
    if args.command == "run":
        from .runner import run

        return run(args)
    if args.command == "cells":
        return cells_command(args)
    if args.command == "pr-spec":
        from .changes import pr_spec_command

        return pr_spec_command(args)
    if args.command == "diff":
        from .changes import diff_command

        return diff_command(args)
    if args.command == "track":
        from .changes import track_command

        return track_command(args)
    if args.command == "validate":
        from . import cells as cells_mod
        from .validate import validate

        good = cells_mod.load().known_good()
        args.baseline = args.baseline or good.peft
        args.transformers = args.transformers or good.transformers
        args.accelerate = args.accelerate or good.accelerate
        return validate(args)
    if args.command == "bisect":
        from .bisect import bisect_command

        return bisect_command(args)
    if args.command == "bisect-new":
        from .bisect_new import bisect_new_command

        return bisect_new_command(args)
    if args.command == "legacy":
        from . import cells as cells_mod
        from . import legacy

        run_dir = Path(args.run)
        # the PEFT axis: one released cell per PEFT minor (peft-X.Y.Z)
        axis = [c.name for c in cells_mod.load().peft_axis()]
        names = args.cells.split(",") if args.cells else [n for n in axis if (run_dir / "artifacts" / n).is_dir()]
        try:
            expected = legacy.write(run_dir, names, keep=legacy.kept)
        except legacy.LegacyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        kept = sum(len(c["rows"]) for c in expected["consumers"].values()) // max(1, len(expected["consumers"]))
        size = sum(p.stat().st_size for p in legacy.LEGACY.rglob("*") if p.is_file())
        print(f"{kept} artifacts from {len(names)} cells, {len(expected['consumers'])} consumers: {size / 1e6:.1f} MB")
        return 0
    if args.command == "report":
        from . import report

        if not Path(args.dir).is_dir():
            print(f"error: {args.dir}: no such results folder (give the --out of a `matrix run`)", file=sys.stderr)
            return 2
        report.write(Path(args.dir))
        return 0
    from . import cellwork

    if args.command == "produce":
        return _produce(cellwork, args)
    if args.command == "consume":
        return _consume(cellwork, args, Path(args.out))
    produced = _produce(cellwork, args)
    if produced == 2:
        return produced
    return _consume(cellwork, args, Path(args.results)) or produced


def _produce(cellwork, args) -> int:
    """The cell's pinned cases (one projection each, cells.pinned_projection, for the producer
    named by the --out folder) and `--drawn` Hypothesis cases; exit 1 when none was made."""
    try:
        pinned = cellwork.pinned_cases(producer=Path(args.out).name)
    except ValueError as exc:  # MATRIX_ARCHS naming an unknown architecture
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cases = [c.replace(device=args.device) for c in pinned + cellwork.drawn_cases(args.drawn)]
    index = cellwork.produce(Path(args.out), cases, pinned=frozenset(c.key for c in cases[: len(pinned)]))
    print(json.dumps({k: v for k, v in index.items() if k != "failed"}), f"failed={len(index['failed'])}")
    if not index["written"] + index["reused"]:
        print(f"error: produced nothing: all {len(cases)} cases failed (see {args.out}/index.json)", file=sys.stderr)
        return 1
    return 0


def _consume(cellwork, args, out: Path) -> int:
    if not Path(args.artifacts).is_dir():
        print(f"error: {args.artifacts}: no such artifacts folder", file=sys.stderr)
        return 2
    producers = tuple(args.producers.split(",")) if args.producers else None
    result = cellwork.consume(Path(args.artifacts), out, args.device, producers=producers)
    print(f"{len(result['rows'])} verdicts in {result['seconds']:.1f} s")
    if not result["rows"]:
        print(f"error: no artifact to judge under {args.artifacts}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
