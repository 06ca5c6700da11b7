"""What the strategies' arguments may be, checked when a strategy is built (they draw nothing):
each bad argument is one `InvalidStrategyArgument` line naming the call and the argument, as
Hypothesis' own `extra.numpy` checks its arguments before any example is drawn."""

from __future__ import annotations

import re

from hypothesis.errors import InvalidArgument

from prefixcheck import architectures as archs

# the families whose layouts attention_layouts/wide_layouts/kv_heads build; a discovered (generic)
# family draws the layouts discovery saw (discovered_layouts)
# -- what arguments may be (checked at build time, by the helpers at the end of this module) --
# the families whose layouts attention_layouts/wide_layouts/kv_heads build; a discovered (generic)
# family draws the layouts discovery saw (discovered_layouts)
LAYOUT_FAMILIES = (archs.MHA, archs.GQA, archs.EXPLICIT, archs.MQA, archs.INNER)
GROUPED_FAMILIES = (archs.GQA, archs.EXPLICIT, archs.MQA)  # can have fewer KV heads than heads
FAMILY_ARGS = archs.FAMILY_SETS  # a strategy's `families`: "all" or "curated" (None: PREFIXCHECK_FAMILIES)
PADDING_SIDES = ("left", "right")
# a ModuleDict key and a folder name under save_pretrained's directory: no ".", no "/", not empty
ADAPTER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class InvalidStrategyArgument(InvalidArgument, ValueError):
    """A strategy built with an argument it cannot draw from: one line, naming the call and the
    argument. A Hypothesis `InvalidArgument`, and a `ValueError` as these errors always were."""


def can_group(arch: archs.Architecture) -> bool:
    if arch.curated:
        return arch.family in (archs.GQA, archs.EXPLICIT, archs.MQA)
    return any(lay.num_kv_heads < lay.num_heads for lay in arch.layouts)


# -- argument checks (at build time; they draw nothing) -----------------------------------
def shown(value: object) -> str:
    text = f"<architecture {value.name!r}>" if isinstance(value, archs.Architecture) else repr(value)
    return text.replace("\n", "\\n")


def reject(func: str, message: str, **given: object) -> None:
    """Raise one line: `func(name=value, ...): message`, the arguments at fault in call order."""
    call = ", ".join(f"{name}={shown(value)}" for name, value in given.items())
    raise InvalidStrategyArgument(f"{func}({call}): {message}")


def choice(func: str, name: str, value: object, choices: tuple, *, optional: bool = True) -> None:
    if (value is None and optional) or (isinstance(value, str) and value in choices):
        return
    reject(func, f"{name} must be one of {', '.join(choices)}", **{name: value})


def flag(func: str, name: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        reject(func, f"{name} must be True, False or None", **{name: value})


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(func: str, name: str, value: object, low: int, high: int, bounds: str) -> None:
    """`bounds` says the range the way the message names it ("1 and MAX_BATCH=3")."""
    if not is_int(value):
        reject(func, f"{name} must be an int between {bounds}", **{name: value})
    if not low <= value <= high:
        reject(func, f"{name} must be between {bounds}", **{name: value})


def adapter_name(func: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        reject(func, "adapter_name must be a str or None", adapter_name=value)
    if not ADAPTER_NAME.fullmatch(value):
        reject(
            func,
            "adapter_name must be letters, digits, '_' or '-', not starting with a digit or '-'"
            " (a module key and a folder name)",
            adapter_name=value,
        )


def architecture(func: str, arch: object) -> None:
    if not isinstance(arch, archs.Architecture):
        reject(func, "arch must be an Architecture (prefixcheck.architectures.get(name))", arch=arch)


def layout_family(func: str, family: object) -> None:
    choice(func, "family", family, LAYOUT_FAMILIES, optional=False)


def gqa_family(func: str, family: str, gqa: bool | None) -> None:
    if gqa and family not in GROUPED_FAMILIES:
        reject(
            func,
            f"family {family!r} has no KV-head grouping; gqa=True needs one of {', '.join(GROUPED_FAMILIES)}",
            family=family,
            gqa=gqa,
        )


def can_ungroup(arch: archs.Architecture) -> bool:
    """Can express all KV heads (gqa=False): every curated family, a discovered one that built such a layout."""
    return arch.curated or any(lay.num_kv_heads == lay.num_heads for lay in arch.layouts)


def arch_gqa(func: str, arch: archs.Architecture, gqa: bool | None, /, **given: object) -> None:
    """`given`: the call's arguments to show, in its order."""
    if gqa and not can_group(arch):
        reject(func, f"architecture {arch.name!r} cannot express GQA (fewer KV heads than heads)", **given)
    if gqa is False and not can_ungroup(arch):
        reject(func, f"architecture {arch.name!r} built no layout without GQA", **given)


def arch_task(func: str, arch: archs.Architecture, task: str, /, **given: object) -> None:
    if task not in arch.available_tasks():
        reject(func, f"architecture {arch.name!r} has no {task} head in the installed transformers", **given)


def pool_exists(task: str | None, gqa: bool | None, families: str | None, curated: bool) -> bool:
    """Whether architectures(task, gqa, families, curated) has anything to draw; the curated
    architectures are asked first, so discovery runs only where none of them fits."""

    def fits(a: archs.Architecture) -> bool:
        return (task is None or task in a.available_tasks()) and (not gqa or can_group(a))

    if any(fits(a) for a in archs.available_architectures("curated")):
        return True
    if curated or (families or archs.family_set()) == "curated":
        return False
    return any(fits(a) for a in archs.available_architectures(families) if not a.curated)


def no_pool(task: str | None, gqa: bool | None, families: str | None, curated: bool) -> str:
    wanted = ([f"has a {task} head"] if task else []) + (["can express GQA"] if gqa else [])
    where = " curated" if curated or (families or archs.family_set()) == "curated" else ""
    return f"no installed{where} architecture {' and '.join(wanted) or 'is available'}"
