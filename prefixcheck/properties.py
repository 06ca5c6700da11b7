"""The properties, as data: each has a name, a one-line statement, the named steps it runs and
the named claims it checks. This is the one list: the tests, the registry's `at` points, the
reproduction scripts, the benchmark and the fault self-tests all derive from it.

Light on purpose (no torch): the registry validates against it when it loads. The bodies that
run a property live in `prefixcheck.checks`, registered by name.

A *step* produces something (a model, a file, outputs); when it fails, every claim after it
that uses what it makes cannot be checked. A *claim* is one named comparison; it passes, fails,
hits a known issue, is blocked (a step it needs failed) or is inconclusive (it held, but the
prefix moved the outputs too little for that to mean anything).
"""

from __future__ import annotations

from dataclasses import dataclass

# The step vocabulary, shared by every property so a registry entry can name one for several.
STEPS = {
    "build": "build the tiny base model and wrap it with get_peft_model",
    "train": "train the prefix with a few AdamW steps on the case's batch; the table must move",
    "save": "save_pretrained the adapter (safetensors)",
    "read": "read the saved adapter files back (safetensors and JSON only)",
    "load": "PeftModel.from_pretrained the saved adapter onto a fresh base model",
    "forward": "a forward pass of the adapter model in eval mode",
    "base": "the same forward pass on a fresh base model without any adapter",
    "disable": "a forward pass under model.disable_adapter()",
    "generate": "greedy generate() with the adapter",
    "resave": "save_pretrained the reloaded adapter again",
    "add-adapter": "add and train a second named prefix adapter",
    "load-adapter": "load_adapter a second named adapter next to the first",
    "load-bf16": "from_pretrained the fp32 adapter onto a bf16 base model",
    "load-trainable": "from_pretrained(..., is_trainable=True) and continue training",
    "load-other-device": "from_pretrained onto the other device (CPU <-> CUDA)",
    "trainer-train": "Trainer.train() with an evaluation and a checkpoint every step",
    "trainer-resume": "a fresh Trainer resumed from checkpoint-1",
}


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    needs: tuple[str, ...] = ()  # other claims of the same property this one is meaningless without


@dataclass(frozen=True)
class Property:
    name: str
    statement: str
    steps: tuple[str, ...]
    claims: tuple[Claim, ...]
    generative_only: bool = False  # CAUSAL_LM / SEQ_2_SEQ_LM only (generate())
    cost: float = 1.0  # examples per test item relative to the profile (Trainer runs cost more)
    cuda: bool = False  # needs a CUDA device
    input_paths: tuple[str, ...] = ("ids+mask",)  # how its examples feed the model (coverage axis)

    def __post_init__(self) -> None:
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise ValueError(f"property {self.name}: unknown steps {unknown}")
        names = [c.name for c in self.claims]
        for claim in self.claims:
            missing = [n for n in claim.needs if n not in names]
            if missing:
                raise ValueError(f"property {self.name}: claim {claim.name} needs unknown claims {missing}")

    @property
    def points(self) -> tuple[str, ...]:
        """Everything a registry entry's `at` may name for this property."""
        return self.steps + tuple(c.name for c in self.claims)

    def statement_of(self, point: str | None) -> str:
        """What holds when `point` (a step or claim of this property; None: the whole property) passes."""
        if point and point in STEPS and point in self.steps:
            return f"step `{point}` ({STEPS[point]}) completes"
        for claim in self.claims:
            if claim.name == point:
                return claim.statement
        return self.statement

    def claim(self, name: str) -> Claim:
        for claim in self.claims:
            if claim.name == name:
                return claim
        raise KeyError(f"property {self.name} has no claim {name!r}; it has {[c.name for c in self.claims]}")


def _p(name, statement, steps, *claims, **kw) -> Property:
    return Property(name, statement, tuple(steps.split()), tuple(Claim(*c) for c in claims), **kw)


