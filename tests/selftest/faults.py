"""Realistic faults injected into PEFT/transformers, to prove each property can fail.

Each fault is a function `install(patch)` where `patch(obj, name, value)` replaces an attribute
for the duration of one self-test (pytest's monkeypatch.setattr, or `Patcher` outside pytest,
e.g. from a sitecustomize.py when a reproduction script must see the fault in a subprocess).
Every fault mimics a bug PEFT or transformers has had or could plausibly have.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from pathlib import Path

import peft
import peft.config
import peft.peft_model
import torch
import transformers

from prefixcheck.engine import CACHE_ARGUMENTS

Patch = Callable[[object, str, object], None]


def _wrap_state_dict_load(
    patch: Patch,
    transform: Callable[[torch.Tensor], torch.Tensor],
    when: Callable[[torch.nn.Module], bool] = lambda model: True,
    key: str = "prompt_embeddings",
) -> None:
    """Change the prefix table (or the tensor saved under `key`) on its way from disk into the model
    (PeftModel.load_adapter), on loads into models for which `when(model)` holds."""
    original = peft.peft_model.set_peft_model_state_dict

    def set_state_dict(model, state_dict, *args, **kwargs):
        if when(model):
            state_dict = {k: transform(v) if k.endswith(key) else v for k, v in state_dict.items()}
        return original(model, state_dict, *args, **kwargs)

    patch(peft.peft_model, "set_peft_model_state_dict", set_state_dict)


def perturb_loaded_table(patch: Patch) -> None:
    """Loading adds 1e-3 to the prefix table (a lossy cast or an off-by-epsilon conversion)."""
    _wrap_state_dict_load(patch, lambda t: t + 1e-3)


def perturb_loaded_task_factors(patch: Patch) -> None:
    """Loading adds 1e-3 to multitask prompt tuning's task column factors (prefix_task_cols): the
    shared table arrives intact, each task's prompt does not."""
    _wrap_state_dict_load(patch, lambda t: t + 1e-3, key="prefix_task_cols")


def perturb_from_pretrained(patch: Patch) -> None:
    """PeftModel.from_pretrained (not load_adapter) ends with a table off by 1e-3."""
    original = peft.peft_model.PeftModel.from_pretrained.__func__

    def from_pretrained(cls, model, model_id, adapter_name="default", **kwargs):
        loaded = original(cls, model, model_id, adapter_name=adapter_name, **kwargs)
        with torch.no_grad():
            loaded.prompt_encoder[adapter_name].embedding.weight.add_(1e-3)
        return loaded

    patch(peft.peft_model.PeftModel, "from_pretrained", classmethod(from_pretrained))


