"""Every property and claim is shown to fail: a realistic fault is injected into PEFT or
transformers and the claim it breaks must come out *failed* (not passed, not a known issue, not
blocked); without the fault the same case passes that claim.

This runs on every install the self-tests run on (the known-good pins and the peft-latest pins),
so a fault can never hide behind the registry: a scenario lists candidate cases (Llama and GPT-2
causal LMs, BART seq2seq, classification, projection, bf16), and on each install uses the first
one no registry entry covers at the claim or at a step before it. Every fault must find such a
case on every install (test_every_fault_is_shown_on_this_install).

The reproduction script of each scenario's case (prefixcheck.repro) runs the same check code: it
gives the claim the suite's verdict, clean and under the fault (it is run here in this process,
where the fault is installed, through the script's own `judge()`; tests/selftest/test_reproductions.py
runs scripts as the standalone processes they are).
"""

from __future__ import annotations

import functools
import runpy
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from prefixcheck import methods, properties, records, registry, repro, verdicts
from prefixcheck.case import SECOND_ADAPTER, AttentionLayout, Case, ModelSpec, PrefixSpec, Recipe
from prefixcheck.registry import StaleKnownIssue
from prefixcheck.runner import run_property
from prefixcheck.versions import features
from tests.selftest import faults

pytestmark = pytest.mark.selftest

# Llama with GQA, 2 layers, a padded batch.
GQA = AttentionLayout(hidden_size=16, num_heads=4, num_kv_heads=2, head_dim=4)
MHA = AttentionLayout(hidden_size=16, num_heads=4, num_kv_heads=4, head_dim=4)
BASE = Case(
    model=ModelSpec(arch="llama", num_layers=2, layout=GQA),
    task="CAUSAL_LM",
    prefix=PrefixSpec(num_virtual_tokens=4),
    recipe=Recipe(steps=2, learning_rate=5e-2, batch_size=2, seq_len=6, num_padded=2),
    seed=3,
)
PROJECTED = BASE.with_prefix(prefix_projection=True, encoder_hidden_size=8)
GPT2 = BASE.replace(model=ModelSpec(arch="gpt2", num_layers=2, layout=MHA))
BART = BASE.replace(model=ModelSpec(arch="bart", num_layers=2, layout=MHA), task="SEQ_2_SEQ_LM")
CLS = BASE.replace(task="SEQ_CLS")
TOKEN_CLS = GPT2.replace(task="TOKEN_CLS")
BF16 = BASE.replace(dtype="bfloat16")
SECOND = PrefixSpec(num_virtual_tokens=4, adapter_name=SECOND_ADAPTER)
RIGHT = BASE.with_recipe(padding_side="right")  # input-paths compares a right-padded row with itself alone
# Every other prompt-learning method on the same Llama (the installed PEFT's methods only).
METHOD_OPTIONS = {
    methods.P_TUNING: (("encoder_hidden_size", 8), ("encoder_reparameterization_type", "MLP")),
    methods.PROMPT_TUNING: (("prompt_tuning_init", "RANDOM"),),
    methods.MULTITASK_PROMPT_TUNING: (("num_ranks", 1), ("num_tasks", 2), ("prompt_tuning_init", "RANDOM")),
    methods.CPT: (("cpt_mask", (1, 1, 1, 1)), ("cpt_token_ids", (5, 6, 7, 8)), ("cpt_tokens_type_mask", (1, 2, 3, 4))),
    methods.CARTRIDGE: (),
}
BY_METHOD = {
    f"llama-{name.lower().replace('_', '-')}": BASE.replace(
        prefix=PrefixSpec(num_virtual_tokens=4, method=name, options=options)
    )
    for name, options in METHOD_OPTIONS.items()
    if name in methods.available()
}
CASES = {
    "llama": BASE,
    "llama-right": RIGHT,
    "gpt2-right": GPT2.with_recipe(padding_side="right"),
    "llama-projection": PROJECTED,
    "gpt2": GPT2,
    "bart-seq2seq": BART,
    "llama-seq-cls": CLS,
    "gpt2-token-cls": TOKEN_CLS,
    "llama-bf16": BF16,
    **BY_METHOD,
}


