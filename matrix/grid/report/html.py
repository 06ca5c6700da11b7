"""matrix.html: a self-contained heatmap, producer x consumer; each square is a bar split by the share
of each verdict (counts in its tooltip, the cases by architecture x task on click). `screenshot`
renders it with a headless browser (the self-tests look at it)."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from prefixcheck.verdicts import KNOWN_ISSUE, PASS

from .data import (
    consumers,
    counts_text,
    families,
    family,
    grid_origin,
    is_new,
    issues_text,
    ordered,
    producer_story,
    producers,
    sentences,
    style,
    tally,
)
from .legend import SEVERITY, STYLE

BROWSERS = (
    "chromium-headless-shell",
    "chrome-headless-shell",
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
)
CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:16px 24px;color:#212121}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 6px}p{margin:4px 0;max-width:75em}
.key{display:flex;flex-wrap:wrap;gap:4px 16px;margin:10px 0;font-size:13px}
.key span{display:inline-flex;align-items:center}
.chip{display:inline-block;width:14px;height:14px;border-radius:3px;margin-right:5px}
table{border-collapse:separate;border-spacing:6px 4px}
th{text-align:left;font-weight:600;vertical-align:bottom;white-space:nowrap}
th small{display:block;font-weight:400;color:#666;font-size:11px}
th small.new{color:#8a4b00;font-weight:600}
p.origin{background:#fff6e0;border-left:4px solid #d08a00;padding:6px 10px}
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
    new = "<small class=new>new since cells.toml</small>" if is_new(data, cell) else ""
    return f"{num}{html.escape(cell)}" + (f"<small>{html.escape(small)}</small>" if small else "") + new


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
        issues = issues_text(group) if counts.get(KNOWN_ISSUE) else ""
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
        if r["verdict"] != PASS
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
    sub = " · ".join(f"<span>{n}&nbsp;{html.escape(v)}</span>" for v, n in ordered(counts) if v != PASS)
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
    if counts.get(KNOWN_ISSUE):
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


def _origin_html(data: dict) -> str:
    origin = grid_origin(data)
    return f"<p class=origin>{html.escape(origin)}</p>\n" if origin else ""


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
{_origin_html(data)}{_grid_html(data)}
<h2>Where adapters saved with each cell work</h2><ul class=words>{per_producer}</ul>
<h2>By architecture and task</h2>
<p>Rows: architecture and task. Columns: consumer. In each cell, one small square per producer ({key}), split
by the share of its cases in each verdict; hover for the counts. A blank square: no case of that family.</p>
{_families_html(data)}
<h2>In plain words: what each cell reproduces</h2><ul class=words>{per_consumer}</ul>
</body></html>
"""


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
