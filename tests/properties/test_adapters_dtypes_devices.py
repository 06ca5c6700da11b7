"""Several adapters, other dtypes, other devices (statements in prefixcheck/properties.py).

- multi-adapter: two named prefix adapters in one model differ, set_adapter switches between
  them, and after saving all and reloading each reproduces its own outputs.
- dtype-roundtrip: an fp32 adapter on a bf16 base stays within the bf16 tolerance, and saved
  again from there its table comes back bitwise, so an fp32 base computes the fp32 outputs again.
- cuda-roundtrip, cpu-cuda-transfer: reload equality on the GPU, and CPU <-> CUDA within the
  device tolerance. These skip cleanly without a GPU.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prefixcheck.runner import run_property
from prefixcheck.versions import features
from strategies import cases, second_adapters
from tests.properties._common import tasks_of

needs_cuda = pytest.mark.skipif(not features().cuda, reason="needs a CUDA device (none here)")


@pytest.mark.parametrize("task", tasks_of("multi-adapter"))
@given(data=st.data())
def test_each_named_adapter_reproduces_its_own_outputs(task, data):
    case = data.draw(cases(task=task), label="case")
    second = data.draw(second_adapters(case.prefix, task), label="second adapter")
    run_property("multi-adapter", case, second=second)


@pytest.mark.parametrize("task", tasks_of("dtype-roundtrip"))
@given(data=st.data())
def test_fp32_adapter_into_bf16_base_and_back(task, data):
    run_property("dtype-roundtrip", data.draw(cases(task=task, dtype="float32", device="cpu"), label="case"))


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("task", tasks_of("cuda-roundtrip"))
@given(data=st.data())
def test_cuda_reload_reproduces_trained_outputs(task, data):
    run_property("cuda-roundtrip", data.draw(cases(task=task, device="cuda"), label="case"))


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("task", tasks_of("cpu-cuda-transfer"))
@pytest.mark.parametrize("saved_on", ["cpu", "cuda"])
@given(data=st.data())
def test_adapter_moves_between_cpu_and_cuda(task, saved_on, data):
    run_property("cpu-cuda-transfer", data.draw(cases(task=task, device=saved_on, dtype="float32"), label="case"))