@dataclass(frozen=True)
class Scenario:
    prop: str
    fault: Callable[[faults.Patch], None]
    breaks: str  # the claim or step the fault must turn red
    candidates: tuple[str, ...]  # names in CASES, tried in order
    # The output kind the fault produces at `breaks`, where known: a candidate whose install already
    # fails there with another kind still shows the fault (the kind changes); with the same kind, not.
    kind: str = ""
    # "property:point" and kind: where every candidate already fails that way on this install (a
    # registry entry says so), the fault's effect cannot show (e.g. a fault in generate()'s later
    # steps, where generate() drops the prefix altogether): the scenario is skipped, with the entry
    masked_by: tuple[str, str] = ()
    label: str = ""  # tells apart scenarios of one fault at one claim with other candidates

    @property
    def id(self) -> str:
        return f"{self.prop}:{self.breaks}:{self.fault_name}" + (f"@{self.label}" if self.label else "")

    @property
    def fault_name(self) -> str:
        fn = self.fault.func if isinstance(self.fault, functools.partial) else self.fault
        return fn.__name__

    def context(self) -> dict:
        return {"second": SECOND} if self.prop == "multi-adapter" else {}

    def case(self) -> tuple[str, Case] | None:
        """The first candidate no registry entry covers at `breaks` or at a step before it."""
        for name in self.candidates:
            if self.usable(CASES[name]):
                return name, CASES[name]
        return None

    def masked(self) -> list[str]:
        """The entries that hide this fault on every candidate case, or [] where one is not hidden."""
        if not self.masked_by:
            return []
        prop, point = self.masked_by[0].split(":")
        found = []
        for name in self.candidates:
            hiding = [
                issue.id
                for issue in matching(prop, CASES[name])
                for failure in issue.fails
                if point in failure.places(prop, CASES[name]) and failure.output == self.masked_by[1]
            ]
            if not hiding:
                return []
            found += hiding
        return sorted(set(found))

    def usable(self, case: Case) -> bool:
        prop = properties.get(self.prop)
        if prop.cuda and not features().cuda:
            return False
        if prop.generative_only and case.task not in ("CAUSAL_LM", "SEQ_2_SEQ_LM"):
            return False
        blocking = set(prop.steps)  # a known failure at a step blocks everything after it
        if self.breaks in [c.name for c in prop.claims]:
            blocking |= set(prop.claim(self.breaks).needs)
        for issue in matching(self.prop, case):
            for failure in issue.fails:
                places = set(failure.places(self.prop, case))
                if places & blocking - {self.breaks}:
                    return False
                if self.breaks in places and not (self.kind and failure.output and failure.output != self.kind):
                    return False
        return True


_ALL = tuple(name for name in CASES if name not in BY_METHOD)  # prefix tuning's
_GEN = ("llama", "gpt2", "bart-seq2seq", "llama-projection", "llama-bf16")
_CLM = ("llama", "gpt2", "llama-projection", "llama-bf16")
_RIGHT = ("llama-right", "gpt2-right")
_KV = functools.partial(faults.swap_key_and_value_on_load, num_layers=BASE.model.num_layers)
_DRIFT_ON_RESAVE = functools.partial(faults.drop_config_key_on_save, skip_saves=1)
_TRAINABLE_FAULTY = functools.partial(faults.allow_trainable_prompt_learning, then=lambda t: t + 1e-3)

