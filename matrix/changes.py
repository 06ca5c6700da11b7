"""What changed between two result folders, and the nightly tracking issue.

`python -m matrix diff OLD NEW` reads, from each folder, a `matrix.json` (the compatibility matrix)
and every `summary.json` below it (property-suite runs, keyed by their folder: the tox env). It
reports what CI has to act on (matrix/diffing.py says how failures are keyed):
- new failures: a property failure whose signature the baseline did not have, or a matrix
  square verdict that was good (or absent) and is not;
- newly passing: a failure that went away, a matrix row that now passes, and every
  `StaleKnownIssue` (a registry entry whose bug looks fixed);
- other changes: a row that went from pass to a known issue or from one known issue to another,
  and rows that disappeared (a consumer or producer that no longer judged them).
Known-issue counts are not compared: with a randomized profile they move every night.

`python -m matrix track CHANGES --repo OWNER/NAME` opens one tracking issue (label
`nightly-tracking`) or comments on the open one, with the Markdown of `diff --out`; with
`--bisects DIR` (the --out of `matrix bisect-new`, matrix/bisect_new.py) also each new failure's
bisect, cut to GitHub's comment size limit.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from .diffing import matrix_diff, suite_diff, verdict_text
from .report import fold_numbers

LABEL = "nightly-tracking"
TITLE = "Nightly prefix-tuning results changed"
COMMENT_LIMIT = 65536  # characters GitHub takes in an issue body or comment


class ResultsError(ValueError):
    """A results folder or file that cannot be read; the message names it."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: not a readable results file ({exc.__class__.__name__}: {exc})") from None


def load_results(path: str | Path) -> dict:
    """{"matrix": matrix.json or None, "suites": {env: summary.json}} from a folder or one file.
    A missing path is an empty result (the first nightly has no predecessor)."""
    path = Path(path)
    out: dict = {"matrix": None, "suites": {}}
    if not path.exists():
        return out
    files = [path] if path.is_file() else sorted(path.rglob("*.json"))
    for file in files:
        if file.name == "matrix.json":
            out["matrix"] = _read_json(file)
        elif file.name == "summary.json":
            out["suites"][file.parent.name] = _read_json(file)
    if path.is_file() and out["matrix"] is None and not out["suites"]:
        raise ResultsError(f"{path}: neither a matrix.json nor a summary.json")
    return out


def diff(baseline: dict, candidate: dict) -> dict:
    new_failures, newly_passing, other = [], [], []
    for env, summary in sorted(candidate["suites"].items()):
        if env not in baseline["suites"]:
            suite = suite_diff({}, summary)
            suite["fixed"] = []
        else:
            suite = suite_diff(baseline["suites"][env], summary)
        versions = {k: summary.get("versions", {}).get(k) for k in ("peft", "transformers")}
        for f in suite["new_failures"]:
            row = {"where": f"suite {env}", "property": f["property"], "error": fold_numbers(f["error"])[:160]}
            # what `matrix bisect-new` needs: the run, its versions, the reproduction script
            row.update(case=f["case"], env=env, versions=versions, repro=f["repro"])
            (
                newly_passing
                if f["kind"] == "StaleKnownIssue" or f["error"].startswith("StaleKnownIssue")
                else new_failures
            ).append(row)
        for f in suite["fixed"]:
            newly_passing.append(
                {
                    "where": f"suite {env}",
                    "property": f["property"],
                    "error": f"fixed: {fold_numbers(f['error'])[:160]}",
                }
            )
    for env in sorted(set(baseline["suites"]) - set(candidate["suites"])):
        other.append({"where": f"suite {env}", "property": "(whole run)", "error": "no summary.json in this run"})
    grid = matrix_diff(baseline["matrix"] or {}, candidate["matrix"] or {})

    def where(r):
        return f"matrix {r['producer']} -> {r.get('consumer', '?')}"

    def what(r):
        return f"{r.get('arch', '?')} {r.get('task', '?')} case {r['case']}"

    for r in grid["regressions"]:
        text = f"{verdict_text(r, 'baseline')} -> {r['verdict']}: " + fold_numbers(r.get("detail", ""))[:160]
        row = {"where": where(r), "property": what(r), "error": text}
        row.update(producer=r["producer"], consumer=r.get("consumer"), case=r["case"])  # the square, for bisect-new
        new_failures.append(row)
    for r in grid["fixes"]:
        newly_passing.append(
            {"where": where(r), "property": what(r), "error": f"{verdict_text(r, 'baseline')} -> pass"}
        )
    for r in grid["changed"]:
        other.append(
            {"where": where(r), "property": what(r), "error": f"{verdict_text(r, 'baseline')} -> {verdict_text(r)}"}
        )
    for r in grid["disappeared"]:
        other.append(
            {"where": where(r), "property": what(r), "error": f"{verdict_text(r, 'baseline')} -> no longer judged"}
        )
    has_baseline = bool(baseline["matrix"] or baseline["suites"])
    return {
        "baseline_found": has_baseline,
        "changed": has_baseline and bool(new_failures or newly_passing or other),
        "new_failures": new_failures,
        "newly_passing": newly_passing,
        "other_changes": other,
    }


