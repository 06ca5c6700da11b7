"""Every model type the installed transformers offers that can carry a prefix, found at run time.

For each model type with one of the suite's heads (causal LM, seq2seq LM, sequence and token
classification) and text input, in order:

1. Rules read off the config and model classes, without building anything, set aside what a
   key/value prefix cannot reach (`SKIP_RULES`: no KV cache at all, latent attention, hybrid
   recurrent state, composite configs, drafters). Each rule is a fact about the architecture, not
   about a PEFT release, so it cannot hide a PEFT regression.
2. The base model alone (no PEFT) is built tiny through the generic recipe (generic.py) at a few
   candidate layouts and layer counts, and runs one forward pass with its cache on. The layouts
   that build are the ones the strategies draw for the family; a family where none builds is
   skipped, with transformers' error.
3. `get_peft_model` runs once: where PEFT refuses with "Please specify ..." (it cannot read the
   family's sizes from its config), the family is skipped with PEFT's message. Any other failure
   is *not* a reason to skip: the family goes to the property suite, which judges it.

The result is cached per (torch, transformers, peft, this code) under `.prefixcheck-cache/`, so
the controller discovers once and the xdist workers read the file.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..case import AttentionLayout
from . import generic
from .curated import _AUTO_MAPPING, ARCHITECTURES, AUTO_CLASS, GENERIC, NUM_LABELS, Architecture

CACHE_DIR = Path(os.environ.get("PREFIXCHECK_CACHE", ".prefixcheck-cache"))
TIME_BOX_S = 20  # one family's probe; above it the family is "not buildable tiny"
MAX_PARAMETERS = 2_000_000  # counted on the meta device first: sub-configs the recipe cannot reach stay full size
PROBE_NVT = 2
# Candidate layouts, simplest first; where the config declares no KV heads, kv = heads; where it
# declares no head_dim, only layouts with hidden == heads * head_dim are tried.
CANDIDATE_LAYOUTS = (
    AttentionLayout(hidden_size=16, num_heads=4, num_kv_heads=2, head_dim=4),
    AttentionLayout(hidden_size=8, num_heads=2, num_kv_heads=1, head_dim=4),
    AttentionLayout(hidden_size=16, num_heads=2, num_kv_heads=2, head_dim=8),
    AttentionLayout(hidden_size=32, num_heads=2, num_kv_heads=1, head_dim=16),
    AttentionLayout(hidden_size=8, num_heads=1, num_kv_heads=1, head_dim=8),
)
CANDIDATE_LAYERS = (2, 1, 3)

# Auto mappings whose membership marks a model type as vision/audio/multimodal/layout input.
_NON_TEXT_MAPPING = re.compile(
    r"MODEL_FOR_(AUDIO|IMAGE|CAUSAL_IMAGE|MASKED_IMAGE|VIDEO|VISUAL|SPEECH|CTC|RNNT|TDT|DEPTH|DOCUMENT|SEMANTIC_SEG|"
    r"INSTANCE_SEG|UNIVERSAL_SEG|OBJECT_DET|ZERO_SHOT_IMAGE|ZERO_SHOT_OBJECT|KEYPOINT|MASK_GEN|MULTIMODAL|"
    r"TEXT_TO_SPECTROGRAM|TEXT_TO_WAVEFORM|POSE|NORMAL_EST|POINTMAP|TABLE_RECOGNITION|TEXT_RECOGNITION|BACKBONE)"
    r"\w*_MAPPING_NAMES$"
)
_NON_TEXT_SUBCONFIG = re.compile(r"vision|audio|image|video|speech|vq|acoustic|visual", re.I)
_ATTENTION_LAYER_TYPES = {"full_attention", "sliding_attention", "chunked_attention", "attention", "global", "local"}
_HYBRID_FIELDS = ("attn_layer_period", "hybrid_override_pattern", "layers_block_type", "block_types",
                  "mamba_d_state", "linear_num_value_heads", "full_attn_idxs", "attn_layer_indices")  # fmt: skip
_CACHE_ARGS = ("past_key_values", "cache")  # transformers 5.24 renamed the first to the second


class TimeBox(Exception):
    pass


class TooLarge(Exception):
    pass


@contextmanager
def _time_box(seconds: int):
    if not hasattr(signal, "SIGALRM"):  # Windows: no time box
        yield
        return

    def alarm(signum, frame):
        raise TimeBox(f"building it took over {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


# -- which model types are candidates --------------------------------------------------------
def _modeling_auto():
    from transformers.models.auto import modeling_auto

    return modeling_auto


def _head_class(model_type: str, task: str):
    import transformers

    name = getattr(_modeling_auto(), _AUTO_MAPPING[task]).get(model_type)
    return getattr(transformers, name, None) if name else None


def _backbone_class(model_type: str):
    import transformers

    name = _modeling_auto().MODEL_MAPPING_NAMES.get(model_type)
    name = name[0] if isinstance(name, tuple | list) else name
    return getattr(transformers, name, None) if name else None


def not_text(model_type: str, task: str) -> str | None:
    """Why (model_type, task) is outside the suite's scope (input other than token ids), or None."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    mappings = [n for n in dir(_modeling_auto()) if _NON_TEXT_MAPPING.match(n)]
    if any(model_type in getattr(_modeling_auto(), n) for n in mappings):
        return "not a text model (listed by a vision/audio/multimodal auto mapping)"
    subs = [
        s for s in (getattr(CONFIG_MAPPING[model_type], "sub_configs", None) or {}) if _NON_TEXT_SUBCONFIG.search(s)
    ]
    if subs:
        return f"not a text model (sub-configs {', '.join(subs)})"
    cls = _head_class(model_type, task)
    if cls is None:
        return "the head class is not importable"
    if getattr(cls, "main_input_name", "input_ids") != "input_ids":
        return f"not a text model (main input {cls.main_input_name!r})"
    return None


