"""The generic tiny-config recipe: any model type's config made tiny through the standard size fields.

Configs spell the same size many ways (`hidden_size`, `d_model`, `n_embd`, ...). The recipe sets
every spelling a config *declares* (its default `to_dict()` or its `attribute_map`) and nothing
else: an undeclared keyword is kept as an extra attribute, and `num_key_value_heads` on GPT-2
would then change the prefix width PEFT computes. Per-family overrides (families.toml) are
applied last, each with its one-line reason.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ..case import AttentionLayout
from ..compat import tomllib

FAMILIES_FILE = Path(__file__).with_name("families.toml")
PAD, BOS_EOS = 0, 1  # token ids; inputs are drawn from [2, vocab) so both stay distinct
NUM_LABELS = {"SEQ_CLS": 2, "TOKEN_CLS": 3}
MAX_POSITIONS = 128  # above the longest sequence plus the most virtual tokens of the tiny tier

# what -> the spellings configs use for it
HIDDEN = ("hidden_size", "d_model", "n_embd", "n_embed", "dim", "emb_dim", "hidden_dim", "embedding_size",
          "embedding_dim", "word_embed_proj_dim")  # fmt: skip
LAYERS = ("num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers", "decoder_layers",
          "num_decoder_layers", "num_encoder_layers")  # fmt: skip
HEADS = ("num_attention_heads", "num_heads", "n_head", "n_heads", "encoder_attention_heads",
         "decoder_attention_heads", "num_encoder_attention_heads", "num_decoder_attention_heads",
         "attention_heads")  # fmt: skip
KV_HEADS = ("num_key_value_heads", "num_kv_heads")
HEAD_DIM = ("head_dim", "d_kv", "attention_head_dim", "kv_channels", "d_head", "dim_head", "attention_head_size")
INTERMEDIATE = ("intermediate_size", "d_ff", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "n_inner", "d_inner",
                "ffn_hidden_size", "feed_forward_size", "dim_ff", "moe_intermediate_size",
                "shared_expert_intermediate_size", "shared_intermediate_size",
                "moe_shared_expert_intermediate_size", "dense_intermediate_size", "intermediate_size_mlp",
                "expert_ffn_hidden_size")  # fmt: skip
VOCAB = ("vocab_size", "decoder_vocab_size", "src_vocab_size", "tgt_vocab_size")
POSITIONS = ("max_position_embeddings", "n_positions", "max_seq_len", "context_length",
             "max_encoder_position_embeddings", "max_decoder_position_embeddings")  # fmt: skip
# Mixture-of-experts and latent sizes: shrunk only where the default is a larger int
SHRINK_IF_LARGER = {
    "num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4, "moe_num_experts": 4,
    "num_experts_per_tok": 2, "moe_topk": 2, "moe_k": 2, "num_experts_per_token": 2,
    "n_shared_experts": 1, "num_shared_experts": 1,
}  # fmt: skip
PARTIAL_ROTARY = ("partial_rotary_factor", "rotary_pct")


@cache
def declared_fields(model_type: str) -> tuple[dict, frozenset]:
    """A config class's default values and every field name it declares (attribute_map included)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    config_class = CONFIG_MAPPING[model_type]
    try:
        defaults = config_class().to_dict()
    except Exception:  # noqa: BLE001 - some configs cannot be built without arguments
        defaults = {}
    names = frozenset(defaults) | frozenset(getattr(config_class, "attribute_map", {}) or {})
    return defaults, names


def declares(model_type: str, *fields: str) -> bool:
    return bool(set(fields) & declared_fields(model_type)[1])


def rotary_fractions(model_type: str) -> set[float]:
    """The fractions of each head's width that are rotated, where below 1 (`partial_rotary_factor`
    or `rotary_pct`, at the top level or per layer type inside `rope_parameters`)."""
    found: set[float] = set()

    def scan(d: dict) -> None:
        for key, value in d.items():
            if key in PARTIAL_ROTARY and isinstance(value, int | float) and 0 < value < 1:
                found.add(float(value))
            elif isinstance(value, dict):
                scan(value)

    scan(declared_fields(model_type)[0])
    return found