SCENARIOS = (
    Scenario("saved-shapes", faults.save_training_embedding, "table-shape", ("llama-projection",)),
    Scenario("saved-shapes", faults.save_training_embedding, "table-equals-live", ("llama-projection",)),
    Scenario("config-roundtrip", faults.drop_config_key_on_save, "saved-equals-live", ("llama-projection",)),
    Scenario("resave-identical", faults.perturb_loaded_table, "tensors-identical", _ALL),
    Scenario("reload-equality", _KV, "reloaded-equals-trained", _ALL),
    Scenario("reload-equality", _KV, "reloaded-equals-trained", ("bart-seq2seq",), label="seq2seq"),
    Scenario("reload-equality", _KV, "reloaded-equals-trained", ("llama-seq-cls", "gpt2-token-cls"), label="cls"),
    Scenario("reload-equality", _KV, "reloaded-equals-trained", ("llama-bf16",), label="bf16"),
    Scenario("reload-equality", faults.prefix_detached_from_graph, "train", _ALL),
    Scenario("prefix-acts", faults.prefix_ignored_in_eval, "prefix-changes-outputs", ("llama", "gpt2")),
    Scenario("generate-first-step", faults.generate_ignores_prefix, "uses-prefix", _GEN, "prefix-ignored"),
    Scenario("generate-first-step", faults.generate_ignores_prefix, "matches-forward", _GEN, "prefix-ignored"),
    Scenario("generate-roundtrip", faults.load_another_table, "first-step-survives", _GEN),
    Scenario("generate-roundtrip", faults.load_another_table, "tokens-survive", _GEN),
    # where generate() drops the prefix upstream (transformers 5.24) no table fault can show in it:
    Scenario("reload-equality", faults.load_another_table, "reloaded-equals-trained", _ALL),
    Scenario("trainer-best-model", faults.trainer_keeps_last_model, "restored-equals-best", _ALL),
    Scenario("trainer-best-model", faults.trainer_keeps_last_model, "best-adapter-loaded", _ALL),
    Scenario("trainer-best-workaround", faults.perturb_from_pretrained, "workaround-equals-best", _ALL),
    Scenario("trainer-resume", faults.resume_forgets_optimizer, "resumed-equals-uninterrupted", _ALL),
    Scenario("multi-adapter", faults.save_active_adapter_only, "second-reproduces", _ALL),
    Scenario("multi-adapter", faults.set_adapter_does_not_switch, "add-adapter", _ALL),
    Scenario("dtype-roundtrip", faults.round_saved_table_to_model_dtype, "table-bitwise-via-bf16", _ALL),
    Scenario("dtype-roundtrip", faults.another_table_on_low_precision_load, "bf16-within-tolerance", _ALL),
    Scenario("dtype-roundtrip", faults.another_table_on_low_precision_load, "back-to-fp32", _ALL),
    Scenario("saved-shapes", faults.save_encoder_weights_too, "nothing-else-saved", _ALL),
    Scenario("config-roundtrip", faults.loaded_config_loses_projection, "loaded-equals-saved", ("llama-projection",)),
    Scenario("prefix-acts", faults.disable_adapter_does_nothing, "disable-restores-base", _ALL),
    Scenario("generate-roundtrip", faults.generate_ignores_prefix, "uses-prefix", _GEN, "prefix-ignored"),
    Scenario("multi-adapter", faults.load_adapter_overwrites_others, "first-reproduces", _ALL),
    Scenario("resave-identical", _DRIFT_ON_RESAVE, "config-identical", ("llama-projection",)),
    Scenario("cuda-roundtrip", faults.perturb_loaded_table, "reloaded-equals-trained", _ALL),
    Scenario("cpu-cuda-transfer", _KV, "equals-across-devices", _ALL),
    Scenario("input-paths", faults.prefix_dropped_for_inputs_embeds, "embeds-equal-ids", _RIGHT, "prefix-ignored"),
    Scenario("input-paths", faults.prefix_dropped_without_mask, "no-mask-equals-ones", _RIGHT, "prefix-ignored"),
    Scenario("input-paths", faults.positions_not_shifted_past_prefix, "explicit-positions-equal-none", _RIGHT),
    Scenario("input-paths", faults.prefix_dropped_with_labels, "labels-leave-logits", _RIGHT, "prefix-ignored"),
    Scenario(
        "input-paths", faults.prefix_dropped_for_padded_batches, "padded-row-equals-alone", _RIGHT, "prefix-ignored"
    ),
    # positions counted from the first real token, not shifted past the prefix: the left-padded row moves
    Scenario("input-paths", faults.positions_not_shifted_past_prefix, "left-padded-row-equals-alone", _RIGHT),
    Scenario(
        "generate-paths",
        faults.decode_steps_feed_another_token,
        "every-step-matches-forward",
        _CLM,
        masked_by=("generate-first-step:uses-prefix", "prefix-ignored"),
    ),
    Scenario(
        "generate-paths",
        faults.generate_leaves_prefix_changed,
        "second-call-identical",
        _CLM,
        masked_by=("generate-first-step:uses-prefix", "prefix-ignored"),
    ),
    Scenario("generate-paths", faults.beam_search_drops_prefix, "beam-matches-forward", _CLM, "prefix-ignored"),
    Scenario("generate-paths", faults.prefix_dropped_without_cache, "no-cache-equals-cache", _CLM, "prefix-ignored"),
)


def _by_method() -> tuple[Scenario, ...]:
    """Each other method's own layout broken on purpose, on the installed PEFT's methods: its loaded
    table (every method), and what only that method saves or computes."""
    own = {
        methods.P_TUNING: ("saved-shapes", faults.save_training_embedding, "table-equals-live"),  # not the MLP's output
        methods.CPT: ("saved-shapes", faults.save_training_embedding, "table-equals-live"),  # no projected delta
        methods.MULTITASK_PROMPT_TUNING: (
            "reload-equality",
            faults.perturb_loaded_task_factors,
            "reloaded-equals-trained",
        ),
        methods.PROMPT_TUNING: ("prefix-acts", faults.prefix_ignored_in_eval, "prefix-changes-outputs"),
        methods.CARTRIDGE: ("saved-shapes", faults.save_encoder_weights_too, "nothing-else-saved"),
    }
    out = []
    for name, case in BY_METHOD.items():
        method = case.prefix.method
        out.append(
            Scenario("reload-equality", faults.perturb_loaded_table, "reloaded-equals-trained", (name,), label=name)
        )
        prop, fault, breaks = own[method]
        out.append(Scenario(prop, fault, breaks, (name,), label=name))
    return tuple(out)


