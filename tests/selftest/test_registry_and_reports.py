"""The known-issue registry, the outcome judge and the summary counts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from prefixcheck import compare as cmp
from prefixcheck import mismatch, records, registry, runner, verdicts
from prefixcheck import summary as summary_mod
from prefixcheck.case import AttentionLayout, Case, ModelSpec, PrefixSpec
from prefixcheck.registry import Failure, KnownIssue, Registry, StaleKnownIssue, schema, table
from prefixcheck.versions import VersionSpecError, installed, parse_spec, satisfies

pytestmark = pytest.mark.selftest

CASE = Case(
    model=ModelSpec(arch="gpt2", num_layers=1, layout=AttentionLayout(8, 2, 2, 4)),
    task="CAUSAL_LM",
    prefix=PrefixSpec(num_virtual_tokens=2),
)
ENTRY = KnownIssue(
    id="test-entry",
    title="a pretend bug",
    references=("https://example.invalid/1",),
    affects={"peft": ">=0.0.1"},
    cases={"arch": ("gpt2",)},
    fails=(Failure(("reload-equality:load",), exception="ValueError", match=r"pretend"),),
)
OUTPUT_ENTRY = dataclasses.replace(
    ENTRY,
    id="output-entry",
    fails=(Failure(("reload-equality:reloaded-equals-trained",), output="prefix-ignored"),),
)


@pytest.fixture
def recorder(monkeypatch, tmp_path):
    """A recorder of this test's own, and its own reports folder (for the reproduction scripts)."""
    monkeypatch.setenv("PREFIXCHECK_REPORTS", str(tmp_path))
    return records.Recorder()


class Suite:
    """Examples run as the suite runs them, into the test's recorder, judged by the entries it installs
    (none installed: the run's own registry)."""

    def __init__(self, recorder: records.Recorder) -> None:
        self.recorder, self.registry = recorder, None

    def install(self, *entries: KnownIssue) -> None:
        self.registry = Registry(entries, "test")

    def run(self, prop, case, body):
        return runner.run_example(prop, case, body, recorder=self.recorder, registry=self.registry)


@pytest.fixture
def suite(recorder):
    return Suite(recorder)


def _body(load=None, compare=None):
    """A reload-equality body whose `load` step and claim do what the test says."""

    def body(ex, case):
        ex.step("build", lambda: None)
        ex.step("load", load or (lambda: None))
        ex.check("reloaded-equals-trained", compare or (lambda: None))

    return body


def _ignored():
    raise mismatch.PrefixIgnored("reloaded vs trained logits: follows the base model")


def _beyond():
    raise mismatch.BeyondTolerance("reloaded vs trained logits: max |diff| 1e-2", 1e-2)


def _verdicts(recorder):
    return recorder.records[("reload-equality", CASE.key)].claims


def test_the_registry_file_is_well_formed():
    schema.validate(registry.default())
    assert registry.default() == registry.load()


def test_every_entry_written_back_as_toml_reads_the_same():
    """The schema is written once (the records' fields): what `render` writes, `parse` reads back."""
    for issue in registry.default():
        assert registry.parse(schema.render(issue)) == (issue,), issue.id