def markdown(changes: dict, title: str) -> str:
    lines = [f"## {title}", ""]
    if not changes["baseline_found"]:
        return "\n".join(lines + ["No earlier results to compare with: this run is the baseline for the next."]) + "\n"
    if not changes["changed"]:
        return "\n".join(lines + ["Nothing changed: no new failures, nothing newly passing."]) + "\n"
    for key, head in (
        ("new_failures", "New failures"),
        ("newly_passing", "Newly passing (narrow or remove the registry entry)"),
        ("other_changes", "Other changes (a known issue appeared or changed, a row is no longer judged)"),
    ):
        rows = changes.get(key, [])
        if rows:
            lines += [f"**{head}** ({len(rows)}):", "", "| where | what | error |", "|---|---|---|"]
            for r in rows[:100]:
                lines.append(f"| {r['where']} | `{r['property']}` | {r['error'].replace('|', '/')} |")
            if len(rows) > 100:
                lines.append(f"| ... | {len(rows) - 100} more in changes.json | |")
            lines.append("")
    return "\n".join(lines) + "\n"


def diff_command(args) -> int:
    if not Path(args.candidate).exists():
        raise SystemExit(f"error: {args.candidate}: no such results folder or file")
    try:
        baseline, candidate = load_results(args.baseline), load_results(args.candidate)
    except ResultsError as exc:
        raise SystemExit(f"error: {exc}") from None
    if Path(args.baseline).is_file() and Path(args.candidate).is_file() and len(baseline["suites"]) == 1:
        # two summary.json files: compare them as one suite, whatever their env names
        baseline["suites"] = {name: next(iter(baseline["suites"].values())) for name in candidate["suites"]}
    changes = diff(baseline, candidate)
    text = markdown(changes, args.title)
    github_output(changed=str(changes["changed"]).lower(), new_failures=str(len(changes["new_failures"])))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "changes.json").write_text(json.dumps(changes, indent=1))
        (out / "changes.md").write_text(text)
    print(text)
    return 1 if args.fail_on_new and changes["new_failures"] else 0


class GitHub:
    """The three REST calls the tracking issue needs; `dry_run` prints them instead."""

    def __init__(self, repo: str, token: str | None, dry_run: bool = False) -> None:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            raise SystemExit(f"error: --repo {repo!r} is not OWNER/NAME")
        if not token and not dry_run:
            raise SystemExit("error: GITHUB_TOKEN is not set (needed to file the tracking issue; or use --dry-run)")
        self.repo, self.token, self.dry_run = repo, token, dry_run
        self.calls: list[tuple[str, str, dict | None]] = []

    def request(self, method: str, path: str, body: dict | None = None):
        self.calls.append((method, path, body))
        if self.dry_run:
            print(f"[dry-run] {method} /repos/{self.repo}{path} {json.dumps(body)[:200] if body else ''}")
            return [] if method == "GET" else {"html_url": "(dry run)"}
        return api_call(method, f"/repos/{self.repo}{path}", body, self.token)


