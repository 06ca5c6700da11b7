"""Meta-tests of the strategies' arguments: a bad one fails when the strategy is built (the call
itself, nothing drawn), with one line naming the call and the argument, as in
`hypothesis.extra.numpy`."""

from __future__ import annotations

import pytest
from hypothesis.strategies import SearchStrategy

import strategies
from prefixcheck import architectures as archs
from prefixcheck.versions import features
from strategies import (
    SECOND_ADAPTER,
    InvalidStrategyArgument,
    architectures,
    attention_layouts,
    cases,
    discovered_layouts,
    dtypes,
    kv_heads,
    model_specs,
    prefix_specs,
    recipes,
    wide_layouts,
)

pytestmark = pytest.mark.selftest

TASKS = "CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS, TOKEN_CLS"
FLAG = "must be True, False or None"


def bad(build, expected: str, id: str):
    return pytest.param(build, expected, id=id)


def _llama():
    return archs.get("llama")


BAD = [
    # cases: every argument
    bad(lambda: cases(task="FOO"), f"cases(task='FOO'): task must be one of {TASKS}", "cases-task"),
    bad(lambda: cases(task=1), f"cases(task=1): task must be one of {TASKS}", "cases-task-type"),
    bad(lambda: cases(arch="nope"), "cases(arch='nope'): arch must name a curated architecture (llama, ", "cases-arch"),
    bad(lambda: cases(arch=3), "cases(arch=3): arch must be an architecture name (str)", "cases-arch-type"),
    bad(lambda: cases(arch=""), "cases(arch=''): arch must name", "cases-arch-empty"),
    bad(
        lambda: cases(task="CAUSAL_LM", arch="bert"),
        "cases(task='CAUSAL_LM', arch='bert'): architecture 'bert' has no CAUSAL_LM head in the installed transformers",
        "cases-arch-task",
    ),
    bad(
        lambda: cases(arch="gpt2", gqa=True),
        "cases(arch='gpt2', gqa=True): architecture 'gpt2' cannot express GQA",
        "cases-arch-gqa",
    ),
    bad(lambda: cases(projection="yes"), f"cases(projection='yes'): projection {FLAG}", "cases-projection"),
    bad(lambda: cases(gqa=1), f"cases(gqa=1): gqa {FLAG}", "cases-gqa"),
    bad(lambda: cases(padded="no"), f"cases(padded='no'): padded {FLAG}", "cases-padded"),
    bad(
        lambda: cases(dtype="float64"),
        "cases(dtype='float64'): dtype must be one of float32, bfloat16, float16",
        "cases-dtype",
    ),
    bad(
        lambda: cases(dtype="float16"),
        "cases(dtype='float16', device=None): float16 only on device='cuda'",
        "cases-dtype-fp16-any-device",
    ),
    bad(
        lambda: cases(dtype="float16", device="cpu"),
        "cases(dtype='float16', device='cpu'): float16 only on device='cuda'",
        "cases-dtype-fp16-cpu",
    ),
    bad(lambda: cases(device="tpu"), "cases(device='tpu'): device must be one of cpu, cuda", "cases-device"),
    bad(lambda: cases(adapter_name=3), "cases(adapter_name=3): adapter_name must be a str", "cases-adapter-type"),
    bad(lambda: cases(adapter_name=""), "cases(adapter_name=''): adapter_name must be letters", "cases-adapter-empty"),
    bad(lambda: cases(adapter_name="a.b"), "cases(adapter_name='a.b'): adapter_name must be", "cases-adapter-dot"),
    bad(lambda: cases(adapter_name="x/y"), "cases(adapter_name='x/y'): adapter_name must be", "cases-adapter-slash"),
    bad(lambda: cases(adapter_name="1st"), "cases(adapter_name='1st'): adapter_name must be", "cases-adapter-digit"),
    bad(
        lambda: cases(adapter_name=SECOND_ADAPTER),
        f"cases(adapter_name={SECOND_ADAPTER!r}): adapter_name must not be SECOND_ADAPTER",
        "cases-adapter-second",
    ),
    bad(
        lambda: cases(min_batch=5), "cases(min_batch=5): min_batch must be between 1 and MAX_BATCH=3", "cases-min-batch"
    ),
    bad(
        lambda: cases(min_batch=0),
        "cases(min_batch=0): min_batch must be between 1 and MAX_BATCH=3",
        "cases-min-batch-0",
    ),
    bad(
        lambda: cases(min_batch="2"), "cases(min_batch='2'): min_batch must be an int between 1", "cases-min-batch-str"
    ),
    bad(lambda: cases(min_batch=True), "cases(min_batch=True): min_batch must be an int", "cases-min-batch-bool"),
    bad(lambda: cases(min_batch=2.0), "cases(min_batch=2.0): min_batch must be an int", "cases-min-batch-float"),
    bad(
        lambda: cases(families="some"), "cases(families='some'): families must be one of all, curated", "cases-families"
    ),
    bad(
        lambda: cases(padding_side="middle"),
        "cases(padding_side='middle'): padding_side must be one of left, right",
        "cases-padding-side",
    ),
    bad(
        lambda: cases(task="SEQ_2_SEQ_LM", gqa=True, families="curated"),
        "cases(task='SEQ_2_SEQ_LM', gqa=True, families='curated'): no installed curated architecture has a "
        "SEQ_2_SEQ_LM head and can express GQA",
        "cases-unsatisfiable",
    ),
    # dtypes
    bad(lambda: dtypes("tpu"), "dtypes(device='tpu'): device must be one of cpu, cuda", "dtypes-device"),
    bad(lambda: dtypes(None), "dtypes(device=None): device must be one of cpu, cuda", "dtypes-device-none"),
    # kv_heads
    bad(lambda: kv_heads("foo", 4), "kv_heads(family='foo'): family must be one of mha, gqa", "kv-family"),
    bad(lambda: kv_heads(archs.GENERIC, 4), "kv_heads(family='generic'): family must be one of", "kv-family-generic"),
    bad(lambda: kv_heads(archs.GQA, 0), "kv_heads(heads=0): heads must be an int >= 1", "kv-heads"),
    bad(lambda: kv_heads(archs.GQA, "4"), "kv_heads(heads='4'): heads must be an int >= 1", "kv-heads-type"),
    bad(lambda: kv_heads(archs.GQA, 4, gqa="x"), f"kv_heads(gqa='x'): gqa {FLAG}", "kv-gqa"),
    bad(
        lambda: kv_heads(archs.MHA, 4, gqa=True),
        "kv_heads(family='mha', gqa=True): family 'mha' has no KV-head grouping",
        "kv-gqa-family",
    ),
    bad(lambda: kv_heads(archs.GQA, 1, gqa=True), "kv_heads(heads=1, gqa=True): gqa=True needs at least 2", "kv-gqa-1"),
    bad(lambda: kv_heads(archs.GQA, 4, most=-1), "kv_heads(most=-1): most must be an int >= 0", "kv-most"),
    bad(lambda: kv_heads(archs.GQA, 4, most=1.5), "kv_heads(most=1.5): most must be an int >= 0", "kv-most-type"),
    # attention_layouts
    bad(lambda: attention_layouts("foo"), "attention_layouts(family='foo'): family must be one of", "layouts-family"),
    bad(lambda: attention_layouts(head_dims=()), "attention_layouts(head_dims=()): head_dims must be", "layouts-dims"),
    bad(
        lambda: attention_layouts(head_dims=(0, 4)), "attention_layouts(head_dims=(0, 4)): head_dims", "layouts-dims-0"
    ),
    bad(lambda: attention_layouts(head_dims="48"), "attention_layouts(head_dims='48'): head_dims", "layouts-dims-str"),
    bad(lambda: attention_layouts(gqa="x"), f"attention_layouts(gqa='x'): gqa {FLAG}", "layouts-gqa"),
    bad(
        lambda: attention_layouts(archs.INNER, gqa=True),
        "attention_layouts(family='inner', gqa=True): family 'inner' has no KV-head grouping",
        "layouts-gqa-family",
    ),
    # wide_layouts
    bad(lambda: wide_layouts("foo"), "wide_layouts(family='foo'): family must be one of", "wide-family"),
    bad(lambda: wide_layouts(gqa="x"), f"wide_layouts(gqa='x'): gqa {FLAG}", "wide-gqa"),
    bad(
        lambda: wide_layouts(archs.MHA, gqa=True),
        "wide_layouts(family='mha', gqa=True): family 'mha' has no KV-head grouping",
        "wide-gqa-family",
    ),
    # architectures
    bad(lambda: architectures(task="FOO"), f"architectures(task='FOO'): task must be one of {TASKS}", "archs-task"),
    bad(lambda: architectures(gqa="x"), f"architectures(gqa='x'): gqa {FLAG}", "archs-gqa"),
    bad(lambda: architectures(families="x"), "architectures(families='x'): families must be one of", "archs-families"),
    bad(
        lambda: architectures(curated="yes"), "architectures(curated='yes'): curated must be True or False", "archs-cur"
    ),
    bad(
        lambda: architectures(task="SEQ_2_SEQ_LM", gqa=True, families="curated"),
        "architectures(task='SEQ_2_SEQ_LM', gqa=True, families='curated'): no installed curated architecture has a",
        "archs-unsatisfiable",
    ),
    # discovered_layouts
    bad(
        lambda: discovered_layouts("afmoe"),
        "discovered_layouts(arch='afmoe'): arch must be an Architecture",
        "disc-arch",
    ),
    bad(
        lambda: discovered_layouts(_llama()),
        "discovered_layouts(arch=<architecture 'llama'>): arch must be a discovered architecture",
        "disc-curated",
    ),
    # model_specs
    bad(
        lambda: model_specs("llama", "CAUSAL_LM"),
        "model_specs(arch='llama'): arch must be an Architecture",
        "spec-arch",
    ),
    bad(lambda: model_specs(_llama(), "FOO"), f"model_specs(task='FOO'): task must be one of {TASKS}", "spec-task"),
    bad(lambda: model_specs(_llama(), None), f"model_specs(task=None): task must be one of {TASKS}", "spec-task-none"),
    bad(
        lambda: model_specs(archs.get("bert"), "CAUSAL_LM"),
        "model_specs(arch=<architecture 'bert'>, task='CAUSAL_LM'): architecture 'bert' has no CAUSAL_LM head",
        "spec-arch-task",
    ),
    bad(lambda: model_specs(_llama(), "CAUSAL_LM", gqa="x"), f"model_specs(gqa='x'): gqa {FLAG}", "spec-gqa"),
    bad(
        lambda: model_specs(archs.get("gpt2"), "CAUSAL_LM", gqa=True),
        "model_specs(arch=<architecture 'gpt2'>, gqa=True): architecture 'gpt2' cannot express GQA",
        "spec-arch-gqa",
    ),
    bad(
        lambda: model_specs(_llama(), "CAUSAL_LM", tier="huge"),
        "model_specs(tier='huge'): tier must be one of tiny, wide",
        "spec-tier",
    ),
    # prefix_specs
    bad(lambda: prefix_specs(projection="x"), f"prefix_specs(projection='x'): projection {FLAG}", "prefix-projection"),
    bad(lambda: prefix_specs(adapter_name="a b"), "prefix_specs(adapter_name='a b'): adapter_name must", "prefix-name"),
    bad(
        lambda: prefix_specs(nvt=0),
        "prefix_specs(nvt=0): nvt must be between 1 and MAX_PINNED_VIRTUAL_TOKENS=",
        "prefix-nvt-low",
    ),
    bad(lambda: prefix_specs(nvt=500), "prefix_specs(nvt=500): nvt must be between 1 and", "prefix-nvt-high"),
    bad(lambda: prefix_specs(nvt="3"), "prefix_specs(nvt='3'): nvt must be an int between 1 and", "prefix-nvt-type"),
    # recipes
    bad(lambda: recipes(padded="x"), f"recipes(padded='x'): padded {FLAG}", "recipes-padded"),
    bad(
        lambda: recipes(min_batch=4), "recipes(min_batch=4): min_batch must be between 1 and MAX_BATCH=3", "recipes-mb"
    ),
    bad(lambda: recipes(padding_side="up"), "recipes(padding_side='up'): padding_side must be one of", "recipes-side"),
    bad(
        lambda: recipes(max_seq_len=5),
        "recipes(max_seq_len=5): max_seq_len must be 0 or an int between",
        "recipes-seq-low",
    ),
    bad(lambda: recipes(max_seq_len=500), "recipes(max_seq_len=500): max_seq_len must be 0 or", "recipes-seq-high"),
    bad(lambda: recipes(max_seq_len="8"), "recipes(max_seq_len='8'): max_seq_len must be 0 or", "recipes-seq-type"),
]


