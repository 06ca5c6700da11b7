"""What to test: Hypothesis strategies for prefix-tuning cases.

Read top-down like a grammar. Small named pieces (`num_virtual_tokens`, `attention_layouts`,
`prefix_specs`, `recipes`, ...) compose into `cases()`. Every constraint a real model has
(KV heads divide heads, GPT-NeoX's rotary width is even, a classification head exists) is built
in constructively; nothing here rejects with `assume()`.

Composites take keyword flags where `None` means "draw both/any" and a value pins one side, so a
test narrows a strategy without copying it::

    cases()                                    # anything the installed versions can build
    cases(task="CAUSAL_LM", projection=True)   # e.g. llama/CAUSAL_LM, 2 layers, nvt=7, proj on
    cases(arch="t5", gqa=False)

Lists are ordered so that shrinking moves towards the simplest case: Llama before exotic
architectures, fp32 before bf16, CPU before CUDA, projection off before on.
"""

from __future__ import annotations

import os

from hypothesis import strategies as st

from prefixcheck import architectures as archs
from prefixcheck.case import MAX_NEW_TOKENS, AttentionLayout, Case, ModelSpec, PrefixSpec, Recipe
from prefixcheck.versions import features

# Named limits: every example builds and trains a model, so sizes stay tiny.
MAX_LAYERS = 3
MAX_VIRTUAL_TOKENS = 32
MAX_HEADS = archs.Architecture.max_heads
WIDTH_PER_HEAD = (4, 8)  # explicit-head_dim models: hidden = heads * this, head_dim drawn apart
T5_D_MODELS = (16, 32)  # T5's d_model, drawn independently of d_kv * num_heads
ENCODER_HIDDEN_SIZES = (8, 16, 32)  # prefix_projection's MLP width, when not left to PEFT
MAX_STEPS = 3
MAX_BATCH = 3
SEQ_LENS = (3, 8)
MIN_REAL_TOKENS = 2
LEARNING_RATES = (1e-2, 1e-3, 5e-2)
ADAPTER_NAMES = ("default", "other", "prefix_b")
SECOND_ADAPTER = "second"  # multi-adapter's other adapter: never one of ADAPTER_NAMES, so never a clash
VOCAB_SIZE = 64
# The wide tier (nightly): realistic widths, more heads and KV heads than the tiny configs, layer
# counts where per-layer patterns show (Gemma's global layer every sixth), long prefixes, and
# sequences that reach the position limit with the virtual tokens counted.
WIDE_HEADS = (8, 16)
WIDE_HEAD_DIMS = (16, 32)
WIDE_MAX_HIDDEN = 256
WIDE_MAX_KV_HEADS = 8
WIDE_LAYERS = (4, 12)
POSITION_LIMIT = 128  # max_position_embeddings of every curated tiny config (BERT's 130 less its offset)
# long prefixes, leaving room below the position limit for a sequence of SEQ_LENS[1] tokens and
# the tokens generate() adds to it
WIDE_VIRTUAL_TOKENS = (33, POSITION_LIMIT - SEQ_LENS[1] - MAX_NEW_TOKENS)
SIZE_TIERS = ("tiny", "wide")


def size_tiers() -> tuple[str, ...]:
    """PREFIXCHECK_SIZE_TIERS (comma-separated; the nightly profile sets "tiny,wide")."""
    tiers = tuple(t.strip() for t in os.environ.get("PREFIXCHECK_SIZE_TIERS", "tiny").split(",") if t.strip())
    unknown = sorted(set(tiers) - set(SIZE_TIERS))
    if unknown or not tiers:
        raise ValueError(f"PREFIXCHECK_SIZE_TIERS names unknown tiers {unknown}; known: {', '.join(SIZE_TIERS)}")
    return tiers


# -- small pieces --------------------------------------------------------------------------
num_virtual_tokens = st.integers(1, MAX_VIRTUAL_TOKENS)
num_layers = st.integers(1, MAX_LAYERS)
seeds = st.integers(0, 2**16)
padding_sides = st.sampled_from(("left", "right"))


def dtypes(device: str = "cpu") -> st.SearchStrategy[str]:
    """fp32 first; bf16 everywhere; fp16 only on CUDA (CPU fp16 kernels are partial)."""
    return st.sampled_from(("float32", "bfloat16", "float16") if device == "cuda" else ("float32", "bfloat16"))


