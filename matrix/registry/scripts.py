"""The reproduction scripts of the upstream reports, each written in the environment of a release
where its entry was measured bad (`python -m matrix upstream-script` run there), so the script's
config and TrainingArguments are that release's and families it alone has are covered; here where
no such release is known."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefixcheck.case import Case
from prefixcheck.verdicts import BAD

from ..bisect.evaluate import NoEnvironment, build_quietly
from ..grid.envs import ROOT, cell_environ


def reproduction(witness: dict) -> tuple[str | None, str]:
    """The standalone script for a witness (prefixcheck.repro), or None and why it could not be
    written here."""
    try:
        from prefixcheck import repro

        return repro.script(witness["property"], Case.from_dict(witness["case"]), point=witness["point"]), ""
    except Exception as exc:  # noqa: BLE001 (a family this install lacks, a case it cannot build)
        return None, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"


def reproduction_in(python: Path, witness: dict, timeout: float = 600) -> tuple[str | None, str]:
    """reproduction(), run by another environment's Python (`python -m matrix upstream-script`)."""
    with tempfile.TemporaryDirectory(prefix="matrix-upstream-") as folder:
        given, out = Path(folder) / "witness.json", Path(folder) / "repro.py"
        given.write_text(json.dumps(witness, sort_keys=True))
        cmd = [str(python), "-m", "matrix", "upstream-script", "--witness", str(given), "--out", str(out)]
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=cell_environ(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"no script within {timeout:.0f} s"
        if done.returncode == 0 and out.is_file():
            return out.read_text(), ""
        said = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        return None, (said or [f"exit {done.returncode}"])[-1][:300]


def script_cell(witness: dict, record: dict | None, cells):
    """A released cell whose environment has the witness's family: the pair of a release where
    the entry was measured bad (first bad of each axis, then any bad), else the pair the witness
    was seen with; None where cells.toml has no such pair."""
    pairs = []
    for facts in (record or {}).get("axes", {}).values():
        bad = [v for v, verdict in facts["tested"].items() if verdict == BAD]
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
    from ..grid.cells import CellError
    from ..grid.cells import load as load_cells

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
                text, why = reproduction_in(python, witness)
                if text is not None:
                    out(f"reports: the script of case {witness['case_key']} was written in {cell.name}")
                    return text, ""
                there = f"in {cell.name}: {why}"
        text, why = reproduction(witness)
        if text is not None:
            return text, ""
        return None, f"{why}; {there}" if there else why

    return script


def prepared_scripts(script, jobs: list[tuple[dict, dict | None]], workers: int):
    """script() run for every (witness, record) at once (`workers` at a time: each is a process in
    another environment), then looked up by witness; anything not prepared is run when asked."""

    def key(witness: dict) -> tuple:
        return (witness["property"], witness["point"], witness["case_key"])

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        done = dict(zip([key(w) for w, _ in jobs], pool.map(lambda job: script(*job), jobs), strict=True))
    return lambda witness, record: done.get(key(witness)) or script(witness, record)
