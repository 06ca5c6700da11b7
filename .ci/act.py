#!/usr/bin/env python3
"""Run one of this repository's GitHub Actions workflows on this machine, from its YAML.

    python .ci/act.py .github/workflows/nightly.yml --input cells=peft-0.17.1,peft-latest \
        --env HYPOTHESIS_PROFILE=smoke --only suite:name=peft-latest

It runs what GitHub would run, as far as this project's workflows need: jobs in `needs` order,
each in a fresh copy of the repository (as a fresh runner would), matrix jobs (lists, `include`,
`fromJSON(needs.*.outputs.*)`), job and step `if`, `env` at every level, step and job outputs
(`$GITHUB_OUTPUT`), `$GITHUB_PATH`, job summaries (`$GITHUB_STEP_SUMMARY`, printed at the end), the local
composite action, and these actions emulated on local folders: checkout (the copy), setup-python
(this machine's interpreter of the asked `python-version`, see `local_python`) and setup-uv (this
machine's uv), upload-artifact / download-artifact (a folder per
artifact, with GitHub's path and merge semantics), cache / cache/restore / cache/save (a folder
per key, restore-keys by prefix, newest first). Anything else is refused with a one-line error,
so a workflow cannot silently outgrow this runner. `--only JOB:KEY=VALUE` keeps the matrix
entries of JOB whose KEY is VALUE (`--only properties:python=3.11` where torch installs for 3.11
only); `--skip-job` leaves a job out (counted as skipped).
The self-tests run every workflow this way in a reduced form (tests/selftest/test_workflows.py).
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EMULATED = {
    "actions/checkout",
    "actions/setup-python",
    "astral-sh/setup-uv",
    "actions/upload-artifact",
    "actions/download-artifact",
    "actions/cache",
    "actions/cache/restore",
    "actions/cache/save",
}


SCRUBBED = ("TOX_", "VIRTUAL_ENV", "PREFIXCHECK_", "PYTEST_", "HYPOTHESIS_", "PYTHONPATH", "_TOX")


class WorkflowError(RuntimeError):
    """Something in a workflow this runner cannot run; the message names it."""


# --- expressions -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|<=|>=|&&|\|\||[!<>(),\[\]])"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[A-Za-z_*][\w-]*)*))"
)
_FUNCTIONS = {
    "fromjson",
    "tojson",
    "contains",
    "startswith",
    "endswith",
    "format",
    "join",
    "hashfiles",
    "always",
    "success",
    "failure",
    "cancelled",
}


def _to_str(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class Context:
    def __init__(self, values: dict, status: str = "success", workspace: Path | None = None) -> None:
        self.values, self.status, self.workspace = values, status, workspace

    def lookup(self, dotted: str):
        value = self.values
        for part in dotted.split("."):
            if isinstance(value, dict):
                match = {k.lower(): v for k, v in value.items()}.get(part.lower())
                value = match
            else:
                return None
        return value

    def evaluate(self, expr: str):
        pos, out = 0, []
        while pos < len(expr.rstrip()):
            m = _TOKEN.match(expr, pos)
            if not m or m.end() == pos:
                raise WorkflowError(f"cannot parse expression {expr!r} at {expr[pos:]!r}")
            pos = m.end()
            if m["str"]:
                out.append(repr(m["str"][1:-1].replace("''", "'")))
            elif m["num"]:
                out.append(m["num"])
            elif m["op"]:
                out.append({"&&": " and ", "||": " or ", "!": " not "}.get(m["op"], m["op"]))
            else:
                name = m["name"]
                following = expr[pos:].lstrip()[:1]
                if following == "(":
                    if name.lower() not in _FUNCTIONS:
                        raise WorkflowError(f"function {name}() is not supported by this runner")
                    out.append(f"_f_{name.lower()}")
                elif name in ("true", "false", "null"):
                    out.append({"true": "True", "false": "False", "null": "None"}[name])
                else:
                    out.append(f"_get({name!r})")
        source = "".join(out)
        ws = self.workspace or Path.cwd()
        namespace = {
            "_get": self.lookup,
            "_f_fromjson": lambda s: json.loads(s),
            "_f_tojson": lambda v: json.dumps(v),
            "_f_contains": lambda a, b: (b in a) if isinstance(a, list) else str(b).lower() in _to_str(a).lower(),
            "_f_startswith": lambda a, b: _to_str(a).lower().startswith(_to_str(b).lower()),
            "_f_endswith": lambda a, b: _to_str(a).lower().endswith(_to_str(b).lower()),
            "_f_format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: _to_str(a[int(m[1])]), f),
            "_f_join": lambda a, sep=",": sep.join(_to_str(x) for x in a),
            "_f_hashfiles": lambda *pats: hashlib.sha256(
                b"".join(p.read_bytes() for pat in pats for p in sorted(ws.glob(pat)) if p.is_file())
            ).hexdigest(),
            "_f_always": lambda: True,
            "_f_success": lambda: self.status == "success",
            "_f_failure": lambda: self.status == "failure",
            "_f_cancelled": lambda: False,
        }
        try:
            return eval(source, {"__builtins__": {}}, namespace)  # noqa: S307 (our own tokens only)
        except Exception as exc:
            raise WorkflowError(f"cannot evaluate {expr!r}: {exc}") from None

    def expand(self, value):
        """Substitute ${{ }} in a string; a string that is one expression keeps its type."""
        if isinstance(value, dict):
            return {k: self.expand(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v) for v in value]
        if not isinstance(value, str) or "${{" not in value:
            return value
        whole = re.fullmatch(r"\s*\$\{\{(.*?)\}\}\s*", value, re.S)
        if whole and value.count("${{") == 1:
            return self.evaluate(whole[1])
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _to_str(self.evaluate(m[1])), value, flags=re.S)

    def condition(self, cond) -> bool:
        if cond is None:
            return self.status == "success"
        if isinstance(cond, bool):
            return cond
        text = cond.strip()
        if text.startswith("${{") and text.endswith("}}"):
            text = text[3:-2]
        if not re.search(r"\b(always|success|failure|cancelled)\s*\(", text):
            text = f"success() && ({text})"  # GitHub's implicit success()
        return bool(self.evaluate(text))


# --- the runner ----------------------------------------------------------------------------------


def checkout(dest: Path) -> None:
    """What actions/checkout gives a job: the repository's files (tracked and not ignored)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _matched(workspace: Path, patterns: str) -> list[Path]:
    out = []
    for line in filter(None, (p.strip() for p in patterns.splitlines())):
        for hit in sorted(glob.glob(str(workspace / line), recursive=True)):
            path = Path(hit)
            out += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return out


