"""python -m matrix run|report|cells|diff|track|validate|produce|consume

python -m matrix run [--cells A,B,...] [--out DIR] [-j N] [--drawn N] [--stage all|produce|consume]
    build one uv environment per cell (matrix/cells.toml), produce artifacts in each, let every
    cell consume every cell's artifacts, then write the report. Finished work is reused: a
    cell's environment is kept, artifacts that verify are not re-made, and a consumer whose
    inputs' manifests did not change is not re-run. --stage splits this across CI jobs: produce
    in one job per cell, gather OUT/artifacts, consume in one job per cell, then `report`.
python -m matrix report DIR        matrix.json, matrix.md and matrix.html from a run folder
python -m matrix cells [--json]    the runnable cells (the nightly's GitHub Actions matrix)
python -m matrix diff OLD NEW      what changed between two result folders (nightly change detection)
python -m matrix track CHANGES     open or update the nightly tracking issue (GitHub REST API)
python -m matrix validate          one PEFT build against a baseline, only the difference
python -m matrix pr-spec --pr N    the PEFT_SPEC of a PEFT pull request (its head commit)
python -m matrix produce|consume   what `run` calls inside each cell's environment
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .cells import CellError

ROOT = Path(__file__).resolve().parents[1]
TEST_STACK = ["hypothesis>=6.100", "pytest>=8", "pytest-xdist>=3.5", "packaging>=23", "safetensors>=0.4", "tox>=4.20"]


def _uv_env(device: str) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    import toxfile  # the one place that knows what TORCH_WHEELS / TORCH_DEVICE mean

    env = dict(os.environ)
    env.update(toxfile.torch_settings(os.environ, device))
    return env


def build_env(cell, envs: Path, log) -> tuple[Path, float]:
    """A uv venv for `cell` (kept between runs when its requirements did not change)."""
    python = envs / cell.name / "bin" / "python"
    stamp = envs / cell.name / "requirements.json"
    wanted = json.dumps(cell.requirements() + TEST_STACK)
    start = time.perf_counter()
    if not (python.exists() and stamp.is_file() and stamp.read_text() == wanted):
        env = _uv_env(cell.device)
        subprocess.run(["uv", "venv", "-q", "--clear", str(envs / cell.name)], check=True, env=env)
        constraint = env["PREFIX_TORCH_CONSTRAINTS"]
        subprocess.run(
            [
                "uv",
                "pip",
                "install",
                "-q",
                "-p",
                str(python),
                "-c",
                constraint,
                "torch",
                *cell.requirements(),
                *TEST_STACK,
            ],
            check=True,
            env=env,
        )
        subprocess.run(
            ["uv", "pip", "install", "-q", "-p", str(python), "--no-deps", "-e", str(ROOT)], check=True, env=env
        )
        stamp.write_text(wanted)
    seconds = time.perf_counter() - start
    log(f"[{cell.name}] environment ready ({seconds:.1f} s)")
    return python, seconds


def _in_cell(python: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(python), "-m", "matrix", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def _has_cuda() -> bool:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
    except OSError:
        return False


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
    cuda = _has_cuda() if cuda is None else cuda
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
        proc = _in_cell(
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
        proc = _in_cell(
            python,
            "consume",
            "--artifacts",
            str(out / "artifacts"),
            "--out",
            str(out / "results" / f"{cell.name}.json"),
            "--device",
            cell.device,
        )
        seconds = time.perf_counter() - start
        _timings(out, cell.name, consume_s=seconds, consume_rc=proc.returncode)
        if proc.returncode:
            failed.append(cell.name)
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


def cells_command(args) -> int:
    """Print the runnable cells (a GitHub Actions matrix with --json); skipped ones go to stderr."""
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
    p_rep = sub.add_parser("report")
    p_rep.add_argument("dir")
    p_pro = sub.add_parser("produce")
    p_pro.add_argument("--out", required=True)
    p_pro.add_argument("--drawn", type=int, default=8)
    p_pro.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p_con = sub.add_parser("consume")
    p_con.add_argument("--artifacts", required=True)
    p_con.add_argument("--out", required=True)
    p_con.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except CellError as exc:  # an unknown or unusable cell: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args) -> int:
    if args.command == "run":
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
    if args.command == "report":
        from . import report

        if not Path(args.dir).is_dir():
            print(f"error: {args.dir}: no such results folder (give the --out of a `matrix run`)", file=sys.stderr)
            return 2
        report.write(Path(args.dir))
        return 0
    from . import cellwork

    if args.command == "produce":
        try:
            pinned = cellwork.pinned_cases()
        except ValueError as exc:  # MATRIX_ARCHS naming an unknown architecture
            print(f"error: {exc}", file=sys.stderr)
            return 2
        cases = [c.replace(device=args.device) for c in pinned + cellwork.drawn_cases(args.drawn)]
        index = cellwork.produce(Path(args.out), cases)
        print(json.dumps({k: v for k, v in index.items() if k != "failed"}), f"failed={len(index['failed'])}")
        return 0
    result = cellwork.consume(Path(args.artifacts), Path(args.out), args.device)
    print(f"{len(result['rows'])} verdicts in {result['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