SCENARIOS = SCENARIOS + _by_method()
BY_ID = {s.id: s for s in SCENARIOS}
assert len(BY_ID) == len(SCENARIOS), "two scenarios share an id: give one a label"


def matching(prop: str, case: Case):
    return registry.default().matching(prop, case)


@pytest.fixture
def recorder(monkeypatch, tmp_path):
    """A private outcome recorder and reports folder, so self-tests never touch the summary."""
    monkeypatch.setenv("PREFIXCHECK_REPORTS", str(tmp_path / "reports"))
    return records.Recorder()


def _verdict(recorder: records.Recorder, scenario: Scenario, case: Case) -> list:
    record = recorder.records[(scenario.prop, case.key)]
    return record.claims.get(scenario.breaks) or record.steps.get(scenario.breaks) or ["passed", None]


def _script_verdict(scenario: Scenario, case: Case, folder) -> str:
    """The verdict the scenario's reproduction script gives its claim, run in this process (where
    any fault is installed) through the script's own judge()."""
    path = repro.write(
        scenario.prop, case, folder / f"{scenario.fault_name}.py", point=scenario.breaks, **scenario.context()
    )
    judged, _ = runpy.run_path(str(path), run_name="reproduction")["judge"]()
    return judged.points.get(scenario.breaks, (verdicts.BLOCKED, None))[0]


def _as_the_script_sees_it(verdict: str) -> str:
    """A script knows no registry: what the suite calls known is a failure there."""
    return verdicts.FAILED if verdict == verdicts.KNOWN else verdict


def _covered(scenario: Scenario, case: Case) -> bool:
    return any(scenario.breaks in issue.places(scenario.prop, case) for issue in matching(scenario.prop, case))


def _pick(scenario: Scenario) -> Case:
    if properties.get(scenario.prop).cuda and not features().cuda:
        pytest.skip("needs a CUDA device (none here)")
    if scenario.masked():
        pytest.skip(
            f"{scenario.id}: hidden on this install, where {', '.join(scenario.masked())} already fails every case"
        )
    picked = scenario.case()
    if picked is None:
        pytest.skip(f"{scenario.id}: every candidate case is covered by a known issue on this install")
    return picked[1]


# Claims no fault scenario turns red yet, each with the reason. The list is exact: a new claim
# without a scenario, or a scenario for a claim listed here, fails the test below.
UNSHOWN = {
    "trainer-best-model:best-differs-from-last": "the recipe's precondition, not a claim about PEFT: it is "
    "inconclusive or holds, never failed",
    "trainer-best-model:best-is-lowest-loss": "not yet shown: needs a fault in Trainer's best-metric bookkeeping",
    "multi-adapter:adapters-differ": "not yet shown: a shared-encoder fault also stops the add-adapter step",
    "multi-adapter:switching-switches": "set_adapter_does_not_switch stops the add-adapter step first "
    "(training the second adapter moves nothing): shown there",
    "trainable-reload:continued-equals-original": "fails the known way on every release; shown by the three "
    "allow_trainable_prompt_learning tests at the end",
    "generate-paths:embeds-generate-equals-ids": "fails the known way on every release "
    "(peft-prompt-learning-generate-inputs-embeds): generate() never gets as far as the comparison",
}


def test_every_property_has_a_fault_scenario():
    # trainable-reload fails the known way on every release: its faults are the three tests at the end
    assert {s.prop for s in SCENARIOS} | {"trainable-reload"} == set(properties.NAMES)


def test_every_claim_is_shown_red_or_listed_with_its_reason():
    claims = {f"{p.name}:{c.name}" for p in properties.ALL for c in p.claims}
    shown = {f"{s.prop}:{s.breaks}" for s in SCENARIOS}
    assert claims - shown == set(UNSHOWN), "claims without a fault scenario must be listed in UNSHOWN, and only those"


def _already_broken(scenario: Scenario) -> list[str]:
    """Entries that say this install already fails the scenario's claim exactly as its fault would,
    on every candidate case: injecting the fault there cannot change what is observed."""
    found = []
    for name in scenario.candidates:
        case = CASES[name]
        same = [
            issue.id
            for issue in matching(scenario.prop, case)
            for failure in issue.fails
            if scenario.breaks in failure.places(scenario.prop, case) and failure.output == scenario.kind
        ]
        if not same:
            return []
        found += same
    return sorted(set(found))


