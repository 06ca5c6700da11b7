"""The released cells of `matrix/cells.toml`, made from the package index (`cells --refresh`).

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

Release data comes from the simple JSON API (PEP 691, upload times from PEP 700) of PyPI, or of the
index named by UV_INDEX_URL / PIP_INDEX_URL; `fetch` is injectable so the self-tests use recorded
answers (tests/selftest/data/releases/).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from prefixcheck.compat import tomllib

from . import cells as cells_mod
from .cells import CELLS_FILE

ROOT = Path(__file__).resolve().parents[1]
PYPI_SIMPLE = "https://pypi.org/simple/"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
INDEX_VARIABLES = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL")  # first one set wins
DEFAULT_ENVS = ROOT / "matrix-run" / "envs"  # where `python -m matrix run` keeps its envs: reused
BEGIN = "# >>> released cells: written by `python -m matrix cells --refresh` (matrix/releases.py); edits here are lost"
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


class ReleasesError(ValueError):
    """The package index cannot answer, or a version is not a release: one line naming which."""


@dataclass(frozen=True)
class Release:
    version: str
    uploaded: str  # ISO 8601 UTC time of the release's first (non-yanked) file upload


# --- the package index -------------------------------------------------------------------------


def index_url() -> str:
    """The simple index to ask: UV_INDEX_URL / UV_DEFAULT_INDEX / PIP_INDEX_URL, else PyPI, so a
    refresh sees the releases the environments will be built from."""
    for var in INDEX_VARIABLES:
        value = os.environ.get(var, "").strip()
        if value:
            return value.rstrip("/") + "/"
    return PYPI_SIMPLE


def project_url(package: str) -> str:
    """The simple-API page of `package` (PEP 503 normalised name) on the configured index."""
    return f"{index_url()}{canonicalize_name(package)}/"


@cache
def fetch_json(url: str) -> dict:
    """GET a simple-API page as JSON (PEP 691). Cached for the process: one request per package."""
    request = urllib.request.Request(url, headers={"Accept": SIMPLE_JSON, "User-Agent": "prefix-roundtrip"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:
        raise ReleasesError(f"{url}: the index answered HTTP {exc.code} ({exc.reason})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReleasesError(f"{url}: cannot reach the package index ({reason})") from None
    try:
        return json.loads(body)
    except ValueError:
        raise ReleasesError(f"{url}: not a simple-API JSON answer (does the index speak PEP 691?)") from None


def _memoized(fetch):
    """`fetch` answering each URL once: one request per package however often a run asks."""
    if fetch is None:
        return fetch_json  # already cached for the process
    if getattr(fetch, "memoized", False):
        return fetch
    answers: dict[str, dict] = {}

    def once(url: str) -> dict:
        if url not in answers:
            answers[url] = fetch(url)
        return answers[url]

    once.memoized = True
    return once


def _ask(package: str, fetch) -> dict:
    """The index's answer for `package`; any failure of `fetch` becomes a one-line ReleasesError."""
    url = project_url(package)
    try:
        page = (fetch or fetch_json)(url)
    except ReleasesError:
        raise
    except (OSError, ValueError) as exc:
        raise ReleasesError(f"{url}: cannot read {package}'s releases ({exc})".splitlines()[0]) from None
    if not isinstance(page, dict) or not isinstance(page.get("files"), list):
        raise ReleasesError(f"{url}: no 'files' list in the answer for {package}")
    return page


def _file_version(filename: str) -> Version | None:
    """The version a distribution file belongs to, or None for files that are not wheels/sdists."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def _utc(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (naive means UTC; a bare date is its midnight).
    Written out here because Python 3.10's fromisoformat takes neither 'Z' nor every fraction."""
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(?:\.(\d+))?)?(Z|[+-]\d\d:?\d\d)?", text.strip()
    )
    if not match:
        raise ReleasesError(f"{text!r} is not an ISO 8601 time")
    day, clock, fraction, zone = match.groups()
    stamp = f"{day}T{clock or '00:00'}"
    if fraction:
        stamp += "." + fraction[:6].ljust(6, "0")
    zone = "+00:00" if zone in (None, "Z") else zone[:3] + ":" + zone[-2:]
    return datetime.fromisoformat(stamp + zone).astimezone(timezone.utc)


def release_history(package: str, *, fetch=None) -> list[Release]:
    """Every final release of `package` (no pre-, dev- or release candidates, nothing yanked),
    ascending by version, each with the time its first file was uploaded."""
    page = _ask(package, fetch)
    first: dict[Version, tuple[datetime, str]] = {}
    for entry in page["files"]:
        version = _file_version(str(entry.get("filename", "")))
        if version is None or version.is_prerelease or entry.get("yanked"):
            continue  # is_prerelease covers dev releases and rcs too
        uploaded = entry.get("upload-time")
        if not uploaded:
            raise ReleasesError(
                f"{project_url(package)}: no upload-time for {entry['filename']} (PEP 700 index needed)"
            )
        when = _utc(uploaded)
        if version not in first or when < first[version][0]:
            first[version] = (when, uploaded)
    if not first:
        raise ReleasesError(f"{project_url(package)}: no final releases of {package}")
    return [Release(str(v), first[v][1]) for v in sorted(first)]


def versions_between(package: str, lo: str, hi: str, *, fetch=None) -> list[str]:
    """The releases of `package` from `lo` to `hi`, both included, ascending (a bisect's range)."""
    history = release_history(package, fetch=fetch)
    known = {Version(r.version) for r in history}
    for end in (lo, hi):
        if _version(end, package) not in known:
            raise ReleasesError(f"{package} {end} is not a final release on {project_url(package)}")
    low, high = Version(lo), Version(hi)
    if low > high:
        raise ReleasesError(f"{package}: {lo} comes after {hi}; give the older version first")
    return [r.version for r in history if low <= Version(r.version) <= high]


