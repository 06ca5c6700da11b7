"""Inlined checks for the reproduction scripts of the Trainer, dtype and multi-adapter properties.

Each is a `str.format` template (literal braces doubled) appended after `repro.HEADER`, which
defines build(), train(), logits(), close(), fail(), BATCH, PREFIX, ADAPTER and a trained `model`.
"""

TRAINER = """\
import inspect

from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

# the installed transformers' names: 4.41 renamed evaluation_strategy (huggingface/transformers#30190), 4.38 no_cuda
_ARGS = inspect.signature(TrainingArguments.__init__).parameters
EVAL_STRATEGY = "eval_strategy" if "eval_strategy" in _ARGS else "evaluation_strategy"
CPU_FLAG = "use_cpu" if "use_cpu" in _ARGS else "no_cuda"

ROWS = [{{k: v[i].cpu() for k, v in BATCH.items()}} for i in range(len(BATCH["input_ids"]))]
# Evaluated on the training inputs with the labels training moves away from (chosen by a short
# rehearsal of this run), so the best checkpoint is an early one, not the last.
EVAL = {{k: torch.tensor(v) for k, v in {eval_batch!r}.items()}}
EVAL_ROWS = [{{k: v[i] for k, v in EVAL.items()}} for i in range(len(EVAL["input_ids"]))]


class Snapshots(TrainerCallback):
    \"\"\"The live model's logits at every checkpoint save.\"\"\"

    def __init__(self):
        self.logits = {{}}

    def on_save(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        model.eval()
        self.logits[state.global_step] = logits(model)
        model.train(was_training)


def run_trainer(output_dir, max_steps, load_best, resume=None):
    torch.manual_seed(SEED + 1)
    peft_model = get_peft_model(build(), PrefixTuningConfig(**PREFIX), adapter_name=ADAPTER)
    snaps = Snapshots()
    args = TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size={batch_size}, per_device_eval_batch_size={batch_size},
        max_steps=max_steps, learning_rate={lr}, lr_scheduler_type="constant", eval_steps=1,
        save_strategy="steps", save_steps=1, logging_steps=1, load_best_model_at_end=load_best,
        metric_for_best_model="eval_loss", greater_is_better=False, report_to=[], seed=SEED, data_seed=SEED,
        remove_unused_columns=False, label_names=["labels"], **{{EVAL_STRATEGY: "steps", CPU_FLAG: DEVICE == "cpu"}},
    )
    trainer = Trainer(model=peft_model, args=args, train_dataset=ROWS, eval_dataset=EVAL_ROWS,
                      data_collator=default_data_collator, callbacks=[snaps])
    trainer.train(resume_from_checkpoint=resume)
    losses = {{e["step"]: e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e}}
    best = min(losses, key=lambda step: (losses[step], step))
    return peft_model.eval(), snaps.logits, best


def checkpoint_adapter(output_dir, step):
    root = f"{{output_dir}}/checkpoint-{{step}}"
    return root if ADAPTER == "default" else root + "/" + ADAPTER


"""

TRAINER_BEST = (
    TRAINER
    + """\
# load_best_model_at_end=True must restore the model as it was when the best checkpoint was saved.
# With prefix_projection=True, trainer.train() itself raises at the end (peft#2256).
model, snapshots, best = run_trainer(workdir + "/trainer", max_steps={trainer_steps}, load_best=True)
restored = logits(model)
if not torch.equal(restored, snapshots[best]):
    fail(f"model after load_best_model_at_end differs from the best checkpoint's (step {{best}}): "
         f"max |diff| {{(restored - snapshots[best]).abs().max().item():.3e}}")
"""
)

TRAINER_WORKAROUND = (
    TRAINER
    + """\
# The documented workaround: load_best_model_at_end=False, then PeftModel.from_pretrained(base, best checkpoint).
model, snapshots, best = run_trainer(workdir + "/trainer", max_steps={trainer_steps}, load_best=False)
where = checkpoint_adapter(workdir + "/trainer", best)
loaded = PeftModel.from_pretrained(build(), where, adapter_name=ADAPTER).eval()
got = logits(loaded)
if not close(got, snapshots[best], {atol}, {rtol}):
    fail(f"from_pretrained(best checkpoint) differs from the model at that save: "
         f"max |diff| {{(got - snapshots[best]).abs().max().item():.3e}}")
"""
)

