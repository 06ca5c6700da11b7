"""The curated architectures: hand-written tiny configs, and what each one's attention looks like.

Every model is built from a config with random weights (never a hub id). An `Architecture`
says how a `ModelSpec` becomes config keyword arguments, which attention layouts it can express
(the strategies read this), and which width PEFT gives its prefix.

Order matters: `ARCHITECTURES` runs from the most common and simplest (Llama, fp32) to the most
exotic, so Hypothesis' `sampled_from` shrinks a failure towards Llama.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from ..case import AttentionLayout, ModelSpec
from . import generic

# How a layout may vary, per architecture family.
MHA = "mha"  # num_kv_heads == num_heads, head_dim == hidden / heads (GPT-2, OPT, BERT, ...)
GQA = "gqa"  # num_kv_heads divides num_heads, head_dim == hidden / heads (Llama)
EXPLICIT = "explicit"  # GQA plus a head_dim set independently of hidden (Qwen3, Mistral, Gemma)
MQA = "mqa"  # num_kv_heads is 1 (multi_query) or num_heads (GPTBigCode)
INNER = "inner"  # T5: d_kv * num_heads may differ from d_model, no GQA
GENERIC = "generic"  # a discovered family: the layouts discovery saw build (discovery.py)

# Auto class per task, by name so importing this module stays cheap.
AUTO_CLASS = {
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "TOKEN_CLS": "AutoModelForTokenClassification",
}
_AUTO_MAPPING = {
    "CAUSAL_LM": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "SEQ_2_SEQ_LM": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "SEQ_CLS": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "TOKEN_CLS": "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
}
NUM_LABELS = generic.NUM_LABELS
PAD, BOS_EOS = generic.PAD, generic.BOS_EOS


@dataclass(frozen=True)
class Architecture:
    name: str
    model_type: str
    family: str
    tasks: tuple[str, ...]  # tasks the suite asks for; `available_tasks` filters by installed transformers
    head_dims: tuple[int, ...] = (4, 8)
    max_heads: int = 4
    encoder_decoder: bool = False
    layouts: tuple[AttentionLayout, ...] = ()  # GENERIC: the layouts discovery saw build, simplest first
    layer_counts: tuple[int, ...] = ()  # GENERIC: the layer counts discovery saw build

    @property
    def curated(self) -> bool:
        return self.family != GENERIC

    def config_kwargs(self, spec: ModelSpec) -> dict:
        lay, n = spec.layout, spec.num_layers
        if not self.curated:
            return generic.tiny_kwargs(self.model_type, lay, n, spec.vocab_size)
        common = {"vocab_size": spec.vocab_size, "pad_token_id": PAD, "bos_token_id": BOS_EOS, "eos_token_id": BOS_EOS}
        return {**common, **_BUILDERS[self.name](lay, n)}

    @property
    def positions(self) -> str:
        """rotary, alibi, relative, absolute or none (generic.position_kind)."""
        return generic.position_kind(self.model_type)

    def task_kwargs(self, task: str) -> dict:
        """Config fields the task's head needs (its label count, ...)."""
        if self.curated:
            return {"num_labels": NUM_LABELS[task]} if task in NUM_LABELS else {}
        return generic.task_kwargs(self.model_type, task)

    def peft_token_dim(self, spec: ModelSpec) -> int:
        """The per-layer prefix width PEFT gives this model (peft utils/other.py
        `_prepare_prompt_learning_config`): kv_heads * head_dim where the config declares
        `num_key_value_heads` (GQA support, peft#1901; explicit head_dim, peft#2370), else the
        model width. Whether a config declares it depends on the installed transformers (GPTBigCode
        gained it in 5.x), so it is read off the config rather than assumed."""
        lay = spec.layout
        if _declares_kv_heads(self.model_type, json.dumps(self.config_kwargs(spec), sort_keys=True)):
            return lay.num_kv_heads * lay.head_dim
        return lay.hidden_size

    def kv_token_dim(self, lay: AttentionLayout) -> int:
        """The per-layer K (or V) width the model's own cache holds."""
        return lay.num_kv_heads * lay.head_dim

    def peft_num_layers(self, spec: ModelSpec) -> int:
        return spec.num_layers

    def available_tasks(self) -> tuple[str, ...]:
        return tuple(t for t in self.tasks if _has_head(self.model_type, t))

    def available(self) -> bool:
        return _has_model_type(self.model_type) and bool(self.available_tasks())

    def attn_implementations(self, task: str) -> tuple[str, ...]:
        """eager always; sdpa where the installed model class declares support for it."""
        return ("eager", "sdpa") if _supports_sdpa(self.model_type, task) else ("eager",)

    @property
    def encoder_style(self) -> bool:
        """Its config declares is_decoder: an encoder (BERT-like) or encoder-decoder, whose sequence
        classification pools the first token rather than the last real one."""
        return "is_decoder" in generic.declared_fields(self.model_type)[1]

    def takes_position_ids(self, task: str) -> bool:
        """Whether the task's head class takes position_ids in forward() (a caller can place tokens)."""
        return _takes_position_ids(self.model_type, task)


