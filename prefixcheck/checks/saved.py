"""What PEFT writes: the saved table's shape and values, the config round trip, a re-save."""

from __future__ import annotations

from peft import PeftConfig

from .. import architectures, engine, methods, mismatch
from ..artifacts import read_adapter
from ..compare import BITWISE, assert_equal
from . import body, common
from .common import config_diff


def expected_table_shape(case, live_config=None) -> tuple[int, int]:
    """A cache method's (prefix tuning, Cartridge): (num_virtual_tokens, num_layers * 2 *
    token_dim); an embedding method's: (num_virtual_tokens * submodules, token_dim), the virtual
    tokens of the encoder and, for SEQ_2_SEQ_LM, the decoder (prefixcheck.methods). A curated
    architecture's width is derived independently of PEFT (so a mis-sized prefix, as before
    peft#1901, shows); a discovered family's is that of the live config, as PEFT read it from
    the model's config (its per-layer special cases, e.g. Gemma 4's largest KV footprint, are
    PEFT's to decide)."""
    nvt, method = case.prefix.num_virtual_tokens, case.prefix.method
    curated = architectures.blueprint(case).prefix_width is not None
    if methods.get(method).enters == methods.EMBEDDING:
        width = case.model.layout.hidden_size if curated or live_config is None else live_config.token_dim
        return (nvt * methods.submodules(method, case.task), width)
    width = architectures.blueprint(case).prefix_width
    if width is not None or live_config is None:
        return (nvt, width)
    return (nvt, live_config.num_layers * 2 * live_config.token_dim)


def expected_shapes(case, live_config=None) -> dict[str, tuple[int, ...]]:
    """Every tensor of the method's saved layout: the table, and multitask prompt tuning's task
    factors prefix_task_cols (num_tasks, total virtual tokens, num_ranks) and prefix_task_rows
    (num_tasks, num_ranks, token_dim)."""
    table = expected_table_shape(case, live_config)
    shapes = {"prompt_embeddings": table}
    if case.prefix.method == methods.MULTITASK_PROMPT_TUNING:
        tasks, ranks = case.prefix.option["num_tasks"], case.prefix.option["num_ranks"]
        shapes["prefix_task_cols"] = (tasks, table[0], ranks)
        shapes["prefix_task_rows"] = (tasks, ranks, table[1])
    return shapes


@body("saved-shapes")
def saved_shapes(ex, case):
    trained = common.trained(ex, case)
    live = engine.prompt_tensors(trained.model, case.prefix.adapter_name)
    expected = expected_shapes(case, trained.model.peft_config[case.prefix.adapter_name])
    layout = (
        "(nvt, layers*2*token_dim)"
        if methods.get(case.prefix.method).enters == methods.CACHE
        else "(nvt*submodules, token_dim)"
    )
    with engine.scratch() as d:
        ex.step("save", engine.save, trained.model, d)
        config, tensors = ex.step("read", read_adapter, engine.adapter_dir(d, case.prefix.adapter_name))

    def table_shape():
        for name, shape in expected.items():
            if name not in tensors:
                raise mismatch.ShapeMismatch(f"no {name} among the saved tensors {sorted(tensors)}")
            saved = tuple(tensors[name].shape)
            if saved != shape:
                what = layout if name == "prompt_embeddings" else "the task factors' shape"
                raise mismatch.ShapeMismatch(f"{name} {saved} != {case.prefix.method} {what} {shape}")

    def nothing_else():
        heads = tuple(config.get("modules_to_save") or ())
        others = [k for k in tensors if k not in expected and not any(f".{h}." in k for h in heads)]
        assert not others, f"saved tensors {sorted(tensors)}: {others} are neither the prompt nor a head in {heads}"

    def equals_live():
        for name in expected:
            assert_equal(tensors[name], live[name], BITWISE, f"saved {name} vs the live encoder at batch 1")

    ex.check("table-shape", table_shape)
    ex.check("nothing-else-saved", nothing_else)
    ex.check("table-equals-live", equals_live)


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
