"""What PEFT writes: the saved table's shape and values, the config round trip, a re-save."""

from __future__ import annotations

from peft import PeftConfig

from .. import architectures, engine, mismatch
from ..artifacts import read_adapter
from ..compare import BITWISE, assert_equal
from . import body, common
from .common import config_diff


def expected_table_shape(case, live_config=None) -> tuple[int, int]:
    """(num_virtual_tokens, num_layers * 2 * token_dim). A curated architecture's width is derived
    independently of PEFT (so a mis-sized prefix, as before peft#1901, shows); a discovered
    family's is that of the live PrefixTuningConfig, as PEFT read it from the model's config (its
    per-layer special cases, e.g. Gemma 4's largest KV footprint, are PEFT's to decide)."""
    width = architectures.blueprint(case).prefix_width
    nvt = case.prefix.num_virtual_tokens
    if width is not None or live_config is None:
        return (nvt, width)
    return (nvt, live_config.num_layers * 2 * live_config.token_dim)


@body("saved-shapes")
def saved_shapes(ex, case):
    trained = common.trained(ex, case)
    live = engine.prefix_table(trained.model, case.prefix.adapter_name)
    expected = expected_table_shape(case, trained.model.peft_config[case.prefix.adapter_name])
    with engine.scratch() as d:
        ex.step("save", engine.save, trained.model, d)
        config, tensors = ex.step("read", read_adapter, engine.adapter_dir(d, case.prefix.adapter_name))

    def table_shape():
        if "prompt_embeddings" not in tensors:
            raise mismatch.ShapeMismatch(f"no prompt_embeddings among the saved tensors {sorted(tensors)}")
        shape = tuple(tensors["prompt_embeddings"].shape)
        if shape != expected:
            raise mismatch.ShapeMismatch(f"prompt_embeddings {shape} != (nvt, layers*2*token_dim) {expected}")

    def nothing_else():
        heads = tuple(config.get("modules_to_save") or ())
        others = [k for k in tensors if k != "prompt_embeddings" and not any(f".{h}." in k for h in heads)]
        assert not others, f"saved tensors {sorted(tensors)}: {others} are neither the table nor a head in {heads}"

    ex.check("table-shape", table_shape)
    ex.check("nothing-else-saved", nothing_else)
    ex.check(
        "table-equals-live",
        lambda: assert_equal(tensors["prompt_embeddings"], live, BITWISE, "saved table vs the live encoder at batch 1"),
    )


@body("config-roundtrip")
def config_roundtrip(ex, case):
    trained = common.trained(ex, case)
    name = case.prefix.adapter_name
    live = trained.model.peft_config[name].to_dict()
    with engine.scratch() as d:
        where, loaded = common.saved_and_loaded(ex, case, trained, d)
        saved = ex.step("read", lambda: PeftConfig.from_pretrained(str(where)).to_dict())
    ex.check("saved-equals-live", config_diff, saved, live, "saved vs live", ("saved", "live"))
    ex.check(
        "loaded-equals-saved",
        config_diff,
        loaded.peft_config[name].to_dict(),
        saved,
        "loaded vs saved",
        ("loaded", "saved"),
    )


@body("resave-identical")
def resave_identical(ex, case):
    trained = common.trained(ex, case)
    name = case.prefix.adapter_name
    with engine.scratch() as d:
        _, loaded = common.saved_and_loaded(ex, case, trained, d / "first")
        ex.step("resave", engine.save, loaded, d / "second")
        cfg_a, a = ex.step("read", read_adapter, engine.adapter_dir(d / "first", name))
        cfg_b, b = ex.step("read", read_adapter, engine.adapter_dir(d / "second", name))

    def tensors_identical():
        if a.keys() != b.keys():
            raise mismatch.ValueChanged(f"tensor names changed: {sorted(a)} -> {sorted(b)}")
        for key in a:
            if a[key].dtype != b[key].dtype:
                raise mismatch.ValueChanged(f"{key}: dtype {a[key].dtype} -> {b[key].dtype}")
            assert_equal(b[key], a[key], BITWISE, f"{key} after save -> load -> save")

    ex.check("tensors-identical", tensors_identical)
    ex.check("config-identical", config_diff, cfg_a, cfg_b, "first save vs second save", ("first", "second"))
