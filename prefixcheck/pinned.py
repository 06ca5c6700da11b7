"""The pinned cases: one fixed small case per architecture x task, the same in every run.

Two sets of them, each made here and nowhere else:

- `EVERY_FAMILY`: the every-family test items (tests/properties/_common.py), one per architecture
  x task x projection, so a failure of one family never hides another's verdicts;
- `ARTIFACTS`: the matrix's pinned artifacts (matrix.grid.produce), one per architecture x task
  in every producer cell, and the committed legacy artifacts made from them.

They differ in size and recipe for a reason each: the artifacts are what the recorded matrix
(docs/matrix) and tests/legacy/expected.json were made with, so changing them makes every
artifact and every recorded verdict new; the every-family cells are the suite's own, drawn
with a lighter recipe (learning rate 1e-2, one padded token) so that a thousand of them fit
CI's budget. Within each, the layout follows the architecture's family (GQA where the family can
express it) and the head width the architecture can take (GPT-NeoX rotates a quarter of each
head: its head_dim must be 8 or more).
"""

from __future__ import annotations

from dataclasses import dataclass

from .case import AttentionLayout, Case, ModelSpec, PrefixSpec, Recipe

NUM_VIRTUAL_TOKENS = 3
NUM_LAYERS = 2


@dataclass(frozen=True)
class Preset:
    """One set of pinned cases: the layout per family (hidden, heads, KV heads, head_dim) and the recipe."""

    name: str
    layouts: dict[str, tuple[int, int, int, int]]
    recipe: Recipe


EVERY_FAMILY = Preset(
    "every-family",
    {
        "mha": (16, 4, 4, 4),
        "gqa": (16, 4, 2, 4),
        "explicit": (16, 2, 1, 8),
        "mqa": (16, 4, 1, 4),
        "inner": (16, 4, 4, 4),
    },
    Recipe(steps=2, learning_rate=1e-2, batch_size=2, seq_len=5, num_padded=1),
)
ARTIFACTS = Preset(
    "artifacts",
    {
        "mha": (8, 2, 2, 4),
        "gqa": (16, 4, 2, 4),
        "explicit": (16, 4, 2, 8),
        "mqa": (16, 4, 1, 4),
        "inner": (8, 2, 2, 4),
    },
    Recipe(steps=2, learning_rate=5e-2, batch_size=2, seq_len=6, num_padded=2),
)


def model(arch, preset: Preset) -> ModelSpec:
    """The pinned model of `arch` (a prefixcheck.architectures.Architecture): a curated one at its
    family's layout of `preset`, at a head width it can take; a discovered one at the first layout
    discovery saw it build, with two layers where it built two."""
    if not arch.curated:
        layers = NUM_LAYERS if NUM_LAYERS in arch.layer_counts else arch.layer_counts[0]
        return ModelSpec(arch=arch.name, num_layers=layers, layout=arch.layouts[0])
    layout = AttentionLayout(*preset.layouts[arch.family])
    if layout.head_dim not in arch.head_dims:  # GPT-NeoX: the rotated quarter of a head must be even
        hd = arch.head_dims[0]
        layout = AttentionLayout(layout.num_heads * hd, layout.num_heads, layout.num_kv_heads, hd)
    return ModelSpec(arch=arch.name, num_layers=NUM_LAYERS, layout=layout)


def case(arch, task: str, projection: bool, preset: Preset, *, seed: int = 0, padding_side: str = "left") -> Case:
    """The pinned case of `arch` x `task` with the prefix projection on or off."""
    return Case(
        model=model(arch, preset),
        task=task,
        prefix=PrefixSpec(num_virtual_tokens=NUM_VIRTUAL_TOKENS, prefix_projection=projection),
        recipe=Recipe(**{**vars(preset.recipe), "padding_side": padding_side}),
        seed=seed,
    )
