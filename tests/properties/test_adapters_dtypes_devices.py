"""Several adapters, other dtypes, other devices.

- Several named prefix adapters in one model: after saving all and reloading them, each one
  reproduces its own outputs.
- An fp32 adapter loaded into a bf16 base computes within the bf16 tolerance of the fp32 model,
  and saved again from there its prefix table comes back bitwise (PEFT keeps the prompt encoder
  in fp32 inside a low-precision model), so an fp32 base computes the fp32 outputs again; a task
  head trained alongside (modules_to_save) lives in the base's dtype and comes back within bf16.
- CUDA: reload equality on the GPU, and CPU <-> CUDA transfers within the device tolerance.
  These skip cleanly without a GPU.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prefixcheck import compare, engine
from prefixcheck.artifacts import read_adapter
from prefixcheck.case import Case, PrefixSpec
from prefixcheck.compare import assert_equal, reload_tolerance
from prefixcheck.outcomes import check
from prefixcheck.versions import features
from strategies import cases, prefix_specs
from tests.properties._common import TASKS

SECOND = "second"  # never one of strategies.ADAPTER_NAMES, so it cannot collide
needs_cuda = pytest.mark.skipif(not features().cuda, reason="needs a CUDA device (none here)")


def each_adapter_reproduces_itself(case: Case, other: PrefixSpec) -> None:
    first = case.prefix.adapter_name
    second_case = case.replace(prefix=other)
    with check("multi-adapter", case, second=other), engine.scratch() as d:
        trained = engine.train_case(case)
        model, batch = trained.model, trained.batch
        model.add_adapter(other.adapter_name, engine.prefix_config(second_case))
        model.set_adapter(other.adapter_name)
        engine.train(model, second_case, batch)
        expected = {}
        for name in (first, other.adapter_name):
            model.set_adapter(name)
            expected[name] = engine.logits(model, batch)
        engine.save(model, d)
        reloaded = engine.load(case, engine.adapter_dir(d, first))
        reloaded.load_adapter(str(engine.adapter_dir(d, other.adapter_name)), adapter_name=other.adapter_name)
        for name, spec in ((first, case.prefix), (other.adapter_name, other)):
            reloaded.set_adapter(name)
            tol = reload_tolerance(spec.prefix_projection, case.dtype, case.device)
            assert_equal(engine.logits(reloaded, batch), expected[name], tol, f"adapter {name!r} after reload")


def fp32_adapter_survives_a_bf16_base(case: Case) -> None:
    with check("dtype-roundtrip", case), engine.scratch() as d:
        trained = engine.train_case(case)
        engine.save(trained.model, d / "fp32")
        where = engine.adapter_dir(d / "fp32", case.prefix.adapter_name)
        reference = engine.logits(engine.load(case, where), trained.batch)
        low = engine.load(case, where, base=engine.build_base(case, dtype="bfloat16"))
        tol = compare.tolerance(compare.DTYPE_CAST, "bfloat16", case.device)
        assert_equal(engine.logits(low, trained.batch), reference, tol, "fp32 adapter on a bf16 base vs fp32")
        engine.save(low, d / "via-bf16")
        via = engine.adapter_dir(d / "via-bf16", case.prefix.adapter_name)
        config, tables = read_adapter(via)
        _, original = read_adapter(where)
        assert_equal(
            tables["prompt_embeddings"], original["prompt_embeddings"], compare.BITWISE, "prefix table via bf16"
        )
        has_head = bool(config.get("modules_to_save"))
        back_tol = tol if has_head else compare.BITWISE
        assert_equal(engine.logits(engine.load(case, via), trained.batch), reference, back_tol, "fp32 -> bf16 -> fp32")


def cuda_reload_equals_trained(case: Case) -> None:
    with check("cuda-roundtrip", case), engine.scratch() as d:
        trained, reloaded = engine.roundtrip(case, d)
        tol = reload_tolerance(case.prefix.prefix_projection, case.dtype, case.device)
        assert_equal(engine.logits(reloaded, trained.batch), trained.reference, tol, "CUDA: reloaded vs trained")


def adapter_moves_between_cpu_and_cuda(case: Case) -> None:
    """Saved on `case.device`, loaded on the other device: equal within the device tolerance."""
    there = "cpu" if case.device == "cuda" else "cuda"
    with check("cpu-cuda-transfer", case), engine.scratch() as d:
        trained = engine.train_case(case)
        engine.save(trained.model, d)
        moved_case = case.replace(device=there)
        moved = engine.load(moved_case, engine.adapter_dir(d, case.prefix.adapter_name))
        batch = {k: v.to(there) for k, v in trained.batch.items()}
        tol = compare.tolerance(compare.DEVICE, case.dtype, "cuda")
        if case.prefix.prefix_projection:
            tol = compare.Tolerance(
                tol.atol + reload_tolerance(True, case.dtype, there).atol,
                tol.rtol + reload_tolerance(True, case.dtype, there).rtol,
                f"{tol.reason}; plus the projection tolerance",
            )
        assert_equal(engine.logits(moved, batch), trained.reference, tol, f"saved on {case.device}, loaded on {there}")


@pytest.mark.parametrize("task", TASKS)
@given(data=st.data())
def test_each_named_adapter_reproduces_its_own_outputs(task, data):
    case = data.draw(cases(task=task), label="case")
    other = data.draw(prefix_specs(adapter_name=SECOND), label="second adapter")
    each_adapter_reproduces_itself(case, other)


@pytest.mark.parametrize("task", TASKS)
@given(data=st.data())
def test_fp32_adapter_into_bf16_base_and_back(task, data):
    fp32_adapter_survives_a_bf16_base(data.draw(cases(task=task, dtype="float32", device="cpu"), label="case"))


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("task", TASKS)
@given(data=st.data())
def test_cuda_reload_reproduces_trained_outputs(task, data):
    cuda_reload_equals_trained(data.draw(cases(task=task, device="cuda"), label="case"))


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("saved_on", ["cpu", "cuda"])
@given(data=st.data())
def test_adapter_moves_between_cpu_and_cuda(task, saved_on, data):
    case = data.draw(cases(task=task, device=saved_on, dtype="float32"), label="case")
    adapter_moves_between_cpu_and_cuda(case)
