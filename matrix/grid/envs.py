"""The environments the matrix runs in: one uv venv per cell (torch from the local CPU wheels or
the PyTorch CPU index, never a CUDA build from PyPI), and running `python -m matrix ...` in one.
`run`, `validate` and `bisect` all build their environments here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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
    # the checkout is part of the stamp: a kept environment must import this project, not the
    # checkout that built it (an editable install points at one folder)
    wanted = json.dumps(cell.requirements() + TEST_STACK + [f"-e {ROOT}"])
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


def cell_environ(**extra: str) -> dict[str, str]:
    """The environment variables of a process run in a cell's environment: one thread, offline.
    Python may write its bytecode caches there even where PYTHONDONTWRITEBYTECODE is set (it is on
    this machine): without them every process compiles torch, transformers and PEFT again, about
    14 s of its 20 s start; with them, a process after the environment's first starts in ~6 s."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **extra}


def in_cell(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "matrix", *args], cwd=ROOT, env=cell_environ(), capture_output=True, text=True
    )


def has_cuda() -> bool:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
    except OSError:
        return False
