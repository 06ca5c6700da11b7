"""Evaluating one version: build its environment (as `matrix run` builds a cell's) and run the
probe there (`python -m matrix probe`), reading its RESULT.json into a Verdict. `BatchEvaluator`
runs many jobs in one probe process per version (`bisect --registry --sweep`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from prefixcheck.verdicts import COULD_NOT_RUN, DECISIVE, FAIL

from ..grid.envs import ROOT, cell_environ
from .plan import Plan
from .search import Verdict

DEFAULT_ENVS = ROOT / "matrix-run" / "envs"  # the envs `python -m matrix run` builds: reused


# -- evaluating one version in its environment ---------------------------------------------------
@contextmanager
def _stderr_to(path: Path):
    """Send fd 2 (uv's error output from build_env's subprocesses) to `path`, so a failed install
    becomes one line of the bisect's output and its reason, not pages of resolver text."""
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def _reason(text: str) -> str:
    lines = [line.strip().lstrip("×╰─▶│ ").strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("hint:", "help:", "warning:"))]
    because = [line for line in lines if line.startswith("Because ")]
    return ((because or lines or ["failed without output"])[-1 if not because else 0])[:300]


class NoEnvironment(Exception):
    """build_quietly could not build the environment; the message is uv's reason, one line."""


_BUILDING = threading.Lock()  # one build at a time in this process: _stderr_to redirects fd 2 process-wide


def build_quietly(cell, envs: Path, uv_log: Path, log=None) -> tuple[Path, float]:
    """matrix.envs.build_env with uv's output in `uv_log`: (python, seconds), or NoEnvironment
    with the one line that says why (every bisect mode and the upstream scripts build this way)."""
    from ..grid.envs import build_env

    try:
        with _BUILDING, _stderr_to(uv_log):
            return build_env(cell, envs, log or (lambda message: None))
    except (subprocess.CalledProcessError, OSError) as exc:
        raise NoEnvironment(_reason(uv_log.read_text(errors="replace")) if uv_log.exists() else str(exc)) from None


def describe(data: dict) -> str:
    """The short detail of a probe result: where, how, which registry entry."""
    parts = []
    if data.get("claim"):
        parts.append(data["claim"])
    if data.get("verdict") == FAIL:
        parts.append(data.get("kind") or "?")
        if data.get("known"):
            parts.append(f"known {data['known']}")
        if data.get("max_diff") is not None:
            parts.append(f"max diff {float(data['max_diff']):.3g}")
    elif data.get("verdict") not in DECISIVE and data.get("error"):
        parts.append(str(data["error"])[:200])
    return "; ".join(parts)


