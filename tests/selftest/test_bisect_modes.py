"""`python -m matrix bisect` on a matrix square (the consumer's PEFT or transformers moves) and on the
commits of a PEFT git repository (commit mode), with injected verdicts.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from matrix.bisect import commands as bisect_commands
from matrix.bisect import inputs as bisect_inputs
from matrix.bisect import plan as bisect_plan
from matrix.bisect.search import Verdict
from tests.selftest.bisect_support import CASE, CLAIM, FAIL_DATA, PEFT, PROP, git_repo, parse_args, plan_with

pytestmark = pytest.mark.selftest


# -- square mode ---------------------------------------------------------------------------------------
def test_place_of_a_consume_row():
    assert bisect_inputs.place_of({"verdict": "load-error", "detail": "KeyError: 'x'"}) == ("reload-equality", "load")
    assert bisect_inputs.place_of({"verdict": "fail", "detail": "adapter logits: max |diff| 1e-2"}) == (
        "reload-equality",
        "reloaded-equals-trained",
    )
    assert bisect_inputs.place_of({"verdict": "fail", "detail": "generate(): [[1]] != producer's [[2]]"}) == (
        "generate-roundtrip",
        "tokens-survive",
    )
    assert bisect_inputs.place_of({"verdict": "known-issue", "detail": "ValueChanged: config num_layers: saved 2"}) == (
        "config-roundtrip",
        "loaded-equals-saved",
    )
    assert bisect_inputs.place_of({"verdict": "fail", "detail": "loaded prefix table: max |diff| 1e-3"}) == (
        "resave-identical",
        "tensors-identical",
    )


def _run_folder(tmp_path, producer_versions, consumer_versions, verdict="fail"):
    run = tmp_path / "run"
    folder = run / "artifacts" / "peft-0.15.2" / CASE.key
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"case": CASE.to_dict(), "versions": producer_versions}))
    rows = [
        {"producer": "peft-0.15.2", "case": "aaaa", "verdict": "pass", "detail": ""},
        {"producer": "peft-0.15.2", "case": CASE.key, "verdict": verdict, "detail": "adapter logits: max |diff| 3e-1"},
        {"producer": "other", "case": "bbbb", "verdict": "fail", "detail": "adapter logits"},
    ]
    (run / "results").mkdir()
    (run / "results" / "peft-latest.json").write_text(json.dumps({"versions": consumer_versions, "rows": rows}))
    return run


def test_square_mode_bisects_the_consumers_peft(releases, tmp_path):
    run = _run_folder(
        tmp_path, {"peft": "0.15.2", "transformers": "4.57.6"}, {"peft": "0.21.2", "transformers": "4.57.6"}
    )
    plan = bisect_plan.plan_from_args(parse_args("--square", "peft-0.15.2:peft-latest", "--run", str(run)))
    assert plan.package == "peft" and plan.fixed == {"transformers": "4.57.6"}
    assert plan.versions == PEFT[2:] and (plan.prop, plan.claim) == ("reload-equality", "reloaded-equals-trained")
    assert plan.artifact == (run / "artifacts" / "peft-0.15.2" / CASE.key).resolve()
    lines = []
    rc = bisect_commands.bisect_command(
        parse_args("--square", "peft-0.15.2:peft-latest", "--run", str(run), "--out", str(tmp_path / "r")),
        evaluate=lambda v: (
            "pass"
            if PEFT.index(v) < PEFT.index("0.17.0")
            else Verdict("fail", "", {**FAIL_DATA, "known": None, "matching": [], "point": "reloaded-equals-trained"})
        ),
        out=lines.append,
    )
    assert rc == 0 and lines[-1] == "boundary: peft 0.16.0 (pass) -> 0.17.0 (fail)"
    (report,) = (tmp_path / "r").glob("*.md")
    assert "matrix square (peft-0.15.2:peft-latest)" in report.read_text()


def test_square_mode_bisects_transformers_when_the_pefts_match(releases, tmp_path, capsys):
    run = _run_folder(
        tmp_path, {"peft": "0.21.2", "transformers": "5.24.0"}, {"peft": "0.21.2", "transformers": "4.57.6"}
    )
    plan = bisect_plan.plan_from_args(parse_args("--square", "peft-0.15.2:peft-latest", "--run", str(run)))
    assert plan.package == "transformers" and plan.fixed == {"peft": "0.21.2"}
    assert plan.versions == ["4.57.6", "5.0.0", "5.23.0", "5.24.0"]
    same = _run_folder(
        tmp_path / "same", {"peft": "0.21.2", "transformers": "5.24.0"}, {"peft": "0.21.2", "transformers": "5.24.0"}
    )
    assert (
        bisect_commands.bisect_command(
            parse_args("--square", "peft-0.15.2:peft-latest", "--run", str(same)), out=lambda line: None
        )
        == 2
    )
    assert "same peft and transformers" in capsys.readouterr().err
    passing = _run_folder(tmp_path / "passing", {"peft": "0.15.2"}, {"peft": "0.21.2"}, verdict="pass")
    assert (
        bisect_commands.bisect_command(
            parse_args("--square", "peft-0.15.2:peft-latest", "--run", str(passing)), out=lambda line: None
        )
        == 2
    )
    assert "no failing row" in capsys.readouterr().err


def test_commit_mode_finds_the_first_bad_commit(releases, case_file, tmp_path):
    behaviours = ["good", "good", "good", "good", "bad", "bad", "bad"]  # commit 4 breaks it
    repo = git_repo(tmp_path / "peft", behaviours)
    shas = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--reverse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert bisect_inputs.commit_range(repo, shas[1], "main") == shas[1:]

    def evaluate(sha):  # what the probe would say, read from the commit itself
        text = subprocess.run(
            ["git", "-C", str(repo), "show", f"{sha}:behaviour.txt"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if text == "good":
            return Verdict("pass", "", {"verdict": "pass", "versions": {"peft": "0.22.0.dev0"}})
        return Verdict(
            "fail",
            "",
            {
                **FAIL_DATA,
                "known": None,
                "matching": [],
                "kind": "beyond-tolerance",
                "versions": {"peft": "0.22.0.dev0"},
            },
        )

    lines = []
    rc = bisect_commands.bisect_command(
        parse_args(
            "--property",
            PROP,
            "--claim",
            CLAIM,
            "--case",
            str(case_file),
            "--git",
            str(repo),
            "--good",
            shas[0],
            "--bad",
            "main",
            "--transformers",
            "4.57.6",
            "--out",
            str(tmp_path / "r"),
        ),
        evaluate=evaluate,
        out=lines.append,
    )
    assert rc == 0
    assert lines[-1] == f"boundary: peft {shas[3][:12]} (pass) -> {shas[4][:12]} (fail)"
    assert "change 4: bad" in "\n".join(lines)
    (report,) = (tmp_path / "r").glob("*.md")
    text = report.read_text()
    assert f"https://github.com/huggingface/peft/compare/{shas[3][:12]}...{shas[4][:12]}" in text
    assert f"https://github.com/huggingface/peft/commit/{shas[4]}" in text
    assert "affects = { peft = '>=0.22.0.dev0' }" in text
    cell = bisect_plan.plan_from_args(
        parse_args(
            "--property",
            PROP,
            "--case",
            str(case_file),
            "--git",
            str(repo),
            "--good",
            shas[0],
            "--bad",
            "main",
            "--transformers",
            "4.57.6",
        )
    ).cell(shas[4])
    assert cell.requirements()[0] == f"peft @ git+file://{repo.resolve()}@{shas[4]}"
    assert cell.name == f"peft-git-{shas[4][:12]}-tf-4.57.6"


def test_released_pairs_reuse_the_matrix_cells_environments(releases):
    from matrix.grid import cells as cells_mod

    for cell in cells_mod.load():
        if cell.needs or cell.device != "cpu" or cell.unavailable or not cell.peft[:1].isdigit():
            continue
        plan = plan_with(fixed={"transformers": cell.transformers})
        assert plan.cell(cell.peft) == cell  # same name, same requirements: `matrix run`'s env is reused
    made = plan_with(fixed={"transformers": "4.56.2"}).cell("0.16.0")
    assert made.name == "peft-0.16.0-tf-4.56.2" and made.accelerate == "1.15.0"