@cache
def overrides() -> dict[str, dict]:
    """families.toml: per model type, config keyword overrides and the reason for them."""
    with FAMILIES_FILE.open("rb") as f:
        data = tomllib.load(f)
    table = data.get("override", {})
    for name, entry in table.items():
        if not entry.get("why"):
            raise ValueError(f"{FAMILIES_FILE.name}: override {name!r} has no `why`")
        if not isinstance(entry.get("config"), dict):
            raise ValueError(f"{FAMILIES_FILE.name}: override {name!r} has no [override.{name}.config] table")
    return table


def _resolve(value, num_layers: int):
    """Overrides may say `{ per_layer = <value> }` for a list with one value per layer."""
    if isinstance(value, dict) and set(value) == {"per_layer"}:
        return [value["per_layer"]] * num_layers
    if isinstance(value, dict):
        return {k: _resolve(v, num_layers) for k, v in value.items()}
    return value


def tiny_kwargs(model_type: str, layout: AttentionLayout, num_layers: int, vocab_size: int) -> dict:
    """Config keyword arguments for a tiny `model_type` with this layout."""
    defaults, names = declared_fields(model_type)
    sizes = (
        (HIDDEN, layout.hidden_size),
        (LAYERS, num_layers),
        (HEADS, layout.num_heads),
        (KV_HEADS, layout.num_kv_heads),
        (HEAD_DIM, layout.head_dim),
        (INTERMEDIATE, 2 * layout.hidden_size),
        (VOCAB, vocab_size),
        (POSITIONS, MAX_POSITIONS),
    )
    kw: dict = {name: value for spellings, value in sizes for name in spellings if name in names}
    for name, value in SHRINK_IF_LARGER.items():
        default = defaults.get(name)
        if isinstance(default, int) and not isinstance(default, bool) and default > value:
            kw[name] = value
    # LayerDrop skips whole layers at random in training (M2M100, NLLB, ...): with one layer the
    # prefix can drop out of the loss altogether, so a training step would depend on chance
    kw.update({name: 0.0 for name in sorted(names) if name.endswith("layerdrop")})
    kw.update(pad_token_id=PAD, bos_token_id=BOS_EOS, eos_token_id=BOS_EOS)
    if "decoder_start_token_id" in names:
        kw["decoder_start_token_id"] = PAD
    if "forced_eos_token_id" in names:
        kw["forced_eos_token_id"] = None
    override = overrides().get(model_type)
    if override:
        kw.update(_resolve(override["config"], num_layers))
    return kw


def task_kwargs(model_type: str, task: str) -> dict:
    """What the head needs on top of the sizes: its label count; for a causal LM head of an
    encoder family (BERT-style `*ForCausalLM`), `is_decoder=True`, as its docs require."""
    if task in NUM_LABELS:
        return {"num_labels": NUM_LABELS[task]}
    defaults, names = declared_fields(model_type)
    if task == "CAUSAL_LM" and "is_decoder" in names and not defaults.get("is_encoder_decoder"):
        return {"is_decoder": True}
    return {}


@cache
def position_kind(model_type: str) -> str:
    """How the family encodes positions, read off its config's fields: rotary, alibi, relative
    (T5-style buckets), absolute (a learned or sinusoidal table) or none."""
    defaults, names = declared_fields(model_type)
    if defaults.get("alibi") or model_type in ("bloom", "mpt"):  # Bloom and MPT have ALiBi and no field for it
        return "alibi"
    if any("rope" in n or "rotary" in n for n in names):
        return "rotary"
    if any(n.startswith("relative_attention") for n in names):
        return "relative"
    if names & set(POSITIONS):
        return "absolute"
    return "none"
