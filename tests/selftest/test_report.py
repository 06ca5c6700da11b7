"""The matrix report as a reader meets it: the plain-words sentences, the heatmap's mix of
verdicts, the per-family view, matrix.md and matrix.json telling the same story, and the page
as a real browser draws it (skipped with the reason where no headless Chromium is found)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest

from matrix.grid import report
from matrix.grid.report import data, legend
from matrix.grid.report import html as report_html
from matrix.grid.report import markdown as report_md
from matrix.grid.report.data import release_order

pytestmark = pytest.mark.selftest

DOCS_MATRIX = Path(__file__).resolve().parents[2] / "docs" / "matrix" / "matrix.json"


def _versions(cell: str) -> dict:
    """Made-up versions, distinct per cell."""
    return {"peft": f"0.{len(cell)}.0", "transformers": "4.40.2"}


def _rows(producer: str, *groups: tuple) -> list[dict]:
    """Result rows (as matrix/grid/consume.py writes them) for one producer: each group is
    (count, verdict, arch, task[, issue])."""
    out = []
    for count, verdict, arch, task, *issue in groups:
        for _ in range(count):
            out.append(
                {
                    "producer": producer,
                    "case": f"{producer}-{arch}-{len(out)}",
                    "verdict": verdict,
                    "detail": "" if verdict == "pass" else f"{verdict} detail",
                    "issue": issue[0] if issue else None,
                    "arch": arch,
                    "task": task,
                    "projection": False,
                    "reference": "",
                }
            )
    return out


def _run(folder: Path, squares: dict) -> Path:
    """A run folder as `matrix run` leaves it: results/<consumer>.json, artifacts/<producer>/index.json."""
    (folder / "results").mkdir(parents=True, exist_ok=True)
    for consumer in {c for _, c in squares}:
        rows = [r for (_, c), rs in sorted(squares.items()) if c == consumer for r in rs]
        (folder / "results" / f"{consumer}.json").write_text(
            json.dumps({"versions": _versions(consumer), "rows": rows})
        )
    for producer in {p for p, _ in squares}:
        (folder / "artifacts" / producer).mkdir(parents=True, exist_ok=True)
        index = {"failed": {}, "versions": _versions(producer)}
        (folder / "artifacts" / producer / "index.json").write_text(json.dumps(index))
    return folder


@pytest.fixture
def known_mostly(tmp_path):
    """The shape of the defect in issue 10: of 28 adapters from `new`, `old` reproduces 3 and
    25 hit a known issue; its own 4 it reproduces."""
    return _run(
        tmp_path,
        {
            ("new", "old"): _rows(
                "new", (3, "pass", "llama", "CAUSAL_LM"), (25, "known-issue", "bert", "SEQ_CLS", "bug-1")
            ),
            ("old", "old"): _rows("old", (4, "pass", "llama", "CAUSAL_LM")),
        },
    )


@pytest.fixture
def mixed(tmp_path):
    """Two squares that the old worst-verdict colouring drew alike: 48 of 49 pass, and 1 of 49."""
    return _run(
        tmp_path,
        {
            ("a", "b"): _rows("a", (48, "pass", "llama", "CAUSAL_LM"), (1, "fail", "bert", "SEQ_CLS")),
            ("b", "b"): _rows("b", (1, "pass", "llama", "CAUSAL_LM"), (48, "fail", "bert", "SEQ_CLS")),
        },
    )


@pytest.fixture
def every_outcome(tmp_path):
    """Adapters from `p`, read by a consumer per outcome of the producer sentence."""
    return _run(
        tmp_path,
        {
            ("p", "c1-same"): _rows("p", (4, "pass", "llama", "CAUSAL_LM")),
            ("p", "c2-differ"): _rows("p", (3, "pass", "llama", "CAUSAL_LM"), (1, "fail", "bert", "SEQ_CLS")),
            ("p", "c3-noload"): _rows(
                "p", (3, "load-error", "llama", "CAUSAL_LM"), (1, "invalid-artifact", "bert", "SEQ_CLS")
            ),
            ("p", "c4-known"): _rows(
                "p", (2, "known-issue", "llama", "CAUSAL_LM", "bug-1"), (1, "known-issue", "bert", "SEQ_CLS", "bug-2")
            ),
            ("p", "c5-aside"): _rows(
                "p",
                (1, "pass", "llama", "CAUSAL_LM"),
                (1, "base-mismatch", "opt", "CAUSAL_LM"),
                (1, "unsupported", "gemma2", "SEQ_CLS"),
                (1, "inconclusive", "bert", "SEQ_CLS"),
            ),
        },
    )


def _html_text(page: str) -> str:
    """The page's text as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", page)))


