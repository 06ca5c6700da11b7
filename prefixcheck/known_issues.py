"""Known upstream bugs, as data.

Each entry names its upstream reference(s) (or says it was found by this suite and carries a
report ready to file), the versions it affects, the cases and properties it touches, and how
it fails. A case that matches an entry must fail exactly that way; if it passes, the entry is
stale and the suite says so. Nothing here skips a test.

To add one: copy an entry, give it a new `id`, narrow `cases` and `affects` as far as the
evidence goes, and run the suite: a wrong pattern shows up as an unexpected failure, an entry
that is too broad as a stale one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import architectures
from .case import Case
from .versions import parse_spec, satisfies

# Property names, as the tests and the summary use them.
PROPERTIES = (
    "saved-shapes",
    "config-roundtrip",
    "resave-identical",
    "reload-equality",
    "prefix-acts",
    "generate-first-step",
    "generate-roundtrip",
    "trainer-best-model",
    "trainer-best-workaround",
    "trainer-resume",
    "trainable-reload",
    "multi-adapter",
    "dtype-roundtrip",
    "cuda-roundtrip",
    "cpu-cuda-transfer",
)
ANY = "*"
OUTPUTS_DIFFER = "OutputMismatch"


def case_facts(case: Case) -> dict[str, object]:
    """The flat facts an entry's `cases` can constrain."""
    arch = architectures.get(case.model.arch)
    lay = case.model.layout
    return {
        "arch": case.model.arch,
        "task": case.task,
        "prefix_projection": case.prefix.prefix_projection,
        "dtype": case.dtype,
        "device": case.device,
        "attn_implementation": case.model.attn_implementation,
        "padding_side": case.recipe.padding_side,
        "padded": case.recipe.num_padded > 0,
        "gqa": lay.num_kv_heads < lay.num_heads,
        "multi_kv_heads": lay.num_kv_heads > 1,  # the cache holds more than one key/value head
        "explicit_head_dim": lay.explicit_head_dim,
        # PEFT's prefix width differs from what the model's cache holds per layer
        "prefix_width_mismatch": arch.peft_token_dim(case.model) != arch.kv_token_dim(lay),
        "named_adapter": case.prefix.adapter_name != "default",
        "num_layers": case.model.num_layers,
    }


FACTS = tuple(
    case_facts(
        Case.from_dict(
            {
                "model": {
                    "arch": "llama",
                    "num_layers": 1,
                    "layout": {"hidden_size": 8, "num_heads": 2, "num_kv_heads": 1, "head_dim": 4},
                },
                "task": "CAUSAL_LM",
                "prefix": {"num_virtual_tokens": 1},
            }
        )
    )
)


@dataclass(frozen=True)
class Failure:
    """How a known issue fails: exception type names ("A|B", matched anywhere in the MRO) and a
    regex searched in the message. OUTPUTS_DIFFER names the suite's own output-mismatch failure."""

    exception: str
    match: str = ""

    def matches(self, exc: BaseException) -> bool:
        names = {cls.__name__ for cls in type(exc).__mro__}
        wanted = set(self.exception.split("|"))
        return bool(names & wanted) and re.search(self.match, str(exc), re.S) is not None

    def __str__(self) -> str:
        return f"{self.exception} matching /{self.match}/" if self.match else self.exception


@dataclass(frozen=True)
class KnownIssue:
    id: str
    title: str
    references: tuple[str, ...]
    affects: dict[str, str]  # package -> PEP 440 specifier, all must hold
    properties: tuple[str, ...]  # property names, or ("*",)
    cases: dict[str, tuple]  # fact -> allowed values, all must hold
    failure: Failure
    found_by_suite: bool = False
    report: str = ""  # for found_by_suite entries: the text to file upstream
    notes: str = ""

    def applies(self, prop: str, case: Case, versions: dict[str, str] | None = None) -> bool:
        if ANY not in self.properties and prop not in self.properties:
            return False
        if not all(satisfies(pkg, spec, versions) for pkg, spec in self.affects.items()):
            return False
        facts = case_facts(case)
        return all(facts[k] in allowed for k, allowed in self.cases.items())


class StaleKnownIssue(AssertionError):
    """A case covered by a known-issue entry passed: the bug looks fixed, the entry stale."""


CLM, S2S, CLS, TOK = "CAUSAL_LM", "SEQ_2_SEQ_LM", "SEQ_CLS", "TOKEN_CLS"

ALL_TASKS = (CLM, S2S, CLS, TOK)
ANY_BUT_TWO_LAYERS = tuple(n for n in range(1, 129) if n != 2)
GEMMA_017_REPORT = (
    "Fixed in later PEFT releases (0.21.2 passes; its get_prompt() builds a DynamicCache for Gemma on "
    "transformers >= 4.56): nothing to file. For the record, PEFT 0.17.1 with transformers 4.57.6 fails on tiny "
    "Gemma2/Gemma3 configs: SEQ_CLS/TOKEN_CLS raise 'max_cache_len is None but it should have been passed'; "
    "CAUSAL_LM with 1 or 3 layers raises IndexError ('tuple index out of range', 'index 2 is out of bounds for "
    "dimension 0 with size 2') in the HybridCache path, which predates the transformers 4.56 cache refactor; "
    "2-layer models happen to work."
)
GENERATIVE = (CLM, S2S)