def _llama_like(lay: AttentionLayout, n: int) -> dict:
    kw = dict(
        hidden_size=lay.hidden_size,
        intermediate_size=2 * lay.hidden_size,
        num_hidden_layers=n,
        num_attention_heads=lay.num_heads,
        num_key_value_heads=lay.num_kv_heads,
        max_position_embeddings=128,
    )
    if lay.explicit_head_dim:
        kw["head_dim"] = lay.head_dim
    return kw


def _explicit(lay: AttentionLayout, n: int) -> dict:
    return {**_llama_like(lay, n), "head_dim": lay.head_dim}


def _gpt2(lay, n):
    return dict(n_embd=lay.hidden_size, n_layer=n, n_head=lay.num_heads, n_positions=128)


def _opt(lay, n):
    return dict(
        hidden_size=lay.hidden_size,
        ffn_dim=2 * lay.hidden_size,
        num_hidden_layers=n,
        num_attention_heads=lay.num_heads,
        word_embed_proj_dim=lay.hidden_size,
        max_position_embeddings=128,
        # OPT's config default sets these to 2; keep them inside the tiny vocabulary
        bos_token_id=BOS_EOS,
        eos_token_id=BOS_EOS,
    )


def _gpt_neox(lay, n):
    return dict(
        hidden_size=lay.hidden_size,
        intermediate_size=2 * lay.hidden_size,
        num_hidden_layers=n,
        num_attention_heads=lay.num_heads,
        max_position_embeddings=128,
    )


def _bloom(lay, n):
    return dict(hidden_size=lay.hidden_size, n_layer=n, n_head=lay.num_heads)


def _gpt_bigcode(lay, n):
    return dict(
        n_embd=lay.hidden_size,
        n_layer=n,
        n_head=lay.num_heads,
        n_positions=128,
        multi_query=lay.num_kv_heads == 1,
    )


def _t5(lay, n):
    return dict(
        d_model=lay.hidden_size,
        d_kv=lay.head_dim,
        d_ff=2 * lay.hidden_size,
        num_layers=n,
        num_decoder_layers=n,
        num_heads=lay.num_heads,
        decoder_start_token_id=PAD,
    )


def _bart(lay, n):
    return dict(
        d_model=lay.hidden_size,
        encoder_layers=n,
        decoder_layers=n,
        encoder_attention_heads=lay.num_heads,
        decoder_attention_heads=lay.num_heads,
        encoder_ffn_dim=2 * lay.hidden_size,
        decoder_ffn_dim=2 * lay.hidden_size,
        max_position_embeddings=128,
        decoder_start_token_id=BOS_EOS,
        forced_eos_token_id=None,
    )


