"""The released cells of `matrix/grid/cells.toml`, made from the package index (`cells --refresh`).

Two axes, so every release line is covered without a cross product:
- PEFT axis: the latest patch of every PEFT minor the suite supports (pyproject's `stack` extra),
  each with the transformers a user got when that PEFT came out (the newest one uploaded by then);
- transformers axis: the newest PEFT with the latest patch of every supported transformers minor.
accelerate is the newest one uploaded by the later of the pair's two upload dates. Every cell is
probed (installed, a tiny prefix-tuning Llama runs forward); a cell that fails keeps its place
with `unavailable = "<reason>"`, so a gap is recorded, never silent. A usable transformers-axis
cell `consumes` only its own and the anchors' artifacts (peft-latest, the known-good cell), its
artifacts are `judged_by` the anchors only, and it draws no Hypothesis cases (`drawn = 0`), so the
grid fits its time budget: the PEFT axis judges the PEFT axis and the anchors, the anchors every cell.

The generated cells sit between two marker lines; hand-made cells (CUDA, the GitHub and PEFT_SPEC
cells) and the header stay outside and are never touched. The known-good cell keeps its pins (tox.ini
pins the same), whether or not the index still yields its pair.
The release history comes from matrix.grid.releases.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prefixcheck.compat import tomllib

from . import cells as cells_mod
from .cells import CELLS_FILE
from .releases import (
    Release,
    ReleasesError,
    _memoized,
    _minor,
    accelerate_for,
    extras_for,
    latest_patches,
    newest_before,
    project_url,
    release_history,
    stack_minimum,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ENVS = ROOT / "matrix-run" / "envs"  # where `python -m matrix run` keeps its envs: reused
BEGIN = (
    "# >>> released cells: written by `python -m matrix cells --refresh` (matrix/grid/refresh.py); edits here are lost"
)
END = "# <<< end of the released cells"
CELL_KEYS = (
    "name",
    "peft",
    "transformers",
    "accelerate",
    "extra",
    "consumes",
    "judged_by",
    "drawn",
    "known_good",
    "unavailable",
)
LATEST = "peft-latest"  # the newest PEFT with the newest transformers (tox's peft-latest tests the same)
REASON_CHARS = 240  # an unavailable reason is one line of at most this many characters
PROBE_TIMEOUT_S = 600
# What a cell's probe runs in the cell's environment: import, build a tiny random Llama (never a
# hub download), wrap it in prefix tuning, one forward. argv: expected peft and transformers versions.
PROBE_SCRIPT = r"""
import sys
stage = "import"
try:
    import torch, transformers, peft
    from transformers import LlamaConfig, LlamaForCausalLM
    from peft import PrefixTuningConfig, get_peft_model
    for name, module, want in (("peft", peft, sys.argv[1]), ("transformers", transformers, sys.argv[2])):
        if want[:1].isdigit() and module.__version__ != want:
            raise RuntimeError(f"{name} {module.__version__} installed, {want} wanted")
    stage = "build"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    model = get_peft_model(LlamaForCausalLM(config).eval(),
                           PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    stage = "forward"
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    if tuple(logits.shape) != (1, 5, 64) or not torch.isfinite(logits).all():
        raise RuntimeError(f"logits of shape {tuple(logits.shape)}, finite={bool(torch.isfinite(logits).all())}")
except Exception as exc:
    print(f"PROBE-FAILED {stage}: {type(exc).__name__}: {exc}".splitlines()[0][:400])
    sys.exit(1)
print("PROBE-OK")
"""


def _cell(name: str, peft: str, transformers: str, fetch) -> dict:
    cell = {"name": name, "peft": peft, "transformers": transformers}
    cell["accelerate"] = accelerate_for(peft, transformers, fetch=fetch)
    extra = extras_for(peft, transformers)
    if extra:
        cell["extra"] = extra
    return cell


def _transformers_for_peft(peft: Release, history: list[Release], minimum: str) -> Release:
    """The transformers of a PEFT-axis cell: the newest uploaded when that PEFT was; a PEFT older
    than the suite's transformers minimum gets that minimum's latest patch (the suite needs it)."""
    try:
        at_release = newest_before(history, peft.uploaded)
    except ReleasesError:  # no transformers yet at that time (only in made-up histories)
        at_release = None
    if at_release is None or _minor(at_release.version) < _minor(minimum):
        supported = latest_patches(history, minimum)
        if not supported:
            raise ReleasesError(f"{project_url('transformers')}: no transformers release from {minimum} on")
        return supported[0]
    return at_release


def _pairs(fetch) -> list[tuple[str, str, str, str]]:
    """(name, peft, transformers, axis) of both axes, each pair once (the PEFT axis names it
    first); the newest PEFT with the newest transformers is `peft-latest`."""
    peft_history = release_history("peft", fetch=fetch)
    tf_history = release_history("transformers", fetch=fetch)
    tf_minimum = stack_minimum("transformers")
    pairs: dict[tuple[str, str], tuple[str, str]] = {}
    peft_axis = latest_patches(peft_history, stack_minimum("peft"))
    if not peft_axis:
        raise ReleasesError(f"no peft release from {stack_minimum('peft')} on at {project_url('peft')}")
    for peft in peft_axis:
        tf = _transformers_for_peft(peft, tf_history, tf_minimum)
        pairs.setdefault((peft.version, tf.version), (f"peft-{peft.version}", "peft"))
    newest = peft_axis[-1].version
    for tf in latest_patches(tf_history, tf_minimum):
        name = f"peft-{newest}-tf-{'.'.join(map(str, _minor(tf.version)))}"
        pairs.setdefault((newest, tf.version), (name, "transformers"))
    pairs[(newest, tf_history[-1].version)] = (LATEST, "latest")
    return [(name, peft, tf, axis) for (peft, tf), (name, axis) in pairs.items()]


def _known_good_dict(cell) -> dict:
    """The known-good cell as cells.toml keys, exactly as it stands (its pins never move here)."""
    out = {"name": cell.name, "peft": cell.peft, "transformers": cell.transformers, "accelerate": cell.accelerate}
    if cell.extra:
        out["extra"] = list(cell.extra)
    out["known_good"] = True
    if cell.unavailable:
        out["unavailable"] = cell.unavailable
    return out


def _place_known_good(generated: list[dict], cell, inside: bool) -> list[str]:
    """Put the known-good cell, pins as they stand, where the generated cell of its pair was (or at
    the end when the index no longer yields its pair). `inside`: it lives in the generated region
    (else it is hand-made outside and only its pair and name are kept out of the region).
    A generated cell that would take its name but not its pair (the minor got a new patch) is
    named with its full transformers version instead, so both stay."""
    good = _known_good_dict(cell)
    pair = (good["peft"], good["transformers"])
    for other in generated:
        if other["name"] == good["name"] and (other["peft"], other["transformers"]) != pair:
            other["name"] = f"peft-{other['peft']}-tf-{other['transformers']}"
    at = [i for i, c in enumerate(generated) if (c["peft"], c["transformers"]) == pair]
    if not inside:
        for i in reversed(at):
            del generated[i]
        return []
    if at:
        generated[at[0]] = good
        return []
    generated.append(good)
    return [f"known-good {good['name']} ({good['peft']}/{good['transformers']}) is no longer generated, kept as is"]


def _generate(
    fetch, probe, known_good, log=lambda message: None, jobs: int = 1, known_good_inside: bool = True
) -> tuple[list[dict], list[str]]:
    """The released cells and notes for the summary. The known-good cell keeps its pins (tox.ini
    pins the same) and is probed only for the notes."""
    fetch = _memoized(fetch)
    generated = [{**_cell(name, peft, tf, fetch), "_axis": axis} for name, peft, tf, axis in _pairs(fetch)]
    notes = []
    if known_good is not None:
        notes += _place_known_good(generated, known_good, known_good_inside)
    if probe is not None:
        reasons = _probe_all(generated, probe, log, jobs)
        for cell, reason in zip(generated, reasons, strict=True):
            if not reason:
                continue
            if cell.get("known_good"):
                notes.append(f"WARNING: the known-good cell {cell['name']} failed its probe ({reason}); left as is")
            else:
                cell["unavailable"] = _one_line(reason)
    anchors = [LATEST] + ([known_good.name] if known_good is not None else [])
    for cell in generated:
        if cell.pop("_axis", None) == "transformers" and not cell.get("unavailable"):
            # the grid's time budget: judges its own and the anchors' artifacts, judged by the
            # anchors, pinned cases only
            cell.update(consumes=anchors, judged_by=anchors, drawn=0)
    return generated, notes


def _probe_all(cells: list[dict], probe, log, jobs: int) -> list[str | None]:
    """Probe every cell (on `jobs` threads: the work is in subprocesses), answers in cell order."""

    def one(cell: dict) -> str | None:
        start = time.perf_counter()
        reason = probe({k: v for k, v in cell.items() if not k.startswith("_")})
        log(
            f"[{cell['name']}] {'works' if not reason else 'unavailable: ' + reason} ({time.perf_counter() - start:.0f} s)"
        )
        return reason

    if jobs <= 1:
        return [one(c) for c in cells]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, cells))


def generate_cells(*, fetch=None, probe=None, known_good=None) -> list[dict]:
    """The released cells as dicts with cells.toml keys: PEFT axis, transformers axis, the
    known-good cell (default: matrix/grid/cells.toml's) with its pins; `probe` failures as unavailable."""
    if known_good is None:
        known_good = cells_mod.load().known_good()
    return _generate(fetch, probe, known_good)[0]


def _one_line(text: str) -> str:
    """A reason as the file keeps it: one line, capped, without the machine's env paths (an
    ImportError names site-packages/...), so the same failure reads the same on every machine."""
    text = re.sub(r"[^\s(]*/site-packages/", "", " ".join(str(text).split()))
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def _reason(output: str) -> str:
    """The line that says why an install or a probe failed: the probe's own verdict, uv's first
    'Because ...' (the conflict itself, not its conclusion), else the last line that is not noise."""
    lines = [line.strip().lstrip("×╰─▶│ ").strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("hint:", "help:", "warning:", "File ", "^", "~"))]
    for line in lines:
        if line.startswith("PROBE-FAILED "):
            return line[len("PROBE-FAILED ") :]
    for line in lines:
        if line.startswith("Because "):
            return "install: " + line
    return lines[-1] if lines else "failed without output"


def env_probe(envs: Path = DEFAULT_ENVS, log=print):
    """The real probe: build the cell's uv environment with `matrix.envs.build_env` (kept, so a
    later `matrix run` reuses it) and run PROBE_SCRIPT in it. None when it works, else the reason."""
    from . import envs as envs_mod

    envs = Path(envs).resolve()
    envs.mkdir(parents=True, exist_ok=True)

    def probe(cell: dict) -> str | None:
        spec = cells_mod.Cell(**{**cell, "extra": tuple(cell.get("extra", ())), "unavailable": None})
        try:
            python = _build(envs_mod, spec, envs, log)
        except subprocess.CalledProcessError as exc:
            return "install: " + _install_failure(envs_mod, spec, exc).removeprefix("install: ")
        return _run_probe(python, spec)

    return probe


def _build(envs_mod, spec, envs: Path, log) -> Path:
    return envs_mod.build_env(spec, envs, log)[0]


def _install_failure(envs_mod, spec, exc: subprocess.CalledProcessError) -> str:
    """Why build_env's command failed (it does not capture output): the same command again, with
    its output this time (uv answers from its cache; a resolution failure repeats in a second)."""
    try:
        again = subprocess.run(
            exc.cmd, env=envs_mod._uv_env(spec.device), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{Path(str(exc.cmd[0])).name} failed ({err})"
    if again.returncode == 0:
        return f"{' '.join(map(str, exc.cmd[:3]))} failed once, then passed: rerun the refresh"
    return _reason(again.stdout + "\n" + again.stderr)


def _run_probe(python: Path, spec) -> str | None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the env is kept: its bytecode too, later imports are faster
    try:
        done = subprocess.run(
            [str(python), "-c", PROBE_SCRIPT, spec.peft, spec.transformers],
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            cwd=tempfile.gettempdir(),  # not the repository: its folders must not shadow packages
        )
    except subprocess.TimeoutExpired:
        return f"probe: no answer within {PROBE_TIMEOUT_S} s"
    if done.returncode == 0 and "PROBE-OK" in done.stdout:
        return None
    if done.returncode < 0:
        return f"probe: killed by signal {-done.returncode}"
    return _reason(done.stdout + "\n" + done.stderr)


def remembered_probe(current) -> Callable[[dict], str | None]:
    """A probe that measures nothing (--no-probe): a cell whose pins equal a cell of the current
    file keeps that cell's recorded reason, so skipping the probe never drops a recorded gap."""
    reasons = {tuple(c.requirements()): c.unavailable for c in current if c.unavailable and c.needs is None}

    def probe(cell: dict) -> str | None:
        spec = cells_mod.Cell(**{**cell, "extra": tuple(cell.get("extra", ())), "unavailable": None})
        return reasons.get(tuple(spec.requirements()))

    return probe


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def cell_block(cell: dict) -> str:
    """One `[[cell]]` table in the file's own layout (key order of CELL_KEYS, false/empty left out;
    a number, 0 included, kept)."""
    lines = ["[[cell]]"]
    kept = [key for key in CELL_KEYS if cell.get(key) or (type(cell.get(key)) is int)]
    lines += [f"{key} = {_toml_value(cell[key])}" for key in kept]
    return "\n".join(lines) + "\n"


def _region(cells: list[dict]) -> str:
    peft_min, tf_min = stack_minimum("peft"), stack_minimum("transformers")
    header = [
        BEGIN,
        f"# PEFT axis: the latest patch of every PEFT minor from {peft_min}, with the transformers that was newest",
        "# when it came out; transformers axis: the newest PEFT with every transformers minor from "
        f"{tf_min}. accelerate:",
        "# the newest at the later upload. `unavailable`: the probe (install, tiny prefix model, forward) failed.",
        "# The grid's time budget: the transformers axis judges its own and the anchors' artifacts only (`consumes`),",
        "# is judged by the anchors only (`judged_by`) and makes its pinned cases only (`drawn = 0`).",
    ]
    return "\n".join(header) + "\n" + "\n".join(cell_block(c) for c in cells) + END + "\n"


def _split(text: str, path: Path) -> tuple[str, str]:
    """The file around the generated region: (before, after). A file without markers (the first
    refresh) loses its released cells (no `needs`, no `device`) and gets the region where the
    first of them stood."""
    lines = text.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.rstrip("\n") == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\n") == END]
    if begins or ends:
        if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
            raise ReleasesError(f"{path}: expected one {BEGIN[:20]!r} line followed by one {END!r} line")
        return "".join(lines[: begins[0]]), "".join(lines[ends[0] + 1 :])
    kept, first = [], None
    i = 0
    while i < len(lines):
        if lines[i].strip() != "[[cell]]":
            kept.append(lines[i])
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].strip() and not lines[end].lstrip().startswith(("#", "[")):
            end += 1
        raw = tomllib.loads("".join(lines[i:end]))["cell"][0]
        if "needs" in raw or "device" in raw:
            kept.extend(lines[i:end])
        else:
            first = len(kept) if first is None else first
            while end < len(lines) and not lines[end].strip():
                end += 1  # the blank lines after a removed cell go with it
        i = end
    if first is None:
        raise ReleasesError(f"{path}: no markers and no released cells to replace")
    after = "".join(kept[first:]).lstrip("\n")
    return "".join(kept[:first]), ("\n" + after if after else "")


def _check(text: str, path: Path) -> cells_mod.Cells:
    """The new text must load as a cells file: a refresh never writes a file `run` cannot read."""
    try:
        return cells_mod.loads(text, path)
    except cells_mod.CellError as exc:
        raise ReleasesError(f"{path}: the refreshed file would be invalid: {exc}") from None


def _summary(path: Path, old, new, notes: list[str], generated: list[dict]) -> str:
    """One paragraph: counts, what moved against the old file, every unavailable cell with its reason."""
    old_pins = {c.name: c.requirements() for c in old if c.needs is None and c.device == "cpu"}
    new_cells = {c["name"]: c for c in generated}
    new_pins = {c.name: c.requirements() for c in new if c.name in new_cells}
    added = sorted(set(new_pins) - set(old_pins))
    removed = sorted(set(old_pins) - set(new_pins))
    changed = sorted(n for n in set(new_pins) & set(old_pins) if new_pins[n] != old_pins[n])
    unavailable = [f"{c['name']} ({c['unavailable']})" for c in generated if c.get("unavailable")]
    latest = new_cells.get(LATEST, {})
    parts = [
        f"{path}: {len(generated)} released cells ({len(generated) - len(unavailable)} usable, "
        f"{len(unavailable)} unavailable); peft-latest = peft {latest.get('peft')} / transformers {latest.get('transformers')}",
        f"{len(added)} added, {len(removed)} removed ({', '.join(removed) or 'none'}), {len(changed)} re-pinned "
        f"({', '.join(changed) or 'none'})",
        f"{len([c for c in new if c.name not in new_cells])} hand-made cells untouched",
    ]
    if unavailable:
        parts.append("unavailable: " + "; ".join(unavailable))
    return ". ".join(parts + notes) + "."


@dataclass(frozen=True)
class Regenerated:
    """A refresh of a cells file before anything is written: the file as it was (`old_text`, `old`),
    as the refresh would write it (`text`, checked to load: `new`), the generated cells and the
    notes for the summary. `cells --refresh` writes `text`; a grid made from the index at run
    time (matrix/grid/live.py) runs it without writing."""

    old_text: str
    old: cells_mod.Cells
    text: str
    new: cells_mod.Cells
    generated: list[dict]
    notes: list[str]


def regenerate(path=CELLS_FILE, *, fetch=None, probe=None, log=lambda message: None, jobs: int = 1) -> Regenerated:
    """The released region of `path` made again from the package index. Without a probe, a cell
    keeps the unavailable reason recorded for the same pins."""
    path = Path(path)
    text = path.read_text()
    old = cells_mod.load(path)
    before, after = _split(text, path)
    fetch = _memoized(fetch)
    outside = tomllib.loads(before + after).get("cell", [])
    good = old.known_good()
    inside = good.name not in {c.get("name") for c in outside}
    if probe is None:  # nothing measured: no per-cell lines, and the summary says so
        generated, notes = _generate(fetch, remembered_probe(old), good, known_good_inside=inside)
        notes.append("nothing probed: unavailable reasons carried over from the same pins")
    else:
        generated, notes = _generate(fetch, probe, good, log, jobs, inside)
    new_text = before + _region(generated) + after
    return Regenerated(text, old, new_text, _check(new_text, path), generated, notes)


def refresh(path=CELLS_FILE, *, fetch=None, probe=None, log=lambda message: None, jobs: int = 1) -> str:
    """Rewrite the released region of `path` from the package index; returns a one-paragraph
    summary. Without a probe, a cell keeps the unavailable reason recorded for the same pins."""
    path = Path(path)
    done = regenerate(path, fetch=fetch, probe=probe, log=log, jobs=jobs)
    if done.text != done.old_text:
        temporary = path.with_name(path.name + ".refreshing")
        temporary.write_text(done.text)
        temporary.replace(path)
    return _summary(path, done.old, done.new, done.notes, done.generated)
