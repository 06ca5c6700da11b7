"""The flat facts of a case that a registry entry's `cases` can constrain, each a rule on the case.

Some facts read the installed model classes (`takes_position_ids`, `prefix_width_mismatch`), so
a case's facts are worked out on first use: an entry only ever asks for the few it constrains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .. import architectures, methods


def _arch(case):
    return architectures.get(case.model.arch)


def _lay(case):
    return case.model.layout


RULES: dict[str, Callable[..., object]] = {
    "arch": lambda c: c.model.arch,
    "encoder_decoder": lambda c: _arch(c).encoder_decoder,
    # an encoder (BERT-like) or encoder-decoder: its sequence classifier pools the first token, not the last
    "encoder_style": lambda c: _arch(c).encoder_style,
    # a hand-written config (architectures/curated.py) or a discovered family
    "curated": lambda c: _arch(c).curated,
    "positions": lambda c: _arch(c).positions,  # rotary, alibi, relative, absolute, none
    # the head's forward() takes position_ids (read from the installed model class)
    "takes_position_ids": lambda c: _arch(c).takes_position_ids(c.task),
    "task": lambda c: c.task,
    # the prompt-learning method (prefixcheck.methods.NAMES); every entry names the ones it covers
    "method": lambda c: c.prefix.method,
    # where the prompt enters: "cache" (a key/value prefix per layer) or "embedding" (input tokens)
    "enters": lambda c: methods.get(c.prefix.method).enters,
    "prefix_projection": lambda c: c.prefix.prefix_projection,
    "dtype": lambda c: c.dtype,
    "device": lambda c: c.device,
    "attn_implementation": lambda c: c.model.attn_implementation,
    "padding_side": lambda c: c.recipe.padding_side,
    "padded": lambda c: c.recipe.num_padded > 0,
    "gqa": lambda c: _lay(c).num_kv_heads < _lay(c).num_heads,
    "multi_kv_heads": lambda c: _lay(c).num_kv_heads > 1,  # the cache holds more than one key/value head
    "explicit_head_dim": lambda c: _lay(c).explicit_head_dim,
    # PEFT's prefix width differs from what the model's cache holds per layer
    "prefix_width_mismatch": lambda c: _arch(c).peft_token_dim(c.model) != _arch(c).kv_token_dim(_lay(c)),
    "named_adapter": lambda c: c.prefix.adapter_name != "default",
    "num_layers": lambda c: c.model.num_layers,
    "num_virtual_tokens": lambda c: c.prefix.num_virtual_tokens,
    # as many virtual tokens as the encoder input has tokens, padded or not (transformers 4.x
    # encoder-decoders then reuse the prefix as their cross-attention keys/values)
    "prefix_length_is_an_input_length": lambda c: (
        c.prefix.num_virtual_tokens in (c.recipe.seq_len, c.recipe.seq_len - c.recipe.num_padded)
    ),
    "init_weights": lambda c: c.prefix.init_weights or "random",
    # sqrt(hidden_size) is a power of two (hidden 4, 16, 64, 256...): Gemma's embedding scale is then
    # exact in bf16, so an embedding recomputed with it matches bit for bit
    "sqrt_hidden_power_of_two": lambda c: _lay(c).hidden_size in (4**k for k in range(1, 12)),
}
FACTS = tuple(RULES)


class _Facts(Mapping):
    """A case's facts, each worked out on first use."""

    def __init__(self, case) -> None:
        self._case, self._known = case, {}

    def __getitem__(self, fact: str) -> object:
        if fact not in self._known:
            self._known[fact] = RULES[fact](self._case)
        return self._known[fact]

    def __iter__(self):
        return iter(RULES)

    def __len__(self) -> int:
        return len(RULES)


def case_facts(case) -> Mapping[str, object]:
    """The flat facts an entry's `cases` can constrain (FACTS), computed as they are asked for."""
    return _Facts(case)


def facts_hold(facts: Mapping[str, object], allowed: dict[str, tuple], excluded: dict[str, tuple]) -> bool:
    return all(facts[k] in v for k, v in allowed.items()) and not any(facts[k] in v for k, v in excluded.items())
