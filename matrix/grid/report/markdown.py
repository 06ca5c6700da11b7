"""matrix.md: the grid as a GitHub job summary (a job summary renders Markdown, not HTML colours),
each square's mix of verdicts drawn with coloured-square emoji."""

from __future__ import annotations

from collections import Counter

from prefixcheck.verdicts import LOAD_ERROR, PASS, UNSUPPORTED

from .data import (
    _reason,
    consumers,
    counts_text,
    families,
    grid_origin,
    is_new,
    ordered,
    producer_sentences,
    producers,
    sentences,
    style,
    tally,
    worst,
)
from .legend import NO_CASES, STYLE


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


def _name(data: dict, cell: str) -> str:
    """A cell's name, marked where the committed grid does not have it as it ran (grid_origin)."""
    return f"`{cell}` (new)" if is_new(data, cell) else f"`{cell}`"


def _md_grid(data: dict) -> list[str]:
    """The producer x consumer table: each square's emoji bar and its counts."""
    cells = data["cells"]
    lines = [
        "| producer \\ consumer | " + " | ".join(_name(data, c) for c in cells) + " |",
        "|---" * (len(cells) + 1) + "|",
    ]
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
        *([origin, ""] if (origin := grid_origin(data)) else []),
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
        (cell, _reason({"verdict": LOAD_ERROR, "detail": why}))
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
        if r["verdict"] not in (PASS, UNSUPPORTED)
    )
    if not reasons:
        return []
    lines = ["", "## Why squares are not green", "", "| verdict | issue or error | cases |", "|---|---|---|"]
    for (verdict, why), n in reasons.most_common(30):
        lines.append(f"| {verdict} | {why} | {n} |")
    return lines
