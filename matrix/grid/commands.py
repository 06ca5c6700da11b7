"""The grid's commands: `run`, `report`, `cells`, `legacy`, and what `run` calls inside each cell's
environment, `produce`, `consume`, `produce-consume` (matrix.cli dispatches to them).

Each handler takes the parsed arguments and returns the exit status; torch is imported only by
the in-cell commands (matrix.grid.produce and consume), so the others run on any Python.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .cells import CELLS_FILE, CellError
from .refresh import DEFAULT_ENVS


def register(sub) -> None:
    """Add the grid's subcommands to the `python -m matrix` parser's subparsers."""
    p_run = sub.add_parser("run", help="environments, produce, consume and the report for the cells")
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
    p_run.add_argument("--grid", help="the cells file (default matrix/grid/cells.toml; see cells --from-index)")
    p_run.set_defaults(handler=run_command)
    p_cells = sub.add_parser("cells", help="the runnable cells, comma-separated or as a GitHub Actions matrix")
    p_cells.add_argument("--cells", help="comma-separated cell names to choose from (default: all)")
    p_cells.add_argument("--github", action="store_true")
    p_cells.add_argument("--device", choices=("cpu", "cuda"), help="only cells of this device (cuda: assume a GPU)")
    p_cells.add_argument("--released", action="store_true", help="only pinned cells (no GitHub, no PEFT_SPEC)")
    p_cells.add_argument("--json", action="store_true")
    p_cells.add_argument("--refresh", action="store_true", help="rewrite the released cells from the package index")
    p_cells.add_argument(
        "--no-probe",
        action="store_true",
        help="with --refresh: build and probe nothing; cells keep the unavailable reasons recorded for the same pins",
    )
    p_cells.add_argument("--envs", default=str(DEFAULT_ENVS), help="with --refresh: where the probe's envs live (kept)")
    p_cells.add_argument("--probe-jobs", type=int, default=2, help="with --refresh: cells probed at once (default 2)")
    p_cells.add_argument("--file", default=str(CELLS_FILE), help="with --refresh: the cells file to rewrite")
    p_cells.add_argument("--grid", help="the cells file to choose from (default matrix/grid/cells.toml)")
    p_cells.add_argument(
        "--from-index",
        metavar="FILE",
        help="make the grid of today's releases from the package index into FILE (the committed file is the "
        "baseline, untouched) and choose from it",
    )
    p_cells.set_defaults(handler=cells_command)
    p_leg = sub.add_parser("legacy", help="keep a finished run's released artifacts and verdicts in tests/legacy")
    p_leg.add_argument("run", help="the --out of a finished `python -m matrix run` of the released cells")
    p_leg.add_argument("--cells", help="producer cells to keep (default: the PEFT axis cells the run produced)")
    p_leg.set_defaults(handler=legacy_command)
    p_rep = sub.add_parser("report", help="matrix.json, matrix.md and matrix.html again, from a run folder")
    p_rep.add_argument("dir")
    p_rep.set_defaults(handler=report_command)
    _register_in_cell(sub)


def _register_in_cell(sub) -> None:
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
    p_pro.set_defaults(handler=produce_command)
    p_con.set_defaults(handler=lambda args: consume_command(args, Path(args.out)))
    p_both.set_defaults(handler=produce_consume_command)


def run_command(args) -> int:
    from .runner import run

    return run(args)


def cells_command(args) -> int:
    """Print the runnable cells (a GitHub Actions matrix with --json); skipped ones go to stderr.
    --refresh rewrites the released cells from the package index instead (matrix/grid/refresh.py)."""
    if args.refresh:
        return refresh_command(args)
    from .runner import chosen_cells

    grid = args.grid
    if args.from_index:
        grid = index_grid(Path(args.from_index))
        if grid is None:
            return 2
    try:
        runnable, skipped = chosen_cells(args.cells, github=args.github, cuda=args.device == "cuda" or None, grid=grid)
    except CellError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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


def index_grid(path: Path) -> Path | None:
    """Write the grid of today's releases to `path` (matrix/grid/live.py) and say on stderr what is
    new since the committed baseline; None, after one line, when the index cannot be read."""
    from . import live
    from .releases import ReleasesError

    try:
        grid = live.from_index()
    except (ReleasesError, CellError) as exc:
        print(f"error: the grid from the package index: {exc}", file=sys.stderr)
        return None
    live.write(grid, path)
    print(
        f"{path}: {len(grid.cells.cells)} cells from the package index; new since {CELLS_FILE.name}: "
        f"{', '.join(grid.new) or 'none'}; pins moved: {', '.join(grid.moved) or 'none'}",
        file=sys.stderr,
    )
    return path


def refresh_command(args) -> int:
    """Run the refresh, print its summary and wall time; index problems end in one line, exit 2."""
    from .refresh import env_probe, refresh
    from .releases import ReleasesError

    start = time.perf_counter()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    probe = None if args.no_probe else env_probe(Path(args.envs), log)
    try:
        summary = refresh(Path(args.file), probe=probe, log=log, jobs=max(1, args.probe_jobs))
    except ReleasesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    print(f"refreshed in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def legacy_command(args) -> int:
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


def report_command(args) -> int:
    from . import report

    if not Path(args.dir).is_dir():
        print(f"error: {args.dir}: no such results folder (give the --out of a `matrix run`)", file=sys.stderr)
        return 2
    report.write(Path(args.dir))
    return 0


def produce_command(args) -> int:
    """The cell's pinned cases (one projection each, cells.pinned_projection, for the producer
    named by the --out folder) and `--drawn` Hypothesis cases; exit 1 when none was made."""
    from . import produce

    try:
        pinned = produce.pinned_cases(producer=Path(args.out).name)
    except ValueError as exc:  # MATRIX_ARCHS naming an unknown architecture
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cases = [c.replace(device=args.device) for c in pinned + produce.drawn_cases(args.drawn)]
    index = produce.produce(Path(args.out), cases, pinned=frozenset(c.key for c in cases[: len(pinned)]))
    print(json.dumps({k: v for k, v in index.items() if k != "failed"}), f"failed={len(index['failed'])}")
    if not index["written"] + index["reused"]:
        print(f"error: produced nothing: all {len(cases)} cases failed (see {args.out}/index.json)", file=sys.stderr)
        return 1
    return 0


def consume_command(args, out: Path) -> int:
    if not Path(args.artifacts).is_dir():
        print(f"error: {args.artifacts}: no such artifacts folder", file=sys.stderr)
        return 2
    from . import consume

    producers = tuple(args.producers.split(",")) if args.producers else None
    result = consume.consume(Path(args.artifacts), out, args.device, producers=producers)
    print(f"{len(result['rows'])} verdicts in {result['seconds']:.1f} s")
    if not result["rows"]:
        print(f"error: no artifact to judge under {args.artifacts}", file=sys.stderr)
        return 1
    return 0


def produce_consume_command(args) -> int:
    produced = produce_command(args)
    if produced == 2:
        return produced
    return consume_command(args, Path(args.results)) or produced