# -- sentences ----------------------------------------------------------------------------------


def test_sentences_count_known_issues_apart_from_reproduced_adapters(known_mostly):
    summary = report.write(known_mostly)
    (sentence,) = summary["sentences"]
    assert "every adapter from new" not in sentence, sentence
    assert "3 of 28 reproduced" in sentence and "25 known issues" in sentence, sentence
    assert "every adapter from old (4 of 4)" in sentence, sentence


def test_a_producer_sentence_says_where_its_adapters_work_and_where_not(every_outcome):
    (sentence,) = report.write(every_outcome)["producer_sentences"]
    assert sentence.startswith("Adapters saved with p (peft 0.1.0 and transformers 4.40.2) "), sentence
    for part in (
        "load and compute the same in c1-same (all 4), c2-differ (3 of 4), c5-aside (1 of 4);",
        "load but compute differently in c2-differ (1 of 4);",
        "fail to load in c3-noload (all 4);",  # load-error and invalid-artifact alike
        "hit known issues in c4-known (all 3: bug-1 ×2, bug-2 ×1).",
        "Apart from that:",
        "(inconclusive) in c5-aside (1 of 4)",
        "(not PEFT's doing) in c5-aside (1 of 4)",
        "(unsupported) in c5-aside (1 of 4).",
    ):
        assert part in sentence, (part, sentence)
    main = sentence.split("Apart from that:")[0]
    assert "base model" not in main and "unsupported" not in main, "said apart, not among PEFT's outcomes"


def test_the_sentences_read_the_same_in_every_file(every_outcome):
    summary = report.write(every_outcome)
    md = (every_outcome / "matrix.md").read_text()
    page = _html_text((every_outcome / "matrix.html").read_text())
    for sentence in summary["producer_sentences"] + summary["sentences"]:
        assert f"- {sentence}" in md
        assert sentence in page, sentence


# -- the mix of each square ---------------------------------------------------------------------


def _bar(page: str, square: str) -> list[tuple[int, str]]:
    """(grow, colour) of each segment of the bar drawn for `square` ('a → b')."""
    found = re.search(rf"<summary title='{square}: [^']*'><span class=bar>(.*?)</span>", html.unescape(page))
    assert found, f"no bar for {square}"
    return [(int(n), c) for n, c in re.findall(r"flex:(\d+);background:(#\w+)", found.group(1))]


def test_a_square_shows_its_mix_of_verdicts_not_only_its_worst(mixed):
    report.write(mixed)
    page = (mixed / "matrix.html").read_text()
    green, red = legend.STYLE["pass"][0], legend.STYLE["fail"][0]
    assert _bar(page, "a → b") == [(48, green), (1, red)]
    assert _bar(page, "b → b") == [(1, green), (48, red)]
    assert "a → b: 48/49 pass, 1 fail" in html.unescape(page) and "b → b: 1/49 pass, 48 fail" in html.unescape(page)
    md = (mixed / "matrix.md").read_text()
    assert "🟩" * 9 + "🟥 48/49 pass, 1 fail" in md and "🟩" + "🟥" * 9 + " 1/49 pass, 48 fail" in md


def test_a_square_opens_on_its_families_and_cases(mixed):
    report.write(mixed)
    page = html.unescape((mixed / "matrix.html").read_text())
    square = page[page.index("a → b: 48/49") :].split("</details>")[0]
    assert "llama CAUSAL_LM" in square and "48/48 pass" in square  # a row per architecture x task
    assert "bert SEQ_CLS" in square and "0/1 pass, 1 fail" in square
    assert "<b>fail</b> bert/SEQ_CLS" in square and "fail detail" in square  # the case behind it


