"""The GitHub Actions workflows: actionlint, the security rules, and each workflow run locally in a
reduced form (two small cells; the property suites on the smoke profile, CAUSAL_LM items only) by .ci/act.py, from the YAML itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from matrix.grid import cells as cells_mod
from tests.selftest import actionlint

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SETUP_ACTION = ROOT / ".github" / "actions" / "setup" / "action.yml"
TWO_CELLS = "peft-0.17.1,peft-0.21.2-tf-5.23"
# The cells' pinned cases in the reduced form: one decoder with GQA, Gemma2 (whose classification
# adapters from 0.21.2 do not load under 0.17.1: the difference pr-validation must report) and
# one encoder-decoder.
FEW_ARCHS = "llama,gemma2,bart"
pytestmark = pytest.mark.selftest


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads `on:` as True
    return data


def _steps(data: dict):
    for name, job in data["jobs"].items():
        for step in job.get("steps", []):
            yield name, job, step


def test_the_three_workflows_exist():
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "nightly.yml", "pr-validation.yml"}


# --- actionlint ------------------------------------------------------------------------------


def test_actionlint_finds_nothing():
    found = actionlint.lint(WORKFLOWS)
    assert found == [], f"actionlint ({actionlint.which()}):\n" + "\n".join(
        f"{f['filepath']}:{f['line']}:{f['column']} {f['message']} [{f['kind']}]" for f in found
    )


def test_actionlint_is_live(tmp_path):
    """The linter really lints: a workflow with two classic mistakes is flagged twice."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.head_commit.message }}\n"  # script injection
        "      - run: echo ${{ matrix.nope }}\n"  # no such matrix key
        "  b:\n    runs-on: [self-hosted, tpu]\n    steps:\n      - run: true\n"  # unknown label
        "      - run: cd $HOME/x\n"  # shellcheck: unquoted
    )
    found = [(f["kind"], f["message"]) for f in actionlint.lint([bad])]
    expected = [("expression", "potentially untrusted"), ("expression", '"nope"'), ("runner-label", "tpu")]
    expected += [("shellcheck", "SC2086")] if shutil.which("shellcheck") else []
    for kind, words in expected:
        assert any(k == kind and words in m for k, m in found), f"{kind} {words!r} not reported: {found}"