def test_a_run_can_judge_by_another_registry_file(tmp_path, monkeypatch):
    """PREFIXCHECK_REGISTRY names another file, as array-api-tests' --xfails-file; a missing one is one line."""
    other = tmp_path / "other.toml"
    other.write_text(GOOD)
    monkeypatch.setenv(registry.ENV, str(other))
    assert [i.id for i in registry.default()] == ["x"]
    monkeypatch.setenv(registry.ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(registry.RegistryError, match="nope.toml: cannot read the registry") as info:
        registry.default()
    assert "\n" not in str(info.value)


def test_an_entry_without_bounds_applies_to_every_version():
    """What measuring an entry's bounds judges by: its `affects` dropped, in a new registry, the run's untouched."""
    bounded = dataclasses.replace(ENTRY, affects={"peft": "<0.0.1"})
    reg = Registry((bounded,))
    assert not reg.matching("reload-equality", CASE)
    assert [i.id for i in reg.without_bounds(ENTRY.id).matching("reload-equality", CASE)] == [ENTRY.id]
    assert reg.by_id(ENTRY.id).affects == {"peft": "<0.0.1"}
    with pytest.raises(KeyError):
        reg.without_bounds("no-such-entry")


def test_every_entry_found_here_carries_a_report_and_every_other_a_reference():
    for issue in registry.default():
        assert issue.references or (issue.found_by_suite and len(issue.report) > 200), issue.id


def test_the_seed_is_the_first_class_entry():
    seed = next(i for i in registry.default() if i.id.startswith("peft-2256"))
    assert "https://github.com/huggingface/peft/issues/2256" in seed.references
    assert "https://github.com/huggingface/transformers/pull/35087" in seed.references
    assert seed.places("trainer-best-model") == ("trainer-train",)


GOOD = """
[[issue]]
id = "x"
title = "t"
references = ["https://example.invalid/1"]
affects = { peft = ">=0.1" }
cases = { arch = ["gpt2"] }
[[issue.fails]]
at = ["reload-equality:load"]
exception = "ValueError"
match = "pretend"
"""


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            'at = ["reload-equality:load"]',
            'at = ["no-such-property:load"]',
            "field 'fails': at 'no-such-property:load': unknown property",
        ),
        (
            'at = ["reload-equality:load"]',
            'at = ["reload-equality:teleport"]',
            "'teleport' is not a step or claim of reload-equality",
        ),
        ('at = ["reload-equality:load"]', 'at = ["*:teleport"]', "'teleport' is not a step or claim of *"),
        ('cases = { arch = ["gpt2"] }', 'cases = { colour = ["red"] }', "field 'cases': unknown case fact 'colour'"),
        ('peft = ">=0.1"', 'peft = "~~1"', "field 'affects'"),
        ('peft = ">=0.1"', 'numpy = ">=1"', "field 'affects'"),
        ('references = ["https://example.invalid/1"]', "", "field 'references': needs an upstream reference"),
        ('references = ["https://example.invalid/1"]', "found_by_suite = true", "field 'report': found by this suite"),
        ('exception = "ValueError"', 'output = "wobbly"', "unknown output kind 'wobbly'"),
        ('exception = "ValueError"', 'exception = "ValueError"\noutput = "shape"', "exactly one of"),
        ('match = "pretend"', 'match = ""', "an exception needs a message pattern"),
        ('match = "pretend"', 'match = "(("', "match is not a regex"),
        ('title = "t"', 'title = "t"\ncolour = "red"', "field 'colour': unknown field"),
        ('title = "t"', "", "field 'title': missing"),
        ('title = "t"', "title = 3", "field 'title': must be a str"),
        ('title = "t"', 'title = "t"\nupstream = "github"', "field 'upstream': must be one of peft, transformers"),
        ("[[issue.fails]]", "[issue.oops]\n[[issue.fails]]", "field 'oops'"),
        ('id = "x"', 'id = "x', "not valid TOML"),
    ],
)
def test_malformed_entries_are_refused_with_one_line_naming_entry_and_field(old, new, message):
    assert registry.parse(GOOD)  # the unbroken form loads
    with pytest.raises(registry.RegistryError) as info:
        registry.parse(GOOD.replace(old, new, 1), "reg.toml")
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_duplicate_id_is_refused():
    with pytest.raises(registry.RegistryError, match="'x', field 'id': duplicate id"):
        registry.parse(GOOD + GOOD)


def test_a_missing_registry_file_is_one_line(tmp_path):
    with pytest.raises(registry.RegistryError, match="cannot read the registry"):
        registry.load(tmp_path / "nope.toml")


def test_a_matching_failure_at_its_place_counts_as_known(recorder, suite):
    suite.install(ENTRY)
    suite.run("reload-equality", CASE, _body(load=lambda: (_ for _ in ()).throw(ValueError("a pretend failure"))))
    record = recorder.records[("reload-equality", CASE.key)]
    assert record.outcome == "known"
    assert record.steps == {"load": ["known", "test-entry"]}
    assert record.stopped == {"test-entry": ["reloaded-equals-trained"]}  # the claim after the step is blocked