def candidates() -> list[tuple[str, str]]:
    """(model_type, task) pairs with a head of ours and text input, curated model types excluded."""
    curated = {a.model_type for a in ARCHITECTURES}
    out = []
    for task, mapping in _AUTO_MAPPING.items():
        for model_type in getattr(_modeling_auto(), mapping):
            if model_type not in curated and not not_text(model_type, task):
                out.append((model_type, task))
    return sorted(set(out))


# -- rules: what a key/value prefix cannot reach ------------------------------------------------
def _takes_cache(cls) -> bool:
    return cls is not None and any(a in inspect.signature(cls.forward).parameters for a in _CACHE_ARGS)


def _rule_no_cache(model_type, task):
    head = _head_class(model_type, task)
    # PEFT passes the prefix to the head; for classification it falls back to the backbone
    if _takes_cache(head) or (task in NUM_LABELS and _takes_cache(_backbone_class(model_type))):
        return None
    return "takes no key/value cache (encoder-only, recurrent or state-space): there is nowhere to put a prefix"


def _rule_composite(model_type, task):
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    subs = set(getattr(CONFIG_MAPPING[model_type], "sub_configs", None) or {})
    if {"encoder", "decoder"} & subs:
        return "composite config (separate encoder and decoder configs): PEFT cannot read its sizes"
    return None


def _rule_drafter(model_type, task):
    if model_type.endswith("_assistant"):
        return "a speculative-decoding drafter: it only runs beside a target model"
    return None


def _rule_latent_attention(model_type, task):
    if generic.declares(model_type, "kv_lora_rank"):
        return "multi-head latent attention caches a compressed latent, not per-head keys and values"
    return None


def _rule_split_kv_width(model_type, task):
    if generic.declares(model_type, "v_head_dim"):
        return "keys and values have different widths (v_head_dim): PEFT's prefix gives both one width"
    return None


def _rule_hybrid(model_type, task):
    if model_type in generic.overrides():  # an override turns the other layers into attention
        return None
    defaults, names = generic.declared_fields(model_type)
    layer_types = defaults.get("layer_types") or []
    other = sorted({str(t) for t in layer_types} - _ATTENTION_LAYER_TYPES)
    if other or set(_HYBRID_FIELDS) & names:
        kinds = ", ".join(other) or "recurrent/linear"
        return f"hybrid model: its {kinds} layers keep state that a key/value prefix cannot fill"
    return None