def _ancestor(workspace: Path, patterns: str) -> Path:
    """upload-artifact's root: the least common ancestor of the (unglobbed part of the) paths."""
    roots = []
    for line in filter(None, (p.strip() for p in patterns.splitlines())):
        parts = Path(line).parts
        fixed = list(itertools.takewhile(lambda p: not set("*?[") & set(p), parts))
        target = workspace.joinpath(*fixed)
        roots.append(target if target.is_dir() and len(fixed) == len(parts) else target.parent)
    return Path(os.path.commonpath(roots)) if roots else workspace


class Run:
    def __init__(self, workflow: Path, args) -> None:
        self.workflow_path = workflow
        self.wf = yaml.safe_load(workflow.read_text())
        self.wf["on"] = self.wf.pop(True, self.wf.get("on"))  # YAML 1.1 reads `on:` as True
        self.args = args
        self.store = Path(args.store or tempfile.mkdtemp(prefix="act-"))
        self.store.mkdir(parents=True, exist_ok=True)
        self.inputs = self._inputs()
        self.results: dict[str, dict] = {}
        self.summaries: list[str] = []
        self.github = {
            "repository": "local/prefix-roundtrip",
            "repository_owner": "local",
            "ref": "refs/heads/local",
            "ref_name": "local",
            "run_id": str(int(time.time())),
            "server_url": "https://github.com",
            "event_name": "workflow_dispatch",
            "token": args.token,
        }

    def _inputs(self) -> dict:
        on = self.wf["on"] if isinstance(self.wf["on"], dict) else {}
        declared = (on.get("workflow_dispatch") or {}).get("inputs") or {}
        given = dict(kv.split("=", 1) for kv in self.args.input)
        unknown = set(given) - set(declared)
        if unknown:
            raise WorkflowError(f"{self.workflow_path.name}: no such workflow_dispatch inputs {sorted(unknown)}")
        return {k: given.get(k, spec.get("default", "")) for k, spec in declared.items()}

    def order(self) -> list[str]:
        jobs, done, out = self.wf["jobs"], set(), []
        while len(out) < len(jobs):
            ready = [j for j in jobs if j not in done and set(_list(jobs[j].get("needs"))) <= done]
            if not ready:
                raise WorkflowError("jobs' needs form a cycle")
            for j in ready:
                done.add(j)
                out.append(j)
        return out

    def context(self, job_name: str | None = None, **extra) -> Context:
        needs = {}
        if job_name:
            for n in _list(self.wf["jobs"][job_name].get("needs")):
                needs[n] = {"result": self.results[n]["result"], "outputs": self.results[n]["outputs"]}
        values = {
            "github": self.github,
            "inputs": self.inputs,
            "vars": dict(kv.split("=", 1) for kv in self.args.var),
            "needs": needs,
            "runner": {"os": "Linux", "temp": str(self.store / "runner-temp")},
            "secrets": {},
            **extra,
        }
        return Context(values)

    def run(self) -> int:
        for name in self.order():
            job = self.wf["jobs"][name]
            needs = _list(job.get("needs"))
            upstream = "success" if all(self.results[n]["result"] in ("success",) for n in needs) else "failure"
            ctx = self.context(name)
            ctx.status = upstream
            if name in self.args.skip_job:
                self.results[name] = {"result": "skipped", "outputs": {}}
                print(f"=== job {name}: skipped (--skip-job)", flush=True)
                continue
            if not ctx.condition(job.get("if")):
                self.results[name] = {"result": "skipped", "outputs": {}}
                print(f"=== job {name}: skipped (if: {job.get('if')})", flush=True)
                continue
            results, outputs = [], {}
            for combo in self.combos(name, job, ctx):
                ok, outs = self.run_job(name, job, combo)
                results.append(ok)
                outputs.update(outs)
            result = "success" if all(results) else "failure"
            self.results[name] = {"result": result, "outputs": outputs}
            print(f"=== job {name}: {result}", flush=True)
        if self.summaries:
            print("\n=== job summaries\n" + "\n".join(self.summaries))
        failed = [n for n, r in self.results.items() if r["result"] == "failure"]
        print(f"=== workflow {self.wf.get('name')}: " + (f"failed jobs {failed}" if failed else "success"))
        return 1 if failed else 0

    def combos(self, name: str, job: dict, ctx: Context) -> list[dict]:
        matrix = ctx.expand((job.get("strategy") or {}).get("matrix"))
        if not matrix:
            return [{}]
        include = matrix.pop("include", []) or []
        exclude = matrix.pop("exclude", []) or []
        keys = list(matrix)
        if keys and include:
            raise WorkflowError(f"job {name}: matrix keys together with include are not supported by this runner")
        if exclude and not keys:
            raise WorkflowError(f"job {name}: matrix exclude without matrix keys")
        combos = [dict(zip(keys, v, strict=True)) for v in itertools.product(*matrix.values())] if keys else include
        # exclude, as GitHub does: an entry drops every combination that agrees with all its keys
        for rule in exclude:
            if not isinstance(rule, dict) or not set(rule) <= set(keys):
                raise WorkflowError(f"job {name}: matrix exclude {rule!r} names no matrix key")
            combos = [c for c in combos if any(_to_str(c[k]) != _to_str(v) for k, v in rule.items())]
        for rule in self.args.only:
            job_name, _, cond = rule.partition(":")
            key, _, value = cond.partition("=")
            if job_name == name:
                combos = [c for c in combos if _to_str(c.get(key)) == value]
        return combos

    def run_job(self, name: str, job: dict, combo: dict) -> tuple[bool, dict]:
        label = f"{name} {json.dumps(combo)}" if combo else name
        print(f"=== job {label}", flush=True)
        workspace = Path(tempfile.mkdtemp(prefix=f"job-{name}-", dir=self.store))
        checkout(workspace)
        ctx = self.context(name, matrix=combo, steps={})
        ctx.workspace = workspace
        env = {}
        for level in (self.wf.get("env"), job.get("env")):
            env.update({k: _to_str(ctx.expand(v)) for k, v in (level or {}).items()})
        env.update(dict(kv.split("=", 1) for kv in self.args.env))
        ctx.values["env"] = env
        summary = workspace.parent / f"summary-{workspace.name}.md"
        summary.touch()
        timeout = 60 * float(job.get("timeout-minutes", 360))
        post: list = []
        for step in job.get("steps", []):
            self.step(step, ctx, env, workspace, summary, timeout, post)
        for action in post:
            action()
        text = summary.read_text().strip()
        if text:
            self.summaries.append(f"--- {label}\n{text}")
        outputs = {k: _to_str(ctx.expand(v)) for k, v in (job.get("outputs") or {}).items()}
        return ctx.status == "success", outputs

    def step(self, step: dict, ctx: Context, env: dict, workspace: Path, summary: Path, timeout: float, post) -> None:
        title = step.get("name") or step.get("run", step.get("uses", "")).splitlines()[0][:100]
        if not ctx.condition(step.get("if")):
            print(f"--- skip: {title}", flush=True)
            return
        step_env = {**env, **{k: _to_str(ctx.expand(v)) for k, v in (step.get("env") or {}).items()}}
        with_ = {k: _to_str(ctx.expand(v)) for k, v in (step.get("with") or {}).items()}
        print(f"--- step: {title}", flush=True)
        started = time.monotonic()
        try:
            if "run" in step:
                outputs = self.shell(ctx.expand(step["run"]), step_env, workspace, summary, timeout)
            else:
                outputs = self.action(step["uses"], with_, ctx, env, workspace, summary, timeout, post)
        except WorkflowError:
            raise
        except Exception as exc:  # a failed step fails the job, as on GitHub
            print(f"    failed: {exc}", flush=True)
            ctx.status = "failure"
            outputs = {}
        print(f"--- step took {time.monotonic() - started:.1f} s: {title}", flush=True)
        if step.get("id"):
            ctx.values["steps"][step["id"]] = {"outputs": outputs}

    def shell(self, script: str, env: dict, workspace: Path, summary: Path, timeout: float) -> dict:
        out_file = workspace.parent / f"output-{workspace.name}-{time.monotonic_ns()}"
        out_file.touch()
        path_file = out_file.with_name(out_file.name + "-path")
        path_file.touch()
        # a runner starts clean: nothing of the process that called us (tox, pytest) leaks in
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
        full_env = {
            **inherited,
            **env,
            "GITHUB_OUTPUT": str(out_file),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_WORKSPACE": str(workspace),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
        }
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=workspace,
            env=full_env,
            timeout=timeout,
        )
        for folder in filter(None, path_file.read_text().splitlines()):  # $GITHUB_PATH: later steps' PATH
            env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', os.environ['PATH'])}"
        if proc.returncode:
            raise RuntimeError(f"exit status {proc.returncode}")
        return dict(line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line)

    def action(self, uses: str, with_: dict, ctx: Context, env, workspace: Path, summary, timeout, post) -> dict:
        if uses.startswith("./"):
            return self.composite(workspace / uses, with_, ctx, env, workspace, summary, timeout, post)
        name, _, ref = uses.partition("@")
        if name not in EMULATED:
            raise WorkflowError(f"action {name} is not emulated by this runner")
        if not re.fullmatch(r"[0-9a-f]{40}", ref):
            raise WorkflowError(f"action {uses} is not pinned to a full commit SHA")
        artifacts = self.store / "artifacts"
        if name == "actions/setup-python":
            python, version = local_python(with_.get("python-version", ""))
            env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', os.environ['PATH'])}"
            print(f"    python {version}: {python}", flush=True)
            return {"python-version": version, "python-path": str(python)}
        elif name == "astral-sh/setup-uv":
            if not shutil.which("uv", path=env.get("PATH", os.environ["PATH"])):
                raise RuntimeError("setup-uv: no uv on this machine's PATH")
        elif name == "actions/upload-artifact":
            files = _matched(workspace, with_["path"])
            if not files:
                if with_.get("if-no-files-found", "warn") == "error":
                    raise RuntimeError(f"upload-artifact {with_['name']}: no files match {with_['path']!r}")
                return {}
            root, dest = _ancestor(workspace, with_["path"]), artifacts / with_["name"]
            if dest.exists():
                raise RuntimeError(f"upload-artifact: an artifact named {with_['name']!r} exists already")
            for f in files:
                (dest / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest / f.relative_to(root))
            print(f"    uploaded {len(files)} files as {with_['name']}", flush=True)
        elif name == "actions/download-artifact":
            target = workspace / with_.get("path", ".")
            names = (
                [with_["name"]]
                if with_.get("name")
                else sorted(p.name for p in artifacts.glob("*") if fnmatch.fnmatch(p.name, with_.get("pattern", "*")))
            )
            if with_.get("name") and not (artifacts / with_["name"]).is_dir():
                raise RuntimeError(f"download-artifact: no artifact named {with_['name']!r}")
            merge = with_.get("name") or with_.get("merge-multiple") == "true"
            for n in names:
                shutil.copytree(artifacts / n, target if merge else target / n, dirs_exist_ok=True)
            print(f"    downloaded {names}", flush=True)
        elif name.startswith("actions/cache"):
            return self.cache(name, with_, workspace, post)
        return {}

    def cache(self, name: str, with_: dict, workspace: Path, post) -> dict:
        caches, path = self.store / "caches", workspace / with_["path"]
        hit = ""
        if name in ("actions/cache", "actions/cache/restore"):
            candidates = [caches / with_["key"]]
            for prefix in filter(None, (p.strip() for p in with_.get("restore-keys", "").splitlines())):
                found = sorted(caches.glob(f"{glob.escape(prefix)}*"), key=lambda p: p.stat().st_mtime, reverse=True)
                candidates += found
            for c in candidates:
                if c.is_dir():
                    shutil.copytree(c, path, dirs_exist_ok=True)
                    hit = "true" if c.name == with_["key"] else "false"
                    print(f"    cache restored from {c.name}", flush=True)
                    break

        def save():
            if path.exists() and not (caches / with_["key"]).exists():
                shutil.copytree(path, caches / with_["key"])
                print(f"    cache saved as {with_['key']}", flush=True)

        if name == "actions/cache/save":
            save()
        elif name == "actions/cache":
            post.append(save)
        return {"cache-hit": hit}

    def composite(self, folder: Path, with_: dict, ctx, env, workspace, summary, timeout, post) -> dict:
        action = yaml.safe_load((folder / "action.yml").read_text())
        if (action.get("runs") or {}).get("using") != "composite":
            raise WorkflowError(f"{folder}: only composite local actions are supported")
        inputs = {k: with_.get(k, spec.get("default", "")) for k, spec in (action.get("inputs") or {}).items()}
        inner = Context({**ctx.values, "inputs": inputs, "steps": {}}, ctx.status, workspace)
        for step in action["runs"]["steps"]:
            self.step(step, inner, env, workspace, summary, timeout, post)
        ctx.status = inner.status
        return {}


