"""The matrix report's data: a run folder (or a matrix.json) read into squares and families, the
counts every view is drawn from, and the sentences around the grid (one per producer, one per
consumer). matrix.json is `summary()` of it."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from prefixcheck.verdicts import FAIL, INVALID_ARTIFACT, KNOWN_ISSUE, PASS, UNSUPPORTED, fold_numbers

from .. import cells as cells_mod
from .legend import ASIDE, OUTCOMES, SEVERITY, STYLE, UNKNOWN_STYLE, VERDICTS


def collect(folder: Path) -> dict:
    """Everything the report draws, from a run folder (results/<consumer>.json, artifacts/<producer>/
    index.json, timings/), or, where the folder holds no results/ but a matrix.json (such as
    docs/matrix/), from that matrix.json: a report can be drawn again without the run."""
    folder = Path(folder)
    if not (folder / "results").is_dir() and (folder / "matrix.json").is_file():
        return from_summary(json.loads((folder / "matrix.json").read_text()))
    results = {p.stem: json.loads(p.read_text()) for p in sorted((folder / "results").glob("*.json"))}
    producers = {}
    for p in sorted((folder / "artifacts").glob("*/index.json")):
        producers[p.parent.name] = json.loads(p.read_text())
    timings = {p.stem: json.loads(p.read_text()) for p in sorted((folder / "timings").glob("*.json"))}
    return _data(results, producers, timings, cells_mod.source(folder / cells_mod.RUN_GRID))


def from_summary(summary: dict) -> dict:
    """The report's input rebuilt from a matrix.json: its rows (each names its consumer), the
    consumers' versions, the producers' failures and the timings."""
    results = {
        consumer: {
            "versions": versions,
            "rows": [
                {k: v for k, v in r.items() if k != "consumer"} for r in summary["rows"] if r["consumer"] == consumer
            ],
        }
        for consumer, versions in summary["versions"].items()
    }
    made_with = summary.get("producer_versions", {})
    producers = {
        cell: {"failed": failed, "versions": made_with.get(cell, {})}
        for cell, failed in summary.get("producer_failures", {}).items()
    }
    return _data(results, producers, summary.get("timings", {}), summary.get("grid_source"))


def release_order(name: str) -> tuple:
    """Cell names with their numbers compared as numbers: peft-0.21.2-tf-5.2 before -tf-5.10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


def _data(results: dict, producers: dict, timings: dict, source: dict | None = None) -> dict:
    """The grid: (producer, consumer) -> the result rows of that square; `source`: where the run's
    cells came from when not the committed file (cells.source: a grid made from the index)."""
    grid = {}
    for consumer, data in results.items():
        for row in data["rows"]:
            grid.setdefault((row["producer"], consumer), []).append(row)
    cells = sorted(set(results) | set(producers) | {p for p, _ in grid}, key=release_order)
    return {
        "cells": cells,
        "results": results,
        "producers": producers,
        "timings": timings,
        "grid": grid,
        "source": source,
    }


def grid_origin(data: dict) -> str | None:
    """One sentence on where the run's cells came from, when not the committed grid: made from the
    package index when, and which cells are new or moved since the committed baseline."""
    source = data.get("source")
    if not source:
        return None
    new, moved = source.get("new", []), source.get("moved", [])
    return (
        f"Cells made from the {source.get('source', 'package index')} at {source.get('made', '?')}, "
        f"not the committed {source.get('baseline', 'cells.toml')}: new since it: {', '.join(new) or 'none'}; "
        f"pins moved: {', '.join(moved) or 'none'}."
    )


def is_new(data: dict, cell: str) -> bool:
    """A cell the committed baseline does not have, or has with other pins (grid_origin)."""
    source = data.get("source") or {}
    return cell in source.get("new", []) or cell in source.get("moved", [])


def _reason(row: dict) -> str:
    """A short, groupable reason: the error with numbers and paths folded, or the issue id."""
    detail = row["detail"]
    if row["verdict"] == INVALID_ARTIFACT:
        detail = detail.split(": ", 1)[-1]
    if row["verdict"] == FAIL:
        detail = detail.split(":")[0]
    folded = fold_numbers(detail)
    return folded.replace("\n", " ").replace("|", "/")[:110]