def _raised_at_build(build) -> str:
    with pytest.raises(InvalidStrategyArgument) as info:
        build()
    message = str(info.value)
    assert "\n" not in message, message
    assert isinstance(info.value, ValueError)  # what these errors always were
    return message


@pytest.mark.parametrize(("build", "expected"), BAD)
def test_a_bad_argument_fails_when_the_strategy_is_built_on_one_line_naming_it(build, expected):
    message = _raised_at_build(build)
    assert message.startswith(expected), message
    call, _, reason = message.partition("): ")
    named = [part.split("=")[0] for part in call.split("(", 1)[1].split(", ")]
    assert any(name in reason for name in named) or "architecture" in reason, message


def test_the_briefs_two_messages_word_for_word():
    assert _raised_at_build(lambda: cases(task="FOO")) == (
        "cases(task='FOO'): task must be one of CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS, TOKEN_CLS"
    )
    assert (
        _raised_at_build(lambda: cases(min_batch=5))
        == "cases(min_batch=5): min_batch must be between 1 and MAX_BATCH=3"
    )


def test_the_error_comes_before_any_draw(monkeypatch):
    # the draws live in the private composites: make building one fail
    def drew(*args, **kwargs):
        raise AssertionError("a draw started")

    for name in ("_cases", "_recipes", "_prefix_specs", "_model_specs", "_attention_layouts"):
        monkeypatch.setattr(strategies, name, drew)
    for build in (
        lambda: cases(min_batch=5),
        lambda: cases(task="CAUSAL_LM", arch="bert"),
        lambda: recipes(padding_side="up"),
        lambda: prefix_specs(nvt=0),
        lambda: model_specs(_llama(), "FOO"),
        lambda: attention_layouts(archs.MHA, gqa=True),
    ):
        _raised_at_build(build)


