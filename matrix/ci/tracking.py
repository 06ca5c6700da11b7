"""The nightly tracking issue: `python -m matrix track CHANGES --repo OWNER/NAME` opens one issue
(label `nightly-tracking`) or comments on the open one, with the Markdown of `diff --out`; with
`--bisects DIR` (the --out of `matrix bisect-new`, matrix/bisect/new_failures.py) also each new
failure's bisect, cut to GitHub's comment size limit. Also the one GitHub REST call and the step
outputs every command here writes."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

LABEL = "nightly-tracking"
TITLE = "Nightly prefix-tuning results changed"
COMMENT_LIMIT = 65536  # characters GitHub takes in an issue body or comment


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
