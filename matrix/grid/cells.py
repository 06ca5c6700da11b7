"""The matrix cells, read from `matrix/grid/cells.toml` with one-line errors for bad entries."""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from prefixcheck.compat import tomllib

CELLS_FILE = Path(__file__).with_name("cells.toml")  # the reviewed grid: known-good, CI, tox's pins
SCHEMA = 1
# A run folder's record of the grid it ran where that is not CELLS_FILE as committed (a grid made
# from the package index, matrix/grid/live.py): a cells file with a SOURCE_TABLE saying where its
# cells came from and what differs from CELLS_FILE, which the report reads (matrix/grid/report/).
RUN_GRID = "grid.toml"
SOURCE_TABLE = "grid"
_KEYS = {
    "name",
    "peft",
    "transformers",
    "accelerate",
    "extra",
    "known_good",
    "needs",
    "device",
    "unavailable",
    "consumes",
    "judged_by",
    "drawn",
}


def pinned_projection(producer: str, arch: str, task: str) -> bool:
    """The one prefix projection a producer's pinned case of `arch` x `task` takes: alternating by
    a hash of the three, so each producer has both projections and each architecture x task meets
    both across producers, at half the artifacts (the grid's time budget; tests/legacy keeps the
    same ones)."""
    return zlib.crc32(f"{producer}/{arch}/{task}".encode()) % 2 == 1


class CellError(ValueError):
    """A cells.toml entry that cannot be used; the message names the cell and the key."""


@dataclass(frozen=True)
class Cell:
    name: str
    peft: str
    transformers: str
    accelerate: str
    extra: tuple[str, ...] = ()
    known_good: bool = False
    needs: str | None = None  # "github" or an environment variable the cell reads
    device: str = "cpu"  # "cuda": produces on and consumes onto the GPU (CPU artifacts included)
    unavailable: str | None = None  # why the pair cannot even install or import (recorded by `cells --refresh`)
    # the producers whose artifacts this cell judges (its own always); empty: every cell's. The
    # transformers axis judges its own and the anchors' only, so the grid stays within its time
    # budget; every full consumer still judges the axis' artifacts.
    consumes: tuple[str, ...] = ()
    # the consumers that judge this cell's artifacts besides itself; empty: every consumer. The
    # transformers axis is judged by the anchors only (the grid's time budget, as `consumes`).
    judged_by: tuple[str, ...] = ()
    # Hypothesis-drawn cases this cell produces besides the pinned ones; None: the run's --drawn
    drawn: int | None = None

    def requirements(self) -> list[str]:
        """pip requirement lines for this cell's environment (torch comes from the constraint)."""
        return [
            _requirement("peft", self.peft, self.name),
            _requirement("transformers", self.transformers, self.name),
            f"accelerate=={self.accelerate}",
            *self.extra,
        ]

    def runnable(self, github: bool = False, cuda: bool = False) -> str | None:
        """None if the cell can run here, else the reason it cannot."""
        if self.unavailable:
            return f"unavailable with these pins: {self.unavailable}"
        if self.needs == "github" and not github:
            return "needs GitHub, which this machine cannot reach"
        if self.needs and self.needs != "github" and not os.environ.get(self.needs):
            return f"needs {self.needs}, which is not set"
        if self.device == "cuda" and not cuda:
            return "a CUDA cell, and this machine has no GPU"
        return None

    def judges(self, producer: Cell) -> bool:
        """Whether this cell, consuming, judges `producer`'s artifacts: its own always; those its
        `consumes` names; with no `consumes`, every producer whose `judged_by` does not leave it out."""
        if producer.name == self.name or producer.name in self.consumes:
            return True
        return not self.consumes and (not producer.judged_by or self.name in producer.judged_by)


