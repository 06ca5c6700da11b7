"""Prefix adapters through transformers.Trainer checkpoints, the seed's failure (peft#2256).
Statements in prefixcheck/properties.py.

- trainer-best-model: load_best_model_at_end=True (metric eval_loss) restores the best model; the
  recipe makes the best checkpoint differ from the last, so the check means something. With
  prefix_projection=True this is the known failure (registry entry peft-2256-...).
- trainer-best-workaround: PeftModel.from_pretrained(base, best_checkpoint) reproduces the best
  checkpoint's outputs, projection on or off.
- trainer-resume: resume_from_checkpoint gives the same model as uninterrupted training.
- trainable-reload: from_pretrained(..., is_trainable=True): where a version allows it,
  continued training matches continuing the original model.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prefixcheck.runner import run_property
from strategies import cases
from tests.conftest import scaled
from tests.properties._common import SEED_CASES, tasks_of


@pytest.mark.parametrize("task", tasks_of("trainer-best-model"))
@scaled("trainer-best-model")
@given(data=st.data())
def test_load_best_model_at_end_restores_the_best_checkpoint(task, data):
    run_property("trainer-best-model", data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", tasks_of("trainer-best-workaround"))
@scaled("trainer-best-workaround")
@given(data=st.data())
def test_from_pretrained_of_the_best_checkpoint_reproduces_it(task, data):
    run_property("trainer-best-workaround", data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", tasks_of("trainer-resume"))
@scaled("trainer-resume")
@given(data=st.data())
def test_resume_from_checkpoint_equals_uninterrupted_training(task, data):
    run_property("trainer-resume", data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", tasks_of("trainable-reload"))
@scaled("trainable-reload")
@given(data=st.data())
def test_from_pretrained_is_trainable_behaves_as_this_version_says(task, data):
    run_property("trainable-reload", data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("seed", SEED_CASES)
def test_seed_trainer_load_best_model_at_end(seed):
    """Pinned: the seed itself (projection on) fails the known way; off, the best model returns."""
    run_property("trainer-best-model", SEED_CASES[seed])
    run_property("trainer-best-workaround", SEED_CASES[seed])