def _version_of(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def local_python(spec: str) -> tuple[Path, str]:
    """What setup-python gives for `python-version: X.Y[.Z]`: this machine's interpreter of that
    version (never another one), as (executable, full version). Looked for in this order: the
    interpreter running this script (its base, not a venv), pyenv's versions (`$PYENV_ROOT`, default
    ~/.pyenv; its shims only work for the selected version, so they are passed over), then
    `pythonX.Y` on PATH. No such interpreter fails the step, as an unavailable version does on
    GitHub. torch may still not install for it: the local wheel folder of this project's machine has
    torch for 3.11 only, so the workflow self-tests run ci.yml's suite with `--only
    properties:python=3.11`; the other versions run on GitHub (torch from the PyTorch CPU index)."""
    if not re.fullmatch(r"3\.\d+(\.\d+)?", spec.strip()):
        raise WorkflowError(f"setup-python: python-version {spec!r} is not X.Y or X.Y.Z (only those are emulated)")
    spec = spec.strip()
    minor = ".".join(spec.split(".")[:2])
    candidates = [Path(getattr(sys, "_base_executable", sys.executable)).resolve()]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(pyenv.glob(f"versions/{glob.escape(minor)}.*/bin/python{minor}"), reverse=True)
    shims = str(pyenv / "shims")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != shims)
    found = shutil.which(f"python{minor}", path=path)
    candidates += [Path(found)] if found else []
    for python in candidates:
        version = _version_of(python) if python.is_file() else ""
        if version == spec or version.startswith(f"{spec}."):
            return python, version
    raise RuntimeError(f"setup-python: no Python {spec} on this machine")


def _list(value) -> list:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="overrides every job's env")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="repository variables")
    parser.add_argument("--only", action="append", default=[], metavar="JOB:KEY=VALUE")
    parser.add_argument("--skip-job", action="append", default=[], metavar="JOB")
    parser.add_argument("--token", default="", help="what github.token gives (default: none)")
    parser.add_argument("--store", help="folder for job workspaces, artifacts and caches (default: a temp folder)")
    args = parser.parse_args(argv)
    try:
        return Run(Path(args.workflow), args).run()
    except WorkflowError as exc:
        print(f"error: {args.workflow}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
