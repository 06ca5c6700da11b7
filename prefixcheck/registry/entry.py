"""A registry entry: one known upstream bug, the cases it covers and where and how it fails.

The two records, `KnownIssue` and `Failure`, are the entry's schema: each field says, in its
metadata, the TOML type it is written as, whether an entry needs it, and what it means.
prefixcheck.registry.schema reads them to parse, validate and write entries; nothing else
describes the fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import properties
from ..mismatch import OutputMismatch
from ..versions import satisfies
from .facts import case_facts, facts_hold

ANY = "*"
UPSTREAMS = ("peft", "transformers")  # where a found_by_suite entry's report is filed
REPOS = {"peft": "huggingface/peft", "transformers": "huggingface/transformers"}  # their GitHub repositories


def spec(toml: type, doc: str, *, required: bool = False, default: Any = None, factory: Any = None) -> Any:
    """A field of the schema: its TOML type, its meaning, whether an entry must give it."""
    meta = {"toml": toml, "doc": doc, "required": required}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    if required:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Failure:
    """How a known issue fails at its places: exception type names ("A|B", matched anywhere in the
    MRO) and a regex searched in the message; or an output-failure kind (mismatch.OUTPUT_KINDS)
    and an optional regex. An exception signature never matches an output failure and the reverse."""

    at: tuple[str, ...] = spec(
        list,
        "'property:point' places, a step or claim of prefixcheck/properties.py ('*' = every property with that step)",
        required=True,
    )
    exception: str = spec(str, "exception class names ('A|B', anywhere in the MRO); needs `match`", default="")
    output: str = spec(str, "or an output-failure kind: prefix-ignored, beyond-tolerance, shape, ...", default="")
    match: str = spec(str, "a regex searched in the failure's message (literal strings need no escaping)", default="")
    effect_above: float = spec(
        float,
        "output failures only: the bug shows only where the prefix moves the compared outputs by more than this "
        "many times the claim's tolerance; below, a pass is inconclusive",
        default=0.0,
    )
    cases: dict[str, tuple] = spec(dict, "case facts -> allowed values, narrowing the entry's cases here", factory=dict)
    cases_except: dict[str, tuple] = spec(dict, "case facts -> values that take a case out here", factory=dict)

    def holds_for(self, facts) -> bool:
        return facts_hold(facts, self.cases, self.cases_except)

    def matches(self, exc: BaseException) -> bool:
        if self.output:
            if not isinstance(exc, OutputMismatch) or exc.kind != self.output:
                return False
        else:
            if isinstance(exc, OutputMismatch):
                return False
            names = {cls.__name__ for cls in type(exc).__mro__}
            if not names & set(self.exception.split("|")):
                return False
        return re.search(self.match, str(exc), re.S | re.M) is not None

    def places(self, prop: str, case=None) -> tuple[str, ...]:
        """The points of `prop` this failure names (for `case`, if its own case facts hold)."""
        if case is not None and not self.holds_for(case_facts(case)):
            return ()
        points = properties.get(prop).points
        out = []
        for where in self.at:
            p, point = where.split(":", 1)
            if p in (prop, ANY) and point in points:
                out.append(point)
        return tuple(out)

    def __str__(self) -> str:
        what = f"output {self.output}" if self.output else self.exception
        return f"{what} matching /{self.match}/" if self.match else what


@dataclass(frozen=True)
class KnownIssue:
    """One upstream bug: its references, the versions it affects, the cases it covers, and for each
    place it breaks the exact failure. A case it covers must fail exactly that way there."""

    id: str = spec(str, "a stable id: lowercase words joined by '-', starting peft- for PEFT's own code", required=True)
    title: str = spec(str, "one line saying what fails", required=True)
    affects: dict[str, str] = spec(
        dict,
        "PEP 440 specifiers per package (peft, transformers, torch, accelerate), all must hold; leave the upper end "
        "open while the bug is unfixed, so a fix shows up as stale",
        required=True,
    )
    fails: tuple[Failure, ...] = spec(
        list, "[[issue.fails]] tables: where and how it fails, one per place", required=True
    )
    cases: dict[str, tuple] = spec(dict, "case facts (prefixcheck.registry.facts) -> allowed values", factory=dict)
    cases_except: dict[str, tuple] = spec(dict, "case facts -> values that take a case out of the entry", factory=dict)
    references: tuple[str, ...] = spec(list, "upstream issues or pull requests (URLs)", factory=tuple)
    found_by_suite: bool = spec(
        bool, "no upstream reference yet: this suite found it (then `report` is needed)", default=False
    )
    report: str = spec(str, "found_by_suite entries: the text to file upstream (>= 200 characters)", default="")
    notes: str = spec(str, "anything else a maintainer of the registry should know", default="")
    upstream: str = spec(
        str, "found_by_suite entries: 'peft' or 'transformers', where to file (default: by the id)", default=""
    )

    @property
    def project(self) -> str:
        """The project a report of this bug is filed in: `upstream` where the entry says, else PEFT
        for the ids that name it (`peft-...`: PEFT's own code) and transformers for the rest (a
        transformers release, `tf-...`, or a model family's code)."""
        return self.upstream or ("peft" if self.id.startswith("peft-") else "transformers")

    def places(self, prop: str, case=None) -> tuple[str, ...]:
        return tuple(p for f in self.fails for p in f.places(prop, case))

    def covers_case(self, case) -> bool:
        """The case's facts are the entry's (`cases`, `cases_except`), whatever the versions."""
        return facts_hold(case_facts(case), self.cases, self.cases_except)

    def covers_versions(self, versions: dict[str, str] | None = None) -> bool:
        return all(satisfies(pkg, spec, versions) for pkg, spec in self.affects.items())

    def covers(self, case, versions: dict[str, str] | None = None) -> bool:
        return self.covers_versions(versions) and self.covers_case(case)

    def applies(self, prop: str, case, versions: dict[str, str] | None = None) -> bool:
        return bool(self.places(prop, case)) and self.covers(case, versions)

    def effect_above(self, prop: str, point: str, case) -> float:
        return max((f.effect_above for f in self.fails if point in f.places(prop, case)), default=0.0)

    def explains(self, prop: str, point: str, case, exc: BaseException) -> bool:
        return any(point in f.places(prop, case) and f.matches(exc) for f in self.fails)

    def signature_of(self, prop: str, point: str, case, exc: BaseException) -> bool:
        """Whether this failure is this entry's, whatever the versions: the case is one the entry
        covers and a place of it here fails this way. `affects` is left out on purpose: this is
        what measuring an entry's bounds asks (matrix bisect --registry), and a measurement must
        not depend on the bounds it checks."""
        return self.covers_case(case) and self.explains(prop, point, case, exc)

    @property
    def specificity(self) -> tuple[int, int, int]:
        bounded = sum("<" in spec or "==" in spec for spec in self.affects.values())
        named = sum(not w.startswith(ANY + ":") for f in self.fails for w in f.at)
        return (len(self.cases) + len(self.cases_except), bounded, named)

    @property
    def reference(self) -> str:
        return self.references[0] if self.references else ""

    def stale_message(self, prop: str, case) -> str:
        """What the suite says when every place of this entry ran and held on `case`."""
        places = ", ".join(self.places(prop, case))
        return (
            f"{prop} passed at {places} on {case.describe()} although known issue {self.id!r} "
            f"({', '.join(self.references) or 'found by this suite'}) says it fails there with "
            f"{' / '.join(str(f) for f in self.fails)} for {self.affects}: the bug looks fixed; narrow or "
            "remove the entry"
        )


class StaleKnownIssue(AssertionError):
    """A case covered by a known-issue entry ran the entry's place and it held: the bug looks fixed."""
