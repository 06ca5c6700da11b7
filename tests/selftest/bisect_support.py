"""What the bisect self-tests share: the release lists of the fake index, the case, a failure
record, injected verdicts, a plan, a git repository of fake PEFT commits."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from matrix.bisect import commands as bisect_commands
from matrix.bisect import evaluate as bisect_evaluate
from matrix.bisect import plan as bisect_plan
from matrix.bisect.search import Verdict
from prefixcheck import verdicts
from prefixcheck.case import AttentionLayout, Case, ModelSpec, PrefixSpec, Recipe

PEFT = ["0.15.0", "0.15.1", "0.15.2", "0.16.0", "0.17.0", "0.17.1", "0.18.0", "0.18.1", "0.19.0", "0.20.0", "0.21.2"]


TRANSFORMERS = ["4.55.4", "4.56.2", "4.57.6", "5.0.0", "5.23.0", "5.24.0"]


CASE = Case(
    model=ModelSpec(arch="llama", num_layers=2, layout=AttentionLayout(16, 4, 2, 4)),
    task="CAUSAL_LM",
    prefix=PrefixSpec(num_virtual_tokens=3),
    recipe=Recipe(steps=2, learning_rate=5e-2, batch_size=2, seq_len=6, num_padded=2),
)


PROP, CLAIM = "input-paths", "left-padded-row-equals-alone"


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bisect_commands.add_arguments(parser)
    return parser.parse_args(list(argv))


FAIL_DATA = {
    "verdict": "fail",
    "point": CLAIM,
    "claim": f"{PROP}:{CLAIM}",
    "kind": "beyond-tolerance",
    "error": "BeyondTolerance: left-padded row vs the row alone: max |diff| 1.234e-02 > atol 1e-05",
    "max_diff": 0.01234,
    "known": "peft-before-0.19-drops-position-ids",
    "matching": [
        {
            "id": "peft-before-0.19-drops-position-ids",
            "title": "PEFT before 0.19 drops explicit position_ids for prefix tuning",
            "affects": {"peft": "<0.19"},
            "references": [],
        }
    ],
    "versions": {"peft": "0.18.1", "transformers": "4.57.6", "torch": "2.13.0+cpu"},
}


def fake_probe(first_pass: str, versions=PEFT, known=True, script: Path | None = None, cannot=()):
    def evaluate(version):
        if version in cannot:
            return Verdict(verdicts.COULD_NOT_RUN, "environment: Because peft==X depends on transformers>=9")
        if versions.index(version) >= versions.index(first_pass):
            return Verdict("pass", f"{PROP}:{CLAIM}", {"verdict": "pass", "point": CLAIM, "versions": {}})
        data = {**FAIL_DATA, "versions": {**FAIL_DATA["versions"], "peft": version}}
        if not known:
            data["known"], data["matching"] = None, []
        if script:
            data["script"] = str(script)
        return Verdict("fail", bisect_evaluate.describe(data), data)

    return evaluate


# -- the report -------------------------------------------------------------------------------------
def plan_with(**changes):
    base = dict(
        package="peft",
        versions=PEFT,
        fixed={"transformers": "4.57.6"},
        prop=PROP,
        claim=CLAIM,
        case=CASE.to_dict(),
        source="case case.json",
    )
    return bisect_plan.Plan(**{**base, **changes})


# -- commit mode ---------------------------------------------------------------------------------------
def git_env() -> dict[str, str]:
    """This environment, with a committer git accepts on any machine."""
    names = ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")
    mails = ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")
    return {**os.environ, **dict.fromkeys(names, "t"), **dict.fromkeys(mails, "t@t")}


def git_repo(path: Path, behaviours: list[str]) -> Path:
    """A git repository with one commit per behaviour ("good"/"bad" in behaviour.txt)."""
    path.mkdir(parents=True)
    env = git_env()
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    for i, behaviour in enumerate(behaviours):
        (path / "behaviour.txt").write_text(behaviour + "\n")
        (path / "history.txt").write_text(f"commit {i}\n")
        subprocess.run(["git", "-C", str(path), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", f"change {i}: {behaviour}"], check=True, env=env)
    return path