def test_the_same_failure_at_another_place_is_not_excused(recorder, suite):
    suite.install(
        dataclasses.replace(ENTRY, fails=(Failure(("reload-equality:build",), "ValueError", match="pretend"),))
    )
    with pytest.raises(ValueError) as info:
        suite.run("reload-equality", CASE, _body(load=lambda: (_ for _ in ()).throw(ValueError("a pretend failure"))))
    assert "fails this way, but at build, not at load" in "\n".join(info.value.__notes__)


def test_a_passing_place_under_an_entry_is_reported_stale(recorder, suite):
    suite.install(ENTRY)
    with pytest.raises(StaleKnownIssue, match="test-entry.*looks fixed"):
        suite.run("reload-equality", CASE, _body())
    assert recorder.records[("reload-equality", CASE.key)].outcome == "failed"


def test_a_different_failure_is_not_excused(recorder, suite):
    suite.install(ENTRY)
    with pytest.raises(RuntimeError) as info:
        suite.run("reload-equality", CASE, _body(load=lambda: (_ for _ in ()).throw(RuntimeError("something else"))))
    notes = "\n".join(info.value.__notes__)
    assert "known issue test-entry applies at reload-equality:load but expects ValueError" in notes
    assert "Reproduction script" in notes


def test_an_output_entry_never_absorbs_another_kind(recorder, suite):
    suite.install(OUTPUT_ENTRY)
    suite.run("reload-equality", CASE, _body(compare=_ignored))
    assert _verdicts(recorder)["reloaded-equals-trained"] == ["known", "output-entry"]
    with pytest.raises(mismatch.BeyondTolerance):
        suite.run("reload-equality", CASE.replace(seed=9), _body(compare=_beyond))


def test_an_exception_entry_never_absorbs_an_output_failure():
    entry = Failure(("reload-equality:reloaded-equals-trained",), exception="AssertionError", match="logits")
    assert not entry.matches(mismatch.PrefixIgnored("reloaded vs trained logits"))


def test_a_known_hit_stops_only_what_depends_on_it(recorder, suite):
    """prefix-acts: the disable step fails known; the independent claim is still checked."""
    entry = dataclasses.replace(ENTRY, fails=(Failure(("prefix-acts:disable",), "ValueError", match="pretend"),))
    suite.install(entry)

    def body(ex, case):
        ex.check("prefix-changes-outputs", lambda: None)
        ex.check(
            "disable-restores-base", lambda: ex.step("disable", lambda: (_ for _ in ()).throw(ValueError("pretend")))
        )

    suite.run("prefix-acts", CASE, body)
    record = recorder.records[("prefix-acts", CASE.key)]
    assert record.claims == {
        "prefix-changes-outputs": ["passed", None],
        "disable-restores-base": ["blocked", "test-entry"],
    }


def test_a_body_that_skips_a_claim_is_a_suite_bug(recorder, suite):
    with pytest.raises(RuntimeError, match="never checked claim 'disable-restores-base'"):
        suite.run("prefix-acts", CASE, lambda ex, case: ex.check("prefix-changes-outputs", lambda: None))


def test_an_independent_claim_still_fails_after_a_known_hit(recorder, suite):
    entry = dataclasses.replace(ENTRY, fails=(Failure(("prefix-acts:disable",), "ValueError", match="pretend"),))
    suite.install(entry)

    def body(ex, case):
        ex.check("prefix-changes-outputs", _ignored)
        ex.check(
            "disable-restores-base", lambda: ex.step("disable", lambda: (_ for _ in ()).throw(ValueError("pretend")))
        )

    with pytest.raises(mismatch.PrefixIgnored):
        suite.run("prefix-acts", CASE, body)
    record = recorder.records[("prefix-acts", CASE.key)]
    assert record.claims["prefix-changes-outputs"] == ["failed", None]
    assert record.claims["disable-restores-base"] == ["blocked", "test-entry"]


def test_an_inconclusive_claim_is_neither_a_pass_nor_stale(recorder, suite):
    suite.install(OUTPUT_ENTRY)

    def weak():
        raise mismatch.Inconclusive("the prefix moves these outputs by only 1e-9")

    suite.run("reload-equality", CASE, _body(compare=weak))
    record = recorder.records[("reload-equality", CASE.key)]
    assert record.outcome == "inconclusive" and record.claims["reloaded-equals-trained"] == ["inconclusive", None]


