"""`python -m matrix pr-spec`: the PEFT_SPEC of a PEFT pull request (its head repository and commit,
so the run says exactly what it tested), of a repository + ref, or a spec as given."""

from __future__ import annotations

import os
import re

from prefixcheck.registry import REPOS

from .tracking import api_call


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
    data = fetch(f"/repos/{REPOS['peft']}/pulls/{pr}")
    head = data.get("head") or {}
    repo = (head.get("repo") or {}).get("full_name")
    sha = head.get("sha", "")
    if not repo or not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise SystemExit(f"error: {REPOS['peft']}#{pr}: no head repository/commit in the API answer (deleted fork?)")
    return f"git+https://github.com/{repo}@{sha}"
