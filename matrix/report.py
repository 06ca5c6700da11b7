"""The matrix report: matrix.json, matrix.md (a GitHub job summary) and matrix.html (a
self-contained heatmap, producer x consumer; each square opens the cases behind it).

Every view shows a square's *mix* of verdicts, never only its worst one: 1 failure in 49 and 48
in 49 must not look alike. The HTML draws each square as a bar split by the share of each
verdict (counts in its tooltip, the cases by architecture x task on click); matrix.md draws the
same split with coloured-square emoji (a job summary renders Markdown, not HTML colours); matrix.json
holds the counts both are drawn from. Around the grid: one sentence per producer (where its
adapters load and compute the same, compute differently, fail to load, hit which known issues),
one per consumer (what it reproduces, known issues counted apart), and a per-family view
(architecture x task by consumer, one small square per producer) that shows which families
break between two releases."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

# The verdicts in the order bars are drawn: what computes the same, then what breaks (differs,
# cannot load), then what is known or cannot be judged, then what is not PEFT's doing.
VERDICTS = (
    "pass",
    "fail",
    "load-error",
    "invalid-artifact",
    "known-issue",
    "inconclusive",
    "base-mismatch",
    "unsupported",
)

# verdict -> (HTML colour, the Markdown emoji of the same hue, what it means to a reader)
STYLE = {
    "pass": ("#43a047", "🟩", "loads and computes the same"),
    "fail": ("#e53935", "🟥", "loads but computes differently"),
    "load-error": ("#795548", "🟫", "fails to load"),
    "invalid-artifact": ("#263238", "⬛", "the artifact cannot be trusted"),
    "known-issue": ("#fb8c00", "🟧", "fails the way a known issue says"),
    "inconclusive": ("#fdd835", "🟨", "computes the same, but the prefix moves outputs too little to tell"),
    "base-mismatch": ("#8e24aa", "🟪", "the base model alone computes differently (not PEFT's doing)"),
    "unsupported": ("#bdbdbd", "⬜", "the consumer cannot build the case"),
}
UNKNOWN_STYLE = ("#90a4ae", "❔", "a verdict this report does not know")
NO_CASES = "➖"  # Markdown: a producer with no case of that family in that consumer

# The worst verdict first: what a small group (a family in one square) is shown as in Markdown.
SEVERITY = ("fail", "load-error", "invalid-artifact", "base-mismatch", "known-issue", "inconclusive", "unsupported")

# The producer sentence's groups: what a user wants to know, in the order they want it.
OUTCOMES = (
    ("load and compute the same in", ("pass",)),
    ("load but compute differently in", ("fail",)),
    ("fail to load in", ("load-error", "invalid-artifact")),
    ("hit known issues in", ("known-issue",)),
)
# ...and what is said apart, since it is not about PEFT's save/load.
ASIDE = (
    ("the prefix moves outputs too little to tell (inconclusive) in", ("inconclusive",)),
    ("the base model alone computes differently (not PEFT's doing) in", ("base-mismatch",)),
    ("the consumer cannot build the case (unsupported) in", ("unsupported",)),
)

BROWSERS = (
    "chromium-headless-shell",
    "chrome-headless-shell",
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
)


# -- reading a run ------------------------------------------------------------------------------


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
    return _data(results, producers, timings)


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
    return _data(results, producers, summary.get("timings", {}))


def release_order(name: str) -> tuple:
    """Cell names with their numbers compared as numbers: peft-0.21.2-tf-5.2 before -tf-5.10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


def _data(results: dict, producers: dict, timings: dict) -> dict:
    """The grid: (producer, consumer) -> the result rows of that square."""
    grid = {}
    for consumer, data in results.items():
        for row in data["rows"]:
            grid.setdefault((row["producer"], consumer), []).append(row)
    cells = sorted(set(results) | set(producers) | {p for p, _ in grid}, key=release_order)
    return {"cells": cells, "results": results, "producers": producers, "timings": timings, "grid": grid}


def fold_numbers(text: str) -> str:
    """Numbers folded to N, so failures that differ only in sizes or values group together."""
    return re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "N", text or "")