REGISTRY: tuple[KnownIssue, ...] = (
    KnownIssue(
        id="t5-inner-dim-prefix-width",
        title="T5 with d_kv * num_heads != d_model: PEFT sizes the prefix from d_model, so it cannot be injected",
        references=("https://github.com/huggingface/peft/issues/385",),
        affects={"peft": ">=0.3"},
        properties=(ANY,),
        cases={"arch": ("t5",), "prefix_width_mismatch": (True,)},
        failure=Failure("RuntimeError", r"is invalid for input of size|Sizes of tensors must match"),
        report=(
            "Prefix tuning fails for T5-family models whose attention inner width d_kv * num_heads differs "
            "from d_model (mT5-small: d_model=512, d_kv=64, num_heads=6). _prepare_prompt_learning_config "
            "takes token_dim = d_model and head_dim = d_model // num_heads, so get_prompt() views the prefix as "
            "[.., num_heads, d_model // num_heads] instead of [.., num_heads, d_kv]: the view fails (d_model not "
            "divisible) or the cache concat fails ('Sizes of tensors must match'). Expected: token_dim = d_kv * "
            "num_heads for T5 configs. Repro: T5Config(d_model=16, d_kv=4, num_heads=2), PrefixTuningConfig("
            "task_type='SEQ_2_SEQ_LM', num_virtual_tokens=3); any forward pass."
        ),
    ),
    KnownIssue(
        id="encoder-decoder-classification-prefix",
        title="Prefix tuning of encoder-decoder classification heads (BART/T5 SEQ_CLS, T5 TOKEN_CLS) cannot run",
        references=(),
        found_by_suite=True,
        affects={"peft": ">=0.3"},
        properties=(ANY,),
        cases={"arch": ("t5", "bart"), "task": (CLS, TOK)},
        failure=Failure(
            "ValueError|RuntimeError|AttributeError",
            r"You must specify exactly one of input_ids or inputs_embeds|Model does not support past key values"
            r"|object has no attribute 'cls_layer_name'"
            r"|You have to specify either decoder_input_ids or decoder_inputs_embeds"
            r"|The size of tensor a \(\d+\) must match the size of tensor b"
            r"|Attention mask should be of size",  # transformers 4.51: the same too-long mask, caught earlier
        ),
        report=(
            "Prefix tuning of encoder-decoder classification heads fails in forward(). SEQ_CLS (BART, T5): "
            "PeftModelForSequenceClassification prepends num_virtual_tokens ones to the attention mask and passes the "
            "prefix cache, but the encoder does not read the cache, so the mask is num_virtual_tokens too long: "
            "'The size of tensor a (5) must match the size of tensor b (6)' (transformers 5.23); older releases fail "
            "earlier ('You have to specify either decoder_input_ids or decoder_inputs_embeds', 4.57). At batch size 1 "
            "the fallback path is taken and fails with \"'BartForSequenceClassification' object has no attribute "
            "'cls_layer_name'\" (cls_layer_name is only set for some heads). TOKEN_CLS: "
            "T5ForTokenClassification is encoder-only and has no past_key_values, so PEFT raises 'Model does not "
            "support past key values which are required for prefix tuning.' PEFT accepts the config without warning. "
            "Repro: BartConfig/T5Config at d_model=16, PrefixTuningConfig(task_type='SEQ_CLS', "
            "num_virtual_tokens=3), one forward pass."
        ),
    ),
    KnownIssue(
        id="tf-5.24-cache-kwarg-classification",
        title="transformers 5.24 renamed forward(past_key_values=) to cache=: PEFT's SEQ_CLS/TOKEN_CLS prefix path refuses every model",
        references=(),
        found_by_suite=True,
        # 5.24 deprecates past_key_values (removal planned for 5.40) in favour of `cache`; PEFT <= 0.21.2
        # looks for "past_key_values" in the forward signature and raises.
        affects={"transformers": ">=5.24.0", "peft": ">=0.3"},
        properties=(ANY,),
        cases={"task": (CLS, TOK)},
        failure=Failure("ValueError", r"Model does not support past key values"),
        report=(
            "With transformers 5.24, every SEQ_CLS and TOKEN_CLS prefix-tuning model fails in forward() with "
            "'ValueError: Model does not support past key values which are required for prefix tuning.' "
            "PeftModelForSequenceClassification/TokenClassification._prefix_tuning_forward checks "
            "`'past_key_values' in inspect.signature(base_model.forward).parameters`; transformers 5.24 renamed "
            "that argument to `cache` (deprecate_kwarg('past_key_values', '5.40.0', new_name='cache')), so the check "
            "fails for the head and for the backbone. Works with transformers 5.23.0. Repro: LlamaForSequenceClassification "
            "from a 2-layer config, PrefixTuningConfig(task_type='SEQ_CLS', num_virtual_tokens=3), one forward pass."
        ),
    ),
    KnownIssue(
        id="peft-modules-to-save-duplicated",
        title="SEQ_CLS/TOKEN_CLS prompt-learning configs append classifier/score to modules_to_save on every load",
        references=("https://github.com/huggingface/peft/pull/3770",),
        # 0.15.2 saves the list once (with 4.51.3); 0.17.1 doubles it with 4.51.3 and 4.57.6: PEFT-side
        affects={"peft": ">=0.16"},
        properties=("config-roundtrip", "resave-identical"),
        cases={"task": (CLS, TOK)},
        failure=Failure("AssertionError", r"modules_to_save"),
        notes="peft#3770 (merged after 0.21.2) de-duplicates on add_adapter; the entry goes stale with the release that has it.",
        report=(
            "For task_type SEQ_CLS/TOKEN_CLS, PEFT extends config.modules_to_save with ['classifier', 'score'] each "
            "time a PeftModel is built from the config, without de-duplicating. The saved adapter_config.json already "
            "holds ['classifier', 'score', 'classifier', 'score'] and every save -> load -> save doubles it again, so "
            "adapter_config.json is not stable across round trips (and grows without bound when an adapter is "
            "re-saved repeatedly). Repro: any prefix-tuning SEQ_CLS model; save_pretrained, "
            "PeftModel.from_pretrained, save_pretrained; diff the two adapter_config.json files."
        ),
    ),
    KnownIssue(
        id="peft-disable-adapter-prompt-learning-no-generation",
        title="disable_adapter() crashes for prompt-learning models whose base has no prepare_inputs_for_generation",
        references=(),
        found_by_suite=True,
        # transformers 4.51.3 still gives every model prepare_inputs_for_generation (peft 0.15.2 and
        # 0.17.1 pass there); 4.57.6 and 5.x do not
        affects={"peft": ">=0.3", "transformers": ">=4.52"},
        properties=("prefix-acts",),
        cases={"task": (CLS, TOK)},
        failure=Failure("AttributeError|UnboundLocalError", r"prepare_inputs_for_generation"),
        report=(
            "PeftModel.disable_adapter() for prompt-learning adapters swaps self.prepare_inputs_for_generation for "
            "the base model's inside a try/finally; SEQ_CLS/TOKEN_CLS base models (e.g. BloomForTokenClassification, "
            "LlamaForSequenceClassification under transformers 5) have no prepare_inputs_for_generation, so entering "
            "the context raises AttributeError and the finally block then raises UnboundLocalError "
            "('old_prepare_inputs_for_generation'). The adapter cannot be disabled on classification models. Repro: "
            "any prefix-tuning SEQ_CLS model; `with model.disable_adapter(): model(**inputs)`."
        ),
    ),
    KnownIssue(
        id="bloom-generate-prefix-alibi",
        title="Bloom generate() with a prefix and a padded batch fails: the alibi bias is built without the virtual tokens",
        references=("https://github.com/huggingface/peft/issues/1390",),
        affects={"transformers": ">=5.24.0", "peft": ">=0.3"},
        properties=("generate-first-step", "generate-roundtrip"),
        cases={"arch": ("bloom",), "task": (CLM,), "padded": (True,)},
        failure=Failure("RuntimeError", r"The expanded size of the tensor .* must match the existing size"),
        notes="Same symptom as peft#1390 (2024); it works again under transformers 5.23 and breaks in 5.24.",
    ),
    KnownIssue(
        id="tf-5.24-generate-ignores-prefix",
        title="transformers 5.24: generate() silently drops the prefix (first step equals the base model)",
        references=(),
        found_by_suite=True,
        affects={"transformers": ">=5.24.0", "peft": ">=0.3"},
        properties=("generate-first-step",),
        # Seen for every rotary/relative-position model here; the learned-position models keep the prefix
        # (next entry) and Bloom crashes (bloom-generate-prefix-alibi).
        cases={
            "task": GENERATIVE,
            "arch": ("llama", "gpt_neox", "qwen3", "mistral", "gemma2", "gemma3_text", "bart", "t5"),
        },
        failure=Failure("OutputMismatch", r"generate\(\) first-step logits"),
        notes="generate-roundtrip still passes here: before and after reload both ignore the prefix alike.",
        report=(
            "With transformers 5.24 and PEFT 0.21.2, generate() on a prefix-tuned model returns first-step logits "
            "equal to the base model's (adapter disabled), while model(**inputs) applies the prefix: the prefix is "
            "silently ignored in generation (Llama, Qwen3, Mistral, GPT-NeoX, Gemma2/3, BART, T5; GPT-2, OPT and "
            "GPTBigCode keep it but disagree with forward(); Bloom crashes). PEFT's "
            "prepare_inputs_for_generation injects the prefix as `past_key_values`, which 5.24 renamed to `cache`. "
            "Works with transformers 5.23.0 (first-step logits match a forward pass within 1.5e-8). Repro: tiny "
            "LlamaForCausalLM, PrefixTuningConfig(task_type='CAUSAL_LM', num_virtual_tokens=3), two AdamW steps, "
            "compare generate(..., output_logits=True).logits[0] with model(**inputs).logits[:, -1]."
        ),
    ),
    KnownIssue(
        id="peft-0.21-tf-4.57-bart-generate-drops-prefix",
        title="peft 0.21 with transformers 4.57: BART generate() drops the prefix (first step equals the base model)",
        references=(),
        found_by_suite=True,
        # Measured on exactly this pair (matrix validate's baseline, 0.21.2 + 4.57.6). BART agrees on
        # 0.15.2 + 4.51.3 and on 0.21.2 + 5.23.0; 0.17.1 + 4.57.6 fails earlier (peft-2821-...).
        affects={"peft": ">=0.21,<0.22", "transformers": ">=4.57,<4.58"},
        properties=("generate-first-step",),
        cases={"arch": ("bart",), "task": (S2S,)},
        failure=Failure("OutputMismatch", r"generate\(\) first-step logits"),
        report=(
            "With PEFT 0.21.2 and transformers 4.57.6, generate()'s first-step logits of a prefix-tuned BART "
            "(SEQ_2_SEQ_LM) differ from model(**inputs, decoder_input_ids=[[decoder_start]]).logits[:, -1] by 8e-3 to "
            "1.6e-1 while staying within 4e-3 of the base model: the prefix is dropped in generation. The same "
            "check passes bitwise with PEFT 0.15.2 + transformers 4.51.3 and PEFT 0.21.2 + transformers 5.23.0. "
            "Repro: BartConfig(d_model=4, 1 layer, 1 head), PrefixTuningConfig(task_type='SEQ_2_SEQ_LM', "
            "num_virtual_tokens=1), one AdamW step; compare generate(..., output_logits=True).logits[0] with the "
            "forward pass."
        ),
    ),
    KnownIssue(
        id="tf-4-t5-generate-prefix-positions",
        title="transformers 4.x: T5 generate() applies the prefix differently than forward()",
        references=(),
        found_by_suite=True,
        # Measured: 4.51.3 (peft 0.15.2) and 4.57.6 (peft 0.21.2) disagree by the same amounts;
        # 5.23.0 agrees bitwise.
        # 4.45.2 (peft 0.13.2) still agrees bitwise.
        affects={"transformers": ">=4.46,<5.0", "peft": ">=0.3"},
        properties=("generate-first-step",),
        cases={"arch": ("t5",), "task": (S2S,)},
        failure=Failure("OutputMismatch", r"generate\(\) first-step logits"),
        report=(
            "With transformers 4.51.3 and 4.57.6 (PEFT 0.15.2 and 0.21.2 alike), generate()'s first-step logits of a "
            "prefix-tuned T5 (SEQ_2_SEQ_LM) differ from model(**inputs, decoder_input_ids=[[0]]).logits[:, -1] by "
            "0.3 to 4 and equal neither that nor the base model: the prefix acts, but the decoder's relative position "
            "bias (or cache offset) in generation differs from forward(). transformers 5.23.0 agrees bitwise. Repro: "
            "T5Config(d_model=4, d_kv=4, num_heads=1, 1 layer), PrefixTuningConfig(task_type='SEQ_2_SEQ_LM', "
            "num_virtual_tokens=1), one AdamW step; compare generate(..., output_logits=True).logits[0] with the "
            "forward pass."
        ),
    ),
    KnownIssue(
        id="peft-0.15-gemma3-generate-4d-mask",
        title="peft 0.15 with transformers 4.51: Gemma3 generate() concatenates a 2-d prefix mask to a 4-d mask",
        references=(),
        found_by_suite=True,
        # Measured on peft 0.15.2 + transformers 4.51.3 only (Gemma3 exists from 4.50); 0.17.1 + 4.57.6
        # and 0.21.2 + 5.23.0 generate fine.
        affects={"peft": ">=0.15,<0.16", "transformers": ">=4.50,<4.52"},
        properties=("generate-first-step", "generate-roundtrip"),
        cases={"arch": ("gemma3_text",), "task": (CLM,)},
        failure=Failure("RuntimeError", r"Tensors must have same number of dimensions: got 2 and 4"),
        report=(
            "With PEFT 0.15.2 and transformers 4.51.3, generate() on a prefix-tuned Gemma3ForCausalLM fails in "
            "PeftModelForCausalLM.prepare_inputs_for_generation: Gemma3's own prepare_inputs_for_generation has "
            "already turned attention_mask into a 4-d mask (hybrid cache), and PEFT torch.cat()s its 2-d "
            "prefix mask to it: 'Tensors must have same number of dimensions: got 2 and 4'. forward() works. "
            "Repro: Gemma3TextConfig(hidden_size=8, 1 layer, 1 head, head_dim=8), "
            "PrefixTuningConfig(task_type='CAUSAL_LM', num_virtual_tokens=1), model.generate(input_ids, "
            "max_new_tokens=3)."
        ),
    ),
    KnownIssue(
        id="peft-2246-classification-add-adapter-low-cpu-mem-usage",
        title="peft 0.13: SEQ_CLS/TOKEN_CLS prompt-learning models cannot be built (add_adapter lacks low_cpu_mem_usage)",
        references=("https://github.com/huggingface/peft/issues/2246", "https://github.com/huggingface/peft/pull/2156"),
        affects={"peft": ">=0.13,<0.14"},
        properties=(ANY,),
        cases={"task": (CLS, TOK)},
        failure=Failure("TypeError", r"add_adapter\(\) got an unexpected keyword argument 'low_cpu_mem_usage'"),
        notes="PeftModel.__init__ passes low_cpu_mem_usage to add_adapter, which the classification subclasses do "
        "not take: get_peft_model and from_pretrained both fail (0.13.2 + 4.45.2; fixed by peft#2156).",
    ),
    KnownIssue(
        id="peft-0.13-gemma2-legacy-cache",
        title="peft 0.13: Gemma2 gets the prefix as a tuple, but Gemma2 only takes a Cache object",
        references=("https://github.com/huggingface/transformers/pull/33595",),
        found_by_suite=True,
        # Measured: 0.13.2 + 4.45.2 fails, 0.15.2 + 4.51.3 works (0.14 not measured).
        affects={"peft": "<0.15", "transformers": ">=4.42"},
        properties=(ANY,),
        cases={"arch": ("gemma2",), "task": (CLM,)},
        failure=Failure("AttributeError", r"'tuple' object has no attribute 'get_seq_length'"),
        notes="transformers#33595: Gemma 2 does not support the legacy (tuple) cache format.",
        report=(
            "With PEFT 0.13.2 and transformers 4.45.2, any forward pass of a prefix-tuned Gemma2ForCausalLM fails "
            "with \"AttributeError: 'tuple' object has no attribute 'get_seq_length'\": PEFT passes the prefix as a "
            "legacy tuple of (key, value) pairs and Gemma2 only accepts a Cache (HybridCache). PEFT 0.15.2 with "
            "transformers 4.51.3 works. Repro: Gemma2Config(hidden_size=8, 1 layer, 1 head, head_dim=8), "
            "PrefixTuningConfig(task_type='CAUSAL_LM', num_virtual_tokens=1), one forward pass."
        ),
    ),
    KnownIssue(
        id="tf-4.45-resume-rng-state-weights-only",
        title="transformers 4.45 with torch >= 2.6: resume_from_checkpoint cannot unpickle its own checkpoint",
        references=(),
        found_by_suite=True,
        # Measured: 4.45.2 fails under torch 2.13; 4.51.3 resumes (it loads rng state with an
        # allow-list, transformers#36991 / #37162).
        affects={"transformers": "<4.51", "torch": ">=2.6"},
        properties=("trainer-resume",),
        cases={},
        failure=Failure("UnpicklingError", r"Weights only load failed"),
        report=(
            "With transformers 4.45.2 and torch 2.13, Trainer.train(resume_from_checkpoint=...) fails with "
            "_pickle.UnpicklingError 'Weights only load failed': torch >= 2.6 defaults torch.load to "
            "weights_only=True and the checkpoint's rng_state.pth holds numpy objects. Any model, PEFT or not; "
            "transformers 4.51.3 resumes. Repro: any Trainer run with save_steps=1, then resume_from_checkpoint."
        ),
    ),
    KnownIssue(
        id="peft-1901-gqa-prefix-width",
        title="peft before the GQA fix: the prefix is sized for all heads, not the KV heads",
        references=("https://github.com/huggingface/peft/pull/1901",),
        # Measured: 0.10.0 + 4.40.2 fails for Llama/Mistral with fewer KV heads; 0.13.2 + 4.45.2 passes.
        affects={"peft": "<0.13"},
        properties=(ANY,),
        # GPTBigCode's multi-query layout has its own code path there and passes
        cases={"gqa": (True,), "arch": ("llama", "mistral", "qwen3", "gemma2", "gemma3_text")},
        failure=Failure("RuntimeError", r"Sizes of tensors must match except in dimension"),
    ),
    KnownIssue(
        id="peft-0.10-prompt-classification-head-untracked",
        title="peft 0.10: a prompt-learning classification head is saved under its base name and not restored per adapter",
        references=(),
        found_by_suite=True,
        # Measured on 0.10.0 + 4.40.2; 0.13.2 cannot build these models (peft-2246-...), 0.15.2 is clean.
        affects={"peft": "<0.11"},
        properties=("saved-shapes", "prefix-acts", "dtype-roundtrip", "multi-adapter"),
        cases={"task": (CLS, TOK)},
        failure=Failure(
            "AssertionError|ValueError",
            r"saved tensors \[|adapter disabled vs a fresh base model|fp32 -> bf16 -> fp32|Adapter \w+ not found",
        ),
        report=(
            "With PEFT 0.10.0 (transformers 4.40.2), a prefix-tuning SEQ_CLS/TOKEN_CLS adapter saves its trained head "
            "as 'base_model.score.weight' / 'base_model.classifier.*' while adapter_config.json lists no "
            "modules_to_save: the head is not wrapped per adapter. Consequences seen here: disable_adapter() does "
            "not give back the base model's outputs (the trained head stays), a second named adapter cannot be "
            "loaded next to the first ('Adapter second not found'), and an fp32 -> bf16 -> fp32 round trip changes "
            "outputs beyond the bf16 tolerance. PEFT 0.15.2 saves the head under modules_to_save and passes. Repro: "
            "GPT2Config(n_embd=4, n_head=1, n_layer=1), PrefixTuningConfig(task_type='SEQ_CLS', num_virtual_tokens=1), "
            "one AdamW step, save_pretrained; list the saved tensors and adapter_config.json's modules_to_save."
        ),
    ),
    KnownIssue(
        id="tf-4.40-resume-adapter-checkpoint-not-found",
        title="transformers 4.40: resume_from_checkpoint does not recognise a prompt-learning adapter checkpoint",
        references=(),
        found_by_suite=True,
        # Measured: 4.40.2 (peft 0.10.0) fails for every task; 4.45.2 gets past this check.
        affects={"transformers": "<4.45"},
        properties=("trainer-resume",),
        cases={},
        failure=Failure("ValueError", r"Can't find a valid checkpoint at"),
        report=(
            "With transformers 4.40.2 and PEFT 0.10.0, Trainer.train(resume_from_checkpoint=<checkpoint of a "
            'prefix-tuning PeftModel>) raises "ValueError: Can\'t find a valid checkpoint at .../checkpoint-1" '
            "although the folder holds adapter_model.safetensors and adapter_config.json as Trainer saved them. "
            "Every task type; transformers 4.45.2 resumes past this check. Repro: any tiny model, "
            "PrefixTuningConfig(num_virtual_tokens=1), Trainer(save_steps=1, max_steps=2).train(), then a new "
            "Trainer(...).train(resume_from_checkpoint='<out>/checkpoint-1')."
        ),
    ),
    KnownIssue(
        id="peft-0.10-bloom-generate-twice",
        title="peft 0.10 with transformers 4.40: Bloom's cache conversion fails on a second generate() call",
        references=(),
        found_by_suite=True,
        affects={"peft": "<0.13", "transformers": "<4.45"},
        properties=("generate-roundtrip",),
        cases={"arch": ("bloom",), "task": (CLM,)},
        failure=Failure("ValueError", r"not enough values to unpack \(expected 4, got 3\)"),
        report=(
            "With PEFT 0.10.0 and transformers 4.40.2, generate() on a prefix-tuned BloomForCausalLM works once; "
            "generating again (here: before save, then on the reloaded adapter) fails in "
            "BloomModel._convert_to_bloom_cache: 'not enough values to unpack (expected 4, got 3)', the prefix cache "
            "arriving in Bloom's 3-d layout. Repro: BloomConfig(hidden_size=4, n_head=1, n_layer=1), "
            "PrefixTuningConfig(task_type='CAUSAL_LM', num_virtual_tokens=1), one AdamW step, generate twice."
        ),
    ),
    KnownIssue(
        id="peft-886-gpt-bigcode-fused-cache",
        title="GPTBigCode's fused (3-d) key/value cache cannot take PEFT's 4-d prefix",
        references=("https://github.com/huggingface/peft/issues/886",),
        # Measured: fails with transformers 4.51.3, works with 4.57.6 (GPTBigCode moved to the Cache API).
        affects={"transformers": "<4.57", "peft": ">=0.3"},
        properties=(ANY,),
        # Only GPTBigCode with multi_query=False and several heads: its cache is then 4-d per head
        # group, not the fused 3-d MQA layout PEFT's prefix fits (MQA and single-head models pass).
        cases={"arch": ("gpt_bigcode",), "multi_kv_heads": (True,)},
        failure=Failure("RuntimeError", r"Tensors must have same number of dimensions"),
        notes="peft#886 (open since 2023) is the same crash on tiny_starcoder; peft#2662 drops PEFT's GPTBigCode "
        "special case once transformers#38635 moved the model to the Cache API.",
    ),
    KnownIssue(
        id="tf-5.24-generate-prefix-positions",
        title="transformers 5.24: GPT-2, OPT, GPTBigCode, Bloom apply the prefix differently in generate() than in forward()",
        references=(),
        found_by_suite=True,
        affects={"transformers": ">=5.24.0", "peft": ">=0.3"},
        properties=("generate-first-step",),
        cases={"arch": ("gpt2", "opt", "gpt_bigcode", "bloom"), "task": (CLM,)},
        failure=Failure("OutputMismatch", r"generate\(\) first-step logits"),
        report=(
            "With transformers 5.24 and PEFT 0.21.2, generate()'s first-step logits of a prefix-tuned GPT-2, OPT, "
            "GPTBigCode or Bloom model differ from model(**inputs).logits[:, -1] by 2e-3 to 3e-1 (tiny configs), on rows "
            "without padding; neither equals the base model, so the prefix is applied but the prefill sees other "
            "positions or another mask than forward() (rotary models drop the prefix entirely: "
            "tf-5.24-generate-ignores-prefix). Under transformers 5.23.0 both agree within 6e-8. Repro: GPT2Config("
            "n_embd=8, n_head=1, n_layer=1), PrefixTuningConfig(task_type='CAUSAL_LM', num_virtual_tokens=1), one "
            "AdamW step; compare generate(..., output_logits=True).logits[0] with the forward pass."
        ),
    ),
    KnownIssue(
        id="peft-2821-encoder-decoder-key-cache",
        title="PEFT < 0.18 on transformers >= 4.56: encoder-decoder prefix tuning reads the removed DynamicCache.key_cache",
        references=("https://github.com/huggingface/peft/issues/2821", "https://github.com/huggingface/peft/pull/2737"),
        affects={"peft": "<0.18", "transformers": ">=4.56"},
        properties=(ANY,),
        cases={"task": (S2S,)},
        failure=Failure("AttributeError", r"'DynamicCache' object has no attribute 'key_cache'"),
    ),
    KnownIssue(
        id="peft-2881-explicit-head-dim",
        title="PEFT < 0.18 sizes the prefix with hidden/heads, not the config's explicit head_dim (Qwen3, Mistral, Gemma)",
        references=("https://github.com/huggingface/peft/issues/2881", "https://github.com/huggingface/peft/pull/2883"),
        # transformers 4.40 ignores an explicit head_dim (Mistral passes there with peft 0.10.0)
        affects={"peft": "<0.18", "transformers": ">=4.41"},
        properties=(ANY,),
        cases={"explicit_head_dim": (True,), "arch": ("qwen3", "mistral", "gemma2", "gemma3_text")},
        failure=Failure(
            "RuntimeError",
            r"Sizes of tensors must match except in dimension 2"
            r"|index_copy_\(\): Source/destination tensor must have same slice shapes",  # Gemma's HybridCache
        ),
    ),
    KnownIssue(
        id="peft-0.17-gemma-hybrid-cache-classification",
        title="PEFT < 0.18 on transformers >= 4.56: Gemma2/Gemma3 classification heads never get max_cache_len",
        references=(),
        found_by_suite=True,
        affects={"peft": "<0.18", "transformers": ">=4.56"},
        properties=(ANY,),
        cases={"arch": ("gemma2", "gemma3_text"), "task": (CLS, TOK)},
        failure=Failure("ValueError", r"max_cache_len is None but it should have been passed"),
        report=GEMMA_017_REPORT,
    ),
    KnownIssue(
        id="peft-0.17-gemma-hybrid-cache-layers",
        title="PEFT < 0.18 on transformers >= 4.56: Gemma2/Gemma3 causal LMs fail unless they have exactly 2 layers",
        references=(),
        found_by_suite=True,
        affects={"peft": "<0.18", "transformers": ">=4.56"},
        properties=(ANY,),
        cases={"arch": ("gemma2", "gemma3_text"), "task": (CLM,), "num_layers": ANY_BUT_TWO_LAYERS},
        failure=Failure(
            "IndexError|RuntimeError",
            r"index \d+ is out of bounds|tuple index out of range"
            r"|index_copy_\(\): Source/destination tensor must have same slice shapes",
        ),
        report=GEMMA_017_REPORT,
    ),
    KnownIssue(
        id="peft-cls-fallback-takes-cache-as-pooled-output",
        title="SEQ_CLS fallback path feeds the returned cache to RoBERTa's classifier as if it were the pooled output",
        references=(),
        found_by_suite=True,
        # transformers-side: 4.51.3 returns no cache from RobertaModel (peft 0.15.2 and 0.17.1 pass)
        affects={"transformers": ">=4.52,<5.0", "peft": ">=0.3"},
        properties=(ANY,),
        cases={"arch": ("roberta",), "task": (CLS,)},
        failure=Failure("TypeError", r"'<' not supported between instances of 'tuple' and 'int'"),
        report=(
            "With transformers 4.57.6 (PEFT 0.17.1), RobertaForSequenceClassification.forward has no past_key_values "
            "argument, so PeftModelForSequenceClassification._prefix_tuning_forward calls the backbone itself and "
            "takes `pooled_output = outputs[1] if len(outputs) > 1 else outputs[0]`. RobertaModel is built without a "
            "pooler for classification, so outputs[1] is the returned DynamicCache; the classifier then indexes it "
            "(features[:, 0, :]) and DynamicCache.__getitem__ fails with \"TypeError: '<' not supported between "
            "instances of 'tuple' and 'int'\". The fallback should use the model's own head on the sequence output "
            "(or check for a pooler). Repro: RobertaConfig(hidden_size=8, num_attention_heads=2, num_hidden_layers=1), "
            "PrefixTuningConfig(task_type='SEQ_CLS', num_virtual_tokens=1), one forward pass."
        ),
    ),
    KnownIssue(
        id="bloom-classification-num-items-in-batch",
        title="Trainer passes num_items_in_batch through PEFT's **kwargs; Bloom's classification heads reject it",
        references=("https://github.com/huggingface/transformers/issues/35838",),
        affects={"transformers": ">=4.46,<5.0", "peft": ">=0.3"},
        properties=("trainer-best-model", "trainer-best-workaround", "trainer-resume"),
        cases={"arch": ("bloom",), "task": (CLS, TOK)},
        failure=Failure("ValueError|TypeError", r"num_items_in_batch"),
        notes="Trainer >= 4.46 passes num_items_in_batch when forward() takes **kwargs (PeftModel's does); "
        "Bloom's 4.x forward raises 'Got unexpected arguments' for it. transformers 5.x Bloom accepts it.",
    ),
    KnownIssue(
        id="trainer-named-adapter-checkpoints",
        title="load_best_model_at_end looks for the adapter only in the checkpoint root: a named adapter is never restored",
        references=("https://github.com/huggingface/transformers/pull/36201",),
        affects={"transformers": ">=4.36", "peft": ">=0.3"},
        properties=("trainer-best-model",),
        cases={"named_adapter": (True,)},
        failure=Failure("AssertionError", r"did not load the best checkpoint"),
        notes="transformers#36201 (open) makes _load_best_model look in the adapter's subfolder.",
        report=(
            "PeftModel.save_pretrained writes an adapter named X (X != 'default') to <checkpoint>/X/, but "
            "Trainer._load_best_model looks for adapter_model.safetensors in <checkpoint>/ only (unlike "
            "_load_from_checkpoint, which scans adapter subfolders). With get_peft_model(..., adapter_name='X') and "
            "load_best_model_at_end=True the best model is silently not restored (only a warning: 'The intermediate "
            "checkpoints of PEFT may not be saved correctly'); training ends with the last model. Repro: "
            "any prefix-tuning model with adapter_name='other', Trainer(load_best_model_at_end=True, "
            "metric_for_best_model='eval_loss', save/eval every step)."
        ),
    ),
    KnownIssue(
        id="peft-2256-trainer-best-model-projection",
        title="Trainer cannot reload a prefix_projection=True checkpoint (load_best_model_at_end, resume_from_checkpoint)",
        references=(
            "https://github.com/huggingface/peft/issues/2256",
            "https://github.com/huggingface/transformers/pull/35087",
        ),
        # Not fixed in any PEFT release: the saved table has the inference shape only.
        affects={"peft": ">=0.3"},
        properties=("trainer-best-model", "trainer-resume"),
        cases={"prefix_projection": (True,)},
        failure=Failure("RuntimeError", r"size mismatch|load_best_model_at_end=True can lead to errors"),
        notes="Workaround: load_best_model_at_end=False, then PeftModel.from_pretrained(base, best_checkpoint).",
    ),
    KnownIssue(
        id="peft-prompt-learning-not-trainable-on-load",
        title="PeftModel.from_pretrained(..., is_trainable=True) refuses prompt-learning adapters",
        references=("https://github.com/huggingface/peft/issues/2256",),
        affects={"peft": ">=0.3"},
        properties=("trainable-reload",),
        cases={},
        failure=Failure("ValueError", r"Cannot set a prompt learning adapter to trainable"),
        notes="By design today (the saved table cannot be inverted to the projection MLP); stale once a release allows it.",
    ),
)