SKIP_RULES = (
    _rule_drafter,
    _rule_composite,
    _rule_latent_attention,
    _rule_split_kv_width,
    _rule_hybrid,
    _rule_no_cache,
)


# -- probing ----------------------------------------------------------------------------------
def _layout_for(model_type: str, layout: AttentionLayout) -> AttentionLayout | None:
    """The candidate as this config can express it, or None."""
    kv = layout.num_kv_heads if generic.declares(model_type, *generic.KV_HEADS) else layout.num_heads
    if layout.explicit_head_dim and not generic.declares(model_type, *generic.HEAD_DIM):
        return None
    if any(int(layout.head_dim * f) % 2 for f in generic.rotary_fractions(model_type)):
        return None  # an odd number of rotated dimensions cannot be rotated in pairs
    return AttentionLayout(layout.hidden_size, layout.num_heads, kv, layout.head_dim)


def _build(model_type, task, layout, num_layers):
    import torch
    import transformers

    kwargs = {**generic.tiny_kwargs(model_type, layout, num_layers, 64), **generic.task_kwargs(model_type, task)}
    config = transformers.AutoConfig.for_model(model_type, **kwargs)
    head = getattr(transformers, AUTO_CLASS[task])
    with torch.device("meta"):
        count = sum(p.numel() for p in head.from_config(config).parameters())
    if count > MAX_PARAMETERS:
        raise TooLarge(f"{count:,} parameters with the generic recipe (limit {MAX_PARAMETERS:,})")
    torch.manual_seed(0)
    model = getattr(transformers, AUTO_CLASS[task]).from_config(config, attn_implementation="eager").eval()
    ids = torch.randint(2, 64, (2, 4), generator=torch.Generator().manual_seed(0))
    ids[:, -1] = generic.BOS_EOS  # BART-style classification heads pool the last <eos>
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if task == "SEQ_2_SEQ_LM":
        inputs["decoder_input_ids"] = ids[:, :2]
    with torch.no_grad():
        model(**inputs)
    return model


def _peft_refusal(model, task) -> str | None:
    from peft import PrefixTuningConfig, get_peft_model

    try:
        get_peft_model(model, PrefixTuningConfig(task_type=task, num_virtual_tokens=PROBE_NVT))
    except ValueError as exc:
        if "Please specify" in str(exc):
            return f"PEFT cannot read its sizes from the config ({one_line(exc)})"
    except Exception:  # noqa: BLE001 - any other failure is the property suite's to judge
        return None
    return None


def probe(model_type: str, task: str) -> dict:
    """One (model_type, task): a skip reason, or the layouts and layer counts that build."""
    start = time.perf_counter()
    record: dict = {"model_type": model_type, "task": task}
    for rule in SKIP_RULES:
        why = rule(model_type, task)
        if why:
            return {**record, "skip": why, "rule": rule.__name__[6:]}
    layouts: list[AttentionLayout] = []
    errors: list[str] = []
    try:
        with _time_box(TIME_BOX_S):
            model = None
            for candidate in CANDIDATE_LAYOUTS:
                layout = _layout_for(model_type, candidate)
                if layout is None or layout in layouts:
                    continue
                try:
                    built = _build(model_type, task, layout, CANDIDATE_LAYERS[0])
                except Exception as exc:  # noqa: BLE001 - recorded: this layout does not build
                    errors.append(one_line(exc))
                    continue
                model = model or built
                layouts.append(layout)
            layers = [CANDIDATE_LAYERS[0]] if layouts else []
            for n in CANDIDATE_LAYERS[1:]:
                if layouts:
                    try:
                        _build(model_type, task, layouts[0], n)
                        layers.append(n)
                    except Exception:  # noqa: BLE001 - this layer count does not build
                        pass
            refusal = _peft_refusal(model, task) if model is not None else None
    except TimeBox as exc:
        return {**record, "skip": f"cannot be built tiny: {exc}", "rule": "not-tiny"}
    record["seconds"] = round(time.perf_counter() - start, 2)
    if not layouts:
        return {**record, "skip": f"cannot be built tiny: {errors[0] if errors else 'no candidate layout fits'}",
                "rule": "not-tiny"}  # fmt: skip
    if refusal:
        return {**record, "skip": refusal, "rule": "peft-cannot-size"}
    record["layouts"] = [list(vars(lay).values()) for lay in layouts]
    record["num_layers"] = sorted(layers)
    return record


