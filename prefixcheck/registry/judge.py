"""The one decision: is a failure, at its place, the known way a registry entry says it fails?

A `Registry` is a loaded set of entries. `judge()` is used by the property suite (through each
example's `Expectations`) and by the matrix's consume step alike: given where a failure happened
and what it was, which entry (if any) explains it. When several do, the most specific wins (more
case facts, narrower versions, a named property before "*"). Nothing here skips a test: a case an
entry covers must fail exactly that way, and where every place of the entry ran and held the
entry is stale (`Expectations.stale`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..verdicts import KNOWN, PASSED
from ..versions import satisfies
from .entry import KnownIssue, StaleKnownIssue


@dataclass(frozen=True)
class Judgement:
    """Which entry explains a failure at (property, point), and what else was considered."""

    issue: KnownIssue | None
    also: tuple[str, ...] = ()  # other entries that explain it too (less specific)
    notes: tuple[str, ...] = ()  # entries that apply here but expect something else

    @property
    def known(self) -> bool:
        return self.issue is not None

    @property
    def issue_id(self) -> str | None:
        return self.issue.id if self.issue else None


@dataclass(frozen=True)
class Registry:
    """The entries of one registry file, and every question asked of them."""

    entries: tuple[KnownIssue, ...]
    source: str = "known_issues.toml"

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def by_id(self, issue_id: str) -> KnownIssue:
        for issue in self.entries:
            if issue.id == issue_id:
                return issue
        raise KeyError(f"no known issue {issue_id!r} in {self.source}")

    def live(self, versions: dict[str, str] | None = None) -> list[str]:
        """The ids of the entries whose `affects` holds for these versions (default: installed)."""
        return [i.id for i in self.entries if all(satisfies(p, s, versions) for p, s in i.affects.items())]

    def without_bounds(self, issue_id: str) -> Registry:
        """This registry with entry `issue_id` applying to every version (its `affects` dropped):
        what measuring its bounds judges by, so no measurement depends on the bounds it checks."""
        self.by_id(issue_id)  # KeyError: no such entry
        entries = tuple(dataclasses.replace(i, affects={}) if i.id == issue_id else i for i in self.entries)
        return Registry(entries, self.source)

    def matching(self, prop: str, case, versions: dict[str, str] | None = None) -> tuple[KnownIssue, ...]:
        """Every entry with a place in `prop` that covers `case` under the versions, most specific first."""
        found = [issue for issue in self.entries if issue.applies(prop, case, versions)]
        return tuple(sorted(found, key=lambda i: i.specificity, reverse=True))

    def signatures(self, prop: str, point: str, case, exc: BaseException) -> tuple[str, ...]:
        """The ids of every entry whose signature this failure at (prop, point) is, whatever the
        installed versions (KnownIssue.signature_of)."""
        return tuple(i.id for i in self.entries if i.signature_of(prop, point, case, exc))

    def judge(self, prop: str, point: str, case, exc: BaseException, versions=None) -> Judgement:
        return _judge(self.matching(prop, case, versions), prop, point, case, exc)

    def expectations(self, prop: str, case, versions: dict[str, str] | None = None) -> Expectations:
        """What this registry expects of one example (prefixcheck.example's `known`)."""
        return Expectations(prop, case, self.matching(prop, case, versions))


def _judge(entries, prop: str, point: str, case, exc: BaseException) -> Judgement:
    explaining = [i for i in entries if i.explains(prop, point, case, exc)]
    notes = []
    for issue in entries:
        if issue in explaining:
            continue
        here = [f for f in issue.fails if point in f.places(prop, case)]
        if here:
            notes.append(
                f"known issue {issue.id} applies at {prop}:{point} but expects {here[0]}; this failure is different"
            )
        elif any(f.matches(exc) for f in issue.fails):
            notes.append(
                f"known issue {issue.id} fails this way, but at {', '.join(issue.places(prop, case))}, not at {point}"
            )
    if not explaining:
        return Judgement(None, (), tuple(notes))
    return Judgement(explaining[0], tuple(i.id for i in explaining[1:]), tuple(notes))


@dataclass(frozen=True)
class Expectations:
    """The entries that cover one example (property, case) under the versions, as the example
    runner asks about them: how large an effect each claim needs to count, how to judge a failure,
    and which entries every one of whose places ran and held (stale)."""

    prop: str
    case: object
    entries: tuple[KnownIssue, ...]

    def effect_above(self, point: str) -> float:
        return max([1.0, *(issue.effect_above(self.prop, point, self.case) for issue in self.entries)])

    def judge(self, point: str, exc: BaseException) -> Judgement:
        return _judge(self.entries, self.prop, point, self.case, exc)

    def stale(self, points: dict[str, tuple]) -> list[tuple[str, str, StaleKnownIssue]]:
        """(entry id, its places, StaleKnownIssue) for every entry none of whose places failed its
        way while all of them ran and held. `points`: the example's verdict per step or claim."""
        out = []
        for issue in self.entries:
            places = issue.places(self.prop, self.case)
            hit = any(points.get(p) == (KNOWN, issue.id) for p in places)
            held = all(points.get(p, (None,))[0] == PASSED for p in places)
            if not hit and held:
                out.append((issue.id, ", ".join(places), StaleKnownIssue(issue.stale_message(self.prop, self.case))))
        return out