def matching(prop: str, case: Case, versions: dict[str, str] | None = None) -> tuple[KnownIssue, ...]:
    """Every entry covering (property, case) under the installed versions, in registry order."""
    return tuple(issue for issue in REGISTRY if issue.applies(prop, case, versions))


def validate(registry: tuple[KnownIssue, ...] = REGISTRY) -> None:
    """Raise ValueError naming the first malformed entry (used by the self-tests)."""
    seen = set()
    for issue in registry:
        where = f"known issue {issue.id!r}"
        if issue.id in seen:
            raise ValueError(f"{where}: duplicate id")
        seen.add(issue.id)
        if not issue.references and not issue.found_by_suite:
            raise ValueError(f"{where}: needs an upstream reference or found_by_suite=True")
        if issue.found_by_suite and not issue.report:
            raise ValueError(f"{where}: found by this suite but carries no report to file upstream")
        for prop in issue.properties:
            if prop != ANY and prop not in PROPERTIES:
                raise ValueError(f"{where}: unknown property {prop!r}")
        for pkg, spec in issue.affects.items():
            parse_spec(pkg, spec)
        for fact in issue.cases:
            if fact not in FACTS:
                raise ValueError(f"{where}: unknown case fact {fact!r}; known: {', '.join(FACTS)}")
        re.compile(issue.failure.match)


def markdown_table(registry: tuple[KnownIssue, ...] = REGISTRY) -> str:
    """The registry as a Markdown table (README's known-issue section is generated from this)."""
    rows = ["| id | what fails | affects | reference |", "|---|---|---|---|"]
    for issue in registry:
        affects = ", ".join(f"{k} {v}" for k, v in issue.affects.items())
        refs = " ".join(f"[{r.rsplit('/', 3)[-3]}#{r.rsplit('/', 1)[-1]}]({r})" for r in issue.references)
        ref = refs or "found by this suite (report in the entry)"
        rows.append(f"| `{issue.id}` | {issue.title} | {affects} | {ref} |")
    return "\n".join(rows)


README_MARKERS = ("<!-- known-issues:start -->", "<!-- known-issues:end -->")


def readme_with_table(text: str) -> str:
    """README text with the known-issue table between its markers replaced by the registry's."""
    start, end = README_MARKERS
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{markdown_table()}\n{end}{tail}"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if sys.argv[1:2] == ["--write-readme"]:
        readme = Path(sys.argv[2] if len(sys.argv) > 2 else "README.md")
        readme.write_text(readme_with_table(readme.read_text()))
    else:
        print(markdown_table())