def test_the_most_specific_entry_wins_and_the_others_are_named(recorder, suite):
    broad = dataclasses.replace(OUTPUT_ENTRY, id="broad", cases={})
    suite.install(broad, OUTPUT_ENTRY)
    suite.run("reload-equality", CASE, _body(compare=_ignored))
    record = recorder.records[("reload-equality", CASE.key)]
    assert record.claims["reloaded-equals-trained"] == ["known", "output-entry"]
    assert record.also == {"output-entry": ["broad"]}


@pytest.mark.parametrize(
    "change",
    [
        dict(affects={"peft": "<0.0.1"}),
        dict(cases={"arch": ("llama",)}),
        dict(cases_except={"arch": ("gpt2",)}),
        dict(fails=(Failure(("saved-shapes:table-shape",), output="shape"),)),
    ],
)
def test_entries_apply_only_to_their_versions_cases_and_places(change):
    assert ENTRY.applies("reload-equality", CASE)
    assert not dataclasses.replace(ENTRY, **change).applies("reload-equality", CASE)


def test_dev_builds_of_peft_main_stay_inside_open_ranges():
    assert satisfies("peft", ">=0.21", {"peft": "0.21.3.dev0"})
    assert not satisfies("peft", "<=0.21.2", {"peft": "0.21.3.dev0"})


@pytest.mark.parametrize("package, spec", [("peft", "latest!"), ("peft", "==="), ("pefty", ">=1")])
def test_unknown_version_specs_get_a_one_line_error(package, spec):
    with pytest.raises(VersionSpecError) as info:
        parse_spec(package, spec)
    assert "\n" not in str(info.value) and (spec in str(info.value) or package in str(info.value))


def _rec(outcome, issue=None):
    claims = {"reloaded-equals-trained": [outcome, issue]}
    return records.ExampleRecord(outcome, claims=claims, stopped={issue: ["reloaded-equals-trained"]} if issue else {})


def test_counts_are_per_example_and_shrinking_is_forgotten():
    rec = records.Recorder()
    cases = [CASE.replace(seed=i) for i in range(6)]
    for c in cases[:2]:
        rec.record("reload-equality", c, _rec("passed"))
    start = rec.mark()
    rec.record("reload-equality", cases[2], _rec("passed"))
    rec.record("reload-equality", cases[3], _rec("failed"))  # first failure: kept
    rec.record("reload-equality", cases[4], _rec("failed"))  # a shrinking step: forgotten
    rec.record("reload-equality", cases[5], _rec("passed"))  # a shrinking step: forgotten
    rec.record("reload-equality", cases[0], _rec("passed"))  # a replayed example keeps one count
    rec.record("reload-equality", cases[4], _rec("failed"))  # the minimal example: kept
    rec.forget_shrinking(start)
    counts = summary_mod.counts(rec)["reload-equality"]
    assert (counts["passed"], counts["failed"], counts["known"]) == (3, 2, {})
    assert counts["claims"]["reloaded-equals-trained"] == {"passed": 3, "failed": 2}


def test_summary_names_versions_counts_hits_and_unused_entries(tmp_path):
    rec = records.Recorder()
    rec.record("saved-shapes", CASE, _rec("passed"))
    rec.record("saved-shapes", CASE.replace(seed=1), _rec("known", "some-entry"))
    rec.write_part(tmp_path / "part.json")
    merged = records.Recorder()
    merged.load_part(tmp_path / "part.json")
    summary = summary_mod.build(merged, summary_mod.RunFacts("ci", True, live_entries=[ENTRY.id]))
    assert summary["versions"] == installed()
    slot = summary["properties"]["saved-shapes"]
    assert (slot["passed"], slot["failed"], slot["known"]) == (1, 0, {"some-entry": 1})
    assert summary["totals"] == {"passed": 1, "failed": 0, "known": 1, "inconclusive": 0}
    assert summary["known_hits"]["some-entry"]["stopped"] == {"saved-shapes:reloaded-equals-trained": 1}
    assert summary["unused_entries"] == ["test-entry"]
    json.dumps(summary)


