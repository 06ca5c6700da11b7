"""The architectures the suite builds: the curated ones (curated.py, hand-written tiny configs) and
every other model type the installed transformers offers that can carry a prefix (discovery.py,
built through the generic recipe of generic.py with the overrides of families.toml).

`PREFIXCHECK_FAMILIES=curated` restricts a run to the curated architectures (the matrix, whose
artifacts cross versions, and quick local runs); the default, `all`, adds the discovered ones.
"""

from __future__ import annotations

import os
from functools import cache

from ..case import Blueprint, ModelSpec
from . import discovery
from .curated import (
    _AUTO_MAPPING,
    ARCHITECTURES,
    AUTO_CLASS,
    BOS_EOS,
    EXPLICIT,
    GENERIC,
    GQA,
    INNER,
    MHA,
    MQA,
    NUM_LABELS,
    PAD,
    Architecture,
)

FAMILY_SETS = ("all", "curated")


def family_set() -> str:
    value = os.environ.get("PREFIXCHECK_FAMILIES", "all")
    if value not in FAMILY_SETS:
        raise ValueError(f"PREFIXCHECK_FAMILIES={value!r} is not one of {', '.join(FAMILY_SETS)}")
    return value


def _curated_available() -> tuple[Architecture, ...]:
    return tuple(a for a in ARCHITECTURES if a.available())


def available_architectures(families: str | None = None) -> tuple[Architecture, ...]:
    """What the installed transformers can build (feature-detected, not version-checked): the
    curated architectures first (simplest first, so shrinking moves towards Llama), then the
    discovered ones."""
    families = families or family_set()
    curated = _curated_available()
    return curated if families == "curated" else curated + discovery.discovered()


@cache
def by_name() -> dict[str, Architecture]:
    """Every architecture by name (built once: case facts, configs and records look names up per example)."""
    return {a.name: a for a in ARCHITECTURES + discovery.discovered()}


def get(name: str) -> Architecture:
    found = next((a for a in ARCHITECTURES if a.name == name), None) or by_name().get(name)
    if found is None:
        raise KeyError(f"unknown architecture {name!r}; known here: {', '.join(sorted(by_name()))}")
    return found


def blueprint(case) -> Blueprint:
    """What building and judging `case`'s model needs of its architecture, as plain data (the
    engine reads nothing else of this package; a reproduction script carries it)."""
    return _blueprint(case.model, case.task)


@cache
def _blueprint(model: ModelSpec, task: str) -> Blueprint:
    arch = get(model.arch)
    config, head = arch.config_kwargs(model), arch.task_kwargs(task)
    clash = sorted(set(config) & set(head))
    if clash:  # one config field from two places: a bug of the architecture's recipe
        raise TypeError(f"{arch.name}: the task's config fields {clash} are set by the model's recipe too")
    width = arch.peft_num_layers(model) * 2 * arch.peft_token_dim(model) if arch.curated else None
    return Blueprint(
        model_type=arch.model_type,
        config={**config, **head},
        auto_class=AUTO_CLASS[task],
        pad_token_id=PAD,
        num_labels=NUM_LABELS.get(task),
        prefix_width=width,
        positions=arch.positions,
        encoder_style=arch.encoder_style,
    )


__all__ = [
    "ARCHITECTURES",
    "AUTO_CLASS",
    "BOS_EOS",
    "EXPLICIT",
    "FAMILY_SETS",
    "GENERIC",
    "GQA",
    "INNER",
    "MHA",
    "MQA",
    "NUM_LABELS",
    "PAD",
    "Architecture",
    "_AUTO_MAPPING",
    "available_architectures",
    "blueprint",
    "by_name",
    "discovery",
    "family_set",
    "get",
]
