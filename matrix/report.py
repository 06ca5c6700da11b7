"""The matrix report: matrix.json, matrix.md (a GitHub job summary) and matrix.html (a
self-contained heatmap, producer x consumer; each square opens the cases behind it)."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path

VERDICTS = ("pass", "fail", "load-error", "known-issue", "unsupported", "base-mismatch", "invalid-artifact")

COLOURS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "load-error": "#ad1457",
    "known-issue": "#ef6c00",
    "unsupported": "#9e9e9e",
    "base-mismatch": "#6a1b9a",
    "invalid-artifact": "#37474f",
}


def collect(folder: Path) -> dict:
    results = {p.stem: json.loads(p.read_text()) for p in sorted((folder / "results").glob("*.json"))}
    producers = {}
    for p in sorted((folder / "artifacts").glob("*/index.json")):
        producers[p.parent.name] = json.loads(p.read_text())
    timings = {p.stem: json.loads(p.read_text()) for p in sorted((folder / "timings").glob("*.json"))}
    grid = {}
    for consumer, data in results.items():
        for row in data["rows"]:
            grid.setdefault((row["producer"], consumer), []).append(row)
    cells = sorted(set(results) | set(producers) | {p for p, _ in grid})
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


def _worst(rows: list[dict]) -> str:
    counts = Counter(r["verdict"] for r in rows)
    for verdict in ("fail", "load-error", "base-mismatch", "invalid-artifact", "known-issue", "unsupported", "pass"):
        if counts.get(verdict):
            return verdict
    return "pass"


def sentences(data: dict) -> list[str]:
    """One plain sentence per consumer cell: which cells' adapters it reads and reproduces."""
    out = []
    for consumer in data["cells"]:
        if consumer not in data["results"]:
            continue
        versions = data["results"][consumer]["versions"]
        groups: dict[str, list[str]] = {"all": [], "some": [], "none": []}
        for producer in data["cells"]:
            rows = [r for r in data["grid"].get((producer, consumer), []) if r["verdict"] != "unsupported"]
            if not rows:
                continue
            passing = sum(r["verdict"] in ("pass", "known-issue") for r in rows)
            key = "all" if passing == len(rows) else "some" if passing else "none"
            groups[key].append(f"{producer} ({sum(r['verdict'] == 'pass' for r in rows)}/{len(rows)})")
        label = f"peft {versions['peft']} with transformers {versions['transformers']} ({consumer})"
        parts = []
        if groups["all"]:
            parts.append("reproduces every adapter from " + ", ".join(groups["all"]) + " (known issues aside)")
        if groups["some"]:
            parts.append("only part of those from " + ", ".join(groups["some"]))
        if groups["none"]:
            parts.append("none from " + ", ".join(groups["none"]))
        out.append(f"{label} " + "; ".join(parts) + ".")
    return out


