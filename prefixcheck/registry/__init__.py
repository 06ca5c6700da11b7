"""The known-issue registry: upstream bugs as data, and the one judge of a failure.

- `entry`: a registry entry's two records, `KnownIssue` and `Failure`, whose fields are the schema;
- `schema`: the TOML form read off those records: `parse` (validated, one-line errors), `render`;
- `facts`: the case facts an entry's `cases` can constrain;
- `judge`: `Registry` (a loaded file: matching, judge, signatures) and the per-example `Expectations`;
- `measured`: the bounds `python -m matrix bisect --registry` measured (known_issues_measured.json)
  and where an entry's declared bounds disagree with them;
- `table`: the registry as Markdown (docs/known-issues.md);
- `cli`: `python -m prefixcheck.registry` (validate, print the table and the flags).

Beside them, the data: `known_issues.toml` (the entries) and `known_issues_measured.json`.
`default()` is the registry a run judges by: the file `PREFIXCHECK_REGISTRY` names, else
known_issues.toml here (as array-api-tests' `--xfails-file` swaps its expected failures).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from .entry import ANY, REPOS, Failure, KnownIssue, StaleKnownIssue
from .judge import Expectations, Judgement, Registry
from .schema import RegistryError, parse

REGISTRY_FILE = Path(__file__).with_name("known_issues.toml")
ENV = "PREFIXCHECK_REGISTRY"  # names another registry file for a run


def load(path: str | Path = REGISTRY_FILE) -> Registry:
    """The registry in the file at `path`, validated; RegistryError (one line) for a file that
    cannot be read or holds a malformed entry."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the registry: {exc.strerror}") from None
    return Registry(parse(text, path.name), path.name)


def default_path() -> Path:
    """The registry file of this run: $PREFIXCHECK_REGISTRY where set, else known_issues.toml."""
    return Path(os.environ.get(ENV) or REGISTRY_FILE)


@cache
def _loaded(path: Path) -> Registry:
    return load(path)


def default() -> Registry:
    """The registry this run judges by (default_path()), loaded once per file."""
    return _loaded(default_path())


__all__ = [
    "ANY",
    "ENV",
    "REGISTRY_FILE",
    "REPOS",
    "Expectations",
    "Failure",
    "Judgement",
    "KnownIssue",
    "Registry",
    "RegistryError",
    "StaleKnownIssue",
    "default",
    "default_path",
    "load",
    "parse",
]
