"""Every way a user feeds the model or generates (statements in prefixcheck/properties.py).

- input-paths: inputs_embeds vs input_ids, no attention mask vs an all-ones one, labels given or
  not, explicit default positions or none, a right-padded row vs the same row alone and the same
  row left-padded vs alone: the reloaded adapter computes the same.
- generate-paths: every greedy step agrees with a forward pass over the prompt and the tokens so
  far; a second call repeats the first; beam search scores as the forward pass does; generating
  from inputs_embeds equals generating from ids; use_cache off computes what it computes on.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prefixcheck.runner import run_property
from strategies import cases
from tests.properties._common import tasks_of


@pytest.mark.parametrize("task", tasks_of("input-paths"))
@given(data=st.data())
def test_equivalent_inputs_compute_the_same_outputs(task, data):
    # a right-padded last row and an unpadded one: every path has rows to compare
    case = data.draw(cases(task=task, padded=True, padding_side="right", min_batch=2), label="case")
    run_property("input-paths", case)


@pytest.mark.parametrize("task", tasks_of("generate-paths"))
@given(data=st.data())
def test_every_way_of_generating_follows_the_prefixed_forward_pass(task, data):
    run_property("generate-paths", data.draw(cases(task=task, min_batch=2), label="case"))
