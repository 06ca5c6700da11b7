"""The compatibility matrix: every verdict, every kind of bad artifact, the cells file, the report."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from matrix.grid import cells as cells_mod
from matrix.grid import consume, manifest, produce, report, runner
from prefixcheck import registry
from prefixcheck.case import AttentionLayout, Case, ModelSpec, PrefixSpec, Recipe
from prefixcheck.registry import Failure, KnownIssue, schema

pytestmark = pytest.mark.selftest

CASE = Case(
    model=ModelSpec(arch="llama", num_layers=2, layout=AttentionLayout(16, 4, 2, 4)),
    task="CAUSAL_LM",
    prefix=PrefixSpec(num_virtual_tokens=3),
    recipe=Recipe(steps=2, learning_rate=5e-2, batch_size=2, seq_len=6, num_padded=2),
)


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifacts") / "producer"
    index = produce.produce(out, [CASE])
    assert index["written"] == 1 and not index["failed"], index
    return out / CASE.key


@pytest.fixture
def artifact(produced, tmp_path):
    copy = tmp_path / "producer" / CASE.key
    shutil.copytree(produced, copy)
    return copy


def _reseal(folder):
    """Re-write the manifest after a deliberate change, so only the change itself is judged."""
    data = json.loads((folder / "manifest.json").read_text())
    manifest.write(folder, {k: v for k, v in data.items() if k not in ("schema", "files")})


def _verdict(folder):
    return consume.consume_one(folder, "producer")


def test_artifacts_are_safetensors_and_json_only(produced):
    files = [p for p in produced.rglob("*") if p.is_file()]
    assert files and all(p.suffix in (".json", ".safetensors") for p in files), files


def test_a_clean_artifact_passes(artifact):
    result = _verdict(artifact)
    assert result.verdict == "pass", result


def test_produce_again_reuses_what_verifies(produced):
    index = produce.produce(produced.parent, [CASE])
    assert index == {**index, "written": 0, "reused": 1}


def test_changed_outputs_fail_with_the_difference(artifact):
    tensors = load_file(str(artifact / "tensors.safetensors"))
    tensors["logits"] = tensors["logits"] + 1e-3
    save_file(tensors, str(artifact / "tensors.safetensors"))
    _reseal(artifact)
    result = _verdict(artifact)
    assert result.verdict == "fail" and "adapter logits" in result.detail and "max |diff|" in result.detail


def test_changed_generation_fails(artifact):
    tensors = load_file(str(artifact / "tensors.safetensors"))
    tensors["generated"] = tensors["generated"].flip(-1).contiguous()
    save_file(tensors, str(artifact / "tensors.safetensors"))
    _reseal(artifact)
    assert _verdict(artifact).verdict == "fail"


def test_a_base_that_computes_differently_is_not_blamed_on_peft(artifact):
    tensors = load_file(str(artifact / "tensors.safetensors"))
    tensors["base_logits"] = tensors["base_logits"] * 1.01
    save_file(tensors, str(artifact / "tensors.safetensors"))
    _reseal(artifact)
    result = _verdict(artifact)
    assert result.verdict == "base-mismatch" and "control" in result.detail


def test_an_adapter_that_cannot_load_is_a_load_error(artifact):
    table = load_file(str(artifact / "adapter" / "adapter_model.safetensors"))
    table["prompt_embeddings"] = torch.zeros(5, 7)
    save_file(table, str(artifact / "adapter" / "adapter_model.safetensors"))
    _reseal(artifact)
    result = _verdict(artifact)
    assert result.verdict == "load-error" and "size mismatch" in result.detail


def test_a_load_error_the_registry_knows_is_a_known_issue(artifact, monkeypatch):
    table = load_file(str(artifact / "adapter" / "adapter_model.safetensors"))
    table["prompt_embeddings"] = torch.zeros(5, 7)
    save_file(table, str(artifact / "adapter" / "adapter_model.safetensors"))
    _reseal(artifact)
    entry = KnownIssue(
        id="pretend-load-bug",
        title="t",
        references=("https://example.invalid",),
        affects={},
        cases={"arch": ("llama",)},
        fails=(Failure(("reload-equality:load",), exception="RuntimeError", match="size mismatch"),),
    )
    (artifact.parent / "registry.toml").write_text(schema.render(entry))
    monkeypatch.setenv(registry.ENV, str(artifact.parent / "registry.toml"))  # this run's registry file
    result = _verdict(artifact)
    assert (result.verdict, result.issue) == ("known-issue", "pretend-load-bug")


def test_a_case_the_consumer_cannot_build_is_unsupported(artifact):
    data = json.loads((artifact / "manifest.json").read_text())
    data["case"]["model"]["arch"] = "opt"
    data["case"]["task"] = "TOKEN_CLS"  # OPT has no token-classification head
    (artifact / "manifest.json").write_text(json.dumps(data))
    assert _verdict(artifact).verdict == "unsupported"


def test_a_cuda_artifact_is_read_on_a_cpu_cell_within_the_device_tolerance(artifact):
    data = json.loads((artifact / "manifest.json").read_text())
    data["case"]["device"] = "cuda"  # as a CUDA cell records it; the tensors are stored on CPU anyway
    (artifact / "manifest.json").write_text(json.dumps(data))
    _reseal(artifact)
    assert _verdict(artifact).verdict == "pass"


def test_a_cuda_cell_without_a_gpu_says_so(artifact):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = consume.consume_one(artifact, "producer", device="cuda")
    assert result.verdict == "unsupported" and "CUDA" in result.detail
    assert "no GPU" in cells_mod.load().get("peft-0.21.2-tf-5.23-cuda").runnable()


def _truncate(folder):
    path = folder / "adapter" / "adapter_model.safetensors"
    path.write_bytes(path.read_bytes()[:-16])


def _corrupt_tensor(folder):
    path = folder / "tensors.safetensors"
    data = bytearray(path.read_bytes())
    data[-8:] = b"\x00\x00\xc0\x7f" * 2
    path.write_bytes(bytes(data))


def _nan(folder):
    tensors = load_file(str(folder / "tensors.safetensors"))
    tensors["logits"][0, 0, 0] = float("nan")
    save_file(tensors, str(folder / "tensors.safetensors"))
    _reseal(folder)


def _schema(folder):
    data = json.loads((folder / "manifest.json").read_text())
    data["schema"] = 99
    (folder / "manifest.json").write_text(json.dumps(data))


def _missing(folder):
    (folder / "base" / "model.safetensors").unlink()


def _escape(folder):
    data = json.loads((folder / "manifest.json").read_text())
    data["files"]["../../outside.json"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(data))


def _pickle(folder):
    (folder / "adapter" / "adapter_model.bin").write_bytes(b"\x80\x04")
    data = json.loads((folder / "manifest.json").read_text())
    data["files"]["adapter/adapter_model.bin"] = manifest.sha256(folder / "adapter" / "adapter_model.bin")
    (folder / "manifest.json").write_text(json.dumps(data))


def _no_manifest(folder):
    (folder / "manifest.json").unlink()


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_truncate, "sha256 differs"),
        (_corrupt_tensor, "sha256 differs"),
        (_nan, "NaN"),
        (_schema, "schema 99"),
        (_missing, "missing"),
        (_escape, "escapes the artifact folder"),
        (_pickle, "not safetensors or JSON"),
        (_no_manifest, "manifest.json: missing"),
    ],
)
def test_bad_artifacts_are_invalid_with_their_reason(artifact, damage, reason):
    damage(artifact)
    result = _verdict(artifact)
    assert result.verdict == "invalid-artifact" and reason in result.detail, result


def test_consume_writes_every_verdict_and_resumes(artifact, tmp_path):
    out = tmp_path / "results" / "me.json"
    first = consume.consume(artifact.parent.parent, out)
    assert [r["verdict"] for r in first["rows"]] == ["pass"]
    assert consume.consume(artifact.parent.parent, out) == first  # unchanged inputs: reused
    # judged under another registry or tolerance table: judged again, not reused
    out.write_text(json.dumps(dict(first, judged_by="an older registry", rows=[])))
    again = consume.consume(artifact.parent.parent, out)
    assert again["rows"] == first["rows"] and again["judged_by"] == first["judged_by"]


def test_a_cell_that_consumes_named_producers_judges_only_those(artifact, tmp_path):
    run = artifact.parent.parent
    shutil.copytree(artifact.parent, run / "another-producer")
    rows = consume.consume(run, tmp_path / "r.json", producers=("producer",))["rows"]
    assert [r["producer"] for r in rows] == ["producer"]
    rows = consume.consume(run, tmp_path / "all.json")["rows"]
    assert sorted(r["producer"] for r in rows) == ["another-producer", "producer"]


def test_the_report_shows_producer_by_consumer(artifact, tmp_path):
    run = artifact.parent.parent
    consume.consume(run, tmp_path / "results" / "me.json")
    shutil.copytree(run, tmp_path / "artifacts")
    summary = report.write(tmp_path)
    assert summary["grid"] == {"producer -> me": {"pass": 1}}
    assert "| `producer` |" in (tmp_path / "matrix.md").read_text()
    page = (tmp_path / "matrix.html").read_text()
    assert page.startswith("<!doctype html>") and "<details>" in page and "http" not in page.split("<body>")[0]


def test_who_judges_whom_in_the_committed_grid():
    """The PEFT axis judges the PEFT axis and the anchors; the anchors judge every cell; a
    transformers-axis cell judges its own and the anchors' artifacts (cells.Cell.judges)."""
    cells = cells_mod.load()
    released = [c for c in cells if c.needs is None and c.device == "cpu" and not c.unavailable]
    anchors = {"peft-latest", cells.known_good().name}
    tf_axis = {c.name for c in released if "-tf-" in c.name} - anchors
    peft_axis = {c.name for c in released} - tf_axis - anchors
    assert len(peft_axis) >= 12 and len(tf_axis) >= 12
    for cell in released:
        judged = set(cells.producers_for(cell)) & {c.name for c in released}
        if cell.name in anchors:
            assert judged == {c.name for c in released}, cell.name
        elif cell.name in tf_axis:
            assert judged == anchors | {cell.name}, cell.name
        else:
            assert judged == peft_axis | anchors, cell.name


