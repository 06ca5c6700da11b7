"""What a reloaded prefix adapter computes.

- Reload equality: the reloaded model's outputs equal the trained model's (eval mode); bitwise
  where the computation is the same, within the stated projection tolerance where it is not.
- The prefix acts: with the adapter on, outputs differ from the base model's, and disabling the
  adapter (disable_adapter()) gives back the base model exactly.
- generate() uses the prefix: greedy decoding's first-step logits agree with a plain forward
  pass of the same model (rows without padding, where both see the same positions), and they are
  closer to it than to the base model's.
- generate() after reload equals generate() before save (tokens, and first-step logits within the
  reload tolerance).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from prefixcheck import compare, engine
from prefixcheck.case import Case
from prefixcheck.compare import assert_closer, assert_differs, assert_equal, reload_tolerance
from prefixcheck.outcomes import check
from strategies import cases
from tests.properties._common import GENERATIVE, SEED_CASES, TASKS


def reloaded_outputs_equal_trained(case: Case) -> None:
    with check("reload-equality", case), engine.scratch() as d:
        trained, reloaded = engine.roundtrip(case, d)
        tol = reload_tolerance(case.prefix.prefix_projection, case.dtype, case.device)
        assert_equal(engine.logits(reloaded, trained.batch), trained.reference, tol, "reloaded vs trained logits")


def prefix_changes_outputs(case: Case) -> None:
    with check("prefix-acts", case), engine.scratch() as d:
        trained, reloaded = engine.roundtrip(case, d)
        with_prefix = engine.logits(reloaded, trained.batch)
        plain = engine.logits(engine.build_base(case), trained.batch)
        assert_differs(with_prefix, plain, "reloaded adapter vs a fresh base model")
        without = engine.base_logits(reloaded, trained.batch)
        assert_equal(without, plain, compare.BITWISE, "adapter disabled vs a fresh base model")


def first_generated_step_matches_forward(case: Case) -> None:
    with check("generate-first-step", case):
        trained = engine.train_case(case)
        unpadded = trained.batch["attention_mask"].bool().all(dim=1)
        assert unpadded.any(), "precondition: the case must have a row without padding"
        first = engine.generate(trained.model, case, trained.batch).first_step_logits[unpadded]
        forward = engine.next_token_logits(trained.model, case, trained.batch)[unpadded]
        base = engine.next_token_logits(engine.build_base(case), case, trained.batch)[unpadded]
        tol = compare.tolerance(compare.GENERATE, case.dtype, case.device)
        assert_equal(first, forward, tol, "generate() first-step logits vs a forward pass with the prefix")
        # Robust where a small prefix effect hides inside a low-precision tolerance:
        assert_closer(first, forward, base, "generate() first-step logits: closer to the base model than to the prefix")


def generate_survives_reload(case: Case) -> None:
    with check("generate-roundtrip", case), engine.scratch() as d:
        trained = engine.train_case(case)
        before = engine.generate(trained.model, case, trained.batch)
        engine.save(trained.model, d)
        reloaded = engine.load(case, engine.adapter_dir(d, case.prefix.adapter_name))
        after = engine.generate(reloaded, case, trained.batch)
        tol = reload_tolerance(case.prefix.prefix_projection, case.dtype, case.device)
        assert_equal(
            after.first_step_logits, before.first_step_logits, tol, "generate() first step after reload vs before"
        )
        assert torch.equal(after.sequences, before.sequences), (
            f"generate() after reload {after.sequences.tolist()} != before save {before.sequences.tolist()}"
        )


@pytest.mark.parametrize("task", TASKS)
@given(data=st.data())
def test_reloaded_adapter_reproduces_trained_outputs(task, data):
    reloaded_outputs_equal_trained(data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", TASKS)
@given(data=st.data())
def test_the_prefix_changes_outputs_and_disabling_restores_the_base(task, data):
    prefix_changes_outputs(data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", GENERATIVE)
@given(data=st.data())
def test_generate_first_step_agrees_with_forward_pass(task, data):
    # min_batch=2: padding sits in the last row only, so some row is compared
    first_generated_step_matches_forward(data.draw(cases(task=task, min_batch=2), label="case"))


@pytest.mark.parametrize("task", GENERATIVE)
@given(data=st.data())
def test_generate_after_reload_equals_generate_before_save(task, data):
    generate_survives_reload(data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("seed", SEED_CASES)
def test_seed_structure_reloads_and_generates(seed):
    """Pinned: the seed's 28-layer structure at tiny width, projection on and off."""
    reloaded_outputs_equal_trained(SEED_CASES[seed])
    first_generated_step_matches_forward(SEED_CASES[seed])
