"""The cell runner behind `python -m matrix run`: environments, produce in each cell, every cell
consumes every cell's artifacts, then the report. Each stage's exit status counts."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .envs import build_env, has_cuda, in_cell


def _timings(out: Path, cell: str, **values) -> None:
    """Per-cell timings, one file a cell: stages that ran in different jobs merge here."""
    path = out / "timings" / f"{cell}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**old, **values}, indent=1, sort_keys=True))


def chosen_cells(names: str | None, github: bool = False, cuda: bool | None = None) -> tuple[list, dict]:
    """The cells asked for (all by default) that can run here, and why the others cannot."""
    from . import cells as cells_mod

    all_cells = cells_mod.load()
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


def run(args) -> int:
    from . import report

    out = Path(args.out)
    runnable, skipped = chosen_cells(args.cells, github=args.github)
    for name, why in skipped.items():
        print(f"[{name}] skipped: {why}", flush=True)
        _timings(out, name, skipped=why)
    pythons: dict = {}
    failed = []

    def environment(cell):
        python, env_s = build_env(cell, out / "envs", lambda m: print(m, flush=True))
        _timings(out, cell.name, env_s=env_s)
        pythons[cell] = python
        return python

    def produce(cell):
        python = environment(cell)
        start = time.perf_counter()
        proc = in_cell(
            python,
            "produce",
            "--out",
            str(out / "artifacts" / cell.name),
            "--drawn",
            str(args.drawn),
            "--device",
            cell.device,
        )
        seconds = time.perf_counter() - start
        if proc.returncode:
            failed.append(cell.name)
            print(f"[{cell.name}] produce failed:\n{proc.stderr[-2000:]}", flush=True)
        else:
            print(f"[{cell.name}] produced in {seconds:.1f} s", flush=True)
        _timings(out, cell.name, produce_s=seconds, produce_rc=proc.returncode)

    def consume(cell):
        python = pythons.get(cell) or environment(cell)
        start = time.perf_counter()
        producers = ["--producers", ",".join((cell.name, *cell.consumes))] if cell.consumes else []
        proc = in_cell(
            python,
            "consume",
            "--artifacts",
            str(out / "artifacts"),
            "--out",
            str(out / "results" / f"{cell.name}.json"),
            "--device",
            cell.device,
            *producers,
        )
        seconds = time.perf_counter() - start
        _timings(out, cell.name, consume_s=seconds, consume_rc=proc.returncode)
        if proc.returncode:
            failed.append(cell.name)
            # a results file left by an earlier run must not be reported as this run's verdicts
            (out / "results" / f"{cell.name}.json").unlink(missing_ok=True)
        status = "consumed" if proc.returncode == 0 else f"consume failed:\n{proc.stderr[-2000:]}"
        print(f"[{cell.name}] {status} ({seconds:.1f} s)", flush=True)

    if args.stage in ("all", "produce"):
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(produce, runnable))
    if args.stage in ("all", "consume"):
        if not (out / "artifacts").is_dir():
            raise SystemExit(f"error: {out / 'artifacts'} does not exist: nothing to consume (run the produce stage)")
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(consume, runnable))
    if args.stage == "all":
        report.write(out)
        print(f"report: {out / 'matrix.md'} {out / 'matrix.html'}")
    return 1 if failed else 0