TRAINER_RESUME = (
    TRAINER
    + """\
# resume_from_checkpoint must give the same model as uninterrupted training.
straight, _, _ = run_trainer(workdir + "/straight", max_steps={trainer_steps}, load_best=False)
resumed, _, _ = run_trainer(workdir + "/resumed", max_steps={trainer_steps}, load_best=False,
                            resume=workdir + "/straight/checkpoint-1")
a, b = logits(resumed), logits(straight)
if not torch.equal(a, b):
    fail(f"resumed from checkpoint-1 differs from uninterrupted training: max |diff| {{(a - b).abs().max().item():.3e}}")
"""
)

TRAINABLE = """\
model.save_pretrained(workdir)
# PEFT raises here for prompt-learning adapters ("Cannot set a prompt learning adapter to trainable ...").
reloaded = PeftModel.from_pretrained(build(), adapter_dir, adapter_name=ADAPTER, is_trainable=True)
train(model)
train(reloaded)
a, b = logits(reloaded), logits(model)
if not close(a, b, {atol}, {rtol}):
    fail(f"continued training after an is_trainable reload differs: max |diff| {{(a - b).abs().max().item():.3e}}")
"""

DTYPE = """\
from safetensors.torch import load_file


def build_as(dtype):
    torch.manual_seed(SEED)
    config = transformers.AutoConfig.for_model(MODEL_TYPE, **CONFIG)
    base = getattr(transformers, AUTO_CLASS).from_config(config, attn_implementation={attn!r})
    return base.to(dtype=dtype, device=DEVICE).eval()


reference = logits(reloaded)
low = PeftModel.from_pretrained(build_as(torch.bfloat16), adapter_dir, adapter_name=ADAPTER).eval()
got = logits(low)
second = tempfile.mkdtemp()
low.save_pretrained(second)
second_dir = second if ADAPTER == "default" else second + "/" + ADAPTER
before = load_file(adapter_dir + "/adapter_model.safetensors")["prompt_embeddings"]
after = load_file(second_dir + "/adapter_model.safetensors")["prompt_embeddings"]
if not torch.equal(before, after):
    fail("the prefix table changed on its way through a bf16 base")
# back on an fp32 base: bitwise, unless a task head trained alongside (modules_to_save) went through bf16
back = logits(PeftModel.from_pretrained(build_as(torch.float32), second_dir, adapter_name=ADAPTER).eval())
exact = not PeftConfig.from_pretrained(second_dir).to_dict().get("modules_to_save")
if not (torch.equal(back, reference) if exact else close(back, reference, {dtype_atol}, {dtype_rtol})):
    fail(f"fp32 -> bf16 -> fp32 changes the outputs: max |diff| {{(back - reference).abs().max().item():.3e}}")
# the base model's own cast error: a tiny model can move by most of {dtype_atol} in bf16 alone
base_cast = (logits(build_as(torch.bfloat16)) - logits(build_as(torch.float32))).abs().max().item()
if base_cast > {cast_share} * {dtype_atol}:
    print(f"INCONCLUSIVE: the base model alone moves by {{base_cast:.3e}} in bf16")
    sys.exit(0)
if not close(got, reference, {dtype_atol}, {dtype_rtol}):
    fail(f"fp32 adapter on a bf16 base is off by {{(got - reference).abs().max().item():.3e}}")
"""

MULTI_ADAPTER = """\
SECOND = {second!r}
model.add_adapter(SECOND["adapter_name"], PrefixTuningConfig(**SECOND["config"]))
model.set_adapter(SECOND["adapter_name"])
train(model)
expected = {{}}
for name in (ADAPTER, SECOND["adapter_name"]):
    model.set_adapter(name)
    expected[name] = logits(model.eval())
model.save_pretrained(workdir)
reloaded = PeftModel.from_pretrained(build(), adapter_dir, adapter_name=ADAPTER).eval()
reloaded.load_adapter(workdir + "/" + SECOND["adapter_name"], adapter_name=SECOND["adapter_name"])
TOLERANCE = {{ADAPTER: ({atol}, {rtol}), SECOND["adapter_name"]: (SECOND["atol"], SECOND["rtol"])}}
for name in (ADAPTER, SECOND["adapter_name"]):
    reloaded.set_adapter(name)
    got = logits(reloaded.eval())
    if not close(got, expected[name], *TOLERANCE[name]):
        fail(f"adapter {{name!r}} after reload differs: max |diff| {{(got - expected[name]).abs().max().item():.3e}}")
"""