def swap_key_and_value_on_load(patch: Patch, num_layers: int) -> None:
    """Loading swaps each layer's K and V halves of the table (a wrong cache layout)."""

    def swap(table: torch.Tensor) -> torch.Tensor:
        nvt, width = table.shape
        per = table.view(nvt, num_layers, 2, width // (2 * num_layers))
        return per.flip(2).reshape(nvt, width).contiguous()

    _wrap_state_dict_load(patch, swap)


def load_another_table(patch: Patch) -> None:
    """Loading puts a different (random) table in place of the saved one."""
    _wrap_state_dict_load(patch, lambda t: torch.randn_like(t, generator=torch.Generator().manual_seed(7)))


def another_table_on_low_precision_load(patch: Patch) -> None:
    """Loading into a bf16/fp16 base puts a different (random) table in place of the saved one (a
    cast path that reads the wrong tensor); loads into fp32 are untouched."""
    _wrap_state_dict_load(
        patch,
        lambda t: torch.randn_like(t, generator=torch.Generator().manual_seed(7)),
        when=lambda model: next(model.get_base_model().parameters()).dtype in (torch.bfloat16, torch.float16),
    )


def save_training_embedding(patch: Patch) -> None:
    """Saving writes the training-time embedding instead of the projected table (shape bug)."""

    def get_prompt_embedding_to_save(self, adapter_name):
        return self.prompt_encoder[adapter_name].embedding.weight.detach().cpu()

    patch(peft.peft_model.PeftModel, "get_prompt_embedding_to_save", get_prompt_embedding_to_save)


def save_active_adapter_only(patch: Patch) -> None:
    """Saving writes the active adapter's table under every adapter's name."""
    original = peft.peft_model.PeftModel.get_prompt_embedding_to_save

    def get_prompt_embedding_to_save(self, adapter_name):
        return original(self, self.active_adapter)

    patch(peft.peft_model.PeftModel, "get_prompt_embedding_to_save", get_prompt_embedding_to_save)


def round_saved_table_to_model_dtype(patch: Patch) -> None:
    """Saving from a low-precision model rounds the fp32 prefix table to the model's dtype."""
    original = peft.peft_model.PeftModel.save_pretrained

    def save_pretrained(self, save_directory, *args, **kwargs):
        dtype = self.get_base_model().dtype
        tables = [enc.embedding.weight for enc in self.prompt_encoder.values()]
        kept = [t.detach().clone() for t in tables]
        with torch.no_grad():
            for t in tables:
                t.copy_(t.to(dtype).to(t.dtype))
        try:
            return original(self, save_directory, *args, **kwargs)
        finally:
            with torch.no_grad():
                for t, k in zip(tables, kept, strict=True):
                    t.copy_(k)

    patch(peft.peft_model.PeftModel, "save_pretrained", save_pretrained)


def drop_config_key_on_save(patch: Patch, key: str = "prefix_projection", skip_saves: int = 0) -> None:
    """adapter_config.json loses a key on save, so it reloads with the default (`skip_saves`: the
    first saves are right and only later ones drop it: a re-save that drifts)."""
    original = peft.config.PeftConfigMixin.save_pretrained
    saves = [0]

    def save_pretrained(self, save_directory, **kwargs):
        original(self, save_directory, **kwargs)
        saves[0] += 1
        if saves[0] <= skip_saves:
            return
        path = Path(save_directory) / "adapter_config.json"
        data = json.loads(path.read_text())
        data.pop(key, None)
        path.write_text(json.dumps(data))

    patch(peft.config.PeftConfigMixin, "save_pretrained", save_pretrained)


def prefix_ignored_in_eval(patch: Patch) -> None:
    """In eval mode the forward pass goes straight to the base model: the prefix is never applied."""
    cls = peft.peft_model.PeftModelForCausalLM
    original = cls.forward

    def forward(self, *args, **kwargs):
        if self.training:
            return original(self, *args, **kwargs)
        kwargs.pop("labels", None)
        return self.get_base_model()(*args, **kwargs)

    patch(cls, "forward", forward)


def generate_ignores_prefix(patch: Patch) -> None:
    """generate() runs the base model without the prefix (what transformers 5.24 does silently)."""
    cls = peft.peft_model.PeftModelForCausalLM

    def generate(self, *args, **kwargs):
        return self.get_base_model().generate(*args, **kwargs)

    patch(cls, "generate", generate)


def generate_raises(patch: Patch) -> None:
    """generate() raises before its first step, as it did for Gemma's hybrid cache with PEFT 0.16
    ("max_cache_len is None") and for OpenLlama without GenerationMixin."""
    cls = peft.peft_model.PeftModelForCausalLM

    def generate(self, *args, **kwargs):
        raise RuntimeError("generate() is broken here")

    patch(cls, "generate", generate)


def _drop_prefix_when(patch: Patch, when: Callable[[dict], bool]) -> None:
    """A causal LM's eval forward pass skips the prefix for inputs where `when(kwargs)` holds:
    the prefix is silently not injected on one input path (the commonest way prefix tuning broke)."""
    cls = peft.peft_model.PeftModelForCausalLM
    original = cls.forward

    def forward(self, *args, **kwargs):
        if self.training or args or not when(kwargs):
            return original(self, *args, **kwargs)
        kwargs.pop("task_ids", None)
        return self.get_base_model()(**kwargs)

    patch(cls, "forward", forward)


def prefix_dropped_for_inputs_embeds(patch: Patch) -> None:
    """A forward pass fed inputs_embeds runs without the prefix."""
    _drop_prefix_when(patch, lambda kw: kw.get("inputs_embeds") is not None)


def prefix_dropped_without_mask(patch: Patch) -> None:
    """A forward pass without an attention_mask runs without the prefix."""
    _drop_prefix_when(patch, lambda kw: kw.get("attention_mask") is None and kw.get("input_ids") is not None)


def positions_not_shifted_past_prefix(patch: Patch) -> None:
    """Explicit position_ids reach the model as the caller gave them, not shifted past the virtual
    tokens: the real tokens take the prefix's positions (a missed offset)."""
    cls = peft.peft_model.PeftModel
    original = getattr(cls, "_adjust_prompt_learning_kwargs", None)
    if original is None:  # PEFT < 0.19 ignores explicit position_ids (with a warning): drop the prefix instead
        _drop_prefix_when(patch, lambda kw: kw.get("position_ids") is not None)
        return

    def adjust(self, peft_config, *, kwargs, **rest):
        given = kwargs.get("position_ids")
        original(self, peft_config, kwargs=kwargs, **rest)
        if given is not None:
            kwargs["position_ids"] = given

    patch(cls, "_adjust_prompt_learning_kwargs", adjust)


def prefix_dropped_with_labels(patch: Patch) -> None:
    """An eval forward pass given labels runs without the prefix (a loss-only code path)."""
    _drop_prefix_when(patch, lambda kw: kw.get("labels") is not None)


def prefix_dropped_for_padded_batches(patch: Patch) -> None:
    """A batch with padding runs without the prefix (a mask-extension bug)."""
    _drop_prefix_when(patch, lambda kw: kw.get("attention_mask") is not None and not bool(kw["attention_mask"].all()))


def prefix_dropped_without_cache(patch: Patch) -> None:
    """use_cache=False runs without the prefix (as when the prefix rides only on the cache)."""
    _drop_prefix_when(patch, lambda kw: kw.get("use_cache") is False)


def decode_steps_feed_another_token(patch: Patch) -> None:
    """generate()'s decode steps (one new token on a cache) feed the model another token than the
    one just generated (a cache-position misalignment that spares the first step)."""
    cls = peft.peft_model.PeftModelForCausalLM
    original = cls.prepare_inputs_for_generation

    @functools.wraps(original)
    def prepare(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        ids = out.get("input_ids")
        cache = next((out[n] for n in CACHE_ARGUMENTS if out.get(n) is not None), None)  # either name
        cached = cache.get_seq_length() if hasattr(cache, "get_seq_length") else len(cache or ())  # legacy tuples
        if ids is not None and ids.shape[1] == 1 and cached:
            out["input_ids"] = 2 + (ids - 1) % 62  # another token of the tiny vocabulary [2, 64)
        return out

    patch(cls, "prepare_inputs_for_generation", prepare)


def generate_leaves_prefix_changed(patch: Patch) -> None:
    """generate() leaves the prefix changed behind it (an in-place update of the prefix cache):
    the next call computes something else."""
    cls = peft.peft_model.PeftModelForCausalLM
    original = cls.generate

    def generate(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        with torch.no_grad():
            self.prompt_encoder[self.active_adapter].embedding.weight.add_(1e-2)
        return out

    patch(cls, "generate", generate)


def beam_search_drops_prefix(patch: Patch) -> None:
    """Beam search runs without the prefix (the prefix cache is not expanded to the beams)."""
    cls = peft.peft_model.PeftModelForCausalLM
    original = cls.generate

    def generate(self, *args, **kwargs):
        if kwargs.get("num_beams", 1) > 1:
            return self.get_base_model().generate(*args, **kwargs)
        return original(self, *args, **kwargs)

    patch(cls, "generate", generate)


def family_cannot_be_built(patch: Patch, model_type: str) -> None:
    """Building any model of `model_type` fails (a release that breaks one family's config)."""
    original = transformers.AutoConfig.for_model

    def for_model(model_type_, *args, **kwargs):
        if model_type_ == model_type:
            raise RuntimeError(f"injected fault: {model_type} cannot be built")
        return original(model_type_, *args, **kwargs)

    patch(transformers.AutoConfig, "for_model", staticmethod(for_model))


def trainer_keeps_last_model(patch: Patch) -> None:
    """load_best_model_at_end does nothing: the model trained last is what remains."""
    patch(transformers.Trainer, "_load_best_model", lambda self: None)


def resume_forgets_optimizer(patch: Patch) -> None:
    """resume_from_checkpoint does not restore the optimizer and scheduler state."""
    patch(transformers.Trainer, "_load_optimizer_and_scheduler", lambda self, checkpoint: None)


def allow_trainable_prompt_learning(patch: Patch, then: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
    """A PEFT that lets from_pretrained(is_trainable=True) load prefix adapters (optionally with
    a faulty load on top): the trainable-reload property must then hold, or catch the fault."""
    original = peft.peft_model.PeftModel.from_pretrained.__func__

    def from_pretrained(cls, model, model_id, adapter_name="default", is_trainable=False, **kwargs):
        loaded = original(cls, model, model_id, adapter_name=adapter_name, is_trainable=False, **kwargs)
        if is_trainable:
            loaded.peft_config[adapter_name].inference_mode = False
            for param in loaded.prompt_encoder[adapter_name].parameters():
                param.requires_grad_(True)
        return loaded

    patch(peft.peft_model.PeftModel, "from_pretrained", classmethod(from_pretrained))
    if then is not None:
        _wrap_state_dict_load(patch, then)


def save_encoder_weights_too(patch: Patch) -> None:
    """Saving writes the prompt encoder's training weights next to the table (an extra key the
    loader would have to ignore, as PEFT's save once carried)."""
    original = peft.peft_model.get_peft_model_state_dict

    def state_dict(model, *args, **kwargs):
        out = dict(original(model, *args, **kwargs))
        name = kwargs.get("adapter_name", "default")
        out["prompt_encoder.embedding.weight"] = model.prompt_encoder[name].embedding.weight.detach().cpu()
        return out

    patch(peft.peft_model, "get_peft_model_state_dict", state_dict)


def loaded_config_loses_projection(patch: Patch) -> None:
    """PeftModel.from_pretrained ends with prefix_projection off in the live config it built,
    whatever adapter_config.json says."""
    original = peft.peft_model.PeftModel.from_pretrained.__func__

    def from_pretrained(cls, model, model_id, adapter_name="default", **kwargs):
        loaded = original(cls, model, model_id, adapter_name=adapter_name, **kwargs)
        loaded.peft_config[adapter_name].prefix_projection = False
        return loaded

    patch(peft.peft_model.PeftModel, "from_pretrained", classmethod(from_pretrained))


def disable_adapter_does_nothing(patch: Patch) -> None:
    """disable_adapter() is a no-op context: the prefix stays active inside it."""
    patch(peft.peft_model.PeftModel, "disable_adapter", lambda self: contextlib.nullcontext())


def load_adapter_overwrites_others(patch: Patch) -> None:
    """load_adapter(second) also writes the second table into every other adapter of the same
    shape (a shared-buffer bug): the first adapter then computes the second's outputs."""
    original = peft.peft_model.PeftModel.load_adapter

    def load_adapter(self, model_id, adapter_name, *args, **kwargs):
        result = original(self, model_id, adapter_name, *args, **kwargs)
        new = self.prompt_encoder[adapter_name].embedding.weight
        with torch.no_grad():
            for name, encoder in self.prompt_encoder.items():
                if name != adapter_name and encoder.embedding.weight.shape == new.shape:
                    encoder.embedding.weight.copy_(new)
        return result

    patch(peft.peft_model.PeftModel, "load_adapter", load_adapter)


def prefix_detached_from_graph(patch: Patch) -> None:
    """The prefix encoder's output is detached from the graph: training runs and the loss is
    computed, but no gradient reaches the prefix, so it never moves (a silent training bug)."""
    from peft.tuners.prefix_tuning.model import PrefixEncoder

    original = PrefixEncoder.forward
    patch(PrefixEncoder, "forward", lambda self, prefix: original(self, prefix).detach())


def set_adapter_does_not_switch(patch: Patch) -> None:
    """set_adapter() records nothing: the first adapter stays active whatever is asked."""
    patch(peft.peft_model.PeftModel, "set_adapter", lambda self, adapter_name: None)


class Patcher:
    """monkeypatch.setattr for use outside pytest; `undo()` restores everything."""

    def __init__(self) -> None:
        self._saved: list[tuple[object, str, object]] = []

    def __call__(self, obj: object, name: str, value: object) -> None:
        self._saved.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def undo(self) -> None:
        while self._saved:
            obj, name, value = self._saved.pop()
            setattr(obj, name, value)