ALL: tuple[Property, ...] = (
    _p(
        "saved-shapes",
        "the adapter holds prompt_embeddings of shape (num_virtual_tokens, num_layers*2*token_dim), equal bitwise "
        "to what the live model computes for it at batch 1; anything else saved is the task head",
        "build train save read",
        ("table-shape", "prompt_embeddings has the shape PEFT derives for the architecture"),
        ("nothing-else-saved", "apart from the table only the task head (modules_to_save) is saved"),
        ("table-equals-live", "the saved table equals, bitwise, the live prompt encoder's output at batch 1"),
    ),
    _p(
        "config-roundtrip",
        "adapter_config.json reloads to a config equal to the live one",
        "build train save read load",
        ("saved-equals-live", "PeftConfig.from_pretrained equals the live config"),
        ("loaded-equals-saved", "the loaded model's config equals adapter_config.json"),
    ),
    _p(
        "resave-identical",
        "save -> load -> save writes bitwise-identical tensors and an equal config",
        "build train save load resave read",
        ("tensors-identical", "the same tensor names, dtypes and values"),
        ("config-identical", "the same adapter_config.json"),
    ),
    _p(
        "reload-equality",
        "the reloaded model's outputs equal the trained model's (eval mode)",
        "build train save load forward base",
        ("reloaded-equals-trained", "logits after reload equal the trained model's"),
    ),
    _p(
        "prefix-acts",
        "with the adapter, outputs differ from the base model; disable_adapter() gives the base model back exactly",
        "build train save load forward base disable",
        ("prefix-changes-outputs", "the reloaded adapter's logits differ from a fresh base model's"),
        ("disable-restores-base", "under disable_adapter() the logits equal a fresh base model's, bitwise"),
    ),
    _p(
        "generate-first-step",
        "greedy generate()'s first-step logits use the prefix and equal a forward pass with the prefix (unpadded rows)",
        "build train generate forward base",
        ("uses-prefix", "the first-step logits change when the prefix table changes"),
        ("matches-forward", "the first-step logits equal the prefixed forward pass within the generate tolerance"),
        generative_only=True,
        input_paths=("ids+mask", "generate-greedy"),
    ),
    _p(
        "generate-roundtrip",
        "generate() after reload equals generate() before save (tokens; first-step logits within the reload tolerance)",
        "build train generate base save load",
        ("uses-prefix", "before saving, generate()'s first step changes when the prefix table changes"),
        ("first-step-survives", "first-step logits after reload equal those before save", ("uses-prefix",)),
        ("tokens-survive", "the generated tokens after reload equal those before save", ("uses-prefix",)),
        generative_only=True,
        input_paths=("generate-greedy",),
    ),
    _p(
        "input-paths",
        "equivalent ways of feeding the reloaded adapter model compute the same outputs",
        "build train save load forward base",
        (
            "embeds-equal-ids",
            "on the unpadded rows, inputs_embeds (the model's own embedding of the ids) computes the input_ids "
            "logits, bitwise (a padded row may take positions, or SEQ_CLS its pooled token, from the pad ids)",
        ),
        ("no-mask-equals-ones", "on the unpadded rows, no attention_mask computes what an all-ones mask does"),
        (
            "explicit-positions-equal-none",
            "on the unpadded rows, explicit position_ids that the base model treats as its default (counted from "
            "the first real token) compute the logits of none, bitwise; where the model takes no position_ids, "
            "PEFT refuses them as the model does or ignores them",
        ),
        ("labels-leave-logits", "passing labels leaves the logits bitwise unchanged, with a finite loss"),
        ("padded-row-equals-alone", "a right-padded row's real positions compute what the row alone, unpadded, does"),
        (
            "left-padded-row-equals-alone",
            "the same row left-padded computes at its real positions what it computes alone, given positions as "
            "the base model needs them to (none, or counted from the first real token as generate() does)",
        ),
        input_paths=("ids+mask", "embeds", "no-mask", "positions", "labels", "right-padded", "left-padded"),
    ),
    _p(
        "generate-paths",
        "every way of generating uses the prefix as the forward pass does, at every step (unpadded rows)",
        "build train save load generate forward base",
        (
            "every-step-matches-forward",
            "each greedy step's logits equal a forward pass over the prompt and the tokens so far",
        ),
        ("second-call-identical", "a second generate() on the same model gives the same tokens and logits, bitwise"),
        ("beam-matches-forward", "beam search scores its best sequence as the forward pass's summed log-probabilities"),
        (
            "embeds-generate-equals-ids",
            "generate(inputs_embeds=...) produces the tokens and logits of generate(input_ids=...)",
        ),
        ("no-cache-equals-cache", "a forward pass with use_cache=False computes the use_cache=True logits, bitwise"),
        generative_only=True,
        input_paths=("generate-greedy", "generate-beam", "generate-second-call", "generate-embeds", "no-cache"),
    ),
    _p(
        "trainer-best-model",
        'Trainer(load_best_model_at_end=True, metric_for_best_model="eval_loss") loads the best checkpoint and the '
        "model computes what it computed when that checkpoint was saved",
        "build trainer-train",
        ("best-differs-from-last", "the recipe makes the best checkpoint differ from the last one in outputs"),
        ("best-is-lowest-loss", "Trainer's best checkpoint is the one with the lowest eval loss"),
        ("best-adapter-loaded", "Trainer loaded that checkpoint's adapter at the end"),
        (
            "restored-equals-best",
            "the model at the end computes the best save's logits, bitwise",
            ("best-differs-from-last",),
        ),
        cost=0.5,
    ),
    _p(
        "trainer-best-workaround",
        "the documented workaround, PeftModel.from_pretrained(base, best_checkpoint), reproduces the best "
        "checkpoint's outputs",
        "build trainer-train load base",
        ("workaround-equals-best", "from_pretrained(best checkpoint) computes the best save's logits"),
        cost=0.5,
    ),
    _p(
        "trainer-resume",
        "resume_from_checkpoint gives the same model as uninterrupted training (bitwise)",
        "build trainer-train trainer-resume",
        ("resumed-equals-uninterrupted", "resumed from checkpoint-1, the final logits equal uninterrupted training's"),
        cost=0.5,
    ),
    _p(
        "trainable-reload",
        "from_pretrained(..., is_trainable=True) loads a prefix adapter that continues training like the original",
        "build train save load-trainable",
        ("continued-equals-original", "after more training, the reloaded adapter equals the original continued"),
        cost=0.5,
    ),
    _p(
        "multi-adapter",
        "several named prefix adapters in one model differ, switch with set_adapter, and each reproduces its own "
        "outputs after reload",
        "build train add-adapter forward base save load load-adapter",
        ("adapters-differ", "the two trained adapters compute different logits"),
        ("switching-switches", "set_adapter back to the first adapter gives its logits again, bitwise"),
        ("first-reproduces", "after reload the first adapter computes its logits"),
        ("second-reproduces", "after reload the second adapter computes its logits"),
    ),
    _p(
        "dtype-roundtrip",
        "an fp32 adapter on a bf16 base stays within the bf16 tolerance, and comes back into fp32 with its table "
        "bitwise intact",
        "build train save load forward base load-bf16 resave read",
        ("bf16-within-tolerance", "the fp32 adapter on a bf16 base computes the fp32 logits within bf16"),
        ("table-bitwise-via-bf16", "saved again from the bf16 model, the table is bitwise the fp32 one"),
        ("back-to-fp32", "that adapter on an fp32 base computes the fp32 logits again"),
    ),
    _p(
        "cuda-roundtrip",
        "on CUDA, the reloaded model's outputs equal the trained model's",
        "build train save load forward base",
        ("reloaded-equals-trained", "logits after reload equal the trained model's"),
        cuda=True,
    ),
    _p(
        "cpu-cuda-transfer",
        "an adapter saved on one device computes the same on the other within the device tolerance",
        "build train save load-other-device base",
        ("equals-across-devices", "logits on the other device equal the saving device's within the tolerance"),
        cuda=True,
    ),
)

BY_NAME = {p.name: p for p in ALL}
NAMES = tuple(BY_NAME)


def get(name: str) -> Property:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown property {name!r}; the properties are {', '.join(NAMES)}") from None