@pytest.mark.parametrize("fault", sorted({s.fault_name for s in SCENARIOS if not properties.get(s.prop).cuda}))
def test_every_fault_is_shown_on_this_install(fault):
    """No fault hides behind the registry: each finds a case no entry covers, here, unless the
    install already has exactly the bug the fault injects (then nothing could tell them apart)."""
    scenarios = [s for s in SCENARIOS if s.fault_name == fault]
    if all(s.masked() for s in scenarios):
        hidden = sorted({i for s in scenarios for i in s.masked()})
        pytest.skip(f"fault {fault}: hidden on this install by {', '.join(hidden)} (generate() drops the prefix)")
    if any(s.case() is not None and not s.masked() for s in scenarios):
        return
    broken = sorted({i for s in scenarios for i in _already_broken(s)})
    if broken and all(_already_broken(s) or s.case() is None for s in scenarios):
        pytest.skip(f"fault {fault}: this install already fails that way everywhere ({', '.join(broken)})")
    pytest.fail(f"fault {fault}: every scenario's cases are covered by known issues on this install")


@pytest.mark.parametrize("sid", sorted(BY_ID))
def test_clean_run_passes_the_claim(sid, recorder, tmp_path):
    scenario = BY_ID[sid]
    case = _pick(scenario)
    if scenario.prop == "trainable-reload":
        pytest.skip("the clean behaviour is a known issue on every release; see test_trainable_reload_*")
    run_property(scenario.prop, case, recorder=recorder, **scenario.context())
    clean = verdicts.KNOWN if scenario.kind and _covered(scenario, case) else verdicts.PASSED
    assert _verdict(recorder, scenario, case)[0] == clean, recorder.records
    assert _script_verdict(scenario, case, tmp_path) == _as_the_script_sees_it(clean), "the script disagrees"


@pytest.mark.parametrize("sid", sorted(BY_ID))
def test_fault_turns_the_claim_red(sid, recorder, monkeypatch, tmp_path):
    scenario = BY_ID[sid]
    case = _pick(scenario)
    scenario.fault(monkeypatch.setattr)
    with pytest.raises(Exception) as info:
        run_property(scenario.prop, case, recorder=recorder, **scenario.context())
    assert not isinstance(info.value, StaleKnownIssue), info.value
    assert _verdict(recorder, scenario, case)[0] == verdicts.FAILED, recorder.records
    assert "Reproduction script" in "\n".join(getattr(info.value, "__notes__", [])), "no reproduction attached"
    monkeypatch.undo()  # the script gets a fault of its own: some count the saves they see
    patch = faults.Patcher()
    scenario.fault(patch)
    try:
        assert _script_verdict(scenario, case, tmp_path) == verdicts.FAILED, "the script does not see the fault"
    finally:
        patch.undo()


def test_trainable_reload_is_known_to_raise_today(recorder):
    """The installed PEFT refuses is_trainable=True for prompt learning: counted as known."""
    run_property("trainable-reload", BASE, recorder=recorder)
    assert recorder.records[("trainable-reload", BASE.key)].outcome == verdicts.KNOWN


def test_trainable_reload_entry_goes_stale_when_peft_allows_it(recorder, monkeypatch):
    """If a PEFT release allows it and continued training matches, the suite says the entry is stale."""
    faults.allow_trainable_prompt_learning(monkeypatch.setattr)
    with pytest.raises(StaleKnownIssue, match="looks fixed"):
        run_property("trainable-reload", BASE, recorder=recorder)


def test_trainable_reload_catches_a_faulty_trainable_load(recorder, monkeypatch):
    _TRAINABLE_FAULTY(monkeypatch.setattr)
    with pytest.raises(AssertionError) as info:
        run_property("trainable-reload", BASE, recorder=recorder)
    assert not isinstance(info.value, StaleKnownIssue)
    assert recorder.records[("trainable-reload", BASE.key)].claims["continued-equals-original"][0] == "failed"


def test_an_embedding_methods_left_padded_row_is_inconclusive_with_the_reason(recorder):
    """PEFT puts prompt tuning's prompt before the padding and ignores position_ids: the claim
    cannot hold there, so it is not judged (it flipped with the seed: 1 in 3 examples failed)."""
    case = CASES["llama-prompt-tuning"].with_recipe(padding_side="right")
    judged = run_property("input-paths", case, recorder=recorder, raise_failure=False)
    assert judged.points["left-padded-row-equals-alone"][0] == verdicts.INCONCLUSIVE
    assert judged.points["padded-row-equals-alone"][0] == verdicts.PASSED  # the other claims still judge