@pytest.mark.parametrize(
    "counts, width",
    [
        ({"pass": 48, "fail": 1}, 10),
        ({"pass": 1, "fail": 1, "load-error": 1}, 10),
        ({v: 1 for v in legend.VERDICTS}, 8),
    ],
)
def test_blocks_fill_the_width_and_no_verdict_present_disappears(counts, width):
    blocks = report_md.slots(Counter(counts), width)
    assert len(blocks) == width and set(blocks) == set(counts)


def test_a_verdict_the_report_does_not_know_is_drawn_not_dropped(tmp_path):
    folder = _run(
        tmp_path, {("a", "b"): _rows("a", (2, "pass", "llama", "CAUSAL_LM"), (1, "brand-new", "bert", "SEQ_CLS"))}
    )
    summary = report.write(folder)
    assert summary["grid"] == {"a -> b": {"pass": 2, "brand-new": 1}}
    assert legend.UNKNOWN_STYLE[1] in (folder / "matrix.md").read_text()
    assert "2/3 pass, 1 brand-new" in html.unescape((folder / "matrix.html").read_text())


# -- the per-family view ------------------------------------------------------------------------


def test_the_family_view_shows_which_architectures_and_tasks_break(mixed):
    summary = report.write(mixed)
    assert summary["families"] == {
        "bert SEQ_CLS": {"a -> b": {"fail": 1}, "b -> b": {"fail": 48}},
        "llama CAUSAL_LM": {"a -> b": {"pass": 48}, "b -> b": {"pass": 1}},
    }
    md = (mixed / "matrix.md").read_text()
    assert "| bert SEQ_CLS | 🟥🟥 |" in md and "| llama CAUSAL_LM | 🟩🟩 |" in md  # one block per producer a, b
    page = html.unescape((mixed / "matrix.html").read_text())
    assert "title='a → b, bert SEQ_CLS: 0/1 pass, 1 fail'" in page


# -- one story in three files -------------------------------------------------------------------


def test_matrix_md_json_and_html_give_the_same_counts(every_outcome):
    summary = report.write(every_outcome)
    md = (every_outcome / "matrix.md").read_text()
    page = html.unescape((every_outcome / "matrix.html").read_text())
    for square, counts in summary["grid"].items():
        text = data.counts_text(Counter(counts))
        producer, consumer = square.split(" -> ")
        assert f"{report_md.emoji_bar(Counter(counts))} {text}" in md, square
        assert f"title='{producer} → {consumer}: {text}'" in page, square
    rows = Counter((r["producer"], r["consumer"], r["verdict"]) for r in summary["rows"])
    assert {
        (p, c, v): n for k, cs in summary["grid"].items() for (p, c) in [k.split(" -> ")] for v, n in cs.items()
    } == rows


def test_the_page_is_self_contained(every_outcome):
    report.write(every_outcome)
    page = (every_outcome / "matrix.html").read_text().lower()
    for asset in ("<script", "<link", "<img", "<iframe", "src=", "url(", "@import"):
        assert asset not in page, asset
    assert "http" not in page.replace("href='https://", ""), "only links to known issues' references"


def test_a_report_is_drawn_again_from_its_matrix_json_alone(every_outcome, tmp_path):
    report.write(every_outcome)
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(every_outcome / "matrix.json", again / "matrix.json")
    report.write(again)
    for name in ("matrix.json", "matrix.md", "matrix.html"):
        assert (again / name).read_text() == (every_outcome / name).read_text(), name


# -- in a real browser --------------------------------------------------------------------------


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB(A), non-interlaced PNG such as Chromium
    writes: enough of PNG to look at a screenshot without an imaging library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, chunks, head = 8, [], None
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", data[pos + 8 : pos + 8 + size])
        elif kind == b"IDAT":
            chunks.append(data[pos + 8 : pos + 8 + size])
        pos += 12 + size
    width, height, depth, colour, _, _, interlace = head
    assert depth == 8 and colour in (2, 6) and not interlace, head
    bpp, raw = (3 if colour == 2 else 4), zlib.decompress(b"".join(chunks))
    stride, prev, rows = width * bpp, bytearray(width * bpp), []
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 4:
                p = a + b - c
                a = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            line[i] = (line[i] + (0, a, b, (a + b) >> 1, a)[kind]) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for j in range(0, stride, 4) for v in line[j : j + 3]))
        prev = line
    return width, height, rows


def _rgb(colour: str) -> bytes:
    return bytes.fromhex(colour.lstrip("#"))