def tally(rows: list[dict]) -> Counter:
    """Cases per verdict."""
    return Counter(r["verdict"] for r in rows)


def ordered(counts: Counter) -> list[tuple[str, int]]:
    """(verdict, cases) in drawing order, zero counts left out; verdicts this report does not
    know (a newer cellwork's) come last rather than being dropped."""
    known = [(v, counts[v]) for v in VERDICTS if counts.get(v)]
    return known + sorted((v, n) for v, n in counts.items() if v not in VERDICTS and n)


def style(verdict: str) -> tuple[str, str, str]:
    """(colour, emoji, meaning) of a verdict."""
    return STYLE.get(verdict, UNKNOWN_STYLE)


def worst(counts: Counter) -> str:
    """The most severe verdict present ("pass" when all pass)."""
    for verdict in SEVERITY:
        if counts.get(verdict):
            return verdict
    others = [v for v, _ in ordered(counts) if v != PASS]
    return others[0] if others else PASS


def counts_text(counts: Counter) -> str:
    """'40/49 pass, 7 fail, 2 known-issue': the passing share first, then every other verdict."""
    total = sum(counts.values())
    rest = [f"{n} {v}" for v, n in ordered(counts) if v != PASS]
    return ", ".join([f"{counts.get('pass', 0)}/{total} pass", *rest])


def issues_text(rows: list[dict]) -> str:
    """The known issues among `rows`: 'id' for one, 'id-a ×28, id-b ×2' for several."""
    ids = Counter(r.get("issue") or "?" for r in rows if r["verdict"] == KNOWN_ISSUE)
    if len(ids) == 1:
        return next(iter(ids))
    return ", ".join(f"{issue} ×{n}" for issue, n in ids.most_common())


def family(row: dict) -> str:
    """A case's family for the per-family view: its architecture and task."""
    return f"{row.get('arch') or '?'} {row.get('task') or '?'}"


def families(data: dict) -> dict[str, dict[tuple[str, str], list[dict]]]:
    """family -> (producer, consumer) -> rows, families sorted by architecture then task."""
    out: dict[str, dict] = {}
    for square, rows in sorted(data["grid"].items()):
        for row in rows:
            out.setdefault(family(row), {}).setdefault(square, []).append(row)
    return dict(sorted(out.items()))


def producers(data: dict) -> list[str]:
    """The cells whose adapters some consumer read, in cell order."""
    return [p for p in data["cells"] if any(sq[0] == p for sq in data["grid"])]


def consumers(data: dict) -> list[str]:
    """The cells that read adapters, in cell order."""
    return [c for c in data["cells"] if c in data["results"]]


def versions_text(data: dict, cell: str) -> str:
    """'peft 0.10.0 and transformers 4.40.2', from the cell's consume results or its produce index."""
    versions = data["results"].get(cell, {}).get("versions") or data["producers"].get(cell, {}).get("versions") or {}
    if not versions:
        return ""
    return f"peft {versions.get('peft', '?')} and transformers {versions.get('transformers', '?')}"


def _reproduced(rows: list[dict]) -> str:
    """'49 of 49' when every case passes; otherwise '3 of 28 reproduced, 25 known issues': a
    known issue is counted apart, never as reproduced."""
    counts = tally(rows)
    passed, known = counts.get(PASS, 0), counts.get(KNOWN_ISSUE, 0)
    if passed == len(rows):
        return f"{passed} of {len(rows)}"
    text = f"{passed} of {len(rows)} reproduced"
    return text + (f", {known} known issue{'s' if known != 1 else ''}" if known else "")


def sentences(data: dict) -> list[str]:
    """One plain sentence per consumer cell: from which cells it reproduces every adapter, part of
    them, or none (unsupported cases left out); known issues are counted apart from reproduced
    adapters, so a square of 3 passes and 25 known issues is not 'every adapter'."""
    out = []
    for consumer in consumers(data):
        versions = data["results"][consumer]["versions"]
        groups: dict[str, list[str]] = {"all": [], "some": [], "none": []}
        for producer in data["cells"]:
            rows = [r for r in data["grid"].get((producer, consumer), []) if r["verdict"] != UNSUPPORTED]
            if not rows:
                continue
            passed = tally(rows).get(PASS, 0)
            key = "all" if passed == len(rows) else "some" if passed else "none"
            groups[key].append(f"{producer} ({_reproduced(rows)})")
        label = f"peft {versions['peft']} with transformers {versions['transformers']} ({consumer})"
        parts = []
        if groups["all"]:
            parts.append("reproduces every adapter from " + ", ".join(groups["all"]))
        if groups["some"]:
            parts.append("only part of those from " + ", ".join(groups["some"]))
        if groups["none"]:
            parts.append("none from " + ", ".join(groups["none"]))
        out.append(f"{label} " + ("; ".join(parts) or "read no adapter") + ".")
    return out