def devices() -> st.SearchStrategy[str]:
    return st.sampled_from(("cpu", "cuda") if features().cuda else ("cpu",))


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def kv_heads(family: str, heads: int, gqa: bool | None = None, most: int = 0) -> st.SearchStrategy[int]:
    """KV heads a family can express for `heads` query heads: a divisor (GQA, explicit head_dim;
    all heads first, MHA being the simplest; at most `most` below MHA when given), 1 or all (MQA),
    all otherwise. `gqa` pins grouped (fewer KV heads than heads) or not."""
    if family in (archs.GQA, archs.EXPLICIT):
        choices = [d for d in _divisors(heads)[::-1] if not most or d <= most or d == heads]
        if gqa is not None:
            choices = [d for d in choices if (d < heads) == gqa]
        return st.sampled_from(choices)
    if family == archs.MQA:
        return st.just(heads) if gqa is False else st.just(1) if gqa else st.sampled_from((heads, 1))
    return st.just(heads)


@st.composite
def attention_layouts(draw, family: str = archs.GQA, head_dims=(4, 8), gqa: bool | None = None) -> AttentionLayout:
    """Heads, KV heads and head width a family can express.

    >>> attention_layouts(archs.EXPLICIT).example()  # doctest: +SKIP
    AttentionLayout(hidden_size=16, num_heads=4, num_kv_heads=2, head_dim=8)
    """
    grouped = family in (archs.GQA, archs.EXPLICIT, archs.MQA)
    if gqa and not grouped:
        raise ValueError(f"family {family!r} has no KV-head grouping; cannot pin gqa=True")
    # gqa=True needs at least two heads to group
    heads = draw(st.integers(2 if gqa else 1, MAX_HEADS))
    head_dim = draw(st.sampled_from(head_dims))
    kv = draw(kv_heads(family, heads, gqa))
    if family == archs.EXPLICIT:
        # head_dim is free, but configs validate hidden % heads == 0 (Gemma3's validate_architecture)
        hidden = heads * draw(st.sampled_from(WIDTH_PER_HEAD))
    elif family == archs.INNER:
        # T5's d_model is free; d_kv * num_heads == d_model is only the common case
        hidden = draw(st.sampled_from((heads * head_dim, *T5_D_MODELS)))
    else:
        hidden = heads * head_dim
    return AttentionLayout(hidden_size=hidden, num_heads=heads, num_kv_heads=kv, head_dim=head_dim)


def _can_group(arch: archs.Architecture) -> bool:
    if arch.curated:
        return arch.family in (archs.GQA, archs.EXPLICIT, archs.MQA)
    return any(lay.num_kv_heads < lay.num_heads for lay in arch.layouts)


def architectures(
    task: str | None = None, gqa: bool | None = None, families: str | None = None, curated: bool = False
) -> st.SearchStrategy[archs.Architecture]:
    """Architectures the installed transformers can build (curated first, then discovered; or
    `families="curated"`), with `task` if given, able to express GQA if `gqa=True`."""
    pool = [
        a
        for a in archs.available_architectures(families)
        if (task is None or task in a.available_tasks()) and (not gqa or _can_group(a)) and (a.curated or not curated)
    ]
    if not pool:
        raise ValueError(f"no installed architecture supports task={task!r} gqa={gqa!r}")
    # half the draws from each group, or the dozen curated ones would drown in a hundred discovered
    curated = [a for a in pool if a.curated]
    discovered = [a for a in pool if not a.curated]
    return st.one_of(*(st.sampled_from(group) for group in (curated, discovered) if group))


def discovered_layouts(arch: archs.Architecture, gqa: bool | None = None) -> st.SearchStrategy[AttentionLayout]:
    """A discovered family's layouts: the ones discovery saw it build (simplest first)."""
    pool = [lay for lay in arch.layouts if gqa is None or (lay.num_kv_heads < lay.num_heads) == gqa]
    if not pool:
        raise ValueError(f"architecture {arch.name!r} built no layout with gqa={gqa!r}")
    return st.sampled_from(pool)


@st.composite
def wide_layouts(draw, family: str = archs.GQA, gqa: bool | None = None) -> AttentionLayout:
    """The wide tier's layouts: 8 or 16 heads, up to 8 KV heads, hidden up to 256."""
    heads = draw(st.sampled_from(WIDE_HEADS))
    head_dim = draw(st.sampled_from([d for d in WIDE_HEAD_DIMS if heads * d <= WIDE_MAX_HIDDEN]))
    kv = draw(kv_heads(family, heads, gqa, most=WIDE_MAX_KV_HEADS))
    hidden = heads * head_dim
    if family == archs.INNER:
        hidden = draw(st.sampled_from((hidden, 128, WIDE_MAX_HIDDEN)))
    return AttentionLayout(hidden_size=hidden, num_heads=heads, num_kv_heads=kv, head_dim=head_dim)


