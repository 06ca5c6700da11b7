"""`python -m matrix bisect`: the command with a fake release index and injected verdicts, one line
per version and the boundary last, its exit codes, its bad inputs (each a one-line error, exit
2), reading cases, extra pins, giving up, and a failure known elsewhere in the range.
"""

from __future__ import annotations

import json

import pytest

from matrix.bisect import commands as bisect_commands
from matrix.bisect import inputs as bisect_inputs
from matrix.bisect import plan as bisect_plan
from matrix.bisect import report as bisect_report
from matrix.bisect.search import Verdict, search
from prefixcheck import verdicts
from prefixcheck.case import Case
from tests.selftest.bisect_support import (
    CASE,
    CLAIM,
    FAIL_DATA,
    PEFT,
    PROP,
    TRANSFORMERS,
    fake_probe,
    git_repo,
    parse_args,
    plan_with,
)

pytestmark = pytest.mark.selftest


def test_command_prints_one_line_per_version_and_the_boundary_last(releases, case_file, tmp_path):
    lines = []
    script = tmp_path / "repro.py"
    script.write_text('print("FAILED: left-padded row")\n')
    rc = bisect_commands.bisect_command(
        parse_args(
            "--property",
            PROP,
            "--claim",
            CLAIM,
            "--case",
            str(case_file),
            "--peft",
            "0.15.0..0.21.2",
            "--transformers",
            "4.57.6",
            "--out",
            str(tmp_path / "out"),
        ),
        evaluate=fake_probe("0.19.0", script=script),
        out=lines.append,
    )
    assert rc == 0
    assert lines[-1] == "boundary: peft 0.18.1 (fail) -> 0.19.0 (pass)"
    tested = [line for line in lines if line.startswith("peft ")]
    assert tested[0].startswith("peft 0.15.0: fail (input-paths:left-padded-row-equals-alone; beyond-tolerance; known")
    assert tested[1].startswith("peft 0.21.2: pass")
    assert {line.split(":")[0] for line in tested} >= {"peft 0.18.1", "peft 0.19.0"}
    reports = list((tmp_path / "out").glob("*.md"))
    assert len(reports) == 1
    record = json.loads(reports[0].with_suffix(".json").read_text())
    assert record["boundary"] == ["0.18.1", "0.19.0"] and record["direction"] == "fix"
    assert [t["version"] for t in record["tested"]] == [line.split(":")[0].split()[1] for line in tested]


def test_command_exits_1_when_every_version_agrees(releases, case_file, tmp_path):
    lines = []
    rc = bisect_commands.bisect_command(
        parse_args(
            "--property",
            PROP,
            "--case",
            str(case_file),
            "--peft",
            "0.21.2",
            "--transformers",
            "4.55.4..5.24.0",
            "--out",
            str(tmp_path),
        ),
        evaluate=lambda v: Verdict("pass"),
        out=lines.append,
    )
    assert rc == 1
    assert lines[-1].startswith("no boundary: every version that ran gives pass")
    assert not list(tmp_path.glob("*.md"))


