"""What PEFT writes to disk for a prefix adapter (statements in prefixcheck/properties.py).

- saved-shapes: the adapter holds prompt_embeddings of shape (num_virtual_tokens,
  num_layers * 2 * token_dim), equal bitwise to what the live model computes at batch 1;
  anything else saved is the task head.
- config-roundtrip: adapter_config.json reloads to a config equal to the live one.
- resave-identical: save -> load -> save writes bitwise-identical tensors and an equal config.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prefixcheck.runner import run_property
from strategies import cases
from tests.properties._common import SEED_CASES, tasks_of


@pytest.mark.parametrize("task", tasks_of("saved-shapes"))
@given(data=st.data())
def test_saved_table_has_the_shape_peft_derives(task, data):
    run_property("saved-shapes", data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", tasks_of("config-roundtrip"))
@given(data=st.data())
def test_saved_config_reloads_to_an_equal_config(task, data):
    run_property("config-roundtrip", data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", tasks_of("resave-identical"))
@given(data=st.data())
def test_save_load_save_is_byte_identical(task, data):
    run_property("resave-identical", data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("seed", SEED_CASES)
def test_seed_structure_saves_the_projected_table(seed):
    """Pinned: the seed's 28-layer structure at tiny width, projection on and off."""
    run_property("saved-shapes", SEED_CASES[seed])
    run_property("resave-identical", SEED_CASES[seed])