@st.composite
def model_specs(draw, arch: archs.Architecture, task: str, gqa: bool | None = None, tier: str = "tiny") -> ModelSpec:
    if tier == "wide" and arch.curated:
        layers, layouts = st.integers(*WIDE_LAYERS), wide_layouts(arch.family, gqa)
    elif arch.curated:
        layers, layouts = num_layers, attention_layouts(arch.family, arch.head_dims, gqa)
    else:
        layers, layouts = st.sampled_from(arch.layer_counts), discovered_layouts(arch, gqa)
    return ModelSpec(
        arch=arch.name,
        num_layers=draw(layers),
        layout=draw(layouts),
        vocab_size=VOCAB_SIZE,
        attn_implementation=draw(st.sampled_from(arch.attn_implementations(task))),
    )


@st.composite
def prefix_specs(
    draw, projection: bool | None = None, adapter_name: str | None = None, nvt: int | None = None
) -> PrefixSpec:
    """A PrefixTuningConfig's knobs; init_weights only where the installed PEFT has it."""
    proj = draw(st.booleans()) if projection is None else projection
    return PrefixSpec(
        num_virtual_tokens=draw(num_virtual_tokens) if nvt is None else nvt,
        prefix_projection=proj,
        encoder_hidden_size=draw(st.none() | st.sampled_from(ENCODER_HIDDEN_SIZES)) if proj else None,
        init_weights=draw(st.sampled_from((None, "zero"))) if features().prefix_init_weights else None,
        adapter_name=draw(st.sampled_from(ADAPTER_NAMES)) if adapter_name is None else adapter_name,
    )


@st.composite
def recipes(
    draw, padded: bool | None = None, min_batch: int = 1, padding_side: str | None = None, max_seq_len: int = 0
) -> Recipe:
    """Training length and the judged batch; padding (in the last row only) is built inside the
    sequence length, so with `min_batch=2` at least one row is unpadded. A padded row keeps two
    real tokens: with one, a causal LM's shifted labels are all ignored and its loss is NaN."""
    if max_seq_len:  # the wide tier: up to the position limit (generated tokens counted), often exactly at it
        seq_len = draw(st.just(max_seq_len) | st.integers(SEQ_LENS[1], max_seq_len))
    else:
        seq_len = draw(st.integers(*SEQ_LENS))
    most = seq_len - MIN_REAL_TOKENS
    if padded is None:
        num_padded = draw(st.integers(0, most))
    else:
        num_padded = draw(st.integers(1, most)) if padded else 0
    return Recipe(
        steps=draw(st.integers(1, MAX_STEPS)),
        learning_rate=draw(st.sampled_from(LEARNING_RATES)),
        batch_size=draw(st.integers(min_batch, MAX_BATCH)),
        seq_len=seq_len,
        padding_side=padding_side or draw(padding_sides),
        num_padded=num_padded,
    )


@st.composite
def cases(
    draw,
    task: str | None = None,
    arch: str | None = None,
    projection: bool | None = None,
    gqa: bool | None = None,
    dtype: str | None = None,
    device: str | None = None,
    adapter_name: str | None = None,
    padded: bool | None = None,
    min_batch: int = 1,
    families: str | None = None,
    padding_side: str | None = None,
) -> Case:
    """A whole case the installed versions can build.

    >>> cases(task="CAUSAL_LM").example()  # doctest: +SKIP
    Case(model=ModelSpec(arch='llama', num_layers=2, layout=AttentionLayout(hidden_size=8,
         num_heads=2, num_kv_heads=1, head_dim=4), ...), task='CAUSAL_LM', prefix=PrefixSpec(...), ...)
    """
    tier = draw(st.sampled_from(size_tiers()))
    a = archs.get(arch) if arch else draw(architectures(task=task, gqa=gqa, families=families, curated=tier == "wide"))
    t = task or draw(st.sampled_from(a.available_tasks()))
    if t not in a.available_tasks():
        raise ValueError(f"architecture {a.name!r} has no {t} head in the installed transformers")
    dev = device or draw(devices())
    wide = tier == "wide" and a.curated
    nvt = draw(st.integers(*WIDE_VIRTUAL_TOKENS)) if wide else None
    return Case(
        model=draw(model_specs(a, t, gqa, "wide" if wide else "tiny")),
        task=t,
        prefix=draw(prefix_specs(projection, adapter_name, nvt)),
        recipe=draw(recipes(padded, min_batch, padding_side, POSITION_LIMIT - nvt - MAX_NEW_TOKENS if wide else 0)),
        dtype=dtype or draw(dtypes(dev)),
        device=dev,
        seed=draw(seeds),
    )
