"""The prompt-learning methods PEFT ships, as data: one home for what each one is.

Six methods share the code this suite watches (`get_prompt`, `get_prompt_embedding_to_save`, the
`prompt_embeddings` entry of the state dict, `_load_adapter_state_dict`,
`prepare_inputs_for_generation`, the cache hand-over). They differ in where the learned prompt
enters the model and in what PEFT saves:

- *cache* methods (prefix tuning, Cartridge) hand every layer a key/value prefix; PEFT saves the
  table [num_virtual_tokens, num_layers * 2 * token_dim];
- *embedding* methods (prompt tuning, P-tuning, multitask prompt tuning, CPT) prepend virtual
  token embeddings to the input; PEFT saves [num_virtual_tokens * submodules, token_dim]
  (submodules: 2 for SEQ_2_SEQ_LM, the encoder's and the decoder's, else 1; CPT always 1).

Light on purpose (no torch, no PEFT import at module level): the case, the strategies and the
registry's facts read it. `available()` feature-detects what the installed PEFT offers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

CACHE = "cache"  # a key/value prefix per layer
EMBEDDING = "embedding"  # virtual tokens prepended to the input embeddings


@dataclass(frozen=True)
class Method:
    name: str  # PeftType's value
    config_class: str  # the PEFT config class (peft.<config_class>)
    enters: str  # CACHE or EMBEDDING
    what: str  # one line for docs and reports
    # the saved tensors besides prompt_embeddings (multitask prompt tuning's task factors)
    extra_tensors: tuple[str, ...] = ()
    # fixed number of transformer submodules, where the method sets it (CPT: 1); None: PEFT's rule
    submodules: int | None = None

    @property
    def short(self) -> str:
        return SHORT[self.name]


PREFIX_TUNING = "PREFIX_TUNING"
P_TUNING = "P_TUNING"
PROMPT_TUNING = "PROMPT_TUNING"
MULTITASK_PROMPT_TUNING = "MULTITASK_PROMPT_TUNING"
CPT = "CPT"
CARTRIDGE = "CARTRIDGE"

ALL: tuple[Method, ...] = (
    Method(PREFIX_TUNING, "PrefixTuningConfig", CACHE, "prefix tuning: a learned key/value prefix per layer"),
    Method(PROMPT_TUNING, "PromptTuningConfig", EMBEDDING, "prompt tuning: learned virtual token embeddings"),
    Method(P_TUNING, "PromptEncoderConfig", EMBEDDING, "P-tuning: virtual token embeddings through an MLP or LSTM"),
    Method(
        MULTITASK_PROMPT_TUNING,
        "MultitaskPromptTuningConfig",
        EMBEDDING,
        "multitask prompt tuning: a shared prompt scaled by per-task low-rank factors",
        extra_tensors=("prefix_task_cols", "prefix_task_rows"),
    ),
    Method(
        CPT, "CPTConfig", EMBEDDING, "CPT: context-aware prompt tuning, token-id initialised, projected", submodules=1
    ),
    Method(CARTRIDGE, "CartridgeConfig", CACHE, "Cartridge: the key/value prefix stored as parameters"),
)
BY_NAME = {m.name: m for m in ALL}
NAMES = tuple(BY_NAME)
SHORT = {
    PREFIX_TUNING: "prefix",
    PROMPT_TUNING: "prompt",
    P_TUNING: "p-tuning",
    MULTITASK_PROMPT_TUNING: "multitask",
    CPT: "cpt",
    CARTRIDGE: "cartridge",
}


class UnknownMethod(ValueError):
    """A method name PEFT does not have (or this suite does not know)."""


def get(name: str) -> Method:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownMethod(f"unknown prompt-learning method {name!r}; expected one of {', '.join(NAMES)}") from None


def submodules(method: str, task: str) -> int:
    """How many copies of the virtual tokens PEFT makes (PeftModel._setup_prompt_encoder)."""
    fixed = get(method).submodules
    return fixed if fixed is not None else (2 if task == "SEQ_2_SEQ_LM" else 1)


@cache
def available() -> tuple[str, ...]:
    """The methods the installed PEFT offers: its config class imports (Cartridge is new in 0.19)."""
    import peft

    return tuple(m.name for m in ALL if hasattr(peft, m.config_class))


@cache
def refusal(method: str, task: str) -> str | None:
    """Why the installed PEFT refuses `method` for `task` (its config's own error, one line), or
    None where it accepts it. Read from PEFT itself: CPTConfig raises for every task but CAUSAL_LM."""
    import peft

    config_class = getattr(peft, get(method).config_class)
    try:
        config_class(task_type=task, num_virtual_tokens=1)
    except (ValueError, TypeError) as exc:
        return f"PEFT refuses {method} for {task}: {str(exc).splitlines()[0]}"
    return None


def tasks_for(method: str, tasks: tuple[str, ...]) -> tuple[str, ...]:
    """The tasks of `tasks` the installed PEFT accepts `method` for."""
    return tuple(t for t in tasks if refusal(method, t) is None)