# -- input-paths and generate-paths: one check per claim (format fields from repro.script) --------
INPUT_PATHS = {
    "embeds-equal-ids": """\
emb = reloaded.get_input_embeddings()(INPUTS["input_ids"])
fed = {{k: v for k, v in INPUTS.items() if k != "input_ids"}}
with torch.no_grad():
    a = reloaded(**fed, inputs_embeds=emb).logits.float().cpu()
b = logits(reloaded)
if not torch.equal(a[UNPADDED], b[UNPADDED]):
    fail(f"inputs_embeds logits differ from input_ids logits: max |diff| {{(a[UNPADDED] - b[UNPADDED]).abs().max().item():.3e}}")
""",
    "no-mask-equals-ones": """\
sub = {{k: v[UNPADDED] for k, v in INPUTS.items()}}
with torch.no_grad():
    a = reloaded(**{{k: v for k, v in sub.items() if k != "attention_mask"}}).logits.float().cpu()
    b = reloaded(**sub).logits.float().cpu()
if not close(a, b, {batch_atol}, {batch_rtol}):
    fail(f"no attention_mask differs from an all-ones mask: max |diff| {{(a - b).abs().max().item():.3e}}")
""",
    "explicit-positions-equal-none": """\
import inspect
sub = {{k: v[UNPADDED] for k, v in INPUTS.items()}}
n, seq = sub["input_ids"].shape
base = build()
takes = "position_ids" in inspect.signature(base.forward).parameters
with torch.no_grad():
    own = base(**sub).logits
    starts = [0] + ([base.config.pad_token_id + 1] if base.config.pad_token_id is not None else [])
    # the explicit positions the base model treats as its own default (0.. or padding_idx + 1.. for RoBERTa)
    found = [s for s in starts if takes and torch.equal(
        base(**sub, position_ids=torch.arange(s, s + seq).repeat(n, 1)).logits, own)]
    positions = torch.arange(found[0] if found else 0, (found[0] if found else 0) + seq).repeat(n, 1)
    try:
        a = reloaded(**sub, position_ids=positions).logits.float().cpu()
    except TypeError as exc:
        if takes or "position_ids" not in str(exc):
            raise
        print("the model takes no position_ids and PEFT refuses them too: nothing to compare")
        sys.exit(0)
    b = reloaded(**sub).logits.float().cpu()
if not torch.equal(a, b):
    fail(f"explicit default position_ids change the logits: max |diff| {{(a - b).abs().max().item():.3e}}")
""",
    "labels-leave-logits": """\
with torch.no_grad():
    out = reloaded(**BATCH)
if out.loss is None or not torch.isfinite(out.loss):
    fail(f"forward with labels gives loss {{out.loss}}")
b = logits(reloaded)
if not torch.equal(out.logits.float().cpu(), b):
    fail(f"labels change the logits: max |diff| {{(out.logits.float().cpu() - b).abs().max().item():.3e}}")
""",
    "padded-row-equals-alone": """\
real = {seq_len} - {num_padded}
alone = {{k: (v[-1:, :real] if k in ("input_ids", "attention_mask") else v[-1:]) for k, v in INPUTS.items()}}
with torch.no_grad():
    a = reloaded(**alone).logits.float().cpu()
b = logits(reloaded)[-1:]
if {per_position}:
    b = b[:, :real]
if not close(a, b, {batch_atol}, {batch_rtol}):
    fail(f"the right-padded row differs from the same row alone: max |diff| {{(a - b).abs().max().item():.3e}}")
""",
    "left-padded-row-equals-alone": """\
import inspect
real = {seq_len} - {num_padded}
alone = {{k: (v[-1:, :real] if k in ("input_ids", "attention_mask") else v[-1:]) for k, v in INPUTS.items()}}
left = dict(INPUTS)
for k in ("input_ids", "attention_mask"):  # the same last row, its pads moved to the front
    left[k] = INPUTS[k].clone()
    left[k][-1] = INPUTS[k][-1].roll({num_padded})
base = build()
if "position_ids" in inspect.signature(base.forward).parameters:
    # counted from the first real token, as generate() does, from where the model's own default starts
    sub = {{k: v[UNPADDED] for k, v in INPUTS.items()}}
    n, seq = sub["input_ids"].shape
    with torch.no_grad():
        own = base(**sub).logits
        starts = [0] + ([base.config.pad_token_id + 1] if base.config.pad_token_id is not None else [])
        start = next((s for s in starts if torch.equal(
            base(**sub, position_ids=torch.arange(s, s + seq).repeat(n, 1)).logits, own)), 0)
    left["position_ids"] = (left["attention_mask"].long().cumsum(-1) - 1).clamp(min=0) + start
with torch.no_grad():
    a = reloaded(**left).logits.float().cpu()[-1:]
    b = reloaded(**alone).logits.float().cpu()
if {per_position}:
    a = a[:, -real:]
if not close(a, b, {batch_atol}, {batch_rtol}):
    fail(f"the left-padded row differs from the same row alone: max |diff| {{(a - b).abs().max().item():.3e}}")
""",
}

