"""What PEFT writes to disk for a prefix adapter.

- The adapter holds the prefix as one tensor, `prompt_embeddings`, of shape
  (num_virtual_tokens, num_layers * 2 * token_dim), token_dim as PEFT derives it for the
  architecture (GQA and explicit head_dim included), with projection on or off; anything else
  saved belongs to the task head PEFT trains alongside (modules_to_save: classifier/score).
- adapter_config.json reloads to a config equal to the live one.
- save -> load -> save writes byte-identical tensors and an equal config.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from peft import PeftConfig

from prefixcheck import architectures, engine
from prefixcheck.artifacts import read_adapter
from prefixcheck.case import Case
from prefixcheck.outcomes import check
from strategies import cases
from tests.properties._common import SEED_CASES, TASKS

# Keys that legitimately differ between a live config and its saved form.
RUNTIME_KEYS = {"inference_mode", "base_model_name_or_path", "revision"}


def expected_table_shape(case: Case) -> tuple[int, int]:
    arch = architectures.get(case.model.arch)
    token_dim = arch.peft_token_dim(case.model)
    return (case.prefix.num_virtual_tokens, arch.peft_num_layers(case.model) * 2 * token_dim)


def saved_table_has_the_derived_shape(case: Case) -> None:
    with check("saved-shapes", case), engine.scratch() as d:
        trained = engine.train_case(case)
        engine.save(trained.model, d)
        config, tensors = read_adapter(engine.adapter_dir(d, case.prefix.adapter_name))
        heads = tuple(config.get("modules_to_save") or ())
        others = [k for k in tensors if k != "prompt_embeddings" and not any(f".{h}." in k for h in heads)]
        assert "prompt_embeddings" in tensors and not others, f"saved tensors {sorted(tensors)} (heads {heads})"
        table = tensors["prompt_embeddings"]
        assert tuple(table.shape) == expected_table_shape(case), (
            f"prompt_embeddings {tuple(table.shape)} != (nvt, layers*2*token_dim) {expected_table_shape(case)}"
        )


def saved_config_reloads_equal(case: Case) -> None:
    with check("config-roundtrip", case), engine.scratch() as d:
        trained = engine.train_case(case)
        engine.save(trained.model, d)
        where = engine.adapter_dir(d, case.prefix.adapter_name)
        live = trained.model.peft_config[case.prefix.adapter_name].to_dict()
        saved = PeftConfig.from_pretrained(str(where)).to_dict()
        diff = {
            k: (saved.get(k), live.get(k))
            for k in (set(saved) | set(live)) - RUNTIME_KEYS
            if saved.get(k) != live.get(k)
        }
        assert not diff, f"adapter_config.json reloads to a different config (saved, live): {diff}"
        loaded = engine.load(case, where).peft_config[case.prefix.adapter_name].to_dict()
        diff = {
            k: (loaded.get(k), saved.get(k))
            for k in (set(saved) | set(loaded)) - RUNTIME_KEYS
            if saved.get(k) != loaded.get(k)
        }
        assert not diff, f"the loaded model's config differs from adapter_config.json (loaded, saved): {diff}"


def resave_is_byte_identical(case: Case) -> None:
    with check("resave-identical", case), engine.scratch() as d:
        trained = engine.train_case(case)
        first, second = d / "first", d / "second"
        engine.save(trained.model, first)
        engine.save(engine.load(case, engine.adapter_dir(first, case.prefix.adapter_name)), second)
        cfg_a, a = read_adapter(engine.adapter_dir(first, case.prefix.adapter_name))
        cfg_b, b = read_adapter(engine.adapter_dir(second, case.prefix.adapter_name))
        assert a.keys() == b.keys(), f"tensor names changed: {sorted(a)} -> {sorted(b)}"
        for name in a:
            assert a[name].dtype == b[name].dtype, f"{name}: dtype {a[name].dtype} -> {b[name].dtype}"
            assert torch.equal(a[name], b[name]), f"{name}: values changed by save -> load -> save"
        changed = {k: (cfg_a.get(k), cfg_b.get(k)) for k in set(cfg_a) | set(cfg_b) if cfg_a.get(k) != cfg_b.get(k)}
        assert not changed, f"adapter_config.json changed by save -> load -> save: {changed}"


@pytest.mark.parametrize("task", TASKS)
@given(data=st.data())
def test_saved_table_has_the_shape_peft_derives(task, data):
    saved_table_has_the_derived_shape(data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", TASKS)
@given(data=st.data())
def test_saved_config_reloads_to_an_equal_config(task, data):
    saved_config_reloads_equal(data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("task", TASKS)
@given(data=st.data())
def test_save_load_save_is_byte_identical(task, data):
    resave_is_byte_identical(data.draw(cases(task=task), label="case"))


@pytest.mark.parametrize("seed", SEED_CASES)
def test_seed_structure_saves_the_projected_table(seed):
    """Pinned: the seed's 28-layer structure at tiny width, projection on and off."""
    saved_table_has_the_derived_shape(SEED_CASES[seed])
    resave_is_byte_identical(SEED_CASES[seed])
