"""Shared pieces of the property tests: the task axis, the Hypothesis wrapper and the seed pins."""

from __future__ import annotations

import collections
import os

from prefixcheck import architectures, pinned, properties
from prefixcheck.case import AttentionLayout, Case, ModelSpec, PrefixSpec, Recipe

# Split every property by task so pytest-xdist spreads the work over both cores and every task
# type gets its own examples. Only tasks some installed architecture has a head for.
TASKS = tuple(
    t
    for t in architectures.AUTO_CLASS
    if any(t in a.available_tasks() for a in architectures.available_architectures())
)
GENERATIVE = tuple(t for t in TASKS if t in ("CAUSAL_LM", "SEQ_2_SEQ_LM"))


def tasks_of(name: str) -> tuple[str, ...]:
    """The task axis of a property: generate() properties run on generative tasks only."""
    return GENERATIVE if properties.get(name).generative_only else TASKS


# The seed (peft#2256) at tiny width: 28 layers, no GQA, 10 virtual tokens, projection on,
# so the saved table is [10, 28 * 2 * token_dim] while the training encoder is [10, token_dim].
SEED_LAYOUT = AttentionLayout(hidden_size=12, num_heads=3, num_kv_heads=3, head_dim=4)
SEED_CASE = Case(
    model=ModelSpec(arch="llama", num_layers=28, layout=SEED_LAYOUT),
    task="CAUSAL_LM",
    prefix=PrefixSpec(num_virtual_tokens=10, prefix_projection=True),
    recipe=Recipe(steps=2, learning_rate=1e-2, batch_size=2, seq_len=6, num_padded=2),
)
SEED_CASE_NO_PROJECTION = SEED_CASE.with_prefix(prefix_projection=False)
SEED_CASES = {"projection": SEED_CASE, "no-projection": SEED_CASE_NO_PROJECTION}


# -- every family, each its own test item --------------------------------------------------
# One fixed small case per architecture x task x projection (prefixcheck.pinned.EVERY_FAMILY), in
# its own test item, so a failure of one family (at build time, or anywhere) never stops another
# from being judged. The property each cell runs rotates through the task's properties, so every
# property meets many families.
EVERY_FAMILY_MODES = ("rotate", "all")
# the properties whose claims are the input paths (ids vs embeddings, masks, positions, padding
# sides, labels; greedy, beam, repeated and embeds generate(), no cache): every cell runs them
INPUT_PATH_PROPERTIES = ("input-paths", "generate-paths")


def every_family_mode() -> str:
    """PREFIXCHECK_EVERY_FAMILY: `rotate` (default; per cell the input-path properties, and per
    family x task one more, turning per task among the properties of one round trip's cost; the
    Trainer ones meet every family in the Hypothesis items) or `all` (every property of the task per cell: the sweep that shows, per family,
    what the registry must hold)."""
    mode = os.environ.get("PREFIXCHECK_EVERY_FAMILY", "rotate")
    if mode not in EVERY_FAMILY_MODES:
        raise ValueError(f"PREFIXCHECK_EVERY_FAMILY={mode!r} is not one of {', '.join(EVERY_FAMILY_MODES)}")
    return mode


def every_family_cells(mode: str | None = None) -> list[tuple[str, Case]]:
    """(property, case) per available architecture x task x projection (x property with `all`)."""
    mode = mode or every_family_mode()
    cells = []
    turn = {t: 0 for t in TASKS}
    rounds: collections.Counter = collections.Counter()
    for arch in architectures.available_architectures():
        for task in arch.available_tasks():
            if task not in TASKS:
                continue
            props = [p for p in properties.ALL if not p.cuda and task in tasks_of(p.name)]
            if mode == "rotate":  # the Trainer-heavy properties (cost < 1) meet the families in the Hypothesis items
                props = [p for p in props if p.cost >= 1]
            # one turning property per family x task, on one of its two cells: that property's
            # projection alternates each time it comes round, so it meets both
            turning = props[(turn[task] // 2) % len(props)]
            turning_projection = bool(rounds[(task, turning.name)] % 2)
            rounds[(task, turning.name)] += 1
            for projection in (False, True):
                i = turn[task]
                turn[task] += 1
                case = pinned.case(
                    arch, task, projection, pinned.EVERY_FAMILY, seed=i, padding_side=("left", "right")[i % 2]
                )
                # rotate: the input-path properties on every cell (the pinned cross-product: each
                # family x task x projection through every input path), and the turning one
                paths = [p for p in props if p.name in INPUT_PATH_PROPERTIES]
                extra = [turning] if projection == turning_projection else []
                chosen = props if mode == "all" else list(dict.fromkeys([*extra, *paths]))
                for p in chosen:
                    # input-paths compares a right-padded row with itself alone
                    right = case.with_recipe(padding_side="right") if p.name == "input-paths" else case
                    cells.append((p.name, right))
    return cells