def _cell(name, **kw):
    return cells_mod.Cell(name=name, peft="0.1", transformers="4", accelerate="1", **kw)


def test_the_run_plan_starts_each_process_once_what_it_judges_is_produced():
    anchor, old = _cell("anchor", known_good=True), _cell("old")
    axis = _cell("axis", consumes=("anchor",), judged_by=("anchor",))
    grid = cells_mod.Cells((old, anchor, axis))
    tasks = runner.plan([old, anchor, axis], "all", grid)
    got = [(t.stage, t.cell.name, sorted(t.after)) for t in tasks]
    # the producer others wait on first; the axis cell in one process after it; consumers last
    assert got == [
        ("produce", "anchor", []),
        ("produce", "old", []),
        ("produce-consume", "axis", ["anchor"]),
        ("consume", "old", ["anchor"]),
        ("consume", "anchor", ["axis", "old"]),
    ]
    # one stage at a time (a CI job per cell): no one-process tasks, and consume waits on nothing
    assert [(t.stage, t.cell.name) for t in runner.plan([axis], "produce", grid)] == [("produce", "axis")]
    assert [(t.stage, sorted(t.after)) for t in runner.plan([axis], "consume", grid)] == [("consume", [])]
    # a cell judging a one-process cell's artifacts cannot itself be one: it would wait in a circle
    chained = _cell("chained", consumes=("axis",))
    plan = runner.plan([anchor, axis, chained], "all", cells_mod.Cells((anchor, axis, chained)))
    assert [(t.stage, t.cell.name) for t in plan if t.cell.name == "chained"] == [
        ("produce", "chained"),
        ("consume", "chained"),
    ]


