"""What a reloaded prefix adapter computes (statements in prefixcheck/properties.py).

- reload-equality: the reloaded model's outputs equal the trained model's (eval mode).
- prefix-acts: with the adapter, outputs differ from the base model; disable_adapter() gives the
  base model back exactly.
- generate-first-step: greedy generate()'s first step uses the prefix and equals a forward pass
  with the prefix (rows without padding, where both see the same positions).
- generate-roundtrip: generate() uses the prefix, and after reload equals generate() before save.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prefixcheck.runner import run_property
from strategies import cases
from tests.properties._common import SEED_CASES, tasks_of


@pytest.mark.parametrize("task", tasks_of("reload-equality"))
@given(data=st.data())
def test_reloaded_adapter_reproduces_trained_outputs(task, data):
    run_property("reload-equality", data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", tasks_of("prefix-acts"))
@given(data=st.data())
def test_the_prefix_changes_outputs_and_disabling_restores_the_base(task, data):
    run_property("prefix-acts", data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", tasks_of("generate-first-step"))
@given(data=st.data())
def test_generate_first_step_uses_the_prefix_and_agrees_with_forward(task, data):
    # min_batch=2: padding sits in the last row only, so some row is compared
    run_property("generate-first-step", data.draw(cases(task=task, min_batch=2), label="case"))


@pytest.mark.parametrize("task", tasks_of("generate-roundtrip"))
@given(data=st.data())
def test_generate_after_reload_equals_generate_before_save(task, data):
    run_property("generate-roundtrip", data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("seed", SEED_CASES)
def test_seed_structure_reloads_and_generates(seed):
    """Pinned: the seed's 28-layer structure at tiny width, projection on and off."""
    run_property("reload-equality", SEED_CASES[seed])
    run_property("generate-first-step", SEED_CASES[seed])