@dataclass(frozen=True)
class Cells:
    cells: tuple[Cell, ...] = field(default_factory=tuple)

    def __iter__(self):
        return iter(self.cells)

    def get(self, name: str) -> Cell:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise CellError(f"unknown cell {name!r}; known: {', '.join(c.name for c in self.cells)}")

    def known_good(self) -> Cell:
        return next(c for c in self.cells if c.known_good)

    def producers_for(self, consumer: Cell) -> list[str]:
        """The cells whose artifacts `consumer` judges (Cell.judges), in file order."""
        return [p.name for p in self.cells if consumer.judges(p)]

    def _released(self) -> list[Cell]:
        """Usable CPU cells of released versions (no main, no PR, nothing unavailable)."""
        return [
            c
            for c in self.cells
            if c.device == "cpu" and not c.needs and not c.unavailable and c.peft[:1].isdigit()
            if c.transformers[:1].isdigit()
        ]

    def peft_axis(self) -> list[Cell]:
        """The PEFT axis, oldest first: one cell per PEFT minor (`peft-X.Y.Z`), each with the
        transformers that was newest when it came out (matrix/grid/releases.py), so both move."""
        from packaging.version import Version

        axis = [c for c in self._released() if re.fullmatch(r"peft-\d+\.\d+\.\d+", c.name)]
        return sorted(axis, key=lambda c: Version(c.peft))

    def transformers_axis(self) -> list[Cell]:
        """The transformers axis, oldest first: the newest PEFT of the PEFT axis with every
        transformers release a usable cell pairs it with (the tf-axis cells, its own PEFT-axis
        cell, the known-good pair, peft-latest), one cell per transformers version."""
        from packaging.version import Version

        peft_axis = self.peft_axis()
        if not peft_axis:
            return []
        newest = peft_axis[-1].peft
        by_version: dict[str, Cell] = {}
        for cell in self._released():
            if cell.peft == newest:
                by_version.setdefault(cell.transformers, cell)
        return sorted(by_version.values(), key=lambda c: Version(c.transformers))


def _requirement(package: str, spec: str, cell: str) -> str:
    if spec.startswith("env:"):
        var = spec[4:]
        value = os.environ.get(var)
        if not value:
            raise CellError(f"cell {cell!r}: {package} comes from ${var}, which is not set")
        spec = value
    if spec.startswith(("git+", "https://", "file://")):
        return f"{package} @ {spec}"
    if spec[:1].isdigit():
        return f"{package}=={spec}"
    if Path(spec).expanduser().exists():
        return f"{package} @ {Path(spec).expanduser().resolve().as_uri()}"
    raise CellError(f"cell {cell!r}: unknown {package} spec {spec!r} (a version, git URL or path)")


def load(path: str | Path = CELLS_FILE) -> Cells:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CellError(f"{path}: cannot read cells ({exc})") from None
    return loads(text, path)


def loads(text: str, origin: str | Path = "<cells>") -> Cells:
    """The cells of a cells file's text (`origin` names it in errors): the committed file and a grid
    made from the package index are checked by the same rules."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CellError(f"{origin}: cannot read cells ({exc})") from None
    if data.get("schema") != SCHEMA:
        raise CellError(f"{origin}: schema {data.get('schema')!r}, expected {SCHEMA}")
    cells, names = [], set()
    for raw in data.get("cell", []):
        cells.append(_cell(raw, names))
        names.add(cells[-1].name)
    for cell in cells:
        for key in ("consumes", "judged_by"):
            unknown = sorted(set(getattr(cell, key)) - names)
            if unknown:
                raise CellError(f"cell {cell.name!r}: {key} unknown cells {unknown}")
    if sum(c.known_good for c in cells) != 1:
        raise CellError(f"{origin}: exactly one cell must be known_good")
    return Cells(tuple(cells))


def _cell(raw: dict, names: set[str]) -> Cell:
    """One `[[cell]]` table as a Cell; `names`: the cells before it (a name is used once)."""
    name = raw.get("name", "<unnamed>")
    unknown = set(raw) - _KEYS
    if unknown:
        raise CellError(f"cell {name!r}: unknown keys {sorted(unknown)}")
    missing = {"name", "peft", "transformers", "accelerate"} - set(raw)
    if missing:
        raise CellError(f"cell {name!r}: missing keys {sorted(missing)}")
    if name in names:
        raise CellError(f"cell {name!r}: duplicate name")
    if raw.get("device", "cpu") not in ("cpu", "cuda"):
        raise CellError(f"cell {name!r}: device must be cpu or cuda, not {raw['device']!r}")
    drawn = raw.get("drawn")
    if drawn is not None and (not isinstance(drawn, int) or isinstance(drawn, bool) or drawn < 0):
        raise CellError(f"cell {name!r}: drawn must be a whole number >= 0, not {drawn!r}")
    listed = {key: tuple(raw.get(key, ())) for key in ("extra", "consumes", "judged_by")}
    return Cell(**{**raw, **listed})


def source(path: str | Path) -> dict | None:
    """The SOURCE_TABLE of a cells file (where its cells came from, what differs from CELLS_FILE),
    or None where there is no such file or it has none (the committed grid as it stands). A file
    that is there but unreadable is an error, not None: a report must not drop its marks quietly."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        table = tomllib.loads(path.read_text()).get(SOURCE_TABLE)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CellError(f"{path}: cannot read the grid's record ({exc})") from None
    if table is not None and not isinstance(table, dict):
        raise CellError(f"{path}: {SOURCE_TABLE} is not a table")
    return table