def _hit(issue: str, point: str, curated: bool = True):
    """An example that hit `issue` at step `point` (blocking the claim after it)."""
    record = records.ExampleRecord(
        verdicts.KNOWN,
        claims={"disable-restores-base": [verdicts.BLOCKED, issue]},
        steps={point: [verdicts.KNOWN, issue]},
        stopped={issue: ["disable-restores-base"]},
    )
    record.axes = {"families": ["curated" if curated else "discovered"]}
    return record


def test_the_witness_is_the_same_whatever_order_and_split_the_examples_ran_in(tmp_path):
    """known_hits[id].witness: one example that hit the entry, for `matrix bisect --registry`; the
    same one whichever xdist worker ran which example, in whatever order."""
    import random

    issue = "some-entry"
    plain = sorted((CASE.replace(seed=i) for i in range(8)), key=lambda c: c.key)
    # a case only PEFT 0.16 and later can run (init_weights), with a smaller key than the one chosen
    zero = min((CASE.replace(seed=i).with_prefix(init_weights="zero") for i in range(100, 164)), key=lambda c: c.key)
    assert zero.key < plain[1].key
    runs = [("prefix-acts", c, _hit(issue, "disable", curated=c is not plain[0])) for c in [*plain, zero]]
    expected = plain[1]  # plain[0], the smallest key, is a discovered family's
    witnesses = set()
    for seed in range(4):
        shuffled = random.Random(seed).sample(runs, len(runs))
        merged = records.Recorder()
        for part, chunk in enumerate((shuffled[: seed + 1], shuffled[seed + 1 :])):  # two "workers"
            worker = records.Recorder()
            for prop, case, record in chunk:
                worker.record(prop, case, records.ExampleRecord(**vars(record)))
            worker.write_part(tmp_path / f"{seed}-{part}.json")
            merged.load_part(tmp_path / f"{seed}-{part}.json")
        witness = summary_mod.build(merged, summary_mod.RunFacts("ci", True))["known_hits"][issue]["witness"]
        witnesses.add(json.dumps(witness, sort_keys=True))
    assert len(witnesses) == 1
    witness = json.loads(witnesses.pop())
    assert witness == {
        "property": "prefix-acts",
        "point": "disable",  # the step the entry explained, not a claim it blocked
        "case": expected.to_dict(),
        "case_key": expected.key,
        "families": "curated",  # a discovered family's example is never preferred over a curated one
    }


def test_the_known_issues_page_lists_the_registry_as_it_is():
    from prefixcheck.registry import cli

    text = cli.DOC.read_text()
    assert table.with_table(text, registry.default()) == text, "run: python -m prefixcheck.registry --write-doc"


def test_every_field_of_a_place_reaches_the_entry():
    text = GOOD.replace(
        'match = "pretend"',
        'match = "pretend"\ncases_except = { named_adapter = [true] }\n'
        '[[issue.fails]]\nat = ["reload-equality:reloaded-equals-trained"]\noutput = "beyond-tolerance"\n'
        "effect_above = 10.0\ncases = { dtype = ['bfloat16'] }",
    )
    (entry,) = registry.parse(text)
    exc_place, out_place = entry.fails
    assert exc_place.cases_except == {"named_adapter": (True,)}
    assert (out_place.output, out_place.effect_above, out_place.cases) == (
        "beyond-tolerance",
        10.0,
        {"dtype": ("bfloat16",)},
    )
    assert entry.places("reload-equality", CASE) == ("load",)  # float32: the bf16-only place drops out
    assert entry.places("reload-equality", CASE.with_prefix(adapter_name="other")) == ()
    assert entry.effect_above("reload-equality", "reloaded-equals-trained", CASE.replace(dtype="bfloat16")) == 10.0


def test_a_padded_row_is_judged_only_where_padding_alone_leaves_the_base_model_still():
    # the base model's own padded-vs-alone difference (bf16 noise) decides whether the claim can judge
    table = cmp.tolerance(cmp.BATCH_SHAPE, "bfloat16", "cpu")
    assert cmp.batch_shape_tolerance("bfloat16", "cpu", 0.0) == table
    assert cmp.batch_shape_tolerance("bfloat16", "cpu", cmp.CAST_BASE_SHARE * table.atol) == table
    with pytest.raises(mismatch.Inconclusive, match="base model alone moves by 3.125e-02"):
        cmp.batch_shape_tolerance("bfloat16", "cpu", 0.03125)  # T5, bf16, width 256, measured