def _longest_run(rows: list[bytes], colour: str) -> int:
    """The longest horizontal run of exactly `colour` in any pixel row."""
    want, best = _rgb(colour), 0
    for row in rows:
        run = 0
        for i in range(0, len(row), 3):
            run = run + 1 if row[i : i + 3] == want else 0
            best = max(best, run)
    return best


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium, or a skip that says where one was looked for and how to get one."""
    found = report_html.find_browser()
    if not found:
        named = os.environ.get("CHROMIUM")
        where = f"CHROMIUM={named!r} is no program" if named else "looked for " + ", ".join(report_html.BROWSERS)
        pytest.skip(
            f"no headless Chromium found ({where}): install Debian's chromium-headless-shell "
            "(apt-get install chromium-headless-shell) or any Chrome/Chromium, or set CHROMIUM to one"
        )
    return found


def test_a_browser_draws_each_square_as_its_mix(browser, tmp_path):
    """30 passes and 10 failures: the green part of the bar is three times the red one (the old
    page filled the whole square with the worst verdict's colour)."""
    folder = _run(
        tmp_path, {("a", "b"): _rows("a", (30, "pass", "llama", "CAUSAL_LM"), (10, "fail", "bert", "SEQ_CLS"))}
    )
    report.write(folder)
    png = report_html.screenshot(folder / "matrix.html", tmp_path / "mix.png", size=(900, 500), browser=browser)
    width, height, rows = png_pixels(png)
    assert (width, height) == (900, 500)
    green, red = _longest_run(rows, legend.STYLE["pass"][0]), _longest_run(rows, legend.STYLE["fail"][0])
    assert red > 20, f"no red bar segment drawn (longest red run {red}px)"
    assert 2.5 < green / red < 3.5, (green, red)


def test_a_browser_draws_the_committed_matrix(browser, tmp_path):
    """docs/matrix/matrix.json drawn again and shot: every verdict it holds shows in its colour."""
    shutil.copy(DOCS_MATRIX, tmp_path / "matrix.json")
    summary = report.write(tmp_path)
    png = report_html.screenshot(tmp_path / "matrix.html", tmp_path / "matrix.png", size=(1400, 900), browser=browser)
    _, _, rows = png_pixels(png)
    seen = {bytes(row[i : i + 3]) for row in rows for i in range(0, len(row), 3)}
    verdicts = {v for counts in summary["grid"].values() for v in counts}
    missing = [v for v in verdicts if _rgb(data.style(v)[0]) not in seen]
    assert not missing, f"verdicts with no pixel of their colour: {missing}"


def test_cells_read_in_release_order():

    names = ["peft-latest", "peft-0.21.2-tf-5.10", "peft-0.21.2", "peft-0.21.2-tf-5.2", "peft-0.9.0"]
    assert sorted(names, key=release_order) == [
        "peft-0.9.0",
        "peft-0.21.2",
        "peft-0.21.2-tf-5.2",
        "peft-0.21.2-tf-5.10",
        "peft-latest",
    ]


def test_cells_new_since_the_committed_grid_are_marked_in_every_view(mixed):
    """A run of a grid made from the package index (matrix/grid/live.py) says so, and marks the
    cells the committed cells.toml does not have as they ran."""
    (mixed / "grid.toml").write_text(
        'schema = 1\n[grid]\nsource = "package index"\nmade = "2026-12-07T03:17:00Z"\n'
        'baseline = "cells.toml"\nnew = ["b"]\nmoved = []\n'
    )
    report.write(mixed)
    md = (mixed / "matrix.md").read_text()
    assert "Cells made from the package index at 2026-12-07T03:17:00Z" in md and "new since it: b" in md
    assert "`b` (new)" in md and "`a` (new)" not in md
    page = (mixed / "matrix.html").read_text()
    assert page.count("new since cells.toml") >= 2  # b as producer and as consumer
    again = data.from_summary(json.loads((mixed / "matrix.json").read_text()))
    assert data.grid_origin(again) == data.grid_origin(data.collect(mixed))


def test_a_run_of_the_committed_grid_marks_nothing(mixed):
    report.write(mixed)
    assert "(new)" not in (mixed / "matrix.md").read_text()
    assert "Cells made from" not in (mixed / "matrix.html").read_text()