def _version(text: str, package: str = "version") -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise ReleasesError(f"{package}: {text!r} is not a version") from None


def _minor(version: str) -> tuple[int, int]:
    release = Version(version).release
    return (release[0], release[1] if len(release) > 1 else 0)


def latest_patches(releases: list[Release], minimum: str) -> list[Release]:
    """The latest patch of every minor from `minimum`'s minor on, ascending: the release of each
    line a user is told to upgrade to (later patches only fix bugs)."""
    newest: dict[tuple[int, int], Release] = {}
    for release in releases:
        minor = _minor(release.version)
        if minor >= _minor(minimum) and (
            minor not in newest or Version(release.version) > Version(newest[minor].version)
        ):
            newest[minor] = release
    return [newest[m] for m in sorted(newest)]


def newest_before(releases: list[Release], when: str) -> Release:
    """The highest version uploaded at or before `when`: what `pip install` picked at that time
    (by version, not upload order: a late patch of an older minor does not win)."""
    limit = _utc(when)
    chosen = [r for r in releases if _utc(r.uploaded) <= limit]
    if not chosen:
        raise ReleasesError(f"no release uploaded by {when}")
    return max(chosen, key=lambda r: Version(r.version))


def _release(package: str, version: str, fetch) -> Release:
    for release in release_history(package, fetch=fetch):
        if Version(release.version) == _version(version, package):
            return release
    raise ReleasesError(f"{package} {version} is not a final release on {project_url(package)}")


def accelerate_for(peft: str, transformers: str, *, fetch=None) -> str:
    """The accelerate a user installing `peft` and `transformers` got: the newest one uploaded by
    the later of the two (a cell should not pair old code with a far newer accelerate)."""
    when = max(
        (_release("peft", peft, fetch).uploaded, _release("transformers", transformers, fetch).uploaded), key=_utc
    )
    return newest_before(release_history("accelerate", fetch=fetch), when).version


# Extra pins, each a measured rule: (peft specifier, transformers specifier, pins, one-line reason).
# Measured 2026-11-29 and not needed: "numpy<2", which the hand-made cells gave transformers 4.40.2
# and 4.45.2: the probe, `matrix produce`/`consume` (llama, gpt2, t5) and the Trainer import give
# the same results under numpy 2.4.6 as under 1.26.4 (peft 0.10.0 / 0.13.2).
EXTRA_RULES: tuple[tuple[str, str, tuple[str, ...], str], ...] = ()


def extras_for(peft: str, transformers: str) -> list[str]:
    """The extra pins of a pair: those of every EXTRA_RULES rule whose specifiers both match it."""
    extras: list[str] = []
    for peft_spec, transformers_spec, pins, _why in EXTRA_RULES:
        if Version(peft) in SpecifierSet(peft_spec) and Version(transformers) in SpecifierSet(transformers_spec):
            extras += [pin for pin in pins if pin not in extras]
    return extras


def stack_minimum(package: str) -> str:
    """The oldest `package` the suite supports: the `>=` bound in pyproject's `stack` extra, so
    the matrix starts where the suite's support starts (peft 0.10, transformers 4.40)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project.get("optional-dependencies", {}).get("stack", []):
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == canonicalize_name(package):
            for spec in requirement.specifier:
                if spec.operator == ">=":
                    return spec.version
    raise ReleasesError(f"pyproject.toml: the stack extra gives no '>=' minimum for {package}")


# --- the cells -----------------------------------------------------------------------------------


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
        return latest_patches(history, minimum)[0]
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
    known-good cell (default: matrix/cells.toml's) with its pins; `probe` failures as unavailable."""
    if known_good is None:
        known_good = cells_mod.load().known_good()
    return _generate(fetch, probe, known_good)[0]


# --- the probe -------------------------------------------------------------------------------------


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


# --- the cells file --------------------------------------------------------------------------------


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
    with tempfile.TemporaryDirectory() as folder:
        trial = Path(folder) / "cells.toml"
        trial.write_text(text)
        try:
            return cells_mod.load(trial)
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


def refresh(path=CELLS_FILE, *, fetch=None, probe=None, log=lambda message: None, jobs: int = 1) -> str:
    """Rewrite the released region of `path` from the package index; returns a one-paragraph
    summary. Without a probe, a cell keeps the unavailable reason recorded for the same pins."""
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
    new = _check(new_text, path)
    if new_text != text:
        temporary = path.with_name(path.name + ".refreshing")
        temporary.write_text(new_text)
        temporary.replace(path)
    return _summary(path, old, new, notes, generated)


# --- the command ---------------------------------------------------------------------------------


def add_refresh_arguments(parser) -> None:
    """`python -m matrix cells --refresh` and its options, added to the `cells` subcommand."""
    parser.add_argument("--refresh", action="store_true", help="rewrite the released cells from the package index")
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="with --refresh: build and probe nothing; cells keep the unavailable reasons recorded for the same pins",
    )
    parser.add_argument("--envs", default=str(DEFAULT_ENVS), help="with --refresh: where the probe's envs live (kept)")
    parser.add_argument("--probe-jobs", type=int, default=2, help="with --refresh: cells probed at once (default 2)")
    parser.add_argument("--file", default=str(CELLS_FILE), help="with --refresh: the cells file to rewrite")


def refresh_command(args) -> int:
    """Run the refresh, print its summary and wall time; index problems end in one line, exit 2."""
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
