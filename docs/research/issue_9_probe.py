"""Prototype: discover text model types per task from transformers' auto mappings, build each
tiny from a generic size recipe, wrap with PEFT prefix tuning, run one forward pass.

Usage:
    python probe.py                    # all candidates, generic recipe, results -> results.jsonl
    python probe.py --overrides        # re-run the failures of results.jsonl with OVERRIDES -> results_overrides.jsonl
    python probe.py --only llama,gpt2  # restrict to some model types
    python probe.py --list             # print the candidate list and the exclusions, build nothing

One process; each (model_type, task) is time-boxed with SIGALRM (20 s). Results are appended
as JSON lines and the run resumes where it stopped (so a hard crash only loses one case).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import time
import traceback
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers.models.auto import modeling_auto  # noqa: E402
from transformers.models.auto.configuration_auto import CONFIG_MAPPING  # noqa: E402

transformers.logging.set_verbosity_error()
logging.getLogger("peft").setLevel(logging.ERROR)
from peft import PrefixTuningConfig, get_peft_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TIME_BOX = 20

# --------------------------------------------------------------------------------------------
# 1. Enumeration
# --------------------------------------------------------------------------------------------
TASK_MAPPING = {
    "CAUSAL_LM": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "SEQ_2_SEQ_LM": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "SEQ_CLS": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "TOKEN_CLS": "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
}
AUTO_CLASS = {
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "TOKEN_CLS": "AutoModelForTokenClassification",
}
# Auto mappings whose membership marks a model family as vision / audio / multimodal / layout.
# (MODEL_FOR_DECISION_MAPPING_NAMES is deliberately not here: it lists qwen2 etc. for a
# decision head and says nothing about the input modality.)
NON_TEXT_MAPPING = re.compile(
    r"MODEL_FOR_(AUDIO|IMAGE|CAUSAL_IMAGE|MASKED_IMAGE|VIDEO|VISUAL|SPEECH|CTC|RNNT|TDT|DEPTH|"
    r"DOCUMENT|SEMANTIC_SEG|INSTANCE_SEG|UNIVERSAL_SEG|OBJECT_DET|ZERO_SHOT_IMAGE|ZERO_SHOT_OBJECT|"
    r"KEYPOINT|MASK_GEN|MULTIMODAL|TEXT_TO_SPECTROGRAM|TEXT_TO_WAVEFORM|POSE|NORMAL_EST|POINTMAP|"
    r"TABLE_RECOGNITION|TEXT_RECOGNITION|BACKBONE)\w*_MAPPING_NAMES$"
)
NON_TEXT_SUBCONFIG = re.compile(r"vision|audio|image|video|speech|vq|acoustic|visual", re.I)


def non_text_mappings() -> dict[str, dict]:
    return {n: getattr(modeling_auto, n) for n in dir(modeling_auto) if NON_TEXT_MAPPING.match(n)}


def text_only_reason(model_type: str, task: str) -> str | None:
    """None if (model_type, task) counts as text-only, else why not."""
    hits = [n[10:-14] for n, m in non_text_mappings().items() if model_type in m]
    if hits:
        return "in non-text auto mapping(s): " + ",".join(hits)
    cc = CONFIG_MAPPING[model_type]
    subs = [s for s in (getattr(cc, "sub_configs", None) or {}) if NON_TEXT_SUBCONFIG.search(s)]
    if subs:
        return "config has non-text sub-config(s): " + ",".join(subs)
    cls = getattr(transformers, getattr(modeling_auto, TASK_MAPPING[task])[model_type], None)
    main = getattr(cls, "main_input_name", "input_ids")
    if main != "input_ids":
        return f"head main_input_name={main!r}"
    return None


def candidates() -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    keep, drop = [], []
    for task, mapping in TASK_MAPPING.items():
        for mt in getattr(modeling_auto, mapping):
            why = text_only_reason(mt, task)
            (drop.append((mt, task, why)) if why else keep.append((mt, task)))
    return keep, drop


# --------------------------------------------------------------------------------------------
# 2. Generic tiny config recipe
# --------------------------------------------------------------------------------------------
HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, INTER, MAX_POS = 16, 2, 4, 2, 64, 32, 64
PAD, BOS_EOS = 0, 1
NUM_LABELS = {"SEQ_CLS": 2, "TOKEN_CLS": 3}

# canonical value -> the spellings configs use for it (attribute_map covers some, not all)
SIZE_FIELDS: dict[str, tuple[int, tuple[str, ...]]] = {
    "hidden": (
        HIDDEN,
        (
            "hidden_size",
            "d_model",
            "n_embd",
            "n_embed",
            "dim",
            "emb_dim",
            "hidden_dim",
            "embedding_size",
            "embedding_dim",
            "word_embed_proj_dim",
        ),
    ),
    "layers": (
        LAYERS,
        (
            "num_hidden_layers",
            "num_layers",
            "n_layer",
            "n_layers",
            "encoder_layers",
            "decoder_layers",
            "num_decoder_layers",
            "num_encoder_layers",
        ),
    ),
    "heads": (
        HEADS,
        (
            "num_attention_heads",
            "num_heads",
            "n_head",
            "n_heads",
            "encoder_attention_heads",
            "decoder_attention_heads",
            "num_encoder_attention_heads",
            "num_decoder_attention_heads",
            "attention_heads",
        ),
    ),
    "kv_heads": (KV_HEADS, ("num_key_value_heads", "num_kv_heads")),
    "head_dim": (
        HIDDEN // HEADS,
        ("head_dim", "d_kv", "attention_head_dim", "kv_channels", "d_head", "dim_head", "attention_head_size"),
    ),
    "intermediate": (
        INTER,
        (
            "intermediate_size",
            "d_ff",
            "ffn_dim",
            "encoder_ffn_dim",
            "decoder_ffn_dim",
            "n_inner",
            "d_inner",
            "ffn_hidden_size",
            "feed_forward_size",
            "dim_ff",
            "moe_intermediate_size",
            "shared_expert_intermediate_size",
            "shared_intermediate_size",
            "moe_shared_expert_intermediate_size",
            "dense_intermediate_size",
            "intermediate_size_mlp",
            "expert_ffn_hidden_size",
        ),
    ),
    "vocab": (VOCAB, ("vocab_size", "decoder_vocab_size", "src_vocab_size", "tgt_vocab_size")),
    "positions": (
        MAX_POS,
        (
            "max_position_embeddings",
            "n_positions",
            "max_seq_len",
            "context_length",
            "max_encoder_position_embeddings",
            "max_decoder_position_embeddings",
        ),
    ),
}
# MoE: shrink only when the default is an int above the tiny value
SHRINK_IF_LARGER = {
    "num_experts": 4,
    "num_local_experts": 4,
    "n_routed_experts": 4,
    "moe_num_experts": 4,
    "num_experts_per_tok": 2,
    "moe_topk": 2,
    "moe_k": 2,
    "num_experts_per_token": 2,
    "n_shared_experts": 1,
    "num_shared_experts": 1,
    "kv_lora_rank": 8,
    "q_lora_rank": 8,
    "qk_rope_head_dim": 4,
    "qk_nope_head_dim": 4,
    "v_head_dim": 4,
    "qk_head_dim": 8,
    "sliding_window": 16,
    "sliding_window_size": 16,
    "attention_window_size": 16,
}


def config_fields(model_type: str) -> tuple[dict, dict]:
    cc = CONFIG_MAPPING[model_type]
    try:
        defaults = cc().to_dict()
    except Exception:
        defaults = {}
    return defaults, dict(getattr(cc, "attribute_map", {}) or {})


def tiny_kwargs(model_type: str, task: str) -> dict:
    """Only set a field the config declares (its default to_dict or attribute_map): an undeclared
    kwarg is kept as an extra attribute, and e.g. `num_key_value_heads` on GPT-2 would then change
    the prefix width PEFT computes."""
    defaults, amap = config_fields(model_type)
    known = set(defaults) | set(amap)
    kw: dict = {}
    for value, names in SIZE_FIELDS.values():
        for n in names:
            if n in known:
                kw[n] = value
    for n, v in SHRINK_IF_LARGER.items():
        d = defaults.get(n)
        if isinstance(d, int) and not isinstance(d, bool) and d > v:
            kw[n] = v
    for n, v in (("pad_token_id", PAD), ("bos_token_id", BOS_EOS), ("eos_token_id", BOS_EOS)):
        kw[n] = v
    if "decoder_start_token_id" in known:
        kw["decoder_start_token_id"] = PAD
    if "forced_eos_token_id" in known:
        kw["forced_eos_token_id"] = None
    if task == "CAUSAL_LM" and "is_decoder" in defaults and not defaults.get("is_encoder_decoder"):
        kw["is_decoder"] = True  # BERT-style encoders served as CausalLM need it
    if task in NUM_LABELS:
        kw["num_labels"] = NUM_LABELS[task]
    return kw


# Per-family overrides, applied on top of the generic recipe with --overrides (filled in from the
# first run's failures; see discovery.md for the reason of each).
OVERRIDES: dict[str, dict] = {}
OVERRIDES_PATH = os.path.join(HERE, "issue-9-overrides.json")
if os.path.exists(OVERRIDES_PATH):
    OVERRIDES = json.load(open(OVERRIDES_PATH))


# --------------------------------------------------------------------------------------------
# 3. Build, wrap, forward
# --------------------------------------------------------------------------------------------
class TimeBox(Exception):
    pass


def _alarm(signum, frame):
    raise TimeBox(f"exceeded {TIME_BOX}s")


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:300] if msg else ''}"


def run_case(model_type: str, task: str, use_overrides: bool) -> dict:
    rec: dict = {"model_type": model_type, "task": task, "stage": "config"}
    t0 = time.time()
    try:
        kw = tiny_kwargs(model_type, task)
        if use_overrides:
            kw.update({k: v for k, v in OVERRIDES.get(model_type, {}).items() if not k.startswith("_")})
        rec["kwargs"] = {k: v for k, v in kw.items() if k not in ("pad_token_id", "bos_token_id", "eos_token_id")}
        cfg = transformers.AutoConfig.for_model(model_type, **kw)
        d = cfg.to_dict()
        rec["declares_kv_heads"] = "num_key_value_heads" in d
        rec["layer_types"] = sorted(set(d.get("layer_types") or [])) or None
        rec["stage"] = "build"
        torch.manual_seed(0)
        model = getattr(transformers, AUTO_CLASS[task]).from_config(cfg).eval()
        rec["model_class"] = type(model).__name__
        rec["params"] = sum(p.numel() for p in model.parameters())
        rec["attn_impl"] = getattr(model.config, "_attn_implementation", None)
        rec["stage"] = "wrap"
        peft_kw = OVERRIDES.get(model_type, {}).get("_peft", {}) if use_overrides else {}
        pcfg = PrefixTuningConfig(task_type=task, num_virtual_tokens=2, **peft_kw)
        pm = get_peft_model(model, pcfg).eval()
        rec["peft_token_dim"] = pm.peft_config["default"].token_dim
        rec["peft_heads"] = pm.peft_config["default"].num_attention_heads
        rec["peft_layers"] = pm.peft_config["default"].num_layers
        rec["stage"] = "forward"
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(2, VOCAB, (2, 5), generator=g)
        mask = torch.ones_like(ids)
        if task in ("CAUSAL_LM", "SEQ_2_SEQ_LM"):
            labels = ids.clone()
        elif task == "SEQ_CLS":
            labels = torch.tensor([0, 1])
        else:
            labels = torch.randint(0, 3, (2, 5), generator=g)
        with torch.no_grad():
            out = pm(input_ids=ids, attention_mask=mask, labels=labels)
        loss = getattr(out, "loss", None)
        if loss is None or not torch.isfinite(loss):
            raise RuntimeError(f"loss is {loss}")
        rec["stage"] = "prefix_effect"
        with torch.no_grad():
            base_kw = {"input_ids": ids, "attention_mask": mask}
            if task == "SEQ_2_SEQ_LM":
                base_kw["labels"] = labels
            base = pm.get_base_model()(**base_kw)
        same = torch.allclose(out.logits.float(), base.logits.float(), atol=1e-6)
        rec["status"] = "OK_PREFIX_IGNORED" if same else "OK"
    except TimeBox as e:
        rec["status"] = "TIMEOUT"
        rec["error"] = one_line(e)
    except BaseException as e:  # noqa: BLE001 - recorded, never re-raised
        if isinstance(e, KeyboardInterrupt):
            raise
        rec["status"] = "FAIL"
        rec["error"] = one_line(e)
        tb = traceback.extract_tb(e.__traceback__)
        rec["where"] = [f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}" for f in tb[-3:]]
    rec["secs"] = round(time.time() - t0, 2)
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--overrides", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    keep, drop = candidates()
    if args.list:
        json.dump({"keep": keep, "drop": drop}, open(os.path.join(HERE, "candidates.json"), "w"), indent=1)
        print(len(keep), "candidate (model_type, task) pairs;", len(drop), "excluded")
        return
    out_path = os.path.join(HERE, "results_overrides.jsonl" if args.overrides else "results.jsonl")
    done = set()
    if os.path.exists(out_path):
        for line in open(out_path):
            r = json.loads(line)
            done.add((r["model_type"], r["task"]))
    marker = os.path.join(HERE, ".current")
    if os.path.exists(marker):  # the previous process died hard on this case
        mt, task = json.load(open(marker))
        if (mt, task) not in done:
            with open(out_path, "a") as f:
                f.write(
                    json.dumps(
                        {"model_type": mt, "task": task, "status": "CRASH", "error": "process died (segfault/OOM)"}
                    )
                    + "\n"
                )
            done.add((mt, task))
    todo = keep
    if args.overrides:
        first = [json.loads(x) for x in open(os.path.join(HERE, "results.jsonl"))]
        todo = [(r["model_type"], r["task"]) for r in first if r["status"] != "OK" and r["model_type"] in OVERRIDES]
    if args.only:
        sel = set(args.only.split(","))
        todo = [c for c in todo if c[0] in sel]
    # write the marker first so a hard crash (segfault) is recorded and skipped on resume
    signal.signal(signal.SIGALRM, _alarm)
    with open(out_path, "a") as f:
        for mt, task in todo:
            if (mt, task) in done:
                continue
            open(marker, "w").write(json.dumps([mt, task]))
            signal.alarm(TIME_BOX)
            try:
                rec = run_case(mt, task, args.overrides)
            finally:
                signal.alarm(0)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            print(f"{rec['status']:18} {task:12} {mt:28} {rec['secs']:6}s {rec.get('error', '')[:110]}", flush=True)
    if os.path.exists(marker):
        os.remove(marker)


if __name__ == "__main__":
    main()
