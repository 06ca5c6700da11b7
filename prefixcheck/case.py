"""What one prefix-tuning case is: plain frozen records that round-trip through JSON.

A `Case` is everything needed to rebuild a tiny model with random weights, wrap it in a
prefix-tuning adapter, train it briefly and compare it after save/load. It holds no torch
objects, so it can be hashed, stored in a manifest and printed into a reproduction script.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from . import methods

TASKS = ("CAUSAL_LM", "SEQ_2_SEQ_LM", "SEQ_CLS", "TOKEN_CLS")
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda")


class CaseError(ValueError):
    """A case description that cannot be right (bad JSON, unknown field, impossible layout)."""


@dataclass(frozen=True)
class AttentionLayout:
    """Heads, KV heads and head width of every attention layer.

    `hidden_size` is the model width; it equals `num_heads * head_dim` unless the
    architecture carries an explicit `head_dim` (Qwen3, Mistral, Gemma, T5's `d_kv`).
    """

    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int

    def __post_init__(self) -> None:
        if min(self.hidden_size, self.num_heads, self.num_kv_heads, self.head_dim) < 1:
            raise CaseError(f"attention layout has a non-positive size: {self}")
        if self.num_heads % self.num_kv_heads:
            raise CaseError(f"num_kv_heads={self.num_kv_heads} does not divide num_heads={self.num_heads}")

    @property
    def explicit_head_dim(self) -> bool:
        return self.num_heads * self.head_dim != self.hidden_size


@dataclass(frozen=True)
class ModelSpec:
    """A tiny model: an architecture from `prefixcheck.architectures` and its sizes."""

    arch: str
    num_layers: int
    layout: AttentionLayout
    vocab_size: int = 64
    attn_implementation: str = "eager"


@dataclass(frozen=True)
class PrefixSpec:
    """The prompt-learning adapter: its method (prefixcheck.methods; prefix tuning unless said) and
    the config knobs this suite varies. The first fields are PrefixTuningConfig's; every other
    method's own options (P-tuning's encoder, prompt tuning's init, multitask prompt tuning's
    tasks, CPT's token ids and loss, Cartridge's frozen tokens) are `options`, sorted
    (name, value) pairs of its config class's keyword arguments."""

    num_virtual_tokens: int
    prefix_projection: bool = False
    encoder_hidden_size: int | None = None
    init_weights: str | None = None  # "zero" or None; only where the installed PEFT has the field
    adapter_name: str = "default"
    method: str = methods.PREFIX_TUNING
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        methods.get(self.method)  # UnknownMethod names it
        if self.method != methods.PREFIX_TUNING and (self.prefix_projection or self.init_weights):
            raise CaseError(f"prefix_projection and init_weights are prefix tuning's; {self.method} has its options")
        # JSON gives lists back: options are hashable tuples again, sorted by name
        options = tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in self.options))
        object.__setattr__(self, "options", options)

    @property
    def option(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def encoded(self) -> bool:
        """The saved table is what a network (prefix_projection's MLP, P-tuning's MLP or LSTM)
        computed at batch 1, which the trained model recomputes at its batch size."""
        return self.prefix_projection or self.method == methods.P_TUNING

    def config_kwargs(self, task: str) -> dict[str, Any]:
        """The method's config class (**...) for this spec: optional fields only when they are set.
        CPT's num_virtual_tokens is its config's to derive (len(cpt_token_ids))."""
        kwargs: dict[str, Any] = {"task_type": task}
        if self.method != methods.CPT:
            kwargs["num_virtual_tokens"] = self.num_virtual_tokens
        if self.method == methods.PREFIX_TUNING:
            kwargs["prefix_projection"] = self.prefix_projection
        if self.encoder_hidden_size is not None:
            kwargs["encoder_hidden_size"] = self.encoder_hidden_size
        if self.init_weights is not None:
            kwargs["init_weights"] = self.init_weights
        kwargs.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.options})
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """As a prefix-tuning spec always serialised (so recorded case keys stay valid); the method
        and its options only where they are not prefix tuning's defaults."""
        data = dataclasses.asdict(self)
        if self.method == methods.PREFIX_TUNING and not self.options:
            del data["method"], data["options"]
        else:
            data["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrefixSpec:
        data = dict(data)
        options = data.pop("options", {})
        return cls(**data, options=tuple(options.items() if isinstance(options, dict) else options))


@dataclass(frozen=True)
class Blueprint:
    """What building and judging a case's model needs to know of its architecture, as plain data:
    prefixcheck.architectures.blueprint works it out for a case, and a reproduction script carries it
    (so the script needs nothing of the suite's architecture code)."""

    model_type: str
    config: dict[str, Any]  # AutoConfig.for_model keyword arguments, the task head's included
    auto_class: str  # the transformers Auto class of the case's task
    pad_token_id: int
    num_labels: int | None  # the classes of a classification head; None: the labels are token ids
    # num_layers * 2 * token_dim as derived independently of PEFT (a curated architecture); None
    # where PEFT's own reading of the config decides (a discovered family)
    prefix_width: int | None
    positions: str  # rotary, alibi, relative, absolute or none
    encoder_style: bool  # an encoder (BERT-like) or encoder-decoder: its classification pools the first token


# multi-adapter's second adapter: never an adapter name a case draws, so never a clash
SECOND_ADAPTER = "second"
SECOND_PREFIX = PrefixSpec(num_virtual_tokens=2, adapter_name=SECOND_ADAPTER)

# generate() extends every judged sequence by this many tokens (the strategies leave room for them
# below a model's position limit)
MAX_NEW_TOKENS = 3


@dataclass(frozen=True)
class Recipe:
    """How the adapter is trained before it is saved, and the batch it is judged on."""

    steps: int = 2
    learning_rate: float = 1e-2
    batch_size: int = 2
    seq_len: int = 5
    padding_side: str = "left"
    num_padded: int = 1  # leading (left) or trailing (right) pad positions in the last row


@dataclass(frozen=True)
class Case:
    model: ModelSpec
    task: str
    prefix: PrefixSpec
    recipe: Recipe = Recipe()
    dtype: str = "float32"
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise CaseError(f"unknown task type {self.task!r}; expected one of {TASKS}")
        if self.dtype not in DTYPES:
            raise CaseError(f"unknown dtype {self.dtype!r}; expected one of {DTYPES}")
        if self.device not in DEVICES:
            raise CaseError(f"unknown device {self.device!r}; expected one of {DEVICES}")
        if self.recipe.num_padded >= self.recipe.seq_len:
            raise CaseError("a row cannot be all padding: num_padded must be < seq_len")

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "prefix": self.prefix.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def key(self) -> str:
        """A short stable id: equal cases have equal keys, in every process and version."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        try:
            model = dict(data["model"])
            model["layout"] = AttentionLayout(**model["layout"])
            return cls(
                model=ModelSpec(**model),
                task=data["task"],
                prefix=PrefixSpec.from_dict(data["prefix"]),
                recipe=Recipe(**data.get("recipe", {})),
                dtype=data.get("dtype", "float32"),
                device=data.get("device", "cpu"),
                seed=data.get("seed", 0),
            )
        except (KeyError, TypeError, methods.UnknownMethod) as exc:
            raise CaseError(f"not a case description: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> Case:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CaseError(f"case JSON does not parse: {exc}") from exc
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> Case:
        return dataclasses.replace(self, **changes)

    def with_prefix(self, **changes: Any) -> Case:
        return dataclasses.replace(self, prefix=dataclasses.replace(self.prefix, **changes))

    def with_recipe(self, **changes: Any) -> Case:
        return dataclasses.replace(self, recipe=dataclasses.replace(self.recipe, **changes))

    def describe(self) -> str:
        lay = self.model.layout
        return (
            f"{self.model.arch}/{self.task} {self.prefix.method} L={self.model.num_layers} h={lay.hidden_size} "
            f"heads={lay.num_heads}/{lay.num_kv_heads}x{lay.head_dim} nvt={self.prefix.num_virtual_tokens} "
            f"proj={self.prefix.prefix_projection} {self.dtype}/{self.device}"
        )