def _reason(row: dict) -> str:
    """A short, groupable reason: the error with numbers and paths folded, or the issue id."""
    detail = row["detail"]
    if row["verdict"] == "invalid-artifact":
        detail = detail.split(": ", 1)[-1]
    if row["verdict"] == "fail":
        detail = detail.split(":")[0]
    folded = fold_numbers(detail)
    return folded.replace("\n", " ").replace("|", "/")[:110]


# -- counting -----------------------------------------------------------------------------------


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
    others = [v for v, _ in ordered(counts) if v != "pass"]
    return others[0] if others else "pass"


def counts_text(counts: Counter) -> str:
    """'40/49 pass, 7 fail, 2 known-issue': the passing share first, then every other verdict."""
    total = sum(counts.values())
    rest = [f"{n} {v}" for v, n in ordered(counts) if v != "pass"]
    return ", ".join([f"{counts.get('pass', 0)}/{total} pass", *rest])


def issues_text(rows: list[dict]) -> str:
    """The known issues among `rows`: 'id' for one, 'id-a ×28, id-b ×2' for several."""
    ids = Counter(r.get("issue") or "?" for r in rows if r["verdict"] == "known-issue")
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


# -- sentences ----------------------------------------------------------------------------------


def _reproduced(rows: list[dict]) -> str:
    """'49 of 49' when every case passes; otherwise '3 of 28 reproduced, 25 known issues': a
    known issue is counted apart, never as reproduced."""
    counts = tally(rows)
    passed, known = counts.get("pass", 0), counts.get("known-issue", 0)
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
            rows = [r for r in data["grid"].get((producer, consumer), []) if r["verdict"] != "unsupported"]
            if not rows:
                continue
            passed = tally(rows).get("pass", 0)
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
    if verdicts == ("known-issue",):
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


# -- matrix.json --------------------------------------------------------------------------------