def test_each_producer_makes_one_projection_per_architecture_and_task_and_both_across_producers():
    first, second = produce.pinned_cases("peft-0.10.0"), produce.pinned_cases("peft-0.11.1")
    both = produce.pinned_cases()
    slots = lambda cases: [(c.model.arch, c.task) for c in cases]  # noqa: E731
    assert sorted(slots(first)) == sorted(set(slots(both))) and len(both) == 2 * len(first)
    projections = {(c.model.arch, c.task, c.prefix.prefix_projection) for c in first + second}
    assert {p for *_, p in projections} == {False, True} and len(projections) > len(first)


def test_the_cells_file_is_valid_and_tox_pins_the_known_good_cell():
    cells = cells_mod.load()
    good = cells.known_good()
    tox = (cells_mod.CELLS_FILE.parents[2] / "tox.ini").read_text()
    for line in (f"peft=={good.peft}", f"transformers=={good.transformers}", f"accelerate=={good.accelerate}"):
        assert f"known-good,selftest: {line}" in tox, line
    assert len([c for c in cells if c.needs is None]) >= 6


@pytest.mark.parametrize(
    "text, message",
    [
        ("schema = 2", "schema 2"),
        (
            'schema = 1\n[[cell]]\nname = "a"\npeft = "0.1"\ntransformers = "4"\naccelerate = "1"\ncolour = 1',
            "unknown keys",
        ),
        ('schema = 1\n[[cell]]\nname = "a"\npeft = "0.1"', "missing keys"),
        ("schema = [", "cannot read cells"),
        (
            'schema = 1\n[[cell]]\nname = "a"\npeft = "0.1"\ntransformers = "4"\naccelerate = "1"\nknown_good = true\n'
            'consumes = ["nope"]',
            "consumes unknown cells",
        ),
        (
            'schema = 1\n[[cell]]\nname = "a"\npeft = "0.1"\ntransformers = "4"\naccelerate = "1"\nknown_good = true\n'
            'judged_by = ["nope"]',
            "judged_by unknown cells",
        ),
        (
            'schema = 1\n[[cell]]\nname = "a"\npeft = "0.1"\ntransformers = "4"\naccelerate = "1"\nknown_good = true\n'
            'drawn = "8"',
            "drawn must be a whole number",
        ),
    ],
)
def test_bad_cells_files_are_refused(tmp_path, text, message):
    path = tmp_path / "cells.toml"
    path.write_text(text)
    with pytest.raises(cells_mod.CellError, match=message):
        cells_mod.load(path)