def test_command_exits_2_when_nothing_can_run(releases, case_file, tmp_path, capsys):
    rc = bisect_commands.bisect_command(
        parse_args(
            "--property",
            PROP,
            "--case",
            str(case_file),
            "--peft",
            "0.15.0..0.15.2",
            "--transformers",
            "4.57.6",
            "--out",
            str(tmp_path),
        ),
        evaluate=lambda v: Verdict(verdicts.COULD_NOT_RUN, "environment: broken"),
        out=lambda line: None,
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: no version could be evaluated")


def _bad_inputs(tmp_path, case_file):
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    not_a_case = tmp_path / "other.json"
    not_a_case.write_text(json.dumps({"model": {"arch": "llama"}, "task": "CAUSAL_LM"}))
    c = str(case_file)
    ok = ("--peft", "0.15.0..0.21.2", "--transformers", "4.57.6")
    return {
        "unknown property": (["--property", "no-such-property", "--case", c, *ok], "unknown property"),
        "no property": (["--case", c, *ok], "--property is required"),
        "unknown claim": (["--property", PROP, "--claim", "no-such-claim", "--case", c, *ok], "--claim"),
        "missing case": (["--property", PROP, "--case", str(tmp_path / "nope.json"), *ok], "cannot read it"),
        "case not JSON": (["--property", PROP, "--case", str(garbage), *ok], "not a case"),
        "case incomplete": (["--property", PROP, "--case", str(not_a_case), *ok], "not a case"),
        "range open": (["--property", PROP, "--case", c, "--peft", "0.15.0..", "--transformers", "4.57.6"], "range"),
        "range three dots": (
            ["--property", PROP, "--case", c, "--peft", "0.15.0...0.21.2", "--transformers", "4.57.6"],
            "range",
        ),
        "range reversed": (
            ["--property", PROP, "--case", c, "--peft", "0.21.2..0.15.0", "--transformers", "4.57.6"],
            "older",
        ),
        "range words": (["--property", PROP, "--case", c, "--peft", "latest", "--transformers", "4.57.6"], "range"),
        "two ranges": (
            ["--property", PROP, "--case", c, "--peft", "0.15.0..0.21.2", "--transformers", "4.55.4..5.0.0"],
            "exactly one",
        ),
        "no range": (["--property", PROP, "--case", c, "--peft", "0.21.2", "--transformers", "4.57.6"], "exactly one"),
        "no versions": (["--property", PROP, "--case", c], "give --peft and --transformers"),
        "not a release": (
            ["--property", PROP, "--case", c, "--peft", "0.15.7..0.21.2", "--transformers", "4.57.6"],
            "0.15.7 is not a",
        ),
        "fixed not a release": (
            ["--property", PROP, "--case", c, "--peft", "0.15.0..0.21.2", "--transformers", "4.57.9"],
            "4.57.9 is not a",
        ),
        "generate on classification": (
            ["--property", "generate-paths", "--case", str(_seq_cls(tmp_path)), *ok],
            "needs a generative task",
        ),
        "square without run": (["--square", "a:b"], "--run"),
        "square malformed": (["--square", "ab", "--run", str(tmp_path)], "PRODUCER:CONSUMER"),
        "square missing results": (["--square", "a:b", "--run", str(tmp_path)], "cannot read the consumer's results"),
        "git not a repository": (
            [
                "--property",
                PROP,
                "--case",
                c,
                "--git",
                str(tmp_path),
                "--good",
                "a",
                "--bad",
                "b",
                "--transformers",
                "4.57.6",
            ],
            "not a git repository",
        ),
        "git without refs": (
            ["--property", PROP, "--case", c, "--git", str(tmp_path), "--transformers", "4.57.6"],
            "--good",
        ),
    }


def _seq_cls(tmp_path):
    path = tmp_path / "seq_cls.json"
    path.write_text(json.dumps(CASE.replace(task="SEQ_CLS").to_dict()))
    return path


def test_bad_inputs_are_one_line_errors_with_exit_2(releases, case_file, tmp_path, capsys):
    for name, (argv, expected) in _bad_inputs(tmp_path, case_file).items():
        called = []
        rc = bisect_commands.bisect_command(
            parse_args(*argv), evaluate=lambda v, called=called: called.append(v) or "pass", out=lambda line: None
        )
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert rc == 2, name
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, captured.err)
        assert expected in lines[0], (name, lines[0])
        assert "Traceback" not in captured.err + captured.out and not called, name


def test_bad_git_refs(releases, case_file, tmp_path, capsys):
    repo = git_repo(tmp_path / "repo", ["good"] * 3)
    for good, bad, expected in (
        ("nope", "HEAD", "no such commit"),
        ("HEAD", "HEAD", "same commit"),
        ("HEAD", "HEAD~2", "not an ancestor"),
    ):
        rc = bisect_commands.bisect_command(
            parse_args(
                "--property",
                PROP,
                "--case",
                str(case_file),
                "--git",
                str(repo),
                "--good",
                good,
                "--bad",
                bad,
                "--transformers",
                "4.57.6",
            ),
            evaluate=lambda v: "pass",
            out=lambda line: None,
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and expected in err[0], (good, bad, err)


def test_the_real_release_module_through_a_fake_index(monkeypatch, case_file, tmp_path):
    """matrix/grid/releases.py itself (not the fake), answering from recorded simple-API pages."""
    releases = pytest.importorskip("matrix.grid.releases")

    def page(package, versions):
        return {
            "files": [
                {"filename": f"{package}-{v}-py3-none-any.whl", "upload-time": f"2025-01-{i + 1:02d}T00:00:00Z"}
                for i, v in enumerate(versions)
            ]
        }

    pages = {"peft": page("peft", PEFT + ["0.22.0rc1"]), "transformers": page("transformers", TRANSFORMERS)}

    def fetch(url):
        return pages[url.rstrip("/").rsplit("/", 1)[-1]]

    assert releases.versions_between("peft", "0.18.0", "0.21.2", fetch=fetch) == [
        "0.18.0",
        "0.18.1",
        "0.19.0",
        "0.20.0",
        "0.21.2",
    ]
    lines = []
    rc = bisect_commands.bisect_command(
        parse_args(
            "--property",
            PROP,
            "--case",
            str(case_file),
            "--peft",
            "0.18.0..0.21.2",
            "--transformers",
            "4.57.6",
            "--out",
            str(tmp_path),
        ),
        fetch=fetch,
        evaluate=fake_probe("0.19.0"),
        out=lines.append,
    )
    assert rc == 0 and lines[-1] == "boundary: peft 0.18.1 (fail) -> 0.19.0 (pass)"


# -- reading cases ----------------------------------------------------------------------------------
def test_case_from_a_reproduction_script_and_a_failure_record(tmp_path):
    from prefixcheck import repro

    script = tmp_path / "input-paths-x.py"
    repro.write(PROP, CASE, script, point=CLAIM)
    source = bisect_inputs.read_case(str(script))
    assert Case.from_dict(source.case) == CASE
    assert (source.prop, source.point) == (PROP, CLAIM)
    record = tmp_path / "failure.json"  # an entry of summary.json's "failures"
    record.write_text(json.dumps({"property": PROP, "case": CASE.key, "at": CLAIM, "repro": str(script)}))
    source = bisect_inputs.read_case(str(record))
    assert Case.from_dict(source.case) == CASE and (source.prop, source.point) == (PROP, CLAIM)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"case": CASE.to_dict(), "versions": {}}))
    assert Case.from_dict(bisect_inputs.read_case(str(manifest)).case) == CASE


