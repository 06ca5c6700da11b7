"""The cell runner behind `python -m matrix run`: environments, produce in each cell, each cell
judges the producers it consumes (cells.Cell.judges), then the report. Each stage's exit status
counts.

`--stage all` schedules by dependency, so neither core waits at a stage boundary: a consumer
starts as soon as every producer it judges is done, and a cell that judges only named producers
(`consumes`) produces and consumes in one process once those are done (`produce-consume`: one
interpreter start, about 14 s of imports here, instead of two). Producers that others wait on
go first. `--stage produce` / `--stage consume` (one CI job per cell) run one stage only."""

from __future__ import annotations

import json
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from .envs import build_env, has_cuda, in_cell


def _timings(out: Path, cell: str, **values) -> None:
    """Per-cell timings, one file a cell: stages that ran in different jobs merge here."""
    path = out / "timings" / f"{cell}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**old, **values}, indent=1, sort_keys=True))


def chosen_cells(names: str | None, github: bool = False, cuda: bool | None = None, grid=None) -> tuple[list, dict]:
    """The cells asked for (all by default) of the `grid` cells file (default the committed one)
    that can run here, and why the others cannot."""
    from . import cells as cells_mod

    all_cells = cells_mod.load(grid or cells_mod.CELLS_FILE)
    chosen = [all_cells.get(n) for n in names.split(",") if n] if names else list(all_cells)
    cuda = has_cuda() if cuda is None else cuda
    runnable, skipped = [], {}
    for cell in chosen:
        why = cell.runnable(github=github, cuda=cuda)
        if why:
            skipped[cell.name] = why
        else:
            runnable.append(cell)
    return runnable, skipped


def _record_grid(grid: Path, out: Path) -> None:
    """A grid other than the committed file goes into the run folder (cells.RUN_GRID), where the
    report reads where its cells came from; the committed grid leaves none (and removes an old one)."""
    from . import cells as cells_mod

    record = out / cells_mod.RUN_GRID
    out.mkdir(parents=True, exist_ok=True)
    if grid.resolve() == cells_mod.CELLS_FILE.resolve():
        record.unlink(missing_ok=True)
    elif grid.resolve() != record.resolve():
        record.write_text(grid.read_text())


@dataclass
class Task:
    """One process in one cell: `produce`, `consume` or `produce-consume`; it may start once every
    cell in `after` has produced (or failed to)."""

    stage: str
    cell: object
    after: frozenset[str] = frozenset()


def plan(runnable: list, stage: str, all_cells) -> list[Task]:
    """The tasks of a run, in the order they should start when ready: producers others wait on
    first (most waited-on first), then the one-process cells, then the consumers."""
    names = {c.name for c in runnable}
    producing = stage in ("all", "produce")
    judged = {c.name: [p for p in all_cells.producers_for(c) if p in names] for c in runnable}
    tasks = []
    for cell in runnable:
        others = frozenset(judged[cell.name]) - {cell.name}
        # one process when every producer it judges produces in a separate task (never in one of
        # these one-process tasks, so nothing waits in a circle)
        alone = all(not all_cells.get(p).consumes for p in others)
        if stage == "all" and cell.consumes and alone:
            tasks.append(Task("produce-consume", cell, others))
            continue
        if producing:
            tasks.append(Task("produce", cell))
        if stage in ("all", "consume"):
            tasks.append(Task("consume", cell, others if producing else frozenset()))
    waited_on = {name: sum(name in t.after for t in tasks) for name in names}
    order = {"produce": 0, "produce-consume": 1, "consume": 2}
    return sorted(tasks, key=lambda t: (order[t.stage], -waited_on[t.cell.name] if t.stage == "produce" else 0))


def run(args) -> int:
    from . import cells as cells_mod
    from . import report

    out = Path(args.out)
    grid = Path(args.grid) if args.grid else cells_mod.CELLS_FILE
    all_cells = cells_mod.load(grid)
    runnable, skipped = chosen_cells(args.cells, github=args.github, grid=grid)
    _record_grid(grid, out)
    for name, why in skipped.items():
        print(f"[{name}] skipped: {why}", flush=True)
        _timings(out, name, skipped=why)
    if args.stage == "consume" and not (out / "artifacts").is_dir():
        raise SystemExit(f"error: {out / 'artifacts'} does not exist: nothing to consume (run the produce stage)")
    pythons: dict = {}
    failed = []

    def environment(cell):
        if cell.name not in pythons:
            python, env_s = build_env(cell, out / "envs", lambda m: print(m, flush=True))
            _timings(out, cell.name, env_s=env_s)
            pythons[cell.name] = python
        return pythons[cell.name]

    def drawn(cell) -> str:
        return str(args.drawn if cell.drawn is None else cell.drawn)

    def execute(task: Task) -> None:
        cell = task.cell
        python = environment(cell)
        results = out / "results" / f"{cell.name}.json"
        producers = ",".join(p for p in all_cells.producers_for(cell))
        common = ["--device", cell.device]
        artifacts = ["--out", str(out / "artifacts" / cell.name), "--drawn", drawn(cell)]
        judging = ["--artifacts", str(out / "artifacts"), "--producers", producers]
        argv = {
            "produce": ["produce", *artifacts],
            "consume": ["consume", *judging, "--out", str(results)],
            "produce-consume": ["produce-consume", *artifacts, *judging, "--results", str(results)],
        }[task.stage]
        start = time.perf_counter()
        proc = in_cell(python, *argv, *common)
        seconds = time.perf_counter() - start
        key = task.stage.replace("-", "_")
        _timings(out, cell.name, **{f"{key}_s": seconds, f"{key}_rc": proc.returncode})
        if proc.returncode:
            failed.append(cell.name)
            if task.stage != "produce":
                # a results file left by an earlier run must not be reported as this run's verdicts
                results.unlink(missing_ok=True)
            print(f"[{cell.name}] {task.stage} failed ({seconds:.1f} s):\n{proc.stderr[-2000:]}", flush=True)
        else:
            print(f"[{cell.name}] {task.stage} done in {seconds:.1f} s", flush=True)

    pending = plan(runnable, args.stage, all_cells)
    produced: set[str] = set()  # attempted, successfully or not: a failed producer blocks nobody
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        running: dict = {}
        while pending or running:
            for task in [t for t in pending if t.after <= produced]:
                if len(running) >= args.jobs:
                    break
                pending.remove(task)
                running[pool.submit(execute, task)] = task
            if not running:  # only reachable if a dependency names a cell that never produces
                raise SystemExit(f"error: cannot schedule {[t.cell.name for t in pending]}: waiting on nothing")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                task = running.pop(future)
                future.result()
                if task.stage != "consume":
                    produced.add(task.cell.name)
    print(f"stages done in {time.perf_counter() - start:.1f} s", flush=True)
    if args.stage == "all":
        report.write(out)
        print(f"report: {out / 'matrix.md'} {out / 'matrix.html'}")
    return 1 if failed else 0
