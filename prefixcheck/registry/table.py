"""The registry as Markdown: one row per entry (docs/known-issues.md holds it between markers)."""

from __future__ import annotations

MARKERS = ("<!-- known-issues:start -->", "<!-- known-issues:end -->")


def markdown_table(registry) -> str:
    """The entries of `registry` as a Markdown table: id, what fails, where and how, affects, reference."""
    rows = ["| id | what fails | where (how) | affects | reference |", "|---|---|---|---|---|"]
    for issue in registry:
        affects = ", ".join(f"{k} {v}" for k, v in issue.affects.items())
        refs = " ".join(f"[{r.rsplit('/', 3)[-3]}#{r.rsplit('/', 1)[-1]}]({r})" for r in issue.references)
        ref = refs or "found by this suite (report in the entry)"
        where = "; ".join(
            f"{', '.join(f'`{w}`' for w in f.at)} ({f.output or f.exception.replace('|', ' or ')})" for f in issue.fails
        )
        rows.append(f"| `{issue.id}` | {issue.title} | {where} | {affects} | {ref} |")
    return "\n".join(rows)


def with_table(text: str, registry) -> str:
    """`text` (a Markdown page) with the table between its markers replaced by the registry's."""
    start, end = MARKERS
    if start not in text or end not in text:
        raise ValueError(f"the page has no {start} ... {end} markers for the registry's table")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{markdown_table(registry)}\n{end}{tail}"