def test_the_scripts_claim_decides_unless_another_is_given(releases, tmp_path):
    from prefixcheck import repro

    script = repro.write(PROP, CASE, tmp_path / "s.py", point=CLAIM)
    plan = bisect_plan.plan_from_args(
        parse_args("--property", PROP, "--case", str(script), "--peft", "0.15.0..0.21.2", "--transformers", "4.57.6")
    )
    assert plan.claim == CLAIM and plan.versions == PEFT
    plan = bisect_plan.plan_from_args(
        parse_args(
            "--property",
            PROP,
            "--claim",
            "embeds-equal-ids",
            "--case",
            str(script),
            "--peft",
            "0.21.2",
            "--transformers",
            "4.57.6..5.23.0",
        )
    )
    assert plan.claim == "embeds-equal-ids" and plan.package == "transformers"
    assert plan.versions == ["4.57.6", "5.0.0", "5.23.0"] and plan.fixed == {"peft": "0.21.2"}


def test_extra_pins_get_their_own_environment(releases, case_file):
    plan = plan_with(fixed={"transformers": "4.57.6"}, extra=("numpy<2",))
    cell = plan.cell("0.17.1")  # cells.toml has 0.17.1/4.57.6: its env must not be rebuilt with other pins
    assert cell.name.startswith("peft-0.17.1-tf-4.57.6-x") and "numpy<2" in cell.requirements()
    argv = ["--property", PROP, "--case", str(case_file), "--peft", "0.15.0..0.21.2", "--transformers", "4.57.6"]
    assert bisect_plan.plan_from_args(parse_args(*argv, "--extra", "numpy<2", "--extra", "scipy<2")).extra == (
        "numpy<2",
        "scipy<2",
    )


def test_command_says_it_gave_up(releases, case_file, tmp_path, capsys):
    rc = bisect_commands.bisect_command(
        parse_args(
            "--property",
            PROP,
            "--case",
            str(case_file),
            "--peft",
            "0.15.0..0.21.2",
            "--transformers",
            "4.57.6",
            "--max-skips",
            "2",
            "--out",
            str(tmp_path),
        ),
        evaluate=lambda v: Verdict("inconclusive", f"{PROP}:{CLAIM}"),
        out=lambda line: None,
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "could not decide" in err[0] and "--max-skips" in err[0]


def test_a_failure_known_elsewhere_in_the_range_says_to_widen_that_entry():
    entry = {
        "id": "gemma3-no-mask",
        "title": "t",
        "affects": {"transformers": ">=4.50,<4.57"},
        "references": [],
        "places": ["no-mask-equals-ones"],
    }

    def evaluate(version):
        i = TRANSFORMERS.index(version)
        if i >= 3:
            return "pass"
        data = {
            **FAIL_DATA,
            "point": "no-mask-equals-ones",
            "kind": "RuntimeError",
            "max_diff": None,
            "error": "RuntimeError: The size of tensor a (8) must match the size of tensor b (5)",
            "known": entry["id"] if i < 2 else None,
            "matching": [entry] if i < 2 else [],
        }
        return Verdict("fail", "", data)

    result = search(TRANSFORMERS, evaluate)
    plan = plan_with(
        package="transformers", versions=TRANSFORMERS, fixed={"peft": "0.15.2"}, claim="no-mask-equals-ones"
    )
    text = bisect_report.report_markdown(plan, result, None, {}, 1.0)
    assert "is known issue `gemma3-no-mask` with transformers 4.55.4" in text
    assert "(its range: transformers >=4.50,<4.57), but no entry covers transformers 4.57.6" in text
    assert "widen that entry's `affects`" in text and "```toml" in text