GENERATE_SETUP = """\
KW = dict(max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=0, return_dict_in_generate=True)


def generate(m, **extra):
    inputs = {{"input_ids": BATCH["input_ids"], "attention_mask": BATCH["attention_mask"]}}
    with torch.no_grad():
        return m.generate(**{{**inputs, **KW, "num_beams": 1, "output_logits": True, **extra}})


def continuation(m, inputs, new):
    # a forward pass over the prompt and `new` tokens: the logits that predict each of them and the next
    k = new.shape[1]
    with torch.no_grad():
        if {seq2seq}:
            dec = torch.cat([torch.full_like(new[:, :1], {decoder_start}), new], 1)
            out = m(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], decoder_input_ids=dec)
        else:
            ids = torch.cat([inputs["input_ids"], new], 1)
            out = m(input_ids=ids, attention_mask=torch.cat([inputs["attention_mask"], torch.ones_like(new)], 1))
    return out.logits[:, -(k + 1):].float().cpu()


"""

GENERATE_PATHS = {
    # the step itself: greedy generate() on the reloaded model, as the suite's first call; the
    # step fails by raising, and so does the script
    "generate": """\
out = generate(reloaded)
""",
    "every-step-matches-forward": """\
out = generate(reloaded)
steps = [s.float().cpu() for s in out.logits]
fwd = continuation(reloaded, BATCH, out.sequences[:, -len(steps):])
for k, step in enumerate(steps):
    if not close(step[UNPADDED], fwd[UNPADDED, k], {gen_atol}, {gen_rtol}):
        fail(f"generate() step {{k + 1}} differs from a forward pass: max |diff| {{(step[UNPADDED] - fwd[UNPADDED, k]).abs().max().item():.3e}}")
""",
    "second-call-identical": """\
first, again = generate(reloaded), generate(reloaded)
if not torch.equal(first.sequences, again.sequences) or any(
    not torch.equal(a, b) for a, b in zip(first.logits, again.logits)
):
    fail(f"a second generate() differs from the first: {{again.sequences.tolist()}} vs {{first.sequences.tolist()}}")
""",
    "beam-matches-forward": """\
beam = generate(reloaded, num_beams=2, length_penalty=0.0, early_stopping=True, output_logits=False, output_scores=True)
new = beam.sequences[:, -3:][UNPADDED]
sub = {{k: v[UNPADDED] for k, v in BATCH.items()}}
scored = torch.log_softmax(continuation(reloaded, sub, new)[:, :-1], dim=-1)
summed = scored.gather(-1, new.cpu().unsqueeze(-1)).squeeze(-1).sum(-1)
got = beam.sequences_scores[UNPADDED].float().cpu()
if not close(got, summed, {batch_atol}, {batch_rtol}):
    fail(f"beam search scores its best sequence {{got.tolist()}}, the forward pass {{summed.tolist()}}")
""",
    "embeds-generate-equals-ids": """\
ids = generate(reloaded)
with torch.no_grad():
    fed = reloaded.generate(inputs_embeds=reloaded.get_input_embeddings()(BATCH["input_ids"]),
                            attention_mask=BATCH["attention_mask"], num_beams=1, output_logits=True, **KW)
if not torch.equal(fed.sequences[:, -3:][UNPADDED], ids.sequences[:, -3:][UNPADDED]):
    fail(f"generate(inputs_embeds) gives {{fed.sequences[:, -3:].tolist()}}, from ids {{ids.sequences[:, -3:].tolist()}}")
""",
    "no-cache-equals-cache": """\
with torch.no_grad():
    a = reloaded(**INPUTS, use_cache=False).logits.float().cpu()
    b = reloaded(**INPUTS, use_cache=True).logits.float().cpu()
if not torch.equal(a, b):
    fail(f"use_cache=False differs from use_cache=True: max |diff| {{(a - b).abs().max().item():.3e}}")
""",
}
