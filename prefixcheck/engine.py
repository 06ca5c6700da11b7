"""Run one prefix-tuning case: build, train, save, reload, forward, generate.

No pytest in here: the property tests, the benchmark, the reproduction scripts and the matrix
all drive these functions. Heavy imports (torch, transformers, peft) happen once, when this
module is imported, never inside a per-example loop.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import inspect
import logging
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import peft
import torch
import transformers
from peft import PeftModel, get_peft_model

from . import architectures, methods
from .case import MAX_NEW_TOKENS, Case
from .versions import features

transformers.logging.set_verbosity_error()
logging.getLogger("peft").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module=r"(peft|transformers|torch)\.")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _compile_model_card_template_once() -> None:
    """PEFT's save_pretrained writes README.md from huggingface_hub's Jinja template and compiles
    that template anew on every save: 33 of a save's 36 ms here (cProfile, 2026-11-29). Compiled
    code is cached per (environment, source); rendering still runs on every save, so README.md is
    byte-for-byte what it was (tests/selftest/test_strategies.py)."""
    try:
        import jinja2
    except ImportError:  # no Jinja: huggingface_hub writes no templated card either
        return
    if getattr(jinja2.Environment.compile, "_prefixcheck_cached", False):
        return
    compile_ = jinja2.Environment.compile
    compiled: dict = {}

    def compile_cached(self, source, name=None, filename=None, raw=False, defer_init=False):
        if not isinstance(source, str):
            return compile_(self, source, name, filename, raw, defer_init)
        key = (id(self), source, name, filename, raw, defer_init)
        if key not in compiled:
            compiled[key] = (self, compile_(self, source, name, filename, raw, defer_init))  # keeps `self` alive
        return compiled[key][1]

    compile_cached._prefixcheck_cached = True
    jinja2.Environment.compile = compile_cached


_compile_model_card_template_once()


DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
S2S_TARGET_LEN = 4
_GENERATE_HAS_LOGITS = "output_logits" in inspect.signature(
    transformers.GenerationConfig.__init__
).parameters or hasattr(transformers.GenerationConfig(), "output_logits")


# -- models ------------------------------------------------------------------------------
def model_config(case: Case):
    blueprint = architectures.blueprint(case)
    return transformers.AutoConfig.for_model(blueprint.model_type, **blueprint.config)


def auto_class(case: Case):
    return getattr(transformers, architectures.blueprint(case).auto_class)


def _fresh_base(case: Case, dtype: str, device: str) -> torch.nn.Module:
    torch.manual_seed(case.seed)
    model = auto_class(case).from_config(model_config(case), attn_implementation=case.model.attn_implementation)
    model.to(dtype=DTYPE[dtype], device=device)
    return model.eval()


# The last few CPU base models built, untouched, with the global RNG state their build left behind.
# An example builds the same base three or four times (train, reload, the base reference); a deep
# copy costs half a fresh build (measured: 8 ms vs 15 ms median) and is bitwise the same model
# (tests/selftest/test_strategies.py). CUDA builds are never cached (their RNG is not restored).
_PRISTINE: collections.OrderedDict = collections.OrderedDict()
_PRISTINE_SIZE = 4


def pristine_base(case: Case, dtype: str | None = None, device: str | None = None) -> torch.nn.Module:
    """The case's base model itself, shared (cached on CPU): for forward passes in eval mode only,
    which change nothing. Anything that wraps, trains or generates takes `build_base` (a copy).

    Its weights are frozen, as PEFT freezes the base it wraps: torch's matmul picks another
    folding when a weight requires grad, even under no_grad, so LongT5 with live gradients
    computes 3.6e-7 away from the same weights frozen (transformers 5.23, torch 2.13), and a
    reference with gradients is not the computation a disabled adapter runs."""
    dtype, device = dtype or case.dtype, device or case.device
    if device != "cpu":
        return _fresh_base(case, dtype, device).requires_grad_(False)
    key = (case.model, case.task, case.seed, dtype)
    if key in _PRISTINE:
        _PRISTINE.move_to_end(key)
        model, rng = _PRISTINE[key]
        torch.set_rng_state(rng)
        return model
    model = _fresh_base(case, dtype, device).requires_grad_(False)
    _PRISTINE[key] = (model, torch.get_rng_state())
    while len(_PRISTINE) > _PRISTINE_SIZE:
        _PRISTINE.popitem(last=False)
    return model


def build_base(case: Case, dtype: str | None = None, device: str | None = None) -> torch.nn.Module:
    """The base model with random weights, identical for equal cases (seeded), in eval mode: a
    model of its own, free to wrap, train or change."""
    model = pristine_base(case, dtype, device)
    model = model if (device or case.device) != "cpu" else copy.deepcopy(model)
    return model.requires_grad_(True)  # as from_config builds it: whatever wraps it decides what trains


def tokenizer_folder(vocab_size: int) -> Path:
    """A tokenizer of `vocab_size` ids the suite builds itself, saved once per machine (prompt
    tuning's TEXT init reads it by path, as it would a hub tokenizer): one word "t<i>" per id,
    0 the pad token and 1 the unknown one. Built atomically, so parallel workers share it."""
    folder = Path(tempfile.gettempdir()) / f"prefixcheck-tokenizer-v{vocab_size}"
    if (folder / "tokenizer.json").exists():
        return folder
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<unk>": 1, **{f"t{i}": i for i in range(2, vocab_size)}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>")
    staging = Path(tempfile.mkdtemp(prefix=folder.name + "-", dir=folder.parent))
    tok.save_pretrained(str(staging))
    try:
        staging.rename(folder)
    except OSError:  # another worker got there first: its folder is the same tokenizer
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return folder


def prefix_config(case: Case, **overrides) -> peft.PeftConfig:
    """The case's adapter config: its method's config class (prefixcheck.methods) with its knobs."""
    kwargs = case.prefix.config_kwargs(case.task)
    if "init_weights" in kwargs and not features().prefix_init_weights:
        raise ValueError("this case sets init_weights but the installed PEFT has no PrefixTuningConfig.init_weights")
    if kwargs.get("prompt_tuning_init") == "TEXT":
        kwargs["tokenizer_name_or_path"] = str(tokenizer_folder(case.model.vocab_size))
    config_class = getattr(peft, methods.get(case.prefix.method).config_class)
    return config_class(**{**kwargs, **overrides})


def wrap(base: torch.nn.Module, case: Case) -> PeftModel:
    """A fresh prompt-learning adapter on `base`, its weights seeded from the case."""
    torch.manual_seed(case.seed + 1)
    model = get_peft_model(base, prefix_config(case), adapter_name=case.prefix.adapter_name)
    model.to(case.device)
    return model


# -- data --------------------------------------------------------------------------------
def make_batch(case: Case) -> dict[str, torch.Tensor]:
    """A deterministic batch with an attention mask; the last row carries the padding."""
    r, vocab, blueprint = case.recipe, case.model.vocab_size, architectures.blueprint(case)
    g = torch.Generator().manual_seed(case.seed + 2)
    ids = torch.randint(2, vocab, (r.batch_size, r.seq_len), generator=g)
    mask = torch.ones_like(ids)
    if r.num_padded:
        pad = slice(0, r.num_padded) if r.padding_side == "left" else slice(r.seq_len - r.num_padded, r.seq_len)
        mask[-1, pad] = 0
        ids[-1, pad] = blueprint.pad_token_id
    batch = {"input_ids": ids, "attention_mask": mask}
    if case.task == "CAUSAL_LM":
        batch["labels"] = ids.masked_fill(mask == 0, -100)
    elif case.task == "SEQ_2_SEQ_LM":
        target = torch.randint(2, vocab, (r.batch_size, S2S_TARGET_LEN), generator=g)
        start = model_config(case).decoder_start_token_id
        batch["labels"] = target
        batch["decoder_input_ids"] = torch.cat([torch.full_like(target[:, :1], start), target[:, :-1]], dim=1)
    elif case.task == "SEQ_CLS":
        batch["labels"] = torch.randint(0, blueprint.num_labels, (r.batch_size,), generator=g)
    else:
        labels = torch.randint(0, blueprint.num_labels, (r.batch_size, r.seq_len), generator=g)
        batch["labels"] = labels.masked_fill(mask == 0, -100)
    if case.prefix.method == methods.MULTITASK_PROMPT_TUNING:  # every row its task, rows of several tasks
        batch["task_ids"] = torch.arange(r.batch_size) % case.prefix.option["num_tasks"]
    return {k: v.to(case.device) for k, v in batch.items()}


def inputs_only(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k != "labels"}


def fed_to(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`inputs` as `model` takes them: multitask prompt tuning's task_ids only where its forward
    names them (a PeftModel's; not a base model's, nor a PeftModel under disable_adapter(), whose
    forward is then the base model's)."""
    if "task_ids" in inputs and "task_ids" not in inspect.signature(model.forward).parameters:
        return {k: v for k, v in inputs.items() if k != "task_ids"}
    return inputs


def virtual_positions(model: torch.nn.Module, input_len: int, out_len: int) -> int:
    """How many leading output positions are the adapter's virtual tokens: an embedding method
    (prompt tuning, P-tuning, multitask, CPT) prepends them to the input, so a causal LM's or
    token classifier's logits have num_virtual_tokens more positions than the input; 0 where the
    output has the input's length (cache methods, a disabled adapter, a pooled head, a decoder)."""
    if not isinstance(model, PeftModel) or not model.active_peft_config.is_prompt_learning:
        return 0
    if methods.get(_method_of(model.active_peft_config)).enters != methods.EMBEDDING:
        return 0  # a cache method's logits are the input's (a decoder's length may equal input + nvt)
    nvt = model.active_peft_config.num_virtual_tokens
    return nvt if out_len == input_len + nvt else 0


# -- training ----------------------------------------------------------------------------
class TrainingStalled(AssertionError):
    """Training ran but did not do what training does: a non-finite loss, or a prefix table that
    never moved from its initial value (every later check would then test an untrained prefix)."""


class PrefixNotReceived(TrainingStalled):
    """The training loss does not depend on the adapter at all: the model never received the
    prefix (torch would say only "element 0 of tensors does not require grad")."""


# What torch's backward() says of a loss no trainable tensor took part in; the Trainer calls
# backward itself, so its path reads this to tell PrefixNotReceived from another RuntimeError.
NO_GRAD_LOSS = "does not require grad and does not have a grad_fn"


# The names a model's forward() has taken the key/value cache under: transformers 5.24 renamed
# past_key_values to cache (transformers#50585); PEFT follows from 0.22 (get_transformers_cache_name).
CACHE_ARGUMENTS = ("past_key_values", "cache")


def not_received(model: PeftModel) -> PrefixNotReceived:
    """What the model did instead of using the prefix, as far as its forward() signature tells."""
    base = model.get_base_model()
    params = inspect.signature(base.forward).parameters
    takes = [name for name in CACHE_ARGUMENTS if name in params]
    where = f"{type(base).__name__}.forward takes {', '.join(takes) or 'no cache argument'}"
    return PrefixNotReceived(
        f"the training loss does not depend on the adapter: the model never received the prefix ({where}; "
        "the prefix reached it under another name, or not at all)"
    )


@torch.no_grad()
def prefix_table(model: PeftModel, adapter_name: str) -> torch.Tensor:
    """The prompt table as the live model computes it, on CPU: its prompt encoder on the virtual-
    token indices at batch 1 (the embedding itself, prefix projection's or P-tuning's network
    output, CPT's embedding plus its projected delta, Cartridge's frozen and trained rows). For
    multitask prompt tuning, the shared embedding before any task's factors (what PEFT saves as
    prompt_embeddings; `prompt_tensors` adds the factors). Computed here, not through PEFT's save
    path, so the saved table can be checked against it."""
    encoder = model.prompt_encoder[adapter_name]
    config = model.peft_config[adapter_name]
    method = _method_of(config)
    count = config.num_virtual_tokens
    if methods.get(method).enters == methods.EMBEDDING:
        count *= config.num_transformer_submodules or methods.submodules(method, str(config.task_type))
    tokens = torch.arange(count, device=encoder.embedding.weight.device).unsqueeze(0)
    if method == methods.MULTITASK_PROMPT_TUNING:
        return encoder.embedding(tokens)[0].detach().cpu().clone()
    if method == methods.P_TUNING and not hasattr(encoder, "mlp_head"):
        # loaded in inference mode, P-tuning keeps no encoder network: the table is the embedding
        return encoder.embedding.weight.detach().cpu().clone()
    # as PEFT's save computes it, with autograd on: torch's CPU LSTM (P-tuning's LSTM encoder) runs
    # another kernel under no_grad, up to 1.2e-7 apart (measured 2026-12-08, torch 2.13)
    with torch.enable_grad():
        return encoder(tokens)[0].detach().cpu().clone()


@torch.no_grad()
def prompt_tensors(model: PeftModel, adapter_name: str) -> dict[str, torch.Tensor]:
    """Everything PEFT should save of the adapter's prompt: prompt_embeddings (`prefix_table`),
    plus a method's other tensors (multitask prompt tuning's task factors), on CPU."""
    encoder = model.prompt_encoder[adapter_name]
    extra = methods.get(_method_of(model.peft_config[adapter_name])).extra_tensors
    return {
        "prompt_embeddings": prefix_table(model, adapter_name),
        **{name: getattr(encoder, name).detach().cpu().clone() for name in extra},
    }


def _method_of(config) -> str:
    return str(getattr(config.peft_type, "value", config.peft_type))


def train(model: PeftModel, case: Case, batch: dict[str, torch.Tensor], steps: int | None = None) -> list[float]:
    """A few AdamW steps on the one batch; returns the losses. Leaves the model in eval mode."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("the adapter has no trainable parameters")
    opt = torch.optim.AdamW(params, lr=case.recipe.learning_rate)
    model.train()
    losses = []
    for _ in range(case.recipe.steps if steps is None else steps):
        loss = model(**fed_to(model, batch)).loss
        if not loss.requires_grad:  # nothing trainable took part: the prefix never reached the model
            raise not_received(model)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    return losses


# -- observation -------------------------------------------------------------------------
@torch.no_grad()
def logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    model.eval()
    fed = inputs_only(batch)
    if fed.get("position_ids") is not None:
        # a copy per call: some models shift position_ids in place (ERNIE-M's embeddings add 2), so the
        # same positions passed twice would otherwise reach the second model 2 further on
        fed["position_ids"] = fed["position_ids"].clone()
    return input_logits(model, fed, model(**fed_to(model, fed)).logits).float().cpu()


def input_logits(model: torch.nn.Module, fed: dict[str, torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    """`out`, the logits of a forward on `fed`, at the input's own positions: an embedding method's
    virtual ones dropped (never a decoder's: with decoder_input_ids the positions are the decoder's)."""
    length = (fed["input_ids"] if fed.get("input_ids") is not None else fed["inputs_embeds"]).shape[1]
    if out.dim() == 3 and "decoder_input_ids" not in fed:
        return out[:, virtual_positions(model, length, out.shape[1]) :]
    return out


@torch.no_grad()
def base_logits(model: PeftModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with model.disable_adapter():
        return logits(model, batch)


@dataclass
class Generation:
    sequences: torch.Tensor
    first_step_logits: torch.Tensor
    step_logits: tuple[torch.Tensor, ...] = ()  # every step's raw logits, first included
    sequences_scores: torch.Tensor | None = None  # beam search: the returned sequences' scores


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    case: Case,
    batch: dict[str, torch.Tensor],
    new_tokens: int = MAX_NEW_TOKENS,
    num_beams: int = 1,
    from_embeds: bool = False,
) -> Generation:
    """Greedy (or beam-search) decoding of exactly `new_tokens` tokens; the raw logits of every
    step come along. `from_embeds`: feed the model's own embedding of the ids as inputs_embeds."""
    model.eval()
    inputs = fed_to(model, {"attention_mask": batch["attention_mask"], **_task_ids(batch)})
    if from_embeds:
        inputs["inputs_embeds"] = embed(model, batch["input_ids"])
    else:
        inputs["input_ids"] = batch["input_ids"]
    kwargs = dict(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        num_beams=num_beams,
        pad_token_id=architectures.blueprint(case).pad_token_id,
        return_dict_in_generate=True,
    )
    if num_beams > 1:  # scores are sums of log-probabilities, not divided by a length
        kwargs.update(length_penalty=0.0, early_stopping=True, output_scores=True)
    else:
        kwargs["output_logits" if _GENERATE_HAS_LOGITS else "output_scores"] = True
    out = model.generate(**inputs, **kwargs)
    steps = out.logits if (_GENERATE_HAS_LOGITS and num_beams == 1) else out.scores
    scores = getattr(out, "sequences_scores", None)
    return Generation(
        out.sequences.cpu(),
        steps[0].float().cpu(),
        tuple(s.float().cpu() for s in steps),
        None if scores is None else scores.float().cpu(),
    )


def _task_ids(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"task_ids": batch["task_ids"]} if "task_ids" in batch else {}


def embed(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """The model's own input embedding of `input_ids` (what inputs_embeds stands in for)."""
    return model.get_input_embeddings()(input_ids)


@torch.no_grad()
def continuation_logits(model: torch.nn.Module, case: Case, batch: dict[str, torch.Tensor], new: torch.Tensor):
    """A plain forward pass over the prompt and `new` generated tokens ([batch, k]): the logits
    at the positions that predict each new token and the one after ([batch, k+1, vocab])."""
    k = new.shape[1]
    if case.task == "SEQ_2_SEQ_LM":
        start = model_config(case).decoder_start_token_id
        decoder = torch.cat([torch.full_like(new[:, :1], start), new], dim=1)
        out = logits(model, {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                             "decoder_input_ids": decoder, **_task_ids(batch)})  # fmt: skip
        return out[:, -(k + 1) :, :]
    ids = torch.cat([batch["input_ids"], new.to(batch["input_ids"].device)], dim=1)
    mask = torch.cat([batch["attention_mask"], torch.ones_like(new).to(batch["attention_mask"].device)], dim=1)
    return logits(model, {"input_ids": ids, "attention_mask": mask, **_task_ids(batch)})[:, -(k + 1) :, :]


def new_tokens_of(generation: Generation) -> torch.Tensor:
    """The generated tokens alone (a causal LM's sequences start with the prompt unless generated
    from inputs_embeds; a seq2seq model's with the decoder start token): one per step."""
    return generation.sequences[:, -len(generation.step_logits) :]


@contextlib.contextmanager
def another_prefix(model: PeftModel, adapter_name: str, seed: int = 0):
    """Temporarily put a different (seeded random) table in the adapter's prompt encoder: whatever
    really uses the prefix must then compute something else. The table is the encoder's embedding
    weight; Cartridge's is no parameter but the concatenation of its frozen and trained rows, so
    there every parameter of the encoder is replaced."""
    encoder = model.prompt_encoder[adapter_name]
    weight = encoder.embedding.weight
    replaced = [weight] if isinstance(weight, torch.nn.Parameter) else list(encoder.parameters())
    kept = [p.detach().clone() for p in replaced]
    generator = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for p in replaced:
            p.copy_(torch.randn(p.shape, generator=generator).to(dtype=p.dtype, device=p.device))
    try:
        yield model
    finally:
        with torch.no_grad():
            for p, value in zip(replaced, kept, strict=True):
                p.copy_(value)


@torch.no_grad()
def next_token_logits(model: torch.nn.Module, case: Case, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """What a plain forward pass predicts for the first generated token."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], **_task_ids(batch)}
    if case.task == "SEQ_2_SEQ_LM":
        start = model_config(case).decoder_start_token_id
        inputs["decoder_input_ids"] = torch.full_like(batch["input_ids"][:, :1], start)
    return logits(model, inputs)[:, -1, :]


# -- save / load -------------------------------------------------------------------------
def save(model: PeftModel, directory: str | Path, **kwargs) -> Path:
    directory = Path(directory)
    sig = inspect.signature(model.save_pretrained).parameters
    if "safe_serialization" in sig:  # old PEFT wrote pickles by default; artifacts are safetensors only
        kwargs.setdefault("safe_serialization", True)
    model.save_pretrained(str(directory), **kwargs)
    return directory


def load(case: Case, directory: str | Path, base: torch.nn.Module | None = None, **kwargs) -> PeftModel:
    """The saved adapter on a fresh base model built from the same case."""
    base = build_base(case) if base is None else base
    kwargs.setdefault("adapter_name", case.prefix.adapter_name)
    model = PeftModel.from_pretrained(base, str(directory), **kwargs)
    model.to(case.device)
    return model.eval()


def adapter_dir(root: str | Path, adapter_name: str) -> Path:
    """Where `save_pretrained` puts one adapter: the root for "default", a subfolder otherwise."""
    root = Path(root)
    return root if adapter_name == "default" else root / adapter_name


# -- one whole round trip ----------------------------------------------------------------
@dataclass
class Trained:
    case: Case
    model: PeftModel
    batch: dict[str, torch.Tensor]
    losses: list[float]

    @property
    def reference(self) -> torch.Tensor:
        return logits(self.model, self.batch)


def build_model(case: Case) -> PeftModel:
    """The case's base model wrapped with a fresh prefix adapter."""
    return wrap(build_base(case), case)


def train_model(model: PeftModel, case: Case, adapter_name: str | None = None) -> Trained:
    """Train `model`'s active adapter on the case's batch; the loss must stay finite and the
    prefix table must move away from its initial value (TrainingStalled otherwise)."""
    name = adapter_name or case.prefix.adapter_name
    batch = make_batch(case)
    before = prefix_table(model, name)
    losses = train(model, case, batch)
    if not all(map(math.isfinite, losses)):
        raise TrainingStalled(f"training loss is not finite: {losses}")
    after = prefix_table(model, name)
    if not torch.isfinite(after).all():
        raise TrainingStalled(
            f"training left the prefix table of {name!r} non-finite (NaN/inf) although the loss was finite "
            f"({losses}): the prefix's gradient was not finite"
        )
    if torch.equal(after, before):
        raise TrainingStalled(f"{case.recipe.steps} training steps left the prefix table of {name!r} unchanged")
    return Trained(case, model, batch, losses)


def train_case(case: Case) -> Trained:
    return train_model(build_model(case), case)


def roundtrip(case: Case, workdir: str | Path) -> tuple[Trained, PeftModel]:
    """Train, save into `workdir`, reload on a fresh base: the bare cost every property pays."""
    trained = train_case(case)
    save(trained.model, workdir)
    reloaded = load(case, adapter_dir(workdir, case.prefix.adapter_name))
    return trained, reloaded


@contextlib.contextmanager
def scratch():
    """A temporary working folder for one example (Hypothesis-safe, unlike tmp_path)."""
    with tempfile.TemporaryDirectory(prefix="prefixcheck-") as d:
        yield Path(d)


__all__ = [
    "Generation",
    "Trained",
    "adapter_dir",
    "another_prefix",
    "TrainingStalled",
    "base_logits",
    "build_base",
    "pristine_base",
    "build_model",
    "continuation_logits",
    "embed",
    "generate",
    "load",
    "new_tokens_of",
    "logits",
    "make_batch",
    "model_config",
    "next_token_logits",
    "prefix_config",
    "prefix_table",
    "prompt_tensors",
    "tokenizer_folder",
    "roundtrip",
    "save",
    "scratch",
    "train",
    "train_case",
    "train_model",
    "wrap",
]
