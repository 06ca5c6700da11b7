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

Arguments are checked when a strategy is built, as in `hypothesis.extra.numpy`: a public function
checks every argument (type, value, and the combinations no installed architecture can satisfy)
and raises `InvalidStrategyArgument` at once, one line naming the call and the argument::

    cases(task="FOO")  # cases(task='FOO'): task must be one of CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS, TOKEN_CLS

then returns a private composite (`_cases`, ...) that only draws. The private composites call
one another unchecked. The environment is no argument: PREFIXCHECK_SIZE_TIERS and
PREFIXCHECK_FAMILIES are read when drawing, as they always were; the build-time checks use their
values at build time.
"""

from __future__ import annotations

import dataclasses
import os

from hypothesis import strategies as st

from prefixcheck import architectures as archs
from prefixcheck import methods as prefix_methods
from prefixcheck.case import (
    DEVICES,
    DTYPES,
    MAX_NEW_TOKENS,
    SECOND_ADAPTER,
    TASKS,
    AttentionLayout,
    Case,
    ModelSpec,
    PrefixSpec,
    Recipe,
)
from prefixcheck.methods import CPT, PREFIX_TUNING
from prefixcheck.versions import features

from . import arguments as check
from . import methods as method_pieces
from .arguments import InvalidStrategyArgument as InvalidStrategyArgument  # the error of every strategy here
from .methods import ENCODER_HIDDEN_SIZES

# Named limits: every example builds and trains a model, so sizes stay tiny.
MAX_LAYERS = 3
MAX_VIRTUAL_TOKENS = 32
MAX_HEADS = archs.Architecture.max_heads
WIDTH_PER_HEAD = (4, 8)  # explicit-head_dim models: hidden = heads * this, head_dim drawn apart
T5_D_MODELS = (16, 32)  # T5's d_model, drawn independently of d_kv * num_heads
MAX_STEPS = 3
MAX_BATCH = 3
SEQ_LENS = (3, 8)
MIN_REAL_TOKENS = 2
LEARNING_RATES = (1e-2, 1e-3, 5e-2)
ADAPTER_NAMES = ("default", "other", "prefix_b")
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


MAX_PINNED_VIRTUAL_TOKENS = WIDE_VIRTUAL_TOKENS[1]  # longer leaves no sequence room below the position limit
MAX_SEQ_LEN = POSITION_LIMIT - MAX_NEW_TOKENS - 1  # recipes(max_seq_len=): at least one virtual token fits


# -- small pieces --------------------------------------------------------------------------
num_virtual_tokens = st.integers(1, MAX_VIRTUAL_TOKENS)
num_layers = st.integers(1, MAX_LAYERS)
seeds = st.integers(0, 2**16)
padding_sides = st.sampled_from(check.PADDING_SIDES)


def dtypes(device: str = "cpu") -> st.SearchStrategy[str]:
    """The dtypes a device computes in: fp32 first; bf16 everywhere; fp16 only on CUDA (CPU fp16
    kernels are partial).

    device: "cpu" or "cuda", the device the dtypes are for (only names are drawn, so "cuda" is
        accepted without a CUDA device). Shrinks towards float32.
    """
    check.choice("dtypes", "device", device, DEVICES, optional=False)
    return _dtypes(device)


def _dtypes(device: str) -> st.SearchStrategy[str]:
    return st.sampled_from(("float32", "bfloat16", "float16") if device == "cuda" else ("float32", "bfloat16"))


def devices() -> st.SearchStrategy[str]:
    """cpu, then cuda where torch sees a CUDA device; shrinks towards cpu."""
    return st.sampled_from(("cpu", "cuda") if features().cuda else ("cpu",))


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def kv_heads(family: str, heads: int, gqa: bool | None = None, most: int = 0) -> st.SearchStrategy[int]:
    """KV heads a family can express for `heads` query heads: a divisor (GQA, explicit head_dim),
    1 or all (MQA), all otherwise.

    family: one of check.LAYOUT_FAMILIES (mha, gqa, explicit, mqa, inner); decides which counts exist.
    heads: the query heads, an int >= 1 (>= 2 with gqa=True: one head cannot be grouped).
    gqa: True pins grouped (fewer KV heads than heads; the family must be gqa, explicit or mqa),
        False pins all heads; None draws either. Shrinks towards all heads (MHA, the simplest), then
        towards the larger divisors.
    most: an int >= 0; when given (> 0) bounds the KV heads below MHA to at most `most` (the wide
        tier's WIDE_MAX_KV_HEADS); 0 leaves them unbounded. Ignored outside gqa and explicit.
    """
    check.layout_family("kv_heads", family)
    if not check.is_int(heads) or heads < 1:
        check.reject("kv_heads", "heads must be an int >= 1", heads=heads)
    check.flag("kv_heads", "gqa", gqa)
    check.gqa_family("kv_heads", family, gqa)
    if gqa and heads < 2:
        check.reject("kv_heads", "gqa=True needs at least 2 heads to group", heads=heads, gqa=gqa)
    if not check.is_int(most) or most < 0:
        check.reject("kv_heads", "most must be an int >= 0 (0: no bound)", most=most)
    return _kv_heads(family, heads, gqa, most)


def _kv_heads(family: str, heads: int, gqa: bool | None = None, most: int = 0) -> st.SearchStrategy[int]:
    if family in (archs.GQA, archs.EXPLICIT):
        choices = [d for d in _divisors(heads)[::-1] if not most or d <= most or d == heads]
        if gqa is not None:
            choices = [d for d in choices if (d < heads) == gqa]
        return st.sampled_from(choices)
    if family == archs.MQA:
        return st.just(heads) if gqa is False else st.just(1) if gqa else st.sampled_from((heads, 1))
    return st.just(heads)


def attention_layouts(
    family: str = archs.GQA, head_dims: tuple[int, ...] = (4, 8), gqa: bool | None = None
) -> st.SearchStrategy[AttentionLayout]:
    """Heads, KV heads and head width a family can express (the tiny tier).

    family: one of check.LAYOUT_FAMILIES (mha, gqa, explicit, mqa, inner). Explicit: hidden is heads times
        one of WIDTH_PER_HEAD, head_dim drawn apart; inner (T5): d_model is heads * head_dim or one of
        T5_D_MODELS; otherwise hidden is heads * head_dim.
    head_dims: a non-empty tuple (or list) of ints >= 1 the head width is drawn from, shrinking
        towards the first (the architecture's `head_dims`).
    gqa: True pins grouped KV heads (needs gqa, explicit or mqa; then 2..MAX_HEADS heads), False all
        KV heads, None either, shrinking towards all (MHA). Heads run 1..MAX_HEADS, shrinking to 1.

    >>> attention_layouts(archs.EXPLICIT).example()  # doctest: +SKIP
    AttentionLayout(hidden_size=16, num_heads=4, num_kv_heads=2, head_dim=8)
    """
    check.layout_family("attention_layouts", family)
    if (
        not isinstance(head_dims, (tuple, list))
        or not head_dims
        or not all(check.is_int(d) and d >= 1 for d in head_dims)
    ):
        check.reject("attention_layouts", "head_dims must be a non-empty tuple of ints >= 1", head_dims=head_dims)
    check.flag("attention_layouts", "gqa", gqa)
    check.gqa_family("attention_layouts", family, gqa)
    return _attention_layouts(family, head_dims, gqa)


@st.composite
def _attention_layouts(draw, family: str = archs.GQA, head_dims=(4, 8), gqa: bool | None = None) -> AttentionLayout:
    # gqa=True needs at least two heads to group
    heads = draw(st.integers(2 if gqa else 1, MAX_HEADS))
    head_dim = draw(st.sampled_from(head_dims))
    kv = draw(_kv_heads(family, heads, gqa))
    if family == archs.EXPLICIT:
        # head_dim is free, but configs validate hidden % heads == 0 (Gemma3's validate_architecture)
        hidden = heads * draw(st.sampled_from(WIDTH_PER_HEAD))
    elif family == archs.INNER:
        # T5's d_model is free; d_kv * num_heads == d_model is only the common case
        hidden = draw(st.sampled_from((heads * head_dim, *T5_D_MODELS)))
    else:
        hidden = heads * head_dim
    return AttentionLayout(hidden_size=hidden, num_heads=heads, num_kv_heads=kv, head_dim=head_dim)


def architectures(
    task: str | None = None, gqa: bool | None = None, families: str | None = None, curated: bool = False
) -> st.SearchStrategy[archs.Architecture]:
    """Architectures the installed transformers can build: half the draws from the curated ones,
    half from the discovered ones (or the dozen curated would drown in a hundred discovered), each
    group in its own order, so examples shrink towards Llama.

    task: one of TASKS; keeps the architectures with that task's head in the installed transformers.
        None: any task.
    gqa: True keeps the architectures that can express GQA (fewer KV heads than heads); False and
        None keep all (every architecture can express all KV heads).
    families: "all" (curated and discovered) or "curated"; None reads PREFIXCHECK_FAMILIES (default all).
    curated: True keeps the curated architectures only (the wide tier's configs are hand-written).

    A combination no installed architecture satisfies raises here.
    """
    check.choice("architectures", "task", task, TASKS)
    check.flag("architectures", "gqa", gqa)
    check.choice("architectures", "families", families, check.FAMILY_ARGS)
    if not isinstance(curated, bool):
        check.reject("architectures", "curated must be True or False", curated=curated)
    given = {k: v for k, v in dict(task=task, gqa=gqa, families=families, curated=curated).items() if v}
    if not check.pool_exists(task, gqa, families, curated):
        check.reject("architectures", check.no_pool(task, gqa, families, curated), **given)
    return _architectures(task, gqa, families, curated)


def _architectures(
    task: str | None = None, gqa: bool | None = None, families: str | None = None, curated: bool = False
) -> st.SearchStrategy[archs.Architecture]:
    pool = [
        a
        for a in archs.available_architectures(families)
        if (task is None or task in a.available_tasks())
        and (not gqa or check.can_group(a))
        and (a.curated or not curated)
    ]
    if not pool:  # only where the environment changed after the build-time check
        raise ValueError(f"no installed architecture supports task={task!r} gqa={gqa!r}")
    # half the draws from each group, or the dozen curated ones would drown in a hundred discovered
    curated = [a for a in pool if a.curated]
    discovered = [a for a in pool if not a.curated]
    return st.one_of(*(st.sampled_from(group) for group in (curated, discovered) if group))


def discovered_layouts(arch: archs.Architecture, gqa: bool | None = None) -> st.SearchStrategy[AttentionLayout]:
    """A discovered family's layouts: the ones discovery saw it build.

    arch: a discovered (generic-family) Architecture; curated ones draw `attention_layouts`.
    gqa: True keeps the grouped layouts (fewer KV heads than heads), False the others, None all.
        Shrinks towards the simplest layout discovery built (its first).
    """
    check.architecture("discovered_layouts", arch)
    if arch.curated:
        check.reject(
            "discovered_layouts",
            "arch must be a discovered architecture (curated ones draw attention_layouts)",
            arch=arch,
        )
    check.flag("discovered_layouts", "gqa", gqa)
    check.arch_gqa("discovered_layouts", arch, gqa, arch=arch, gqa=gqa)
    return _discovered_layouts(arch, gqa)


def _discovered_layouts(arch: archs.Architecture, gqa: bool | None = None) -> st.SearchStrategy[AttentionLayout]:
    pool = [lay for lay in arch.layouts if gqa is None or (lay.num_kv_heads < lay.num_heads) == gqa]
    if not pool:
        raise ValueError(f"architecture {arch.name!r} built no layout with gqa={gqa!r}")
    return st.sampled_from(pool)


def wide_layouts(family: str = archs.GQA, gqa: bool | None = None) -> st.SearchStrategy[AttentionLayout]:
    """The wide tier's layouts: 8 or 16 heads (WIDE_HEADS), head_dim from WIDE_HEAD_DIMS with
    hidden at most WIDE_MAX_HIDDEN, up to WIDE_MAX_KV_HEADS KV heads below MHA.

    family: one of check.LAYOUT_FAMILIES; inner (T5) also draws d_model from (heads * head_dim, 128, 256).
    gqa: True pins grouped KV heads (needs gqa, explicit or mqa), False all, None either, shrinking
        towards all (MHA). Heads shrink towards 8, head_dim towards 16.
    """
    check.layout_family("wide_layouts", family)
    check.flag("wide_layouts", "gqa", gqa)
    check.gqa_family("wide_layouts", family, gqa)
    return _wide_layouts(family, gqa)


@st.composite
def _wide_layouts(draw, family: str = archs.GQA, gqa: bool | None = None) -> AttentionLayout:
    heads = draw(st.sampled_from(WIDE_HEADS))
    head_dim = draw(st.sampled_from([d for d in WIDE_HEAD_DIMS if heads * d <= WIDE_MAX_HIDDEN]))
    kv = draw(_kv_heads(family, heads, gqa, most=WIDE_MAX_KV_HEADS))
    hidden = heads * head_dim
    if family == archs.INNER:
        hidden = draw(st.sampled_from((hidden, 128, WIDE_MAX_HIDDEN)))
    return AttentionLayout(hidden_size=hidden, num_heads=heads, num_kv_heads=kv, head_dim=head_dim)


def model_specs(
    arch: archs.Architecture, task: str, gqa: bool | None = None, tier: str = "tiny"
) -> st.SearchStrategy[ModelSpec]:
    """A tiny model of one architecture: layers, attention layout, attention implementation.

    arch: an Architecture (prefixcheck.architectures.get(name)). Curated ones draw
        `attention_layouts` (tiny) or `wide_layouts` (wide); discovered ones draw
        `discovered_layouts` and the layer counts discovery saw, in either tier.
    task: one of TASKS with a head for `arch` in the installed transformers; bounds the attention
        implementations (eager always, sdpa where the head class supports it; shrinks towards eager).
    gqa: True pins grouped KV heads (the architecture must be able to), False all KV heads, None
        either, shrinking towards all (MHA).
    tier: one of SIZE_TIERS: "tiny" (1..MAX_LAYERS layers, shrinking to 1) or "wide" (WIDE_LAYERS).
    """
    check.architecture("model_specs", arch)
    check.choice("model_specs", "task", task, TASKS, optional=False)
    check.arch_task("model_specs", arch, task, arch=arch, task=task)
    check.flag("model_specs", "gqa", gqa)
    check.arch_gqa("model_specs", arch, gqa, arch=arch, gqa=gqa)
    check.choice("model_specs", "tier", tier, SIZE_TIERS, optional=False)
    return _model_specs(arch, task, gqa, tier)


@st.composite
def _model_specs(draw, arch: archs.Architecture, task: str, gqa: bool | None = None, tier: str = "tiny") -> ModelSpec:
    if tier == "wide" and arch.curated:
        layers, layouts = st.integers(*WIDE_LAYERS), _wide_layouts(arch.family, gqa)
    elif arch.curated:
        layers, layouts = num_layers, _attention_layouts(arch.family, arch.head_dims, gqa)
    else:
        layers, layouts = st.sampled_from(arch.layer_counts), _discovered_layouts(arch, gqa)
    return ModelSpec(
        arch=arch.name,
        num_layers=draw(layers),
        layout=draw(layouts),
        vocab_size=VOCAB_SIZE,
        attn_implementation=draw(st.sampled_from(arch.attn_implementations(task))),
    )


def prefix_specs(
    projection: bool | None = None, adapter_name: str | None = None, nvt: int | None = None
) -> st.SearchStrategy[PrefixSpec]:
    """A PrefixTuningConfig's knobs; init_weights (None, shrinking towards it, or "zero") only where
    the installed PEFT has it.

    projection: pins prefix_projection; None draws either, shrinking towards off. With projection on,
        encoder_hidden_size is left to PEFT (None, shrunk towards) or one of ENCODER_HIDDEN_SIZES.
    adapter_name: pins the adapter's name (letters, digits, '_' and '-', not starting with a digit
        or '-'); None draws one of ADAPTER_NAMES, shrinking towards "default".
    nvt: pins num_virtual_tokens, an int between 1 and MAX_PINNED_VIRTUAL_TOKENS; None draws
        1..MAX_VIRTUAL_TOKENS, shrinking towards 1.
    """
    check.flag("prefix_specs", "projection", projection)
    check.adapter_name("prefix_specs", adapter_name)
    if nvt is not None:
        check.integer(
            "prefix_specs",
            "nvt",
            nvt,
            1,
            MAX_PINNED_VIRTUAL_TOKENS,
            f"1 and MAX_PINNED_VIRTUAL_TOKENS={MAX_PINNED_VIRTUAL_TOKENS}",
        )
    return _prefix_specs(projection, adapter_name, nvt)


@st.composite
def _prefix_specs(
    draw, projection: bool | None = None, adapter_name: str | None = None, nvt: int | None = None
) -> PrefixSpec:
    proj = draw(st.booleans()) if projection is None else projection
    return PrefixSpec(
        num_virtual_tokens=draw(num_virtual_tokens) if nvt is None else nvt,
        prefix_projection=proj,
        encoder_hidden_size=draw(st.none() | st.sampled_from(ENCODER_HIDDEN_SIZES)) if proj else None,
        init_weights=draw(st.sampled_from((None, "zero"))) if features().prefix_init_weights else None,
        adapter_name=draw(st.sampled_from(ADAPTER_NAMES)) if adapter_name is None else adapter_name,
    )


def adapter_specs(
    task: str,
    method: str | None = None,
    projection: bool | None = None,
    adapter_name: str | None = None,
    nvt: int | None = None,
) -> st.SearchStrategy[PrefixSpec]:
    """A prompt-learning adapter for `task`: a method (strategies.methods.method_names: half
    prefix tuning, half the other methods the installed PEFT offers for the task), then
    prefix tuning's knobs (`prefix_specs`) or the method's own options (`method_options`).

    task: one of TASKS.
    method: pins the method (one of prefixcheck.methods.NAMES the installed PEFT offers for
        `task`); None draws.
    projection: True pins prefix tuning with prefix_projection (so `method`, when given, must be
        PREFIX_TUNING); False pins it off (every other method has none); None draws.
    adapter_name, nvt: as `prefix_specs`.
    """
    check.choice("adapter_specs", "task", task, TASKS, optional=False)
    check.flag("adapter_specs", "projection", projection)
    if projection and method not in (None, PREFIX_TUNING):
        check.reject("adapter_specs", "projection=True is prefix tuning's", method=method, projection=projection)
    method_pieces.method_names(task, PREFIX_TUNING if projection else method)
    prefix_specs(projection, adapter_name, nvt)  # checks the shared arguments
    return _adapter_specs(task, method, projection, adapter_name, nvt)


@st.composite
def _adapter_specs(
    draw,
    task: str,
    method: str | None = None,
    projection: bool | None = None,
    adapter_name: str | None = None,
    nvt: int | None = None,
) -> PrefixSpec:
    name = draw(method_pieces._method_names(task, PREFIX_TUNING if projection else method))
    spec = draw(_prefix_specs(projection, adapter_name, nvt))
    if name == PREFIX_TUNING:
        return spec
    count = max(spec.num_virtual_tokens, method_pieces.CPT_MIN_TOKENS) if name == CPT else spec.num_virtual_tokens
    options = draw(method_pieces._method_options(name, count, VOCAB_SIZE))
    return PrefixSpec(
        num_virtual_tokens=count,
        adapter_name=spec.adapter_name,
        method=name,
        options=options,
    )


def second_adapters(first: PrefixSpec, task: str) -> st.SearchStrategy[PrefixSpec]:
    """multi-adapter's second adapter next to `first`: the same method (PEFT keeps one prompt-
    learning type per model's prompt encoders only by convention; the suite judges each method
    alone), named SECOND_ADAPTER, its own knobs drawn.

    first: the case's adapter (a PrefixSpec). task: the case's task (one of TASKS).
    """
    if not isinstance(first, PrefixSpec):
        check.reject("second_adapters", "first must be a PrefixSpec", first=first)
    check.choice("second_adapters", "task", task, TASKS, optional=False)
    return _adapter_specs(task, first.method, None, SECOND_ADAPTER, None).map(lambda s: _same_tasks(s, first))


def _same_tasks(second: PrefixSpec, first: PrefixSpec) -> PrefixSpec:
    """Multitask prompt tuning: the second adapter has the first's tasks, as the judged batch's
    task ids are the first's (row % num_tasks)."""
    if "num_tasks" not in first.option:
        return second
    return dataclasses.replace(second, options={**second.option, "num_tasks": first.option["num_tasks"]}.items())


def recipes(
    padded: bool | None = None, min_batch: int = 1, padding_side: str | None = None, max_seq_len: int = 0
) -> st.SearchStrategy[Recipe]:
    """Training length and the judged batch; padding (in the last row only) is built inside the
    sequence length, so with `min_batch=2` at least one row is unpadded. A padded row keeps two
    real tokens: with one, a causal LM's shifted labels are all ignored and its loss is NaN.
    Steps (1..MAX_STEPS) shrink towards 1, the learning rate towards LEARNING_RATES[0].

    padded: True pins a padded last row (1..seq_len - MIN_REAL_TOKENS pad tokens, shrinking towards
        1), False none; None draws 0..seq_len - MIN_REAL_TOKENS, shrinking towards unpadded.
    min_batch: the smallest batch, an int between 1 and MAX_BATCH; the batch is drawn from
        min_batch..MAX_BATCH, shrinking towards min_batch.
    padding_side: pins "left" or "right"; None draws either, shrinking towards left.
    max_seq_len: 0 (the tiny tier) draws seq_len from SEQ_LENS, shrinking towards the shortest; else
        the wide tier's longest sequence, an int between SEQ_LENS[1] and MAX_SEQ_LEN: seq_len is
        often exactly it, else SEQ_LENS[1]..max_seq_len.
    """
    check.flag("recipes", "padded", padded)
    check.integer("recipes", "min_batch", min_batch, 1, MAX_BATCH, f"1 and MAX_BATCH={MAX_BATCH}")
    check.choice("recipes", "padding_side", padding_side, check.PADDING_SIDES)
    if not check.is_int(max_seq_len) or not (max_seq_len == 0 or SEQ_LENS[1] <= max_seq_len <= MAX_SEQ_LEN):
        check.reject(
            "recipes",
            f"max_seq_len must be 0 or an int between SEQ_LENS[1]={SEQ_LENS[1]} and MAX_SEQ_LEN={MAX_SEQ_LEN}",
            max_seq_len=max_seq_len,
        )
    return _recipes(padded, min_batch, padding_side, max_seq_len)


@st.composite
def _recipes(
    draw, padded: bool | None = None, min_batch: int = 1, padding_side: str | None = None, max_seq_len: int = 0
) -> Recipe:
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


def cases(
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
    method: str | None = None,
) -> st.SearchStrategy[Case]:
    """A whole case the installed versions can build: a size tier (PREFIXCHECK_SIZE_TIERS, read per
    draw; shrinks towards tiny), an architecture, a task, a model, a prefix, a recipe, a dtype, a
    device and a seed (0..2**16, shrinking towards 0). The wide tier draws curated architectures
    only, with WIDE_VIRTUAL_TOKENS virtual tokens and sequences up to the position limit.

    task: pins the task type (one of TASKS); None draws any task the drawn architecture has a head
        for, shrinking towards its first (CAUSAL_LM for Llama).
    arch: pins the architecture by name (a curated one, or a family discovery built; it must have
        `task`'s head when both are given, and `families` is then not consulted beyond "curated"
        rejecting a discovered name); None draws from `architectures(task, gqa, families)`,
        shrinking towards Llama.
    projection: True pins prefix tuning with prefix_projection on; False pins it off (any method);
        None draws either, shrinking towards off.
    method: pins the prompt-learning method (one of prefixcheck.methods.NAMES; the installed PEFT
        must offer it, for `task` when given); None draws one the installed PEFT offers for the
        drawn task (`adapter_specs`: half prefix tuning), shrinking towards prefix tuning.
    gqa: True pins grouped KV heads (fewer than heads; `arch`, when given, must be able to), False
        all KV heads; None either, shrinking towards all (MHA).
    dtype: pins the dtype (one of DTYPES); "float16" only with device="cuda" (CPU fp16 kernels are
        partial). None draws the device's dtypes, shrinking towards float32.
    device: pins "cpu", or "cuda" where torch sees a CUDA device (raises here otherwise: every
        example would fail to build, so a CUDA test skips before building its strategy); None draws
        `devices()`, shrinking towards cpu.
    adapter_name: pins the adapter's name (letters, digits, '_' and '-', not starting with a digit
        or '-'; never SECOND_ADAPTER, the multi-adapter property's other adapter); None draws one of
        ADAPTER_NAMES, shrinking towards "default".
    padded: True pins a padded last row, False none; None either, shrinking towards unpadded.
    min_batch: the smallest judged batch, an int between 1 and MAX_BATCH (2: at least one row is
        unpadded); the batch shrinks towards it.
    families: "all" or "curated", the architectures an unpinned `arch` is drawn from; None reads
        PREFIXCHECK_FAMILIES when drawing (default all).
    padding_side: pins "left" or "right"; None draws either, shrinking towards left.

    A combination no installed architecture satisfies (in every size tier of
    PREFIXCHECK_SIZE_TIERS as it is at build time) raises here, before any draw.

    >>> cases(task="CAUSAL_LM").example()  # doctest: +SKIP
    Case(model=ModelSpec(arch='llama', num_layers=2, layout=AttentionLayout(hidden_size=8,
         num_heads=2, num_kv_heads=1, head_dim=4), ...), task='CAUSAL_LM', prefix=PrefixSpec(...), ...)
    """
    check.choice("cases", "task", task, TASKS)
    if arch is not None and not isinstance(arch, str):
        check.reject("cases", "arch must be an architecture name (str) or None", arch=arch)
    for name, flag in (("projection", projection), ("gqa", gqa), ("padded", padded)):
        check.flag("cases", name, flag)
    check.choice("cases", "dtype", dtype, DTYPES)
    check.choice("cases", "device", device, DEVICES)
    if device == "cuda" and not features().cuda:
        check.reject("cases", "device='cuda' needs a CUDA device and torch sees none here", device=device)
    if dtype == "float16" and device != "cuda":
        check.reject(
            "cases", "float16 only on device='cuda' (CPU fp16 kernels are partial)", dtype=dtype, device=device
        )
    check.adapter_name("cases", adapter_name)
    if adapter_name == SECOND_ADAPTER:
        check.reject(
            "cases",
            f"adapter_name must not be SECOND_ADAPTER={SECOND_ADAPTER!r} (multi-adapter's other adapter)",
            adapter_name=adapter_name,
        )
    check.integer("cases", "min_batch", min_batch, 1, MAX_BATCH, f"1 and MAX_BATCH={MAX_BATCH}")
    check.choice("cases", "families", families, check.FAMILY_ARGS)
    check.choice("cases", "padding_side", padding_side, check.PADDING_SIDES)
    _check_method(method, task, projection)
    if arch is not None:
        _check_pinned_arch(arch, task, gqa, families)
    else:
        for tier in size_tiers():
            if not check.pool_exists(task, gqa, families, curated=tier == "wide"):
                given = {k: v for k, v in dict(task=task, gqa=gqa, families=families).items() if v is not None}
                wide = " in the wide size tier (PREFIXCHECK_SIZE_TIERS)" if tier == "wide" else ""
                check.reject("cases", check.no_pool(task, gqa, families, tier == "wide") + wide, **given)
    return _cases(
        task, arch, projection, gqa, dtype, device, adapter_name, padded, min_batch, families, padding_side, method
    )


def _only_task(method: str | None) -> str | None:
    """The task a pinned method allows, where the installed PEFT allows it one only (CPT)."""
    allowed = prefix_methods.tasks_for(method, TASKS) if method else ()
    return allowed[0] if len(allowed) == 1 else None


def _check_method(method: str | None, task: str | None, projection: bool | None) -> None:
    check.choice("cases", "method", method, prefix_methods.NAMES)
    if method is None:
        return
    if method not in prefix_methods.available():
        check.reject("cases", f"the installed PEFT has no {method}", method=method)
    if projection and method != PREFIX_TUNING:
        check.reject("cases", "projection=True is prefix tuning's", method=method, projection=projection)
    if task is not None and prefix_methods.refusal(method, task):
        check.reject("cases", prefix_methods.refusal(method, task), method=method, task=task)


def _check_pinned_arch(arch: str, task: str | None, gqa: bool | None, families: str | None) -> None:
    try:
        a = archs.get(arch)
    except KeyError:
        curated = ", ".join(a.name for a in archs.ARCHITECTURES)
        check.reject("cases", f"arch must name a curated architecture ({curated}) or a discovered family", arch=arch)
    if not a.available():
        check.reject("cases", f"architecture {arch!r} is not in the installed transformers", arch=arch)
    if families == "curated" and not a.curated:
        check.reject(
            "cases", f"architecture {arch!r} is a discovered family, not a curated one", arch=arch, families=families
        )
    if task is not None:
        check.arch_task("cases", a, task, task=task, arch=arch)
    check.arch_gqa("cases", a, gqa, arch=arch, gqa=gqa)


@st.composite
def _cases(
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
    method: str | None = None,
) -> Case:
    tier = draw(st.sampled_from(size_tiers()))
    task = task or _only_task(method)
    a = archs.get(arch) if arch else draw(_architectures(task=task, gqa=gqa, families=families, curated=tier == "wide"))
    t = task or draw(st.sampled_from(a.available_tasks()))
    dev = device or draw(devices())
    wide = tier == "wide" and a.curated
    nvt = draw(st.integers(*WIDE_VIRTUAL_TOKENS)) if wide else None
    return Case(
        model=draw(_model_specs(a, t, gqa, "wide" if wide else "tiny")),
        task=t,
        prefix=draw(_adapter_specs(t, method, projection, adapter_name, nvt)),
        recipe=draw(_recipes(padded, min_batch, padding_side, POSITION_LIMIT - nvt - MAX_NEW_TOKENS if wide else 0)),
        dtype=dtype or draw(_dtypes(dev)),
        device=dev,
        seed=draw(seeds),
    )
