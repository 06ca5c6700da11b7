"""The two axes of released cells a registry entry is measured along (matrix/grid/cells.toml): the
PEFT axis (one cell per PEFT minor, each with the transformers newest at its release: both move)
and the transformers axis (the newest PEFT with every transformers minor)."""

from __future__ import annotations

from ..bisect.inputs import parse_range
from ..bisect.search import BisectError

AXIS_NAMES = ("peft", "transformers")


class Axis:
    """One axis of released cells, oldest first: `package` is the one whose release order it
    follows (and whose versions name its points)."""

    def __init__(self, package: str, cells: list) -> None:
        self.package, self.cells = package, {getattr(c, package): c for c in cells}
        self.versions = list(self.cells)

    def pair(self, version: str) -> dict[str, str]:
        cell = self.cells[version]
        return {"peft": cell.peft, "transformers": cell.transformers}

    def restrict(self, lo: str, hi: str | None) -> Axis:
        """The releases from lo to hi (both included; hi None: lo alone)."""
        from packaging.version import Version

        top = Version(hi or lo)
        return Axis(self.package, [c for v, c in self.cells.items() if Version(lo) <= Version(v) <= top])

    def anchor(self, version: str | None) -> int | None:
        """The index of `version` on this axis, or of the newest release below it (None: none)."""
        from packaging.version import InvalidVersion, Version

        try:
            want = Version(version or "")
        except InvalidVersion:
            return None
        below = [i for i, v in enumerate(self.versions) if Version(v) <= want]
        return below[-1] if below else None


def axes(which: str, ranges: dict[str, str | None]) -> list[Axis]:
    """The axes to measure (matrix/grid/cells.toml), each restricted to its --peft/--transformers range."""
    from ..grid.cells import CellError
    from ..grid.cells import load as load_cells

    try:
        cells = load_cells()
    except CellError as exc:
        raise BisectError(str(exc)) from None
    made = {"peft": Axis("peft", cells.peft_axis()), "transformers": Axis("transformers", cells.transformers_axis())}
    out = []
    for name in AXIS_NAMES if which == "both" else (which,):
        axis = made[name]
        if ranges.get(name):
            axis = axis.restrict(*parse_range(name, ranges[name]))
            if not axis.versions:
                raise BisectError(f"--{name} {ranges[name]}: no release of the {name} axis lies in that range")
        out.append(axis)
    return out
