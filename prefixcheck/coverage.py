"""What a run exercised: every example's value on each axis, and the values a run must reach.

`axes(prop, case)` names the example's value per axis; the recorder keeps them with its verdict,
and the summary counts examples per axis value and outcome (`table`). `gaps` lists the axis
values a run was expected to reach and never did; the property suite's session fails on a gap
under the `ci` profile (tests/conftest.py), so a strategy that stops drawing a value, or a family
that silently drops out, shows up as red.
"""

from __future__ import annotations

from . import properties
from .case import Case
from .verdicts import FAILED, INCONCLUSIVE, KNOWN, PASSED

TINY_LIMITS = {"hidden_size": 64, "num_layers": 3, "num_virtual_tokens": 32}
AXES = (
    "architecture",
    "families",
    "task",
    "projection",
    "dtype",
    "attention",
    "input path",
    "padding side",
    "kv layout",
    "size tier",
)


def kv_layout(case: Case) -> str:
    lay = case.model.layout
    if lay.num_kv_heads == lay.num_heads:
        return "mha"
    return "mqa" if lay.num_kv_heads == 1 else "gqa"


def size_tier(case: Case) -> str:
    small = (
        case.model.layout.hidden_size <= TINY_LIMITS["hidden_size"]
        and case.model.num_layers <= TINY_LIMITS["num_layers"]
        and case.prefix.num_virtual_tokens <= TINY_LIMITS["num_virtual_tokens"]
    )
    return "tiny" if small else "wide"


def axes(prop: str, case: Case, curated: bool) -> dict[str, list]:
    """The example's value on each axis (lists: an example may take several input paths)."""
    return {
        "architecture": [case.model.arch],
        "families": ["curated" if curated else "discovered"],
        "task": [case.task],
        "projection": [str(case.prefix.prefix_projection).lower()],
        "dtype": [case.dtype],
        "attention": [case.model.attn_implementation],
        "input path": list(properties.get(prop).input_paths),
        "padding side": [case.recipe.padding_side],
        "kv layout": [kv_layout(case)],
        "size tier": [size_tier(case)],
    }


def table(records) -> dict[str, dict[str, dict[str, int]]]:
    """axis -> value -> outcome -> examples, over ExampleRecords that carry `axes`."""
    out: dict[str, dict[str, dict[str, int]]] = {axis: {} for axis in AXES}
    for record in records:
        for axis, values in (record.axes or {}).items():
            for value in values:
                slot = out.setdefault(axis, {}).setdefault(str(value), {})
                slot[record.outcome] = slot.get(record.outcome, 0) + 1
    return out


def expected(archs, tasks: tuple[str, ...], cuda: bool, tiers: tuple[str, ...] = ("tiny",)) -> dict[str, set]:
    """The values a whole run of the property suite must reach on each axis."""
    paths = {p for prop in properties.ALL if not prop.cuda for p in prop.input_paths}
    sdpa = any("sdpa" in a.attn_implementations(t) for a in archs for t in a.available_tasks() if t in tasks)
    return {
        "architecture": {a.name for a in archs if set(a.available_tasks()) & set(tasks)},
        "families": {"curated" if a.curated else "discovered" for a in archs},
        "task": set(tasks),
        "projection": {"true", "false"},
        "dtype": {"float32", "bfloat16"} | ({"float16"} if cuda else set()),
        "attention": {"eager"} | ({"sdpa"} if sdpa else set()),
        "input path": paths,
        "padding side": {"left", "right"},
        "kv layout": {"mha", "gqa", "mqa"},
        "size tier": set(tiers),
    }


def gaps(coverage: dict, expected: dict[str, set]) -> list[str]:
    """'axis=value' for every expected value no example took."""
    return sorted(
        f"{axis}={value}"
        for axis, values in expected.items()
        for value in values
        if value not in coverage.get(axis, {})
    )


def markdown(coverage: dict) -> list[str]:
    lines = ["", "### Coverage", "", "| axis | values (examples: passed/known/inconclusive/failed) |", "|---|---|"]
    for axis in AXES:
        cells = []
        for value, n in sorted((coverage.get(axis) or {}).items()):
            counts = "/".join(str(n.get(k, 0)) for k in (PASSED, KNOWN, INCONCLUSIVE, FAILED))
            cells.append(f"{value} {counts}")
        shown = cells if axis != "architecture" or len(cells) <= 20 else [f"{len(cells)} architectures (summary.json)"]
        lines.append(f"| {axis} | {', '.join(shown) or '-'} |")
    return lines
