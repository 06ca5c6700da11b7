"""The nightly's grid, made from the package index when it runs (`python -m matrix cells
--from-index FILE`), so "latest" is always the newest release: the released cells of the committed
baseline (matrix/grid/cells.py CELLS_FILE, what known-good, CI and tox's pins use) generated again
the way `cells --refresh` does, without probing (a cell keeps the unavailable reason recorded for
the same pins), and the unreleased cells that pin their other side to the newest release
(peft-main, transformers-main, peft-pr) moved to the new newest. The committed file is not
touched; the grid file it writes records, in its SOURCE_TABLE, where it came from and which cells
are new or moved since the baseline, and `matrix run --grid FILE` copies it into the run folder
(cells.RUN_GRID), where the report reads it and marks those cells.

MLflow makes its cross-version matrix the same way (dev/set_matrix.py reads PyPI when the job runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import cells as cells_mod
from . import refresh

_PIN = re.compile(r'^(peft|transformers|accelerate) = "([^"]*)"$', re.MULTILINE)


@dataclass(frozen=True)
class Grid:
    """A grid made from the index: the cells file's `text` (source table included) and its `cells`;
    `new`: cells not in the baseline; `moved`: cells whose pins differ from the baseline's."""

    text: str
    cells: cells_mod.Cells
    new: tuple[str, ...]
    moved: tuple[str, ...]


def from_index(baseline: str | Path = cells_mod.CELLS_FILE, *, fetch=None, now: datetime | None = None) -> Grid:
    """The grid of today's releases, from the `baseline` cells file (releases.ReleasesError when
    the index cannot be read)."""
    baseline = Path(baseline)
    done = refresh.regenerate(baseline, fetch=fetch, probe=None)
    text = _follow_latest(done.text, _named(done.old, refresh.LATEST), _named(done.new, refresh.LATEST))
    new, moved = changes(done.old, cells_mod.loads(text, baseline))
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = text.rstrip("\n") + "\n\n" + _source_table(baseline, when, new, moved)
    return Grid(text, cells_mod.loads(text, baseline), new, moved)


def changes(old: cells_mod.Cells, new: cells_mod.Cells) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The cells of `new` that `old` lacks, and those whose peft/transformers/accelerate pins moved."""
    before = {c.name: c for c in old}
    added = tuple(c.name for c in new if c.name not in before)
    moved = tuple(c.name for c in new if c.name in before and _pins(c) != _pins(before[c.name]))
    return added, moved


def write(grid: Grid, path: str | Path) -> Path:
    """The grid file at `path` (its folder made), written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".writing")
    temporary.write_text(grid.text)
    temporary.replace(path)
    return path


def _named(cells: cells_mod.Cells, name: str):
    return next((c for c in cells if c.name == name), None)


def _pins(cell) -> tuple[str, str, str]:
    return cell.peft, cell.transformers, cell.accelerate


def _follow_latest(text: str, old_latest, new_latest) -> str:
    """`text` with each cell outside the released region that needs something (GitHub, PEFT_SPEC)
    and pins a side to the old newest release (old_latest's pins) pinned to the new one instead."""
    if old_latest is None or new_latest is None or _pins(old_latest) == _pins(new_latest):
        return text
    before, region_end, after = text.partition(refresh.END)
    if not region_end:
        return text
    keys = ("peft", "transformers", "accelerate")
    follow = dict(zip(keys, zip(_pins(old_latest), _pins(new_latest), strict=True), strict=True))
    blocks = after.split("[[cell]]")
    return before + region_end + "[[cell]]".join([blocks[0], *(_moved(b, follow) for b in blocks[1:])])


def _moved(block: str, follow: dict[str, tuple[str, str]]) -> str:
    """One `[[cell]]` block with its released pins following the newest release, if it needs something."""
    if not re.search(r"^needs = ", block, re.MULTILINE):
        return block

    def pin(match: re.Match) -> str:
        key, value = match.groups()
        old, new = follow[key]
        return f'{key} = "{new}"' if value == old else match.group(0)

    return _PIN.sub(pin, block)


def _source_table(baseline: Path, when: str, new: tuple[str, ...], moved: tuple[str, ...]) -> str:
    def names(values: tuple[str, ...]) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    return (
        f"# Made from the package index by `python -m matrix cells --from-index` (matrix/grid/live.py).\n"
        f"[{cells_mod.SOURCE_TABLE}]\n"
        f'source = "package index"\n'
        f'made = "{when}"\n'
        f'baseline = "{baseline.name}"\n'
        f"new = {names(new)}\n"
        f"moved = {names(moved)}\n"
    )