def test_a_cell_reading_an_unset_variable_says_so(monkeypatch):
    monkeypatch.delenv("PEFT_SPEC", raising=False)
    cell = cells_mod.load().get("peft-pr")
    assert "PEFT_SPEC" in cell.runnable()
    with pytest.raises(cells_mod.CellError, match="PEFT_SPEC"):
        cell.requirements()


def test_validation_reports_only_the_difference():
    from matrix.ci.diff import matrix_diff, suite_diff
    from matrix.ci.validate import markdown

    suite = suite_diff(_suite(), _suite(_failed("a"), _failed("bb")))
    assert [f["case"] for f in suite["new_failures"]] == ["a", "bb"]
    row = {"producer": "p", "case": "c", "arch": "llama", "task": "CAUSAL_LM", "detail": "x", "issue": None}
    grid = matrix_diff(
        {"rows": [{**row, "verdict": "pass"}, {**row, "case": "d", "verdict": "known-issue", "issue": "e"}]},
        {"rows": [{**row, "verdict": "fail"}, {**row, "case": "d", "verdict": "pass"}]},
    )
    assert [r["case"] for r in grid["regressions"]] == ["c"] and [r["case"] for r in grid["fixes"]] == ["d"]
    text = markdown(suite, grid, ("0.21.2", "pr"))
    assert "New failures" in text and "Newly passing" in text and "known-issue (e) -> pass" in text
    assert "case `bb`" in text
    nothing = matrix_diff({"rows": []}, {"rows": []})
    assert "No new failures" in markdown(suite_diff(_suite(_failed("a")), _suite(_failed("a"))), nothing, ("a", "b"))


# --- reporting defects (issue 10): each test failed on the code before its fix -------------------


def test_consume_compares_the_loaded_table_values_not_only_its_shape(artifact, monkeypatch):
    """A consumer that loads the table and then changes it (re-initialises, casts, transforms)."""
    from prefixcheck import engine

    load = engine.load

    def nudged(*args, **kwargs):
        model = load(*args, **kwargs)
        with torch.no_grad():
            model.prompt_encoder["default"].embedding.weight.add_(1e-6)
        return model

    monkeypatch.setattr(engine, "load", nudged)
    result = _verdict(artifact)
    assert result.verdict == "fail" and "loaded prefix table" in result.detail, result


