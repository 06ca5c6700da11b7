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
break between two releases.
Modules: `data` (the run read into squares, the counts, the sentences: matrix.json), `markdown`
(matrix.md), `html` (matrix.html, and a screenshot of it), `legend` (how each verdict is shown).
"""

from __future__ import annotations

import json
from pathlib import Path

from . import data, html, markdown


def write(folder: Path) -> dict:
    """matrix.json, matrix.md and matrix.html in `folder`, from the run in it (data.collect)."""
    folder = Path(folder)
    grid = data.collect(folder)
    out = data.summary(grid)
    (folder / "matrix.json").write_text(json.dumps(out, indent=1, sort_keys=True))
    (folder / "matrix.md").write_text(markdown.markdown(grid))
    (folder / "matrix.html").write_text(html.heatmap(grid))
    return out