# -- the cached result ----------------------------------------------------------------------
def cache_key() -> str:
    from importlib.metadata import version

    here = Path(__file__).parent
    h = hashlib.sha256()
    for pkg in ("torch", "transformers", "peft"):
        h.update(f"{pkg}={version(pkg)};".encode())
    for name in ("discovery.py", "generic.py", "families.toml", "curated.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def cache_file() -> Path:
    return CACHE_DIR / f"discovery-{cache_key()}.json"


def _probe_pair(pair: tuple[str, str]) -> dict:
    return probe(*pair)


def _workers() -> int:
    value = os.environ.get("PREFIXCHECK_DISCOVERY_WORKERS", "")
    if value and not value.isdigit():
        raise ValueError(f"PREFIXCHECK_DISCOVERY_WORKERS={value!r} is not a number of processes")
    return int(value) if value else min(2, os.cpu_count() or 1)


def discover(progress=None, workers: int | None = None) -> dict:
    """Probe every candidate; {"families": [...], "skipped": [...], "seconds": ...}. With several
    workers (PREFIXCHECK_DISCOVERY_WORKERS, default 2) the probes run in forked processes, which
    inherit the model modules `candidates()` imported."""
    import multiprocessing

    start = time.perf_counter()
    pairs = candidates()
    workers = _workers() if workers is None else workers
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            records = pool.imap(_probe_pair, pairs, chunksize=4)
            records = [(progress(r) if progress else None, r)[1] for r in records]
    else:
        records = [(progress(r) if progress else None, r)[1] for r in map(_probe_pair, pairs)]
    families = [r for r in records if "skip" not in r]
    skipped = [r for r in records if "skip" in r]
    return {"families": families, "skipped": skipped, "seconds": round(time.perf_counter() - start, 1)}


@cache
def result() -> dict:
    """The discovery for the installed versions: read from the cache, or run and cached."""
    path = cache_file()
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            pass  # a torn write by another process: discover again
    data = discover()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return data


@dataclass(frozen=True)
class Skipped:
    model_type: str
    task: str
    rule: str
    reason: str


def skipped() -> tuple[Skipped, ...]:
    return tuple(Skipped(r["model_type"], r["task"], r["rule"], r["skip"]) for r in result()["skipped"])


@cache
def discovered() -> tuple[Architecture, ...]:
    """One Architecture per discovered model type, with the tasks and layouts that build."""
    by_type: dict[str, list[dict]] = {}
    for record in result()["families"]:
        by_type.setdefault(record["model_type"], []).append(record)
    out = []
    for model_type, records in sorted(by_type.items()):
        tasks = tuple(t for t in AUTO_CLASS if any(r["task"] == t for r in records))
        # the layouts and layer counts every task of the family builds with
        layouts = set.intersection(*({tuple(x) for x in r["layouts"]} for r in records))
        layers = set.intersection(*(set(r["num_layers"]) for r in records))
        if not layouts or not layers:
            continue
        ordered = tuple(AttentionLayout(*x) for x in records[0]["layouts"] if tuple(x) in layouts)
        out.append(
            Architecture(
                model_type,
                model_type,
                GENERIC,
                tasks,
                layouts=ordered,
                layer_counts=tuple(sorted(layers)),
                encoder_decoder="SEQ_2_SEQ_LM" in tasks,
            )
        )
    return tuple(out)


__all__ = ["CANDIDATE_LAYOUTS", "SKIP_RULES", "Skipped", "candidates", "discover", "discovered", "probe", "skipped"]
