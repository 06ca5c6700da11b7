"""Adapters saved by older releases, kept in the repository and read by every property run.

As pandas keeps pickles written by each old release and reads them all at HEAD: the artifacts the
released matrix cells produced (safetensors + JSON, tens of kilobytes each) live under
`tests/legacy/artifacts/<producer cell>/<case>/`, and `tests/legacy/expected.json` records the
verdict each consumer cell gave each of them in the matrix run they came from. The property
suite's default run (tests/properties/test_legacy_artifacts.py) judges every one of them under the
installed versions with the matrix's own consume step, so `tox -e peft-latest` answers "do
adapters saved by older PEFT still load and compute the same?" without an old environment.

How a verdict reads (`judge`):
- pass, known-issue (a registry entry, named), unsupported, inconclusive: passed;
- a bad verdict (fail, load-error, base-mismatch, invalid-artifact) that the matrix recorded for
  these very versions, with the same verdict and the same failure signature (numbers folded):
  `recorded`, an incompatibility the published matrix already shows, not a new one;
  on versions the matrix has no column for (PEFT main, a pull request, a new release), the
  newest recorded consumer's verdicts stand in for them, case by case, skipping a known-issue
  record whose entry does not apply to these versions (`record_for`);
- any other bad verdict: failed (a new incompatibility, or the same one failing another way);
- a good verdict where the matrix recorded a bad one for these versions: failed as stale (the
  record is out of date: regenerate it), as a stale registry entry is.

Regenerate from a finished `python -m matrix run` (the PEFT axis, one cell per PEFT minor, is what
is kept; every consumer in the run gets its column):
    python -m matrix legacy RUN_DIR
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection
from pathlib import Path

from packaging.version import InvalidVersion, Version

from prefixcheck.verdicts import FAILED, GOOD_ROWS, KNOWN_ISSUE, PASSED, RECORDED, fold_numbers

from .cells import pinned_projection

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT / "tests" / "legacy"
EXPECTED = LEGACY / "expected.json"
SCHEMA = 1


class LegacyError(ValueError):
    """The committed legacy artifacts or their record cannot be used; the message names the file."""


def versions_key(versions: dict) -> str:
    return f"peft {versions['peft']} / transformers {versions['transformers']}"


def signature(row: dict) -> str:
    """What a bad verdict looks like, numbers folded: the same incompatibility, not another."""
    return fold_numbers(row.get("detail", "")).split("\n")[0][:160]


def folders(root: Path = LEGACY / "artifacts") -> list[tuple[str, Path]]:
    """(producer cell, artifact folder) for every committed legacy artifact."""
    if not root.is_dir():
        return []
    return [(p.name, f) for p in sorted(root.iterdir()) if p.is_dir() for f in sorted(p.iterdir()) if f.is_dir()]


def one_per_release(found: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """One artifact per producer, the task head rotating from release to release (the first
    artifact, by case key, of that task): every release and every task head at least once, at
    a twenty-fifth of the cost."""
    by_producer: dict[str, list[tuple[str, Path, str]]] = {}
    for producer, folder in found:
        task = json.loads((folder / "manifest.json").read_text())["case"]["task"]
        by_producer.setdefault(producer, []).append((producer, folder, task))
    tasks = sorted({task for rows in by_producer.values() for *_, task in rows})
    out = []
    for i, (producer, rows) in enumerate(sorted(by_producer.items())):
        wanted = tasks[i % len(tasks)]
        _, folder, _ = next((r for r in rows if r[2] == wanted), rows[0])
        out.append((producer, folder))
    return out


def load_expected(path: Path = EXPECTED) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LegacyError(f"{path}: cannot read the legacy record ({exc.__class__.__name__}: {exc})") from None
    if data.get("schema") != SCHEMA or not isinstance(data.get("consumers"), dict):
        raise LegacyError(f"{path}: schema {data.get('schema')!r} or no 'consumers'; this suite reads schema {SCHEMA}")
    return data


def _version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


def record_for(expected: dict, versions: dict, live: Collection[str] | None = None) -> tuple[str, dict, bool]:
    """(consumer label, its verdicts by 'producer/case', exact) for the installed versions: the
    matrix column with these very versions (exact=True); else, case by case, the newest recorded
    consumer whose record still speaks for these versions (exact=False; each record names its
    `column`). A known-issue record resting on an entry that does not apply here (`live`: the ids
    of the entries that do; None: every entry) says nothing about these versions: the entry masked
    how the square computes, so the next newest column stands in (PEFT 0.22.0 fixed the entries
    that masked every peft-latest square of transformers 5.24)."""
    consumers = expected["consumers"]
    key = versions_key(versions)
    for label, column in consumers.items():
        if versions_key(column["versions"]) == key:
            return label, column["rows"], True
    newest_first = sorted(consumers, key=lambda c: _release_order(consumers[c]["versions"]), reverse=True)
    rows: dict[str, dict] = {}
    for label in newest_first:
        for case, record in consumers[label]["rows"].items():
            if case not in rows and _speaks_for(record, live):
                rows[case] = {**record, "column": label}
    return newest_first[0], rows, False


def _release_order(versions: dict) -> tuple[Version, Version]:
    return _version(versions["peft"]), _version(versions["transformers"])


def _speaks_for(record: dict, live: Collection[str] | None) -> bool:
    """Whether a recorded verdict says anything about versions where only the `live` entries apply."""
    return live is None or record.get("verdict") != KNOWN_ISSUE or record.get("issue") in live


def judge(row: dict, recorded: dict | None, exact: bool) -> tuple[str, str]:
    """(outcome, why) for one consume row against what the matrix recorded for it."""
    verdict = row["verdict"]
    if verdict in GOOD_ROWS:
        if exact and recorded and recorded["verdict"] not in GOOD_ROWS:
            return FAILED, (
                f"stale record: the matrix recorded {recorded['verdict']} ({recorded['signature']}) for these "
                f"versions, and it now gives {verdict}; regenerate tests/legacy (python -m matrix legacy RUN_DIR)"
            )
        return PASSED, verdict if verdict != KNOWN_ISSUE else f"known-issue {row.get('issue')}"
    if recorded and recorded["verdict"] == verdict and recorded["signature"] == signature(row):
        return RECORDED, f"{verdict} as the matrix records it: {signature(row)}"
    was = f"the matrix recorded {recorded['verdict']}" if recorded else "the matrix has no record of it"
    return FAILED, f"{verdict}: {row.get('detail', '')[:300]} ({was})"


def kept(producer: str, meta: dict) -> bool:
    """A pinned case (every architecture x task at one tiny size, the same list from every release)
    with the projection cells.pinned_projection() gives its producer, which is the one a producer
    makes (runs from before that rule made both): about 25 artifacts a release, 9 MB for twelve."""
    if meta.get("origin") != "pinned":
        return False
    case = meta["case"]
    return case["prefix"]["prefix_projection"] == pinned_projection(producer, case["model"]["arch"], case["task"])


def write(run: Path, cells: list[str], out: Path = LEGACY, keep=None) -> dict:
    """Copy the artifacts of `cells` from a finished run into `out`, with the verdicts of every
    consumer that judged all of them (a transformers-axis cell judges only its own and the
    anchors', cells.Cell.judges: no column). `keep(producer, manifest dict) -> bool` picks which
    artifacts to keep (all by default)."""
    results = run / "results"
    if not results.is_dir():
        raise LegacyError(f"{run}: no results/ folder: not a finished `python -m matrix run`")
    if (out / "artifacts").exists():
        shutil.rmtree(out / "artifacts")
    kept: set[str] = set()
    for producer in cells:
        source = run / "artifacts" / producer
        if not source.is_dir():
            raise LegacyError(f"{source}: no artifacts from cell {producer!r} in this run")
        for folder in sorted(p for p in source.iterdir() if p.is_dir()):
            meta = json.loads((folder / "manifest.json").read_text())
            if keep is None or keep(producer, meta):
                shutil.copytree(folder, out / "artifacts" / producer / folder.name)
                kept.add(f"{producer}/{folder.name}")
    consumers = {}
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        rows = {
            f"{r['producer']}/{r['case']}": {
                "verdict": r["verdict"],
                "issue": r.get("issue"),
                "signature": signature(r),
            }
            for r in data["rows"]
            if f"{r['producer']}/{r['case']}" in kept
        }
        if set(rows) == kept:
            consumers[path.stem] = {"versions": data["versions"], "rows": rows}
    if not consumers:
        raise LegacyError(f"{run}: no consumer judged every artifact of {', '.join(cells)}")
    expected = {"schema": SCHEMA, "cells": cells, "consumers": consumers}
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    return expected
