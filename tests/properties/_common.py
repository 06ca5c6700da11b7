"""Shared pieces of the property tests: the task axis, the Hypothesis wrapper and the seed pins."""

from __future__ import annotations

from prefixcheck import architectures, properties
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
