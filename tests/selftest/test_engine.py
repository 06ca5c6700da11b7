"""The engine's two speed-ups change nothing a property sees: a cached base model is bitwise a
fresh build (weights, buffers, the RNG state it leaves behind) and a model of its own; the cached
model-card template writes the same README.md as a fresh compile."""

from __future__ import annotations

import jinja2
import pytest
import torch
from hypothesis import given, settings

from prefixcheck import engine
from strategies import cases

pytestmark = pytest.mark.selftest


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


@settings(max_examples=15)
@given(case=cases(device="cpu"))
def test_a_cached_base_is_a_fresh_build_and_a_model_of_its_own(case):
    engine._PRISTINE.clear()
    fresh = engine._fresh_base(case, case.dtype, case.device)
    rng_after_fresh = torch.get_rng_state()
    engine.build_base(case)  # fills the cache
    cached = engine.build_base(case)  # from the cache
    assert torch.equal(torch.get_rng_state(), rng_after_fresh), "a cache hit leaves another RNG state"
    a, b = _state(fresh), _state(cached)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name
    with torch.no_grad():  # changing the copy handed out leaves the next build untouched
        next(cached.parameters()).add_(1.0)
    again = _state(engine.build_base(case))
    first = next(iter(a))
    assert torch.equal(again[first], a[first])
    batch = engine.make_batch(case)
    assert _outcome(engine.build_base(case), batch) == _outcome(fresh, batch)
    # the shared reference is the same weights frozen (as PEFT freezes its base), and computes so
    assert _outcome(engine.pristine_base(case), batch) == _outcome(fresh.requires_grad_(False), batch)


def _outcome(model, batch):
    try:
        return tuple(engine.logits(model, batch).flatten().tolist())
    except Exception as e:  # noqa: BLE001  e.g. BART/T5 classification want an <eos> in every row (ValueError,
        return f"{type(e).__name__}: {e}"  # IndexError on older transformers): the same error both ways


def test_the_cached_model_card_template_writes_the_same_readme(tmp_path):
    case = cases(task="CAUSAL_LM", dtype="float32", device="cpu").example()
    model = engine.build_model(case)
    engine.save(model, tmp_path / "a")
    engine.save(model, tmp_path / "b")  # second save: compiled template from the cache
    template = jinja2.Environment.compile
    assert getattr(template, "_prefixcheck_cached", False)
    from huggingface_hub import ModelCard, ModelCardData

    fresh_env = jinja2.Environment()  # a new environment: never seen by the cache
    source = open(ModelCard.default_template_path, encoding="utf-8").read()
    data = ModelCardData()
    uncached = fresh_env.from_string(source).render(card_data=data.to_yaml(), **data.to_dict())
    cached = jinja2.Template(source).render(card_data=data.to_yaml(), **data.to_dict())
    assert cached == uncached
    assert (tmp_path / "a" / "README.md").read_text() == (tmp_path / "b" / "README.md").read_text()


def test_logits_hands_each_call_its_own_position_ids():
    """Some models shift position_ids in place (ERNIE-M's embeddings add 2): the positions a check
    passes twice must reach the second model unchanged. Found on transformers 4.57, where the
    'explicit default position_ids vs none' claim compared ERNIE-M at positions 2 apart."""

    class ShiftsInPlace(torch.nn.Module):
        def forward(self, input_ids, position_ids=None):
            position_ids += 2
            return type("Out", (), {"logits": position_ids.float()})()

    positions = torch.arange(4).repeat(2, 1)
    batch = {"input_ids": torch.zeros(2, 4, dtype=torch.long), "position_ids": positions}
    first, second = engine.logits(ShiftsInPlace(), batch), engine.logits(ShiftsInPlace(), batch)
    assert torch.equal(first, second) and torch.equal(positions, torch.arange(4).repeat(2, 1))


# found by dev seed 19770 on known-good: prefix-acts:disable-restores-base failed for LongT5 by 3.6e-7
LONGT5 = (
    '{"device": "cpu", "dtype": "float32", "model": {"arch": "longt5", "attn_implementation": "eager", "layout": '
    '{"head_dim": 4, "hidden_size": 8, "num_heads": 2, "num_kv_heads": 2}, "num_layers": 1, "vocab_size": 64}, '
    '"prefix": {"adapter_name": "default", "encoder_hidden_size": null, "init_weights": null, "num_virtual_tokens": '
    '1, "prefix_projection": false}, "recipe": {"batch_size": 1, "learning_rate": 0.01, "num_padded": 0, '
    '"padding_side": "left", "seq_len": 3, "steps": 1}, "seed": 0, "task": "SEQ_2_SEQ_LM"}'
)


def test_the_base_reference_is_frozen_as_peft_freezes_the_base_it_wraps():
    """torch's matmul folds another way when a weight requires grad, even under no_grad: LongT5 with
    live gradients computed 3.6e-7 away from the same weights frozen, so a disabled adapter (PEFT's
    frozen base) differed from the reference, bitwise. The reference is frozen; a base of one's own
    (build_base) is as from_config makes it, every weight trainable."""
    from matrix.bisect import probe
    from prefixcheck.case import Case

    case = Case.from_json(LONGT5)
    assert not any(p.requires_grad for p in engine.pristine_base(case).parameters())
    assert all(p.requires_grad for p in engine.build_base(case).parameters())
    assert probe.run_case("prefix-acts", case, "disable-restores-base")["verdict"] == "pass"


def test_a_prefix_the_model_never_receives_is_named_not_an_autograd_error():
    """A forward() that drops the cache argument (as Ergo's did on transformers 5.25 with PEFT 0.21,
    taking only `cache`): the loss does not depend on the adapter, and training says so."""
    case = cases(task="CAUSAL_LM", arch="llama", dtype="float32", device="cpu").example()
    model = engine.build_model(case)
    base = model.get_base_model()
    original = base.forward

    def forward(*args, **kwargs):
        for name in engine.CACHE_ARGUMENTS:
            kwargs.pop(name, None)
        return original(*args, **kwargs)

    base.forward = forward  # this instance only
    with pytest.raises(engine.PrefixNotReceived, match="never received the prefix") as info:
        engine.train(model, case, engine.make_batch(case))
    assert "forward takes no cache argument" in str(info.value)  # the wrapper's signature: *args, **kwargs
    assert isinstance(info.value, engine.TrainingStalled)  # the train step's failure, as a stalled one is


def test_the_trainer_path_names_a_prefix_the_model_never_receives_too(tmp_path):
    """The Trainer calls backward() itself: its autograd error becomes the same named verdict."""
    from prefixcheck import trainer

    case = cases(task="CAUSAL_LM", arch="llama", dtype="float32", device="cpu").example()
    run = trainer.TrainerRun(case, tmp_path, max_steps=2, load_best=False)
    base = run.model.get_base_model()
    original = base.forward

    def forward(*args, **kwargs):  # the cache dropped, and the mask PEFT widened for it
        for name in (*engine.CACHE_ARGUMENTS, "attention_mask"):
            kwargs.pop(name, None)
        return original(*args, **kwargs)

    base.forward = forward
    with pytest.raises(engine.PrefixNotReceived, match="never received the prefix") as info:
        run.train()
    assert engine.NO_GRAD_LOSS in str(info.value.__cause__)  # what torch said, kept as the cause