def write(folder: Path) -> dict:
    folder = Path(folder)
    data = collect(folder)
    summary = {
        "cells": data["cells"],
        "versions": {c: r["versions"] for c, r in data["results"].items()},
        "timings": data["timings"],
        "producer_failures": {c: p.get("failed", {}) for c, p in data["producers"].items()},
        "grid": {
            f"{p} -> {c}": dict(Counter(r["verdict"] for r in rows)) for (p, c), rows in sorted(data["grid"].items())
        },
        "sentences": sentences(data),
        "rows": [dict(r, consumer=c) for (p, c), rows in sorted(data["grid"].items()) for r in rows],
    }
    (folder / "matrix.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    (folder / "matrix.md").write_text(markdown(data))
    (folder / "matrix.html").write_text(heatmap(data))
    return summary


def markdown(data: dict) -> str:
    cells = data["cells"]
    lines = [
        "# Prefix-tuning compatibility matrix",
        "",
        "Rows: producer (saved the adapter). Columns: consumer (loaded it).",
        "",
    ]
    lines.append("| producer \\ consumer | " + " | ".join(f"`{c}`" for c in cells) + " |")
    lines.append("|---" * (len(cells) + 1) + "|")
    for producer in cells:
        squares = []
        for consumer in cells:
            rows = data["grid"].get((producer, consumer), [])
            if not rows:
                squares.append("—")
                continue
            counts = Counter(r["verdict"] for r in rows)
            squares.append(
                f"{_worst(rows)}: {counts.get('pass', 0)}/{len(rows)} pass"
                + (f", {counts['known-issue']} known" if counts.get("known-issue") else "")
            )
        lines.append(f"| `{producer}` | " + " | ".join(squares) + " |")
    lines += ["", "## In plain words", ""] + [f"- {s}" for s in sentences(data)]
    lines += [
        "",
        "## Versions and times",
        "",
        "| cell | peft | transformers | env s | produce s | consume s |",
        "|---|---|---|---|---|---|",
    ]
    for cell in cells:
        v = data["results"].get(cell, {}).get("versions", {})
        t = data["timings"].get(cell, {})
        lines.append(
            f"| `{cell}` | {v.get('peft', '')} | {v.get('transformers', '')} | {t.get('env_s', 0):.1f} | "
            f"{t.get('produce_s', 0):.1f} | {t.get('consume_s', 0):.1f} |"
        )
    failures = [
        (cell, _reason({"verdict": "load-error", "detail": why}))
        for cell, index in data["producers"].items()
        for why in index.get("failed", {}).values()
    ]
    if failures:
        lines += [
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
    reasons = Counter(
        (r["verdict"], r.get("issue") or _reason(r))
        for rows in data["grid"].values()
        for r in rows
        if r["verdict"] not in ("pass", "unsupported")
    )
    if reasons:
        lines += ["", "## Why squares are not green", "", "| verdict | issue or error | cases |", "|---|---|---|"]
        for (verdict, why), n in reasons.most_common(30):
            lines.append(f"| {verdict} | {why} | {n} |")
    return "\n".join(lines) + "\n"


def _issue_link(row: dict) -> str:
    name = html.escape(row["issue"])
    ref = row.get("reference") or ""
    return f"<a href='{html.escape(ref)}'>{name}</a>" if ref.startswith("https://") else f"{name} (found by this suite)"


def heatmap(data: dict) -> str:
    cells = data["cells"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells)
    body = []
    for producer in cells:
        tds = []
        for consumer in cells:
            rows = data["grid"].get((producer, consumer), [])
            if not rows:
                tds.append("<td class=empty>—</td>")
                continue
            worst = _worst(rows)
            counts = Counter(r["verdict"] for r in rows)
            items = "".join(
                f"<li><b>{html.escape(r['verdict'])}</b> {html.escape(r['arch'])}/{html.escape(r['task'])}"
                f"{' proj' if r['projection'] else ''} <code>{html.escape(r['case'])}</code>"
                + (f" <i>{_issue_link(r)}</i>" if r.get("issue") else "")
                + (f"<br><small>{html.escape(r['detail'])}</small>" if r["detail"] else "")
                + "</li>"
                for r in sorted(rows, key=lambda r: VERDICTS.index(r["verdict"]))
                if r["verdict"] != "pass"
            )
            label = f"{counts.get('pass', 0)}/{len(rows)}"
            tds.append(
                f"<td style='background:{COLOURS[worst]}'><details><summary>{label}</summary>"
                f"<ul>{items or '<li>all pass</li>'}</ul></details></td>"
            )
        body.append(f"<tr><th>{html.escape(producer)}</th>{''.join(tds)}</tr>")
    legend = " ".join(f"<span style='background:{c}'>{v}</span>" for v, c in COLOURS.items())
    words = "".join(f"<li>{html.escape(s)}</li>" for s in sentences(data))
    return f"""<!doctype html><html><head><meta charset=utf-8><title>Prefix-tuning compatibility matrix</title>
<style>body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}
td{{color:white;min-width:7em}}td.empty{{color:#555}}details ul{{background:white;color:black;max-width:40em;
font-size:small}}span{{color:white;padding:2px 6px;margin-right:4px}}</style></head><body>
<h1>Prefix-tuning compatibility matrix</h1><p>Rows: producer. Columns: consumer. Square: passing cases /
all; its colour is the worst verdict. Click a square for the cases that did not pass. Known-issue ids are
entries of prefixcheck/known_issues.toml.</p><p>{legend}</p>
<table><tr><th>producer \\ consumer</th>{head}</tr>{"".join(body)}</table><ul>{words}</ul></body></html>
"""