def _outcome_entry(consumer: str, rows: list[dict], verdicts: tuple[str, ...]) -> str | None:
    """'peft-0.15.2 (7 of 49)' for the cases of one square that have one of `verdicts` ('all 49'
    when that is every case; known issues named), or None when none has."""
    hit = [r for r in rows if r["verdict"] in verdicts]
    if not hit:
        return None
    share = f"all {len(rows)}" if len(hit) == len(rows) else f"{len(hit)} of {len(rows)}"
    if verdicts == (KNOWN_ISSUE,):
        share += f": {issues_text(hit)}"
    return f"{consumer} ({share})"


def _outcome_clauses(data: dict, producer: str, groups: tuple) -> list[tuple[tuple[str, ...], str]]:
    """(verdicts, clause) for each group that has cases: the group's words, then every consumer
    with such cases."""
    clauses = []
    for words, verdicts in groups:
        entries = [
            _outcome_entry(consumer, data["grid"].get((producer, consumer), []), verdicts)
            for consumer in consumers(data)
        ]
        entries = [e for e in entries if e]
        if entries:
            clauses.append((verdicts, f"{words} " + ", ".join(entries)))
    return clauses


def producer_story(data: dict, producer: str) -> dict:
    """The parts of a producer's sentence: who (the cell and its versions), the clauses about
    PEFT's save/load (OUTCOMES) and those said apart (ASIDE), each clause with its verdicts so the
    HTML can colour it; producer_sentences joins the same parts into text."""
    versions = versions_text(data, producer)
    return {
        "who": f"Adapters saved with {producer}" + (f" ({versions})" if versions else ""),
        "main": _outcome_clauses(data, producer, OUTCOMES),
        "aside": _outcome_clauses(data, producer, ASIDE),
    }


def _story_text(story: dict) -> str:
    """A producer's story as one sentence (and one more for what is said apart)."""
    main = "; ".join(clause for _, clause in story["main"]) or "have no case any consumer could judge"
    text = f"{story['who']} {main}."
    if story["aside"]:
        text += " Apart from that: " + "; ".join(clause for _, clause in story["aside"]) + "."
    return text


def producer_sentences(data: dict) -> list[str]:
    """Per producer, the sentence a user holding its adapters wants: 'adapters saved with X load and
    compute the same in A, B; load but compute differently in C; fail to load in D; hit known
    issues in E (which)', then, apart, what is not about PEFT's save/load (inconclusive,
    base-mismatch, unsupported). Each consumer is named with its share of cases in every group it
    has cases in, so a mixed square reads as mixed."""
    return [_story_text(producer_story(data, p)) for p in producers(data)]


def summary(data: dict) -> dict:
    """matrix.json: the rows, the counts every view is drawn from (per square and per family in each
    square), and the sentences."""
    return {
        "cells": data["cells"],
        "versions": {c: r["versions"] for c, r in data["results"].items()},
        "timings": data["timings"],
        "grid_source": data.get("source"),
        "producer_failures": {c: p.get("failed", {}) for c, p in data["producers"].items()},
        "producer_versions": {c: p.get("versions", {}) for c, p in data["producers"].items()},
        "grid": {f"{p} -> {c}": dict(tally(rows)) for (p, c), rows in sorted(data["grid"].items())},
        "families": {
            name: {f"{p} -> {c}": dict(tally(rows)) for (p, c), rows in squares.items()}
            for name, squares in families(data).items()
        },
        "sentences": sentences(data),
        "producer_sentences": producer_sentences(data),
        "rows": [dict(r, consumer=c) for (p, c), rows in sorted(data["grid"].items()) for r in rows],
    }