def _ignoring_the_prefix(monkeypatch):
    """The consumer computes without the prefix: its adapter's logits are the base model's."""
    from prefixcheck import engine

    logits = engine.logits

    def without_prefix(model, batch):
        if hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                return logits(model, batch)
        return logits(model, batch)

    monkeypatch.setattr(engine, "logits", without_prefix)


def test_a_consumer_that_ignores_the_prefix_is_told_apart_from_a_pass(artifact, monkeypatch):
    _ignoring_the_prefix(monkeypatch)
    result = _verdict(artifact)
    assert result.verdict == "fail" and "follows the base model" in result.detail, result


def test_a_prefix_too_weak_to_judge_across_versions_is_inconclusive_not_a_pass(artifact, monkeypatch):
    """Across versions the tolerance is wider: an artifact whose prefix moved the logits by less
    than that cannot show that the consumer applied the prefix at all."""
    tensors = load_file(str(artifact / "tensors.safetensors"))
    tensors["logits"] = tensors["base_logits"] + 1e-7
    save_file(tensors, str(artifact / "tensors.safetensors"))
    data = json.loads((artifact / "manifest.json").read_text())
    data["versions"]["transformers"] = "0.0.1"  # made by another release: the cross-version tolerance
    (artifact / "manifest.json").write_text(json.dumps(data))
    _reseal(artifact)
    _ignoring_the_prefix(monkeypatch)
    result = _verdict(artifact)
    assert result.verdict == "inconclusive" and "moves these outputs by only" in result.detail, result


def test_a_file_damaged_after_a_run_is_judged_again_not_resumed(artifact, tmp_path):
    out = tmp_path / "results" / "me.json"
    assert [r["verdict"] for r in consume.consume(artifact.parent.parent, out)["rows"]] == ["pass"]
    path = artifact / "adapter" / "adapter_model.safetensors"
    path.write_bytes(path.read_bytes()[:-16])  # truncated after the run; the manifest is unchanged
    rows = consume.consume(artifact.parent.parent, out)["rows"]
    assert [r["verdict"] for r in rows] == ["invalid-artifact"] and "sha256" in rows[0]["detail"]


def test_the_resume_key_covers_the_judging_code(artifact, tmp_path, monkeypatch):
    out = tmp_path / "results" / "me.json"
    first = consume.consume(artifact.parent.parent, out)
    monkeypatch.setattr(manifest, "code_digest", lambda: "changed-engine")
    again = consume.consume(artifact.parent.parent, out)
    assert again["judged_by"] == "changed-engine" and again["rows"] == first["rows"]