@pytest.mark.skipif(features().cuda, reason="torch sees a CUDA device here")
def test_cuda_is_refused_where_torch_sees_none():
    message = _raised_at_build(lambda: cases(device="cuda"))
    assert message.startswith("cases(device='cuda'): device='cuda' needs a CUDA device"), message


def test_unsatisfiable_combinations_over_every_family():
    # discovery (cached) is asked only because no curated architecture fits
    message = _raised_at_build(lambda: cases(task="SEQ_2_SEQ_LM", gqa=True))
    assert message.startswith("cases(task='SEQ_2_SEQ_LM', gqa=True): no installed"), message


def test_discovered_architectures_arguments():
    discovered = [a for a in archs.available_architectures("all") if not a.curated]
    if not discovered:
        pytest.skip("no discovered family in the installed transformers")
    name = discovered[0].name
    message = _raised_at_build(lambda: cases(arch=name, families="curated"))
    assert message.startswith(f"cases(arch={name!r}, families='curated'): architecture {name!r} is a discovered"), (
        message
    )
    assert _raised_at_build(lambda: discovered_layouts(discovered[0], gqa="x")).startswith(
        "discovered_layouts(gqa='x')"
    )
    ungroupable = next((a for a in discovered if not strategies.arguments.can_group(a)), None)
    if ungroupable is not None:
        message = _raised_at_build(lambda: cases(arch=ungroupable.name, gqa=True))
        assert message.startswith(f"cases(arch={ungroupable.name!r}, gqa=True): architecture"), message
        assert _raised_at_build(lambda: discovered_layouts(ungroupable, gqa=True)).startswith(
            "discovered_layouts(arch="
        )


def test_the_edges_of_every_range_build():
    built = [
        cases(task="CAUSAL_LM", arch="llama", projection=True, gqa=True, dtype="bfloat16", device="cpu"),
        cases(adapter_name="my-adapter_2", padded=False, min_batch=3, families="curated", padding_side="right"),
        prefix_specs(adapter_name=SECOND_ADAPTER, nvt=strategies.MAX_PINNED_VIRTUAL_TOKENS),
        recipes(min_batch=strategies.MAX_BATCH, max_seq_len=strategies.MAX_SEQ_LEN),
        recipes(max_seq_len=strategies.SEQ_LENS[1]),
        kv_heads(archs.MQA, 4, gqa=True),
        attention_layouts(archs.EXPLICIT, head_dims=[4, 8], gqa=False),
        wide_layouts(archs.MQA, gqa=True),
        model_specs(_llama(), "TOKEN_CLS", gqa=True, tier="wide"),
        architectures(task="SEQ_2_SEQ_LM", families="curated", curated=True),
        dtypes("cuda"),
    ]
    assert all(isinstance(s, SearchStrategy) for s in built)
