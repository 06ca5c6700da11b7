"""The opt-in end-to-end commit bisect (BISECT_E2E=1): real uv environments of a PEFT git repository
built here, one commit breaking loading; see docs/bisect/README.md for its cost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from matrix.bisect import commands as bisect_commands
from tests.selftest.bisect_support import CASE, git_env, parse_args

pytestmark = pytest.mark.selftest


# -- end to end: real environments, a real PEFT git repository with one breaking commit -------------------
BREAK = "        model.prompt_encoder[adapter_name]._load_adapter_state_dict(peft_model_state_dict)\n"


PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "peft"
version = "0.22.0.dev0"
requires-python = ">=3.9"
dependencies = ["numpy>=1.17", "packaging>=20.0", "psutil", "pyyaml", "torch>=1.13.0", "transformers", "tqdm",
                "accelerate>=0.21.0", "safetensors", "huggingface_hub>=0.25.0"]

[tool.setuptools.packages.find]
include = ["peft*"]
"""


def peft_repository(path: Path, commits: int = 6, breaking: int = 3) -> tuple[Path, list[str]]:
    """A git repository of the installed PEFT's source: `commits` commits, the one numbered
    `breaking` makes loading add 1e-3 to the prefix table (reload-equality fails from there on)."""
    import peft

    path.mkdir(parents=True)
    shutil.copytree(Path(peft.__file__).parent, path / "peft", ignore=shutil.ignore_patterns("__pycache__"))
    (path / "pyproject.toml").write_text(PYPROJECT)
    env = git_env()
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    shas = []
    target = path / "peft" / "utils" / "save_and_load.py"
    for i in range(commits):
        if i == breaking:
            text = target.read_text()
            assert BREAK in text, "the installed PEFT has no line to break"
            target.write_text(
                text.replace(
                    BREAK,
                    BREAK + "        with torch.no_grad():\n"
                    "            model.prompt_encoder[adapter_name].embedding.weight.add_(1e-3)\n",
                )
            )
        (path / "CHANGES.txt").write_text(f"change {i}\n")
        subprocess.run(["git", "-C", str(path), "add", "-A"], check=True, env=env)
        subprocess.run(
            [
                "git",
                "-C",
                str(path),
                "commit",
                "-q",
                "-m",
                f"change {i}" + (" (breaks loading)" if i == breaking else ""),
            ],
            check=True,
            env=env,
        )
        shas.append(
            subprocess.run(
                ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    return path, shas


@pytest.mark.skipif(not os.environ.get("BISECT_E2E"), reason="BISECT_E2E=1 builds real uv environments (minutes)")
def test_commit_bisect_end_to_end(tmp_path):
    repo, shas = peft_repository(tmp_path / "peft")
    case = tmp_path / "case.json"
    case.write_text(json.dumps(CASE.to_dict()))
    envs = Path(os.environ.get("BISECT_E2E_ENVS") or tmp_path / "envs")
    lines = []
    rc = bisect_commands.bisect_command(
        parse_args(
            "--property",
            "reload-equality",
            "--case",
            str(case),
            "--git",
            str(repo),
            "--good",
            shas[0],
            "--bad",
            shas[-1],
            "--transformers",
            "5.23.0",
            "--accelerate",
            "1.15.0",
            "--envs",
            str(envs),
            "--out",
            str(tmp_path / "report.md"),
        ),
        out=lines.append,
    )
    print("\n".join(lines))
    assert rc == 0, lines
    assert lines[-1] == f"boundary: peft {shas[2][:12]} (pass) -> {shas[3][:12]} (fail)"
    text = (tmp_path / "report.md").read_text()
    assert "exit 1, `FAILED:" in text and "exit 0, `OK:" in text  # the script, run under both ends