def track(changes: dict, text: str, github: GitHub, run_url: str = "") -> str:
    """Comment on the open tracking issue, or open one; nothing when nothing changed."""
    if not changes.get("changed"):
        return "nothing changed: no tracking issue update"
    run = f"\nRun: {run_url}\n" if run_url else ""
    if len(text) + len(run) > COMMENT_LIMIT:
        note = "\n\n(Cut here: GitHub's comment size limit. The whole text is changes.md in the run's artifacts.)\n"
        text = text[: COMMENT_LIMIT - len(run) - len(note)] + note
    body = text + run
    open_issues = github.request("GET", f"/issues?state=open&labels={LABEL}&per_page=10")
    ours = [i for i in open_issues if i.get("title") == TITLE and "pull_request" not in i]
    if ours:
        number = ours[0]["number"]
        github.request("POST", f"/issues/{number}/comments", {"body": body})
        return f"commented on tracking issue #{number}"
    created = github.request("POST", "/issues", {"title": TITLE, "body": body, "labels": [LABEL]})
    return f"opened tracking issue {created.get('html_url', '')}"


def track_command(args) -> int:
    folder = Path(args.changes)
    try:
        changes = _read_json(folder / "changes.json")
        text = (folder / "changes.md").read_text()
    except (ResultsError, OSError) as exc:
        raise SystemExit(f"error: {folder}: no diff output to track ({exc})") from None
    if args.bisects and changes.get("new_failures"):
        from .bisect_new import attachment

        room = COMMENT_LIMIT - len(text) - len(args.run_url) - 200  # the run's link, the separators
        bisects = attachment(Path(args.bisects), room, args.run_url)
        missing = f"No bisect results for the new failures ({args.bisects} holds no bisects.json: the bisect job did not finish).\n"
        text += "\n" + (bisects or missing)
    github = GitHub(args.repo, os.environ.get("GITHUB_TOKEN"), dry_run=args.dry_run)
    print(track(changes, text, github, args.run_url))
    return 0


PEFT_REPO = "huggingface/peft"


def pr_spec(pr: str = "", repository: str = "", ref: str = "", spec: str = "", fetch=None) -> str:
    """One PEFT_SPEC from exactly one of: a PEFT pull-request number (resolved to its head
    repository and commit, so the run says exactly what it tested), a repository + ref, a spec."""
    given = [name for name, value in (("pr", pr), ("repository", repository), ("spec", spec)) if value]
    if len(given) != 1:
        raise SystemExit(f"error: give exactly one of --pr, --repository (+ --ref), --spec; got {given or 'none'}")
    if spec:
        return spec.strip()
    if repository:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
            raise SystemExit(f"error: --repository {repository!r} is not OWNER/NAME")
        if not re.fullmatch(r"[\w./-]+", ref or "") or ".." in ref:
            raise SystemExit(f"error: --ref {ref!r} is not a branch, tag or commit")
        return f"git+https://github.com/{repository}@{ref}"
    if not re.fullmatch(r"[1-9]\d{0,6}", pr):
        raise SystemExit(f"error: --pr {pr!r} is not a pull-request number")
    fetch = fetch or (lambda path: api_call("GET", path, token=os.environ.get("GITHUB_TOKEN")))
    data = fetch(f"/repos/{PEFT_REPO}/pulls/{pr}")
    head = data.get("head") or {}
    repo = (head.get("repo") or {}).get("full_name")
    sha = head.get("sha", "")
    if not repo or not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise SystemExit(f"error: {PEFT_REPO}#{pr}: no head repository/commit in the API answer (deleted fork?)")
    return f"git+https://github.com/{repo}@{sha}"


def api_call(method: str, path: str, body: dict | None = None, token: str | None = None):
    """One GitHub REST call (GITHUB_API_URL, set by Actions, else api.github.com); failures as one line."""
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    try:
        req = urllib.request.Request(f"{api}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"error: GitHub API {method} {path}: HTTP {exc.code} {exc.reason}") from None
    except OSError as exc:
        raise SystemExit(f"error: GitHub API {method} {path}: {exc}") from None


def github_output(**values: str) -> None:
    """Step outputs for GitHub Actions (no-op elsewhere)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a") as fh:
            for key, value in values.items():
                fh.write(f"{key}={value}\n")


def pr_spec_command(args) -> int:
    spec = pr_spec(args.pr.strip(), args.repository.strip(), args.ref.strip(), args.spec)
    github_output(peft_spec=spec)
    print(spec)
    return 0