def _bert(lay, n):
    return dict(
        hidden_size=lay.hidden_size,
        num_hidden_layers=n,
        num_attention_heads=lay.num_heads,
        intermediate_size=2 * lay.hidden_size,
        max_position_embeddings=130,
    )


_BUILDERS = {
    "llama": _llama_like,
    "gpt2": _gpt2,
    "opt": _opt,
    "gpt_neox": _gpt_neox,
    "qwen3": _explicit,
    "mistral": _explicit,
    "bloom": _bloom,
    "gpt_bigcode": _gpt_bigcode,
    "gemma2": _explicit,
    "gemma3_text": _explicit,
    "bart": _bart,
    "t5": _t5,
    "bert": _bert,
    "roberta": _bert,
}

CLM, S2S, CLS, TOK = "CAUSAL_LM", "SEQ_2_SEQ_LM", "SEQ_CLS", "TOKEN_CLS"

# Simplest first: shrinking moves towards the top of this list.
ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("llama", "llama", GQA, (CLM, CLS, TOK)),
    Architecture("gpt2", "gpt2", MHA, (CLM, CLS, TOK)),
    Architecture("opt", "opt", MHA, (CLM, CLS)),
    # GPT-NeoX rotates int(head_dim * rotary_pct=0.25) dims; that count must be even
    Architecture("gpt_neox", "gpt_neox", MHA, (CLM, CLS, TOK), head_dims=(8, 16)),
    Architecture("qwen3", "qwen3", EXPLICIT, (CLM, CLS, TOK)),
    Architecture("mistral", "mistral", EXPLICIT, (CLM, CLS, TOK)),
    Architecture("bloom", "bloom", MHA, (CLM, CLS, TOK)),
    Architecture("gpt_bigcode", "gpt_bigcode", MQA, (CLM, CLS, TOK)),
    Architecture("gemma2", "gemma2", EXPLICIT, (CLM, CLS, TOK)),
    Architecture("gemma3_text", "gemma3_text", EXPLICIT, (CLM, CLS)),
    Architecture("bart", "bart", MHA, (S2S, CLM, CLS), encoder_decoder=True),
    Architecture("t5", "t5", INNER, (S2S, CLS, TOK), encoder_decoder=True),
    # BERT-style encoders: classification heads only; their LM head is not a causal LM without
    # is_decoder=True, which no prefix-tuning user of BERT sets.
    Architecture("bert", "bert", MHA, (CLS, TOK)),
    Architecture("roberta", "roberta", MHA, (CLS, TOK)),
)


@cache
def _has_model_type(model_type: str) -> bool:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return model_type in CONFIG_MAPPING_NAMES


@cache
def _has_head(model_type: str, task: str) -> bool:
    from transformers.models.auto import modeling_auto

    return _has_model_type(model_type) and model_type in getattr(modeling_auto, _AUTO_MAPPING[task], {})


@cache
def _declares_kv_heads(model_type: str, kwargs_json: str) -> bool:
    import transformers

    try:
        config = transformers.AutoConfig.for_model(model_type, **json.loads(kwargs_json))
    except Exception:  # noqa: BLE001 - a config that cannot be built fails the example's build step
        return False
    return "num_key_value_heads" in config.to_dict()


@cache
def _supports_sdpa(model_type: str, task: str) -> bool:
    import transformers
    from transformers.models.auto import modeling_auto

    class_name = getattr(modeling_auto, _AUTO_MAPPING[task]).get(model_type)
    return bool(class_name) and bool(getattr(getattr(transformers, class_name, None), "_supports_sdpa", False))


@cache
def _takes_position_ids(model_type: str, task: str) -> bool:
    import inspect

    import transformers
    from transformers.models.auto import modeling_auto

    class_name = getattr(modeling_auto, _AUTO_MAPPING[task]).get(model_type)
    cls = getattr(transformers, class_name, None) if isinstance(class_name, str) else None
    return cls is not None and "position_ids" in inspect.signature(cls.forward).parameters
