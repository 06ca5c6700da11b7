"""Meta-tests of the strategies: every drawn case is a model the installed versions can build,
and the constraints real models have hold by construction."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefixcheck import architectures as archs
from prefixcheck import engine
from prefixcheck.case import Case
from strategies import attention_layouts, cases

pytestmark = pytest.mark.selftest


@settings(max_examples=60)
@given(case=cases())
def test_every_drawn_case_builds_a_model_with_its_layout(case):
    model = engine.build_base(case)
    cfg = model.config
    lay = case.model.layout
    assert lay.num_heads % lay.num_kv_heads == 0
    if getattr(cfg, "num_key_value_heads", None) is not None:
        assert cfg.num_key_value_heads == lay.num_kv_heads
    assert case.task in archs.get(case.model.arch).available_tasks()
    assert Case.from_json(case.to_json()) == case


@settings(max_examples=30)
@given(data=st.data())
def test_narrowing_pins_what_it_names(data):
    task = data.draw(st.sampled_from(sorted({t for a in archs.available_architectures() for t in a.available_tasks()})))
    projection = data.draw(st.booleans())
    case = data.draw(cases(task=task, projection=projection, dtype="float32"))
    assert (case.task, case.prefix.prefix_projection, case.dtype) == (task, projection, "float32")


@given(layout=attention_layouts(archs.GQA, gqa=True))
def test_gqa_true_always_groups_heads(layout):
    assert layout.num_kv_heads < layout.num_heads and layout.num_heads % layout.num_kv_heads == 0


@given(layout=attention_layouts(archs.EXPLICIT))
def test_explicit_head_dim_layouts_keep_width_divisible_by_heads(layout):
    assert layout.hidden_size % layout.num_heads == 0


@given(case=cases(min_batch=2))
def test_min_batch_leaves_an_unpadded_row(case):
    assert case.recipe.batch_size >= 2


def test_every_architecture_the_issue_asks_for_is_built_here():
    wanted = {"llama", "qwen3", "gpt2", "opt", "gpt_neox", "bloom", "gpt_bigcode", "gemma2", "t5", "bart", "bert"}
    assert wanted <= {a.name for a in archs.available_architectures()}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_wide_tier_leaves_room_below_the_position_limit_for_generated_tokens(data, monkeypatch):
    # seq_len + virtual tokens reached 128 exactly and generate() then ran past GPT-2's position
    # table (IndexError; found by the nightly)
    import strategies
    from prefixcheck.case import MAX_NEW_TOKENS

    monkeypatch.setenv("PREFIXCHECK_SIZE_TIERS", "wide")
    case = data.draw(cases(task="CAUSAL_LM", arch="gpt2"))
    used = case.recipe.seq_len + case.prefix.num_virtual_tokens + MAX_NEW_TOKENS
    assert used <= strategies.POSITION_LIMIT