# --- security and shape ----------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_security_rules(path):
    data, text = _load(path), path.read_text()
    assert data["permissions"] == {"contents": "read"}, "top-level permissions must be contents: read"
    assert "pull_request_target" not in (data["on"] or {}), "never pull_request_target"
    assert not re.search(r"\bsecrets\.\w", text), "no secrets in these workflows"
    for name, job in data["jobs"].items():
        perms = job.get("permissions", {})
        writes = {k for k, v in perms.items() if v == "write"}
        assert writes <= ({"issues"} if name == "track" else set()), f"{name}: write permission {writes}"
        commands = " ".join(s.get("run", "") for s in job.get("steps", []))
        runs_code_under_test = re.search(r"\btox\b|matrix (run|validate|produce|consume|bisect)", commands)
        if writes or "github.token" in json.dumps(job):
            assert not runs_code_under_test, f"{name}: holds a token (or write access) and runs PEFT code"
    for name, _, step in _steps(data):
        if "run" in step:
            assert "${{" not in step["run"], f"{name}: an expression inside a script; pass it through env"
        if step.get("uses", "").startswith("actions/checkout"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{name}: checkout keeps the token"


@pytest.mark.parametrize("path", [*WORKFLOWS, SETUP_ACTION], ids=lambda p: p.name)
def test_actions_are_pinned_to_commits_with_the_tag_in_a_comment(path):
    for line in path.read_text().splitlines():
        m = re.search(r"uses:\s*(\S+)(.*)", line)
        if m and not m[1].startswith("./"):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", m[1]), f"not pinned to a SHA: {line.strip()}"
            assert re.fullmatch(r"\s*# v\d+(\.\d+)*", m[2]), f"no tag comment: {line.strip()}"


def test_every_command_is_a_tox_env_or_the_matrix_cli(tox_envs):
    from matrix.cli import parser

    subcommands = set(next(a for a in parser()._actions if a.dest == "command").choices)
    seen_tox, seen_matrix = set(), set()
    for path in WORKFLOWS:
        data = _load(path)
        for name, job, step in _steps(data):
            for m in re.finditer(r"\btox -e (\S+)", step.get("run", "")):
                env = m[1].strip('"')
                if env == "$TOX_ENV":  # from the matrix: every value must be an env
                    values = [c.get("tox_env") or c.get("env") for c in job["strategy"]["matrix"].get("include", [])]
                    values += job["strategy"]["matrix"].get("env", [])
                    assert values and set(values) <= tox_envs, f"{path.name}/{name}: {values} vs {tox_envs}"
                    seen_tox |= set(values)
                else:
                    assert set(env.split(",")) <= tox_envs, f"{path.name}/{name}: unknown tox env {env}"
                    seen_tox |= set(env.split(","))
            for m in re.finditer(r"python -m matrix ([\w-]+)", step.get("run", "")):
                assert m[1] in subcommands, f"{path.name}/{name}: unknown matrix command {m[1]}"
                seen_matrix.add(m[1])
    assert {"lint", "selftest", "known-good", "peft-latest", "peft-pr"} <= seen_tox
    assert {"cells", "run", "report", "diff", "track", "pr-spec", "validate", "bisect-new"} <= seen_matrix
    with pytest.raises(SystemExit):  # the CLI is the one the workflows call: bad args are refused
        parser().parse_args(["run", "--stage", "nope"])


def test_gpu_job_is_opt_in_and_names_real_cells():
    job = _load(ROOT / ".github" / "workflows" / "nightly.yml")["jobs"]["gpu"]
    assert job["if"] == "${{ vars.GPU_RUNNER == 'true' }}"
    assert job["runs-on"] == ["self-hosted", "gpu"]
    assert job["env"] == {"TORCH_DEVICE": "cuda", "PREFIXCHECK_REQUIRE_CUDA": "1"}
    known = {c.name: c for c in cells_mod.load()}
    named = re.findall(r"--cells (\S+)", " ".join(s.get("run", "") for s in job["steps"]))
    cells = [known[n] for names in named for n in names.split(",")]
    assert {c.device for c in cells} == {"cpu", "cuda"}  # both directions of CPU <-> CUDA loads


def test_nightly_bisects_new_failures_between_report_and_track_without_a_token():
    jobs = _load(ROOT / ".github" / "workflows" / "nightly.yml")["jobs"]
    bisect, track = jobs["bisect"], jobs["track"]
    assert bisect["needs"] == "report" and set(track["needs"]) == {"report", "bisect"}
    assert "new_failures" in jobs["report"]["outputs"] and "new_failures != '0'" in bisect["if"]
    assert "permissions" not in bisect and "github.token" not in json.dumps(bisect)
    commands = [s.get("run", "") for s in bisect["steps"]]
    assert any("python -m matrix bisect-new" in c and '--limit "$BISECT_LIMIT"' in c for c in commands)
    # bounded: every bisect it may run fits in the job's time
    limit, timeout = int(bisect["env"]["BISECT_LIMIT"]), float(bisect["env"]["BISECT_TIMEOUT"])
    assert limit * timeout < 60 * bisect["timeout-minutes"]
    uploads = [s["with"]["name"] for s in bisect["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    downloads = [s for s in track["steps"] if s.get("with", {}).get("name") == uploads[0]]
    assert uploads == ["nightly-bisect"] and downloads[0]["if"] == "${{ needs.bisect.result == 'success' }}"
    assert any("--bisects nightly-bisect" in s.get("run", "") for s in track["steps"])


def test_nightly_runs_both_mains_and_the_nightly_profile():
    data = _load(ROOT / ".github" / "workflows" / "nightly.yml")
    assert data["env"]["HYPOTHESIS_PROFILE"] == "nightly"
    suites = {c["name"]: c for c in data["jobs"]["suite"]["strategy"]["matrix"]["include"]}
    assert "huggingface/peft" in suites["peft-main"]["peft"]
    assert "huggingface/transformers" in suites["transformers-main"]["transformers"]
    mains = {c.name for c in cells_mod.load() if c.needs == "github"}
    assert mains == {"peft-main", "transformers-main"}


# --- the workflows, run locally in reduced form ------------------------------------------------


class FakeGitHub(BaseHTTPRequestHandler):
    """Just enough of the issues API for `matrix track`; remembers every request."""

    requests: list = []
    issues: list = []

    def _answer(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self.requests.append(("GET", self.path, None, self.headers.get("Authorization")))
        self._answer(200, self.issues)

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body, self.headers.get("Authorization")))
        if self.path.endswith("/issues"):
            issue = {"number": 7, "title": body["title"], "html_url": "http://fake/issues/7"}
            self.issues.append(issue)
            self._answer(201, issue)
        else:
            self._answer(201, {})

    def log_message(self, *args):
        pass


@pytest.fixture()
def fake_github():
    FakeGitHub.requests, FakeGitHub.issues = [], []
    server = HTTPServer(("127.0.0.1", 0), FakeGitHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", FakeGitHub
    server.shutdown()


def _pinned_keys(archs: str) -> set[str]:
    """The pinned cases a cell produces under MATRIX_ARCHS=archs (the reduced form has no drawn ones)."""
    from matrix.grid import produce

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MATRIX_ARCHS", archs)
        return {c.key for c in produce.pinned_cases()}


def act(workflow: str, store: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / ".ci" / "act.py"),
            str(ROOT / ".github" / "workflows" / workflow),
            "--store",
            str(store),
            # The plumbing is under test here (jobs, artifacts, summaries, diffs, the tracking issue);
            # tox -e known-good tests PEFT. So each property suite inside runs one fixed example of
            # each property on CAUSAL_LM only, over the curated architectures only, and the matrix
            # cells pin three architectures.
            "--env",
            "HYPOTHESIS_PROFILE=smoke",
            "--env",
            "PREFIXCHECK_FAMILIES=curated",
            "--env",
            "PYTEST_ADDOPTS=-k CAUSAL_LM",
            "--env",
            f"MATRIX_ARCHS={FEW_ARCHS}",
            "--env",
            "PYTEST_WORKERS=0",  # so few examples: one process, no xdist workers to start (tox, validate)
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    (store / "act.log").write_text(proc.stdout + proc.stderr)
    return proc


def _tail(proc) -> str:
    return (proc.stdout + proc.stderr)[-6000:]


def test_ci_workflow_runs_locally(tmp_path):
    # the selftest job is left out: it is the test that is running this; faults-latest too, as
    # test_properties_catch_faults runs the same tests. The suite runs on 3.11 only: this
    # project's local torch wheel is for 3.11 (the other Pythons run on GitHub).
    proc = act(
        "ci.yml", tmp_path, "--skip-job", "selftest", "--skip-job", "faults-latest", "--only", "properties:python=3.11"
    )
    assert proc.returncode == 0, _tail(proc)
    out = proc.stdout
    assert "=== job lint: success" in out
    assert "## Property suite `known-good`: passed" in out
    assert "## Property suite `peft-latest`: passed" in out
    assert "## Upstream: peft-latest against the pinned known-good pair" in out
    # the tox env ran on the Python the matrix asked for
    for env in ("known-good", "peft-latest"):
        summary = json.loads((tmp_path / "artifacts" / f"suite-{env}-py3.11" / env / "summary.json").read_text())
        assert summary["versions"]["python"].startswith("3.11."), summary["versions"]


def test_nightly_workflow_runs_locally_and_files_the_tracking_issue(tmp_path, fake_github):
    api, server = fake_github
    # the previous nightly, as the cache holds it: one row of it differs from what tonight gives
    previous = json.loads((ROOT / "docs" / "matrix" / "matrix.json").read_text())
    pinned = _pinned_keys(FEW_ARCHS)  # what tonight produces
    rows = [r for r in previous["rows"] if r["producer"] == r["consumer"] == "peft-0.17.1" and r["case"] in pinned]
    flipped = next(r for r in rows if r["verdict"] == "pass")
    seeded = tmp_path / "caches" / "nightly-results-local-0"
    seeded.mkdir(parents=True)
    (seeded / "matrix.json").write_text(json.dumps({"rows": [dict(flipped, verdict="known-issue", issue="x")]}))
    proc = act(
        "nightly.yml",
        tmp_path,
        "--input",
        f"cells={TWO_CELLS}",
        "--env",
        "MATRIX_DRAWN=0",
        "--only",
        "suite:name=peft-latest",
        "--env",
        f"GITHUB_API_URL={api}",
        "--token",
        "fake-token",
        # the bisect job runs and lists every new failure, but starts no bisect: one builds an
        # environment per release (tests/selftest/test_bisect_new.py covers bisects and their text)
        "--env",
        "BISECT_LIMIT=0",
    )
    assert proc.returncode == 0, _tail(proc)
    out = proc.stdout
    for job in ("plan", "produce", "consume", "suite", "report", "bisect", "track"):
        assert f"=== job {job}: success" in out, f"{job} did not succeed:\n{_tail(proc)}"
    assert "=== job gpu: skipped" in out  # no GPU_RUNNER variable: the GPU job stays off
    assert "# Prefix-tuning compatibility matrix" in out and "## Property suite `peft-latest`" in out
    assert "Newly passing" in out and f"case {flipped['case']}" in out
    # one tracking issue, opened with the token, carrying the change
    posts = [r for r in server.requests if r[0] == "POST"]
    assert [p[1] for p in posts] == ["/repos/local/prefix-roundtrip/issues"], server.requests
    assert posts[0][2]["labels"] == ["nightly-tracking"] and flipped["case"] in posts[0][2]["body"]
    assert posts[0][3] == "Bearer fake-token"
    # tonight's bad rows the one-row baseline lacks are new failures (0.21.2's gemma2 and bart
    # adapters under 0.17.1): the bisect job's list of them reaches the issue, one line each
    new = json.loads((tmp_path / "artifacts" / "nightly-report" / "changes" / "changes.json").read_text())
    bisects = json.loads((tmp_path / "artifacts" / "nightly-bisect" / "bisects.json").read_text())
    assert new["new_failures"] and len(bisects["entries"]) == len(new["new_failures"])
    body = posts[0][2]["body"]
    assert f"**Bisects of the new failures** (0 of {len(new['new_failures'])};" in body
    assert body.count("not bisected: limit of 0 reached") == len(new["new_failures"])
    # tonight's results are kept for tomorrow's comparison
    kept = [p for p in (tmp_path / "caches").iterdir() if p.name != "nightly-results-local-0"]
    assert any(
        (p / "matrix.json").is_file() and (p / "reports" / "peft-latest" / "summary.json").is_file() for p in kept
    )


def test_pr_validation_workflow_runs_locally_and_fails_on_a_real_difference(tmp_path):
    # two pinned releases that differ: 0.17.1 validated against 0.21.2 (both with transformers 4.57.6)
    proc = act(
        "pr-validation.yml",
        tmp_path,
        "--input",
        "spec=0.17.1",
        "--input",
        "baseline=0.21.2",
        "--input",
        "transformers=4.57.6",
        "--input",
        f"cells={TWO_CELLS}",
        "--env",
        "MATRIX_DRAWN=0",
    )
    out = proc.stdout
    assert "=== job resolve: success" in out, _tail(proc)
    assert "=== job validate: failure" in out, _tail(proc)  # new failures fail the job
    assert "# PEFT validation: `0.17.1` against `0.21.2`" in out
    assert "**New failures**" in out and "artifact `peft-0.21.2-tf-5.23/" in out, _tail(proc)
    assert proc.returncode == 1


def test_local_runner_refuses_what_it_cannot_emulate(tmp_path):
    wf = tmp_path / "x.yml"
    wf.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: some/action@v1\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "act.py"), str(wf), "--store", str(tmp_path / "s")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "action some/action is not emulated by this runner" in proc.stderr