def test_an_artifact_made_by_other_versions_is_made_again(produced, tmp_path):
    copy = tmp_path / "p" / CASE.key
    shutil.copytree(produced, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data["versions"]["peft"] = "0.0.1"
    (copy / "manifest.json").write_text(json.dumps(data))
    _reseal(copy)
    index = produce.produce(copy.parent, [CASE])
    assert (index["written"], index["reused"]) == (1, 0)
    assert json.loads((copy / "manifest.json").read_text())["versions"]["peft"] != "0.0.1"


def test_produce_that_produced_nothing_exits_non_zero(tmp_path, monkeypatch, capsys):
    from matrix.cli import main as matrix_main
    from prefixcheck import engine

    def broken(case):
        raise RuntimeError("every case fails in this producer")

    monkeypatch.setenv("MATRIX_ARCHS", "llama")
    monkeypatch.setattr(engine, "train_case", broken)
    assert matrix_main(["produce", "--out", str(tmp_path / "a"), "--drawn", "0"]) == 1
    assert "produced nothing" in capsys.readouterr().err


def test_consume_of_nothing_exits_non_zero(tmp_path, capsys):
    from matrix.cli import main as matrix_main

    (tmp_path / "artifacts" / "empty-producer").mkdir(parents=True)
    assert matrix_main(["consume", "--artifacts", str(tmp_path / "artifacts"), "--out", str(tmp_path / "r.json")]) == 1
    assert "no artifact to judge" in capsys.readouterr().err


def _suite(*failures, profile="ci"):
    props: dict = {}
    for f in failures:
        props.setdefault(f["property"], {"passed": 3, "failed": 0, "known": {}})["failed"] += 1
    return {
        "properties": props,
        "failures": list(failures),
        "hypothesis_profile": profile,
        "totals": {"failed": len(failures)},
    }


def _failed(case, kind="beyond-tolerance", prop="reload-equality"):
    return {"property": prop, "case": case, "kind": kind, "error": f"BeyondTolerance: max |diff| 0.{len(case)}"}


def test_one_fixed_and_one_new_failure_in_a_property_are_two_changes_not_none():
    from matrix.ci.diff import suite_diff

    diff = suite_diff(_suite(_failed("a")), _suite(_failed("b")))
    assert [f["case"] for f in diff["new_failures"]] == ["b"]
    assert [f["case"] for f in diff["fixed"]] == ["a"]
    # the same case failing another way is a new failure too
    diff = suite_diff(_suite(_failed("a")), _suite(_failed("a", kind="prefix-ignored")))
    assert [f["kind"] for f in diff["new_failures"]] == ["prefix-ignored"]


def test_randomized_runs_are_compared_by_failure_signature_not_by_case():
    from matrix.ci.diff import suite_diff

    night1 = _suite(_failed("a"), profile="nightly")
    night2 = _suite(_failed("bb"), profile="nightly")  # the same bug, drawn on another case
    assert suite_diff(night1, night2)["new_failures"] == []
    night3 = _suite(_failed("bb", kind="prefix-ignored"), profile="nightly")
    assert len(suite_diff(night1, night3)["new_failures"]) == 1


def test_pass_to_known_issue_and_disappeared_rows_are_changes():
    from matrix.ci.diff import matrix_diff

    row = {"consumer": "B", "producer": "A", "arch": "llama", "task": "CAUSAL_LM", "detail": "", "issue": None}
    baseline = {
        "rows": [
            {**row, "case": "c1", "verdict": "pass"},
            {**row, "case": "c2", "verdict": "known-issue", "issue": "x"},
            {**row, "case": "c3", "verdict": "pass"},
        ]
    }
    candidate = {
        "rows": [
            {**row, "case": "c1", "verdict": "known-issue", "issue": "y"},
            {**row, "case": "c2", "verdict": "known-issue", "issue": "z"},
            {**row, "case": "c4", "verdict": "fail"},
        ]
    }
    grid = matrix_diff(baseline, candidate)
    assert [(r["case"], r["baseline"], r["verdict"]) for r in grid["changed"]] == [
        ("c1", "pass", "known-issue"),
        ("c2", "known-issue", "known-issue"),
    ]
    assert [r["case"] for r in grid["disappeared"]] == ["c3"]
    assert [(r["case"], r["baseline"]) for r in grid["regressions"]] == [("c4", "absent")]


def _proc(rc, out=""):
    import subprocess

    return subprocess.CompletedProcess([], rc, out, "")


def test_validate_refuses_a_stale_summary_and_an_unexplained_pytest_failure(tmp_path):
    from matrix.ci.validate import read_summary

    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"run_id": "old", "totals": {"failed": 0}}))
    with pytest.raises(SystemExit, match="from another run"):
        read_summary(path, "new", _proc(0), "candidate")
    path.write_text(json.dumps({"run_id": "new", "totals": {"failed": 0}}))
    with pytest.raises(SystemExit, match="pytest exited 1 with 0 failed"):
        read_summary(path, "new", _proc(1, "[gw1] node down: worker crashed"), "candidate")
    with pytest.raises(SystemExit, match="pytest exited 2"):
        read_summary(path, "new", _proc(2), "candidate")
    assert read_summary(path, "new", _proc(0), "candidate")["run_id"] == "new"
    path.write_text(json.dumps({"run_id": "new", "totals": {"failed": 3}}))
    assert read_summary(path, "new", _proc(1), "candidate")["totals"]["failed"] == 3


def test_cell_processes_keep_bytecode_caches_one_thread_offline(monkeypatch):
    from matrix.grid.envs import cell_environ

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = cell_environ(PREFIXCHECK_REPORTS="r")
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert (env["OMP_NUM_THREADS"], env["HF_HUB_OFFLINE"], env["PREFIXCHECK_REPORTS"]) == ("1", "1", "r")
