"""`python -m prefixcheck.registry`: validate the registry, print it, and flag measured disagreements.

    python -m prefixcheck.registry                 the table, then every entry whose declared bounds
                                                   disagree with what was measured (a flag, not an error)
    python -m prefixcheck.registry --schema        the fields an entry and a failure take, and what they mean
    python -m prefixcheck.registry --write-doc [P] write the table into docs/known-issues.md (or P)

The registry is the run's (PREFIXCHECK_REGISTRY, else known_issues.toml). Exit 0; 2 with one line
`error: ...` for a registry or measured file that cannot be used.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import RegistryError, default, default_path, measured, schema, table
from .entry import Failure, KnownIssue

DOC = Path(__file__).resolve().parents[2] / "docs" / "known-issues.md"


def _schema_text() -> str:
    lines = []
    for title, record in (("[[issue]]", KnownIssue), ("[[issue.fails]]", Failure)):
        lines.append(title)
        for name, kind, required, doc in schema.fields(record):
            lines.append(f"  {name:<15} {kind:<5} {'required' if required else 'optional':<8} {doc}")
    return "\n".join(lines)


def _flags(registry) -> list[str]:
    known = measured.load()
    flagged = measured.flags(registry, known)
    lines = [
        f"Measured bounds ({measured.MEASURED_FILE.name}): {len(known)} entries measured, "
        f"{len(flagged)} disagree with `affects`"
    ]
    lines += [f"FLAG {issue_id}: {line}" for issue_id, found in flagged.items() for line in found]
    return lines


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["--schema"]:
            print(_schema_text())
            return 0
        registry = default()
        if argv[:1] == ["--write-doc"]:
            page = Path(argv[1]) if len(argv) > 1 else DOC
            page.write_text(table.with_table(page.read_text(), registry))
            return 0
        print(table.markdown_table(registry))
        print(f"\n{len(registry)} entries in {default_path()}")
        print("\n".join(_flags(registry)))
    except (RegistryError, measured.MeasuredError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
