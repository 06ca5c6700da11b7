"""python -m matrix run|report|produce|consume

python -m matrix run [--cells A,B,...] [--out DIR] [-j N] [--drawn N]
    build one uv environment per cell (matrix/cells.toml), produce artifacts in each, let every
    cell consume every cell's artifacts, then write the report. Finished work is reused: a
    cell's environment is kept, artifacts that verify are not re-made, and a consumer whose
    inputs' manifests did not change is not re-run.
python -m matrix report DIR        matrix.json, matrix.md and matrix.html from a run folder
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

ROOT = Path(__file__).resolve().parents[1]
TEST_STACK = ["hypothesis>=6.100", "pytest>=8", "pytest-xdist>=3.5", "packaging>=23", "safetensors>=0.4", "tox>=4.20"]


def _uv_env() -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    import toxfile  # the one place that knows what TORCH_WHEELS means

    env = dict(os.environ)
    env.update(toxfile.torch_source_env(os.environ.get("TORCH_WHEELS")))
    return env


def build_env(cell, envs: Path, log) -> tuple[Path, float]:
    """A uv venv for `cell` (kept between runs when its requirements did not change)."""
    python = envs / cell.name / "bin" / "python"
    stamp = envs / cell.name / "requirements.json"
    wanted = json.dumps(cell.requirements() + TEST_STACK)
    start = time.perf_counter()
    if not (python.exists() and stamp.is_file() and stamp.read_text() == wanted):
        env = _uv_env()
        subprocess.run(["uv", "venv", "-q", "--clear", str(envs / cell.name)], check=True, env=env)
        constraint = str(ROOT / "constraints-torch-cpu.txt")
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


def run(args) -> int:
    from . import cells as cells_mod
    from . import report

    all_cells = cells_mod.load()
    chosen = [all_cells.get(n) for n in args.cells.split(",")] if args.cells else list(all_cells)
    out = Path(args.out)
    timings: dict[str, dict] = {}
    runnable = []
    for cell in chosen:
        why = cell.runnable(github=args.github, cuda=_has_cuda())
        if why:
            print(f"[{cell.name}] skipped: {why}", flush=True)
            timings[cell.name] = {"skipped": why}
        else:
            runnable.append(cell)

    def prepare(cell):
        python, env_s = build_env(cell, out / "envs", lambda m: print(m, flush=True))
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
        produce_s = time.perf_counter() - start
        if proc.returncode:
            print(f"[{cell.name}] produce failed:\n{proc.stderr[-2000:]}", flush=True)
        else:
            print(f"[{cell.name}] produced in {produce_s:.1f} s", flush=True)
        timings[cell.name] = {"env_s": env_s, "produce_s": produce_s, "produce_rc": proc.returncode}
        return cell, python

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        pythons = dict(pool.map(prepare, runnable))

    def consume(cell):
        start = time.perf_counter()
        proc = _in_cell(
            pythons[cell],
            "consume",
            "--artifacts",
            str(out / "artifacts"),
            "--out",
            str(out / "results" / f"{cell.name}.json"),
        )
        timings[cell.name]["consume_s"] = time.perf_counter() - start
        timings[cell.name]["consume_rc"] = proc.returncode
        status = "consumed" if proc.returncode == 0 else f"consume failed:\n{proc.stderr[-2000:]}"
        print(f"[{cell.name}] {status} ({timings[cell.name]['consume_s']:.1f} s)", flush=True)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(consume, runnable))
    (out / "timings.json").write_text(json.dumps(timings, indent=1, sort_keys=True))
    report.write(out)
    print(f"report: {out / 'matrix.md'} {out / 'matrix.html'}")
    return 0 if all(t.get("consume_rc", 0) == 0 and t.get("produce_rc", 0) == 0 for t in timings.values()) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matrix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--cells", help="comma-separated cell names (default: all runnable)")
    p_run.add_argument("--out", default="matrix-run")
    p_run.add_argument("-j", "--jobs", type=int, default=2)
    p_run.add_argument("--drawn", type=int, default=8, help="Hypothesis-drawn cases per producer, besides pinned")
    p_run.add_argument("--github", action="store_true", help="this machine reaches GitHub (enables peft-main)")
    p_val = sub.add_parser("validate")
    p_val.add_argument("--peft", required=True, help="the PEFT under test: version, git URL or path")
    p_val.add_argument("--baseline", help="the PEFT to compare with (default: the known-good cell's)")
    p_val.add_argument("--transformers", help="transformers for both sides (default: the known-good cell's)")
    p_val.add_argument("--accelerate", help="accelerate for both sides (default: the known-good cell's)")
    p_val.add_argument("--artifacts", help="artifacts of a finished `matrix run` (RUN/artifacts) to consume")
    p_val.add_argument("--out", default="validate-run")
    p_val.add_argument("--workers", type=int, default=2)
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

    if args.command == "run":
        return run(args)
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

        report.write(Path(args.dir))
        return 0
    from . import cellwork

    if args.command == "produce":
        cases = [c.replace(device=args.device) for c in cellwork.pinned_cases() + cellwork.drawn_cases(args.drawn)]
        index = cellwork.produce(Path(args.out), cases)
        print(json.dumps({k: v for k, v in index.items() if k != "failed"}), f"failed={len(index['failed'])}")
        return 0
    result = cellwork.consume(Path(args.artifacts), Path(args.out), args.device)
    print(f"{len(result['rows'])} verdicts in {result['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