def summary(data: dict) -> dict:
    """matrix.json: the rows, the counts every view is drawn from (per square and per family in each
    square), and the sentences."""
    return {
        "cells": data["cells"],
        "versions": {c: r["versions"] for c, r in data["results"].items()},
        "timings": data["timings"],
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


def write(folder: Path) -> dict:
    """matrix.json, matrix.md and matrix.html in `folder`, from the run in it (see collect)."""
    folder = Path(folder)
    data = collect(folder)
    out = summary(data)
    (folder / "matrix.json").write_text(json.dumps(out, indent=1, sort_keys=True))
    (folder / "matrix.md").write_text(markdown(data))
    (folder / "matrix.html").write_text(heatmap(data))
    return out


# -- matrix.md ----------------------------------------------------------------------------------


def slots(counts: Counter, width: int) -> list[str]:
    """`width` blocks shared out by the verdicts' shares (largest remainder), every verdict present
    getting at least one: a single failure among 49 still shows."""
    present = ordered(counts)
    total = sum(n for _, n in present)
    if not total:
        return []
    exact = {v: n * width / total for v, n in present}
    given = {v: max(1, int(x)) for v, x in exact.items()}
    while sum(given.values()) < width:
        given[max(exact, key=lambda v: exact[v] - given[v])] += 1
    while sum(given.values()) > width and any(n > 1 for n in given.values()):
        given[max((v for v in given if given[v] > 1), key=lambda v: given[v] - exact[v])] -= 1
    return [v for v, _ in present for _ in range(given[v])]


def emoji_bar(counts: Counter, width: int = 10) -> str:
    """A square's mix as `width` coloured-square emoji."""
    return "".join(style(v)[1] for v in slots(counts, width))


def _md_key() -> str:
    """The emoji legend."""
    return " · ".join(f"{e} {v}: {meaning}" for v, (_, e, meaning) in STYLE.items())


def _md_grid(data: dict) -> list[str]:
    """The producer x consumer table: each square's emoji bar and its counts."""
    cells = data["cells"]
    lines = ["| producer \\ consumer | " + " | ".join(f"`{c}`" for c in cells) + " |", "|---" * (len(cells) + 1) + "|"]
    for producer in cells:
        squares = []
        for consumer in cells:
            rows = data["grid"].get((producer, consumer), [])
            squares.append(f"{emoji_bar(tally(rows))} {counts_text(tally(rows))}" if rows else "—")
        lines.append(f"| `{producer}` | " + " | ".join(squares) + " |")
    return lines


def _md_families(data: dict) -> list[str]:
    """Family x consumer: one emoji per producer (its worst verdict there), so a family that
    breaks between two releases shows as a coloured block in that consumer's column."""
    order, readers = producers(data), consumers(data)
    lines = [
        "Rows: architecture and task. Columns: consumer. In each cell one block per producer, in this order: "
        + ", ".join(f"{i} `{p}`" for i, p in enumerate(order, 1))
        + f". A block is the worst verdict of that family's cases in that square (matrix.html splits it); {NO_CASES} no case.",
        "",
        "| architecture, task | " + " | ".join(f"`{c}`" for c in readers) + " |",
        "|---" * (len(readers) + 1) + "|",
    ]
    for name, squares in families(data).items():
        cells = []
        for consumer in readers:
            blocks = [squares.get((p, consumer)) for p in order]
            cells.append("".join(style(worst(tally(b)))[1] if b else NO_CASES for b in blocks))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def markdown(data: dict) -> str:
    """matrix.md, a GitHub job summary: Markdown only (emoji stand in for colours)."""
    cells = data["cells"]
    lines = [
        "# Prefix-tuning compatibility matrix",
        "",
        "Rows: producer (saved the adapter). Columns: consumer (loaded it). Each square: ten blocks split "
        "by the share of its cases in each verdict (any verdict present gets at least one), then the counts.",
        "",
        _md_key(),
        "",
        *_md_grid(data),
        "",
        "## Where adapters saved with each cell work",
        "",
        *[f"- {s}" for s in producer_sentences(data)],
        "",
        "## By architecture and task",
        "",
        *_md_families(data),
        "",
        "## In plain words: what each cell reproduces",
        "",
        *[f"- {s}" for s in sentences(data)],
        "",
        "## Versions and times",
        "",
        "| cell | peft | transformers | env s | produce s | consume s |",
        "|---|---|---|---|---|---|",
    ]
    for cell in cells:
        v = data["results"].get(cell, {}).get("versions", {})
        t = data["timings"].get(cell, {})
        if "produce_consume_s" in t:  # both in one process (matrix/runner.py)
            stages = f"{t['produce_consume_s']:.1f} (with consume, one process) | — |"
        else:
            stages = f"{t.get('produce_s', 0):.1f} | {t.get('consume_s', 0):.1f} |"
        lines.append(
            f"| `{cell}` | {v.get('peft', '')} | {v.get('transformers', '')} | {t.get('env_s', 0):.1f} | {stages}"
        )
    lines += _md_producer_failures(data) + _md_reasons(data)
    return "\n".join(lines) + "\n"


def _md_producer_failures(data: dict) -> list[str]:
    """The cases a producer's own versions could not even make, grouped by folded error."""
    failures = [
        (cell, _reason({"verdict": "load-error", "detail": why}))
        for cell, index in data["producers"].items()
        for why in index.get("failed", {}).values()
    ]
    if not failures:
        return []
    lines = [
        "",
        "## Cases a cell could not even produce",
        "",
        "The producer's own PEFT/transformers failed on these cases, so no artifact exists for them.",
        "",
        "| producer | error | cases |",
        "|---|---|---|",
    ]
    for (cell, why), n in sorted(Counter(failures).items(), key=lambda kv: (kv[0][0], -kv[1])):
        lines.append(f"| `{cell}` | {why} | {n} |")
    return lines


def _md_reasons(data: dict) -> list[str]:
    """Why squares are not all green: the commonest issue ids and folded errors."""
    reasons = Counter(
        (r["verdict"], r.get("issue") or _reason(r))
        for rows in data["grid"].values()
        for r in rows
        if r["verdict"] not in ("pass", "unsupported")
    )
    if not reasons:
        return []
    lines = ["", "## Why squares are not green", "", "| verdict | issue or error | cases |", "|---|---|---|"]
    for (verdict, why), n in reasons.most_common(30):
        lines.append(f"| {verdict} | {why} | {n} |")
    return lines


# -- matrix.html --------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:16px 24px;color:#212121}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 6px}p{margin:4px 0;max-width:75em}
.key{display:flex;flex-wrap:wrap;gap:4px 16px;margin:10px 0;font-size:13px}
.key span{display:inline-flex;align-items:center}
.chip{display:inline-block;width:14px;height:14px;border-radius:3px;margin-right:5px}
table{border-collapse:separate;border-spacing:6px 4px}
th{text-align:left;font-weight:600;vertical-align:bottom;white-space:nowrap}
th small{display:block;font-weight:400;color:#666;font-size:11px}
th.row{vertical-align:middle;padding-right:6px}
td.sq{position:relative;vertical-align:top;width:168px;min-width:150px}
td.none{color:#999;text-align:center;vertical-align:middle}
summary{list-style:none;cursor:pointer;display:block}summary::-webkit-details-marker{display:none}
.bar{display:flex;height:32px;border-radius:4px;overflow:hidden;background:#eee}
.bar i{display:block;min-width:3px}
td.self .bar{box-shadow:0 0 0 2px #fff,0 0 0 4px #616161}
.lbl{display:block;font-size:13px;margin-top:2px;white-space:nowrap}.lbl b{font-size:15px}
.sub{display:block;font-size:11px;color:#555;min-height:1.4em;line-height:1.3}.sub span{white-space:nowrap}
details[open] summary .bar{box-shadow:0 0 0 2px #fff,0 0 0 4px #1565c0}
.pop{position:absolute;top:calc(100% - 4px);left:0;z-index:5;width:48em;max-height:70vh;overflow:auto;background:#fff;
border:1px solid #9e9e9e;border-radius:4px;box-shadow:0 6px 20px rgba(0,0,0,.25);padding:8px 10px;font-size:12px}
td.flip .pop{left:auto;right:0}
.pop table{border-spacing:4px 1px}.pop td{vertical-align:middle}.pop td:first-child{white-space:nowrap}
.pop ul{padding-left:18px;margin:6px 0}.pop li{margin:2px 0}
.mini{display:flex;width:110px;height:12px;border-radius:2px;overflow:hidden;background:#eee}.mini i{min-width:2px}
ul.words li{margin:3px 0 10px;max-width:80em}.cl{display:block;padding-left:4px}.cl .chip{margin-right:2px}.cl.aside{color:#666;margin-top:2px}
table.fam{border-collapse:collapse}table.fam td,table.fam th{padding:2px 8px}
table.fam tr:nth-child(even){background:#f4f4f4}table.fam tr:hover{background:#e3f2fd}
table.fam th.row{font-weight:400;font-size:13px}
.minis{display:flex;gap:3px}
.m{display:flex;flex-direction:column;width:15px;height:15px;border-radius:2px;overflow:hidden}
.m i{display:block;min-height:2px}
.m.empty{box-shadow:inset 0 0 0 1px #d0d0d0}
.m.self{box-shadow:0 0 0 1px #fff,0 0 0 2px #616161}
.num{display:inline-block;width:15px;margin-right:3px;text-align:center;font-size:10px;color:#666;font-weight:400}
"""


def _segments(counts: Counter, total: int, what: str) -> str:
    """A bar's segments: one <i> per verdict, grown by its count, titled with its share."""
    return "".join(
        f"<i style='flex:{n};background:{style(v)[0]}' title='{html.escape(what)}: {n} of {total} {html.escape(v)}'></i>"
        for v, n in ordered(counts)
    )


def _key_html() -> str:
    """The colour legend, with what each verdict means to a reader."""
    return "".join(
        f"<span><i class=chip style='background:{colour}'></i><b>{v}</b>&nbsp;— {html.escape(meaning)}</span>"
        for v, (colour, _, meaning) in STYLE.items()
    )


def _cell_header(data: dict, cell: str, number: int | None = None) -> str:
    """A cell's name and its versions; the producer number the family view uses."""
    versions = data["results"].get(cell, {}).get("versions") or data["producers"].get(cell, {}).get("versions") or {}
    small = f"peft {versions['peft']} · tf {versions['transformers']}" if versions else ""
    num = f"<span class=num>{number}</span>" if number else ""
    return f"{num}{html.escape(cell)}" + (f"<small>{html.escape(small)}</small>" if small else "")


def _issue_link(row: dict) -> str:
    name = html.escape(row["issue"])
    ref = row.get("reference") or ""
    return f"<a href='{html.escape(ref)}'>{name}</a>" if ref.startswith("https://") else f"{name} (found by this suite)"


def _family_rows_html(rows: list[dict]) -> str:
    """A square opened: one row per architecture x task, its own bar, counts and known issues."""
    by_family: dict[str, list[dict]] = {}
    for row in rows:
        by_family.setdefault(family(row), []).append(row)
    out = []
    for name, group in sorted(by_family.items()):
        counts = tally(group)
        issues = issues_text(group) if counts.get("known-issue") else ""
        out.append(
            f"<tr><td>{html.escape(name)}</td><td><span class=mini>{_segments(counts, len(group), name)}</span></td>"
            f"<td>{html.escape(counts_text(counts))}</td><td><i>{html.escape(issues)}</i></td></tr>"
        )
    return "<table>" + "".join(out) + "</table>"


def _cases_html(rows: list[dict]) -> str:
    """The cases that did not pass, worst verdicts first, each with its detail or known issue."""
    rank = {v: i for i, v in enumerate(SEVERITY)}
    items = "".join(
        f"<li><b>{html.escape(r['verdict'])}</b> {html.escape(r['arch'])}/{html.escape(r['task'])}"
        f"{' proj' if r['projection'] else ''} <code>{html.escape(r['case'])}</code>"
        + (f" <i>{_issue_link(r)}</i>" if r.get("issue") else "")
        + (f"<br><small>{html.escape(r['detail'])}</small>" if r["detail"] else "")
        + "</li>"
        for r in sorted(rows, key=lambda r: rank.get(r["verdict"], len(rank)))
        if r["verdict"] != "pass"
    )
    return f"<ul>{items or '<li>every case passes</li>'}</ul>"


def _square_html(data: dict, producer: str, consumer: str, flip: bool) -> str:
    """One square: a bar split by the share of each verdict, the passing count, the other counts;
    its title has every count; a click opens its families and its cases."""
    rows = data["grid"].get((producer, consumer), [])
    if not rows:
        return "<td class=none>—</td>"
    counts = tally(rows)
    where = f"{producer} → {consumer}"
    title = f"{where}: " + counts_text(counts)
    sub = " · ".join(f"<span>{n}&nbsp;{html.escape(v)}</span>" for v, n in ordered(counts) if v != "pass")
    classes = "sq" + (" self" if producer == consumer else "") + (" flip" if flip else "")
    return (
        f"<td class='{classes}'><details><summary title='{html.escape(title)}'>"
        f"<span class=bar>{_segments(counts, len(rows), where)}</span>"
        f"<span class=lbl><b>{counts.get('pass', 0)}</b>/{len(rows)} pass</span>"
        f"<span class=sub>{sub}</span></summary>"
        f"<div class=pop><b>{html.escape(title)}</b>{_family_rows_html(rows)}{_cases_html(rows)}</div>"
        "</details></td>"
    )


def _grid_html(data: dict) -> str:
    """The producer x consumer heatmap."""
    cells = data["cells"]
    numbers = {p: i for i, p in enumerate(producers(data), 1)}
    head = "".join(f"<th>{_cell_header(data, c)}</th>" for c in cells)
    body = []
    for producer in cells:
        tds = "".join(
            _square_html(data, producer, consumer, flip=i >= len(cells) / 2) for i, consumer in enumerate(cells)
        )
        body.append(f"<tr><th class=row>{_cell_header(data, producer, numbers.get(producer))}</th>{tds}</tr>")
    return f"<table class=grid><tr><th>producer ↓ consumer →</th>{head}</tr>{''.join(body)}</table>"


def _mini_html(rows: list[dict] | None, producer: str, consumer: str, name: str) -> str:
    """A family's small square in one producer -> consumer square, split top to bottom by share."""
    if not rows:
        return f"<span class='m empty' title='{html.escape(f'{producer} → {consumer}, {name}: no case')}'></span>"
    counts = tally(rows)
    title = f"{producer} → {consumer}, {name}: {counts_text(counts)}"
    if counts.get("known-issue"):
        title += f" ({issues_text(rows)})"
    segments = "".join(f"<i style='flex:{n};background:{style(v)[0]}'></i>" for v, n in ordered(counts))
    self_cls = " self" if producer == consumer else ""
    return f"<span class='m{self_cls}' title='{html.escape(title)}'>{segments}</span>"


def _story_html(story: dict) -> str:
    """A producer's sentence with each clause on its own line behind the colour of its verdicts:
    the same words as producer_sentences, laid out to be scanned."""

    def clause(verdicts: tuple[str, ...], text: str, end: str) -> str:
        chips = "".join(f"<i class=chip style='background:{style(v)[0]}'></i>" for v in verdicts)
        return f"<span class=cl>{chips}{html.escape(text)}{end}</span>"

    main = story["main"] or [((), "have no case any consumer could judge")]
    lines = [clause(v, t, ";" if i < len(main) - 1 else ".") for i, (v, t) in enumerate(main)]
    aside = [clause(v, t, ";" if i < len(story["aside"]) - 1 else ".") for i, (v, t) in enumerate(story["aside"])]
    extra = f" <span class='cl aside'>Apart from that:</span> {' '.join(aside)}" if aside else ""
    return f"<li><b>{html.escape(story['who'])}</b> {' '.join(lines)}{extra}</li>"


def _families_html(data: dict) -> str:
    """Architecture x task by consumer, one small square per producer (numbered as in the grid)."""
    order, readers = producers(data), consumers(data)
    head = "".join(
        f"<th>{_cell_header(data, c)}<div class=minis>"
        + "".join(f"<span class=num>{i}</span>" for i, _ in enumerate(order, 1))
        + "</div></th>"
        for c in readers
    )
    body = []
    for name, squares in families(data).items():
        tds = "".join(
            "<td><span class=minis>"
            + "".join(_mini_html(squares.get((p, c)), p, c, name) for p in order)
            + "</span></td>"
            for c in readers
        )
        body.append(f"<tr><th class=row>{html.escape(name)}</th>{tds}</tr>")
    return f"<table class=fam><tr><th>architecture, task</th>{head}</tr>{''.join(body)}</table>"


def heatmap(data: dict) -> str:
    """matrix.html: self-contained (inline CSS, no script, no external asset)."""
    order = producers(data)
    key = ", ".join(f"{i} = {html.escape(p)}" for i, p in enumerate(order, 1))
    per_producer = "".join(_story_html(producer_story(data, p)) for p in order)
    per_consumer = "".join(f"<li>{html.escape(s)}</li>" for s in sentences(data))
    return f"""<!doctype html><html><head><meta charset=utf-8><title>Prefix-tuning compatibility matrix</title>
<style>{CSS}</style></head><body>
<h1>Prefix-tuning compatibility matrix</h1>
<p>Rows: the cell that saved the adapter (producer). Columns: the cell that loaded it (consumer). Each bar is
split by the share of the square's cases in each verdict; hover for the counts, click for its cases by
architecture and task. Outlined: a cell reading its own adapters. Known-issue ids are entries of
prefixcheck/known_issues.toml.</p>
<div class=key>{_key_html()}</div>
{_grid_html(data)}
<h2>Where adapters saved with each cell work</h2><ul class=words>{per_producer}</ul>
<h2>By architecture and task</h2>
<p>Rows: architecture and task. Columns: consumer. In each cell, one small square per producer ({key}), split
by the share of its cases in each verdict; hover for the counts. A blank square: no case of that family.</p>
{_families_html(data)}
<h2>In plain words: what each cell reproduces</h2><ul class=words>{per_consumer}</ul>
</body></html>
"""


# -- a real browser -----------------------------------------------------------------------------


def find_browser() -> str | None:
    """A headless-capable Chromium: $CHROMIUM if set, else the first of BROWSERS on PATH
    (Debian's chromium-headless-shell, a Chrome or Chromium install)."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1500, 2600), browser: str | None = None) -> Path:
    """A PNG of `page` as headless Chromium draws it (the viewport, `size` pixels). --no-sandbox:
    the page is this report, and CI and containers run as root, where the sandbox refuses."""
    browser = browser or find_browser()
    if not browser:
        raise FileNotFoundError("no headless Chromium: set CHROMIUM or install one of " + ", ".join(BROWSERS))
    png = Path(png).resolve()
    png.unlink(missing_ok=True)
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={size[0]},{size[1]}",
        f"--screenshot={png}",
        Path(page).resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if not png.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}")
    return png