class Evaluator:
    """evaluate(version): build the version's environment, run `python -m matrix probe` in it, read RESULT.json."""

    def __init__(self, plan: Plan, envs: Path, work: Path, timeout: float = 900, log=None) -> None:
        self.plan, self.envs, self.work, self.timeout = plan, envs, work, timeout
        self.log = log or (lambda message: None)
        self.pythons: dict[str, Path] = {}
        self.case_file = work / "case.json"
        self.case_file.write_text(json.dumps(plan.case, sort_keys=True))

    def __call__(self, version: str) -> Verdict:
        start = time.perf_counter()
        slug = re.sub(r"[^\w.-]", "_", self.plan.short(version))
        try:
            cell = self.plan.cell(version)
        except Exception as exc:  # noqa: BLE001 (no accelerate for the pair, an unknown spec)
            return Verdict(
                COULD_NOT_RUN, f"no environment: {str(exc).splitlines()[0][:200]}", seconds=time.perf_counter() - start
            )
        try:
            python, env_s = build_quietly(cell, self.envs, self.work / f"{slug}-build.log", self.log)
        except NoEnvironment as exc:
            return Verdict(COULD_NOT_RUN, f"environment: {exc}", seconds=time.perf_counter() - start)
        self.pythons[version] = python
        result, script = self.work / f"{slug}.json", self.work / f"{slug}-repro.py"
        cmd = [str(python), "-m", "matrix", "probe", "--property", self.plan.prop, "--out", str(result)]
        cmd += ["--script", str(script)]
        if self.plan.claim:
            cmd += ["--claim", self.plan.claim]
        if self.plan.entry:
            cmd += ["--entry", self.plan.entry]
        if self.plan.artifact:
            cmd += ["--artifact", str(self.plan.artifact), "--producer", self.plan.producer or "producer"]
        else:
            cmd += ["--case", str(self.case_file)]
        env = cell_environ(PREFIXCHECK_REPORTS=str(self.work / "reports"))
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return Verdict(
                COULD_NOT_RUN, f"probe: no answer within {self.timeout:.0f} s", seconds=time.perf_counter() - start
            )
        if done.returncode or not result.is_file():
            return Verdict(
                COULD_NOT_RUN, f"probe: {_reason(done.stderr or done.stdout)}", seconds=time.perf_counter() - start
            )
        data = json.loads(result.read_text())
        data["env_seconds"] = round(env_s, 1)
        data["cell"] = cell.name
        return Verdict(data.get("verdict", COULD_NOT_RUN), describe(data), data, time.perf_counter() - start)

    def run_script(self, version: str, script: Path) -> dict:
        """Run a reproduction script with `version`'s Python: its exit status and last line."""
        python = self.pythons.get(version)
        if python is None:
            return {"rc": None, "line": "no environment"}
        env = cell_environ()
        try:
            done = subprocess.run(
                [str(python), str(script)], cwd=self.work, env=env, capture_output=True, text=True, timeout=self.timeout
            )
        except subprocess.TimeoutExpired:
            return {"rc": None, "line": f"no answer within {self.timeout:.0f} s"}
        lines = [line for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
        ok = [line for line in lines if line.startswith(("FAILED:", "OK:"))]
        return {"rc": done.returncode, "line": (ok or lines or [""])[-1][:300]}


class BatchEvaluator:
    """evaluate(version, jobs) -> one Verdict per job: build the version's environment as Evaluator
    does and run `python -m matrix probe --batch` in it once, so a sweep of many registry witnesses pays the
    imports once per version (`bisect --registry --sweep`). `cells`: version -> matrix.cells.Cell;
    `timeout`: seconds one job may take."""

    def __init__(self, cells: dict, envs: Path, work: Path, timeout: float = 900, log=None) -> None:
        self.cells, self.envs, self.work, self.timeout = cells, envs, work, timeout
        self.log = log or (lambda message: None)

    def __call__(self, version: str, jobs: list[dict]) -> list[Verdict]:
        start = time.perf_counter()
        cell = self.cells[version]

        def nothing(reason: str) -> list[Verdict]:
            seconds = time.perf_counter() - start
            return [Verdict(COULD_NOT_RUN, reason, seconds=seconds) for _ in jobs]

        slug = re.sub(r"[^\w.-]", "_", cell.name)
        try:
            python, _ = build_quietly(cell, self.envs, self.work / f"{slug}-build.log", self.log)
        except NoEnvironment as exc:
            return nothing(f"environment: {exc}")
        jobs_file, result = self.work / f"{slug}-jobs.json", self.work / f"{slug}.json"
        jobs_file.write_text(json.dumps(jobs, sort_keys=True))
        cmd = [str(python), "-m", "matrix", "probe", "--batch", str(jobs_file), "--out", str(result)]
        cmd += ["--timeout-each", str(self.timeout)]
        env = cell_environ(PREFIXCHECK_REPORTS=str(self.work / f"{slug}-reports"))
        try:
            done = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=self.timeout * max(1, len(jobs))
            )
        except subprocess.TimeoutExpired:
            return nothing("probe: no answer for the whole batch")
        if done.returncode or not result.is_file():
            return nothing(f"probe: {_reason(done.stderr or done.stdout)}")
        answers = json.loads(result.read_text())
        if len(answers) != len(jobs):
            return nothing(f"probe: {len(answers)} answers to {len(jobs)} jobs")
        verdicts = []
        for data in answers:
            data["cell"] = cell.name
            verdicts.append(Verdict(data.get("verdict", COULD_NOT_RUN), describe(data), data, data.get("seconds", 0.0)))
        return verdicts
