"""Known upstream bugs, as data: `known_issues.toml` beside this file, loaded and validated here.

Each entry names its upstream reference(s) (or says it was found by this suite and carries a
report ready to file), the versions it affects, the cases it covers, and for each place it breaks
(`at`: a property's step or claim) the exact failure: an exception type and message pattern, or
an output-failure kind. A case an entry covers must fail exactly that way there; if the place
runs and holds instead, the entry is stale and the suite says so. Nothing here skips a test.

`judge()` is the one decision, used by the property suite (prefixcheck.judge) and by the
matrix's consume step alike: given where a failure happened and what it was, which entry (if
any) explains it. When several do, the most specific wins (more case facts, narrower versions,
a named property before "*").
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import architectures, properties
from .case import Case
from .compare import OUTPUT_KINDS, OutputMismatch
from .compat import tomllib
from .versions import VersionSpecError, parse_spec, satisfies

REGISTRY_FILE = Path(__file__).with_name("known_issues.toml")
ANY = "*"
UPSTREAMS = ("peft", "transformers")  # where a found_by_suite entry's report is filed


class RegistryError(ValueError):
    """known_issues.toml is malformed; the message names the entry and the field."""


def _arch(case: Case):
    return architectures.get(case.model.arch)


def _lay(case: Case):
    return case.model.layout


# The flat facts an entry's `cases` can constrain, each a rule on the case.
_FACT_RULES: dict[str, Callable[[Case], object]] = {
    "arch": lambda c: c.model.arch,
    "encoder_decoder": lambda c: _arch(c).encoder_decoder,
    # a hand-written config (architectures/curated.py) or a discovered family
    "curated": lambda c: _arch(c).curated,
    "positions": lambda c: _arch(c).positions,  # rotary, alibi, relative, absolute, none
    # the head's forward() takes position_ids (read from the installed model class)
    "takes_position_ids": lambda c: _arch(c).takes_position_ids(c.task),
    "task": lambda c: c.task,
    "prefix_projection": lambda c: c.prefix.prefix_projection,
    "dtype": lambda c: c.dtype,
    "device": lambda c: c.device,
    "attn_implementation": lambda c: c.model.attn_implementation,
    "padding_side": lambda c: c.recipe.padding_side,
    "padded": lambda c: c.recipe.num_padded > 0,
    "gqa": lambda c: _lay(c).num_kv_heads < _lay(c).num_heads,
    "multi_kv_heads": lambda c: _lay(c).num_kv_heads > 1,  # the cache holds more than one key/value head
    "explicit_head_dim": lambda c: _lay(c).explicit_head_dim,
    # PEFT's prefix width differs from what the model's cache holds per layer
    "prefix_width_mismatch": lambda c: _arch(c).peft_token_dim(c.model) != _arch(c).kv_token_dim(_lay(c)),
    "named_adapter": lambda c: c.prefix.adapter_name != "default",
    "num_layers": lambda c: c.model.num_layers,
    "num_virtual_tokens": lambda c: c.prefix.num_virtual_tokens,
    # as many virtual tokens as the encoder input has tokens, padded or not (transformers 4.x
    # encoder-decoders then reuse the prefix as their cross-attention keys/values)
    "prefix_length_is_an_input_length": lambda c: (
        c.prefix.num_virtual_tokens in (c.recipe.seq_len, c.recipe.seq_len - c.recipe.num_padded)
    ),
    "init_weights": lambda c: c.prefix.init_weights or "random",
    # sqrt(hidden_size) is a power of two (hidden 4, 16, 64, 256...): Gemma's embedding scale is then
    # exact in bf16, so an embedding recomputed with it matches bit for bit
    "sqrt_hidden_power_of_two": lambda c: _lay(c).hidden_size in (4**k for k in range(1, 12)),
}
FACTS = tuple(_FACT_RULES)


class _Facts(Mapping):
    """A case's facts, each worked out on first use: some read the installed model classes, and
    an entry only ever asks for the few it constrains."""

    def __init__(self, case: Case) -> None:
        self._case, self._known = case, {}

    def __getitem__(self, fact: str) -> object:
        if fact not in self._known:
            self._known[fact] = _FACT_RULES[fact](self._case)
        return self._known[fact]

    def __iter__(self):
        return iter(_FACT_RULES)

    def __len__(self) -> int:
        return len(_FACT_RULES)


def case_facts(case: Case) -> Mapping[str, object]:
    """The flat facts an entry's `cases` can constrain (FACTS), computed as they are asked for."""
    return _Facts(case)


def _facts_hold(facts: Mapping[str, object], allowed: dict[str, tuple], excluded: dict[str, tuple]) -> bool:
    return all(facts[k] in v for k, v in allowed.items()) and not any(facts[k] in v for k, v in excluded.items())


@dataclass(frozen=True)
class Failure:
    """How a known issue fails at its places: exception type names ("A|B", matched anywhere in the
    MRO) and a regex searched in the message; or an output-failure kind (compare.OUTPUT_KINDS)
    and an optional regex. An exception signature never matches an output failure and the reverse."""

    at: tuple[str, ...]  # "property:point"
    exception: str = ""
    output: str = ""
    match: str = ""
    # The bug shows only where the prefix moves the compared outputs by more than this many times
    # the claim's tolerance (it scales with the prefix's effect); below, a pass is inconclusive.
    effect_above: float = 0.0
    cases: dict[str, tuple] = field(default_factory=dict)  # narrows the entry's cases for these places
    cases_except: dict[str, tuple] = field(default_factory=dict)

    def holds_for(self, facts: dict[str, object]) -> bool:
        return _facts_hold(facts, self.cases, self.cases_except)

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

    def places(self, prop: str, case: Case | None = None) -> tuple[str, ...]:
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
    id: str
    title: str
    affects: dict[str, str]  # package -> PEP 440 specifier, all must hold
    fails: tuple[Failure, ...]
    cases: dict[str, tuple] = field(default_factory=dict)  # fact -> allowed values, all must hold
    cases_except: dict[str, tuple] = field(default_factory=dict)  # fact -> values that exclude a case
    references: tuple[str, ...] = ()
    found_by_suite: bool = False
    report: str = ""  # for found_by_suite entries: the text to file upstream
    notes: str = ""
    upstream: str = ""  # "peft" or "transformers": where to file it; default by the id (see `project`)

    @property
    def project(self) -> str:
        """The project a report of this bug is filed in: `upstream` where the entry says, else PEFT
        for the ids that name it (`peft-...`: PEFT's own code) and transformers for the rest (a
        transformers release, `tf-...`, or a model family's code)."""
        return self.upstream or ("peft" if self.id.startswith("peft-") else "transformers")

    def places(self, prop: str, case: Case | None = None) -> tuple[str, ...]:
        return tuple(p for f in self.fails for p in f.places(prop, case))

    def covers_case(self, case: Case) -> bool:
        """The case's facts are the entry's (`cases`, `cases_except`), whatever the versions."""
        return _facts_hold(case_facts(case), self.cases, self.cases_except)

    def covers(self, case: Case, versions: dict[str, str] | None = None) -> bool:
        if not all(satisfies(pkg, spec, versions) for pkg, spec in self.affects.items()):
            return False
        return self.covers_case(case)

    def applies(self, prop: str, case: Case, versions: dict[str, str] | None = None) -> bool:
        return bool(self.places(prop, case)) and self.covers(case, versions)

    def effect_above(self, prop: str, point: str, case: Case) -> float:
        return max((f.effect_above for f in self.fails if point in f.places(prop, case)), default=0.0)

    def explains(self, prop: str, point: str, case: Case, exc: BaseException) -> bool:
        return any(point in f.places(prop, case) and f.matches(exc) for f in self.fails)

    def signature_of(self, prop: str, point: str, case: Case, exc: BaseException) -> bool:
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


class StaleKnownIssue(AssertionError):
    """A case covered by a known-issue entry ran the entry's place and it held: the bug looks fixed."""


# -- loading -----------------------------------------------------------------------------
_ENTRY_FIELDS = {
    "id": str,
    "title": str,
    "affects": dict,
    "fails": list,
    "cases": dict,
    "cases_except": dict,
    "references": list,
    "found_by_suite": bool,
    "report": str,
    "notes": str,
    "upstream": str,
}
_REQUIRED = ("id", "title", "affects", "fails")
_FAIL_FIELDS = {
    "at": list,
    "exception": str,
    "output": str,
    "match": str,
    "effect_above": float,
    "cases": dict,
    "cases_except": dict,
}


def _check_facts(table: dict, bad) -> None:
    for fact, values in table.items():
        if fact not in FACTS:
            raise bad(f"unknown case fact {fact!r}; known: {', '.join(FACTS)}")
        if not isinstance(values, list) or not values:
            raise bad(f"{fact}: must be a non-empty list of values")


def _entry(raw: dict, index: int, source: str) -> KnownIssue:
    name = raw.get("id", f"#{index + 1}")

    def bad(fld: str, why: str) -> RegistryError:
        return RegistryError(f"{source}: entry {name!r}, field {fld!r}: {why}")

    for key, value in raw.items():
        if key not in _ENTRY_FIELDS:
            raise bad(key, f"unknown field; the fields are {', '.join(_ENTRY_FIELDS)}")
        if not isinstance(value, _ENTRY_FIELDS[key]):
            raise bad(key, f"must be a {_ENTRY_FIELDS[key].__name__}, not {type(value).__name__}")
    for key in _REQUIRED:
        if key not in raw:
            raise bad(key, "missing")
    if not raw.get("references") and not raw.get("found_by_suite"):
        raise bad("references", "needs an upstream reference, or found_by_suite = true with a report")
    if raw.get("found_by_suite") and len(raw.get("report", "")) < 200:
        raise bad("report", "found by this suite, so it must carry a report ready to file upstream (>= 200 chars)")
    if "upstream" in raw and raw["upstream"] not in UPSTREAMS:
        raise bad("upstream", f"must be one of {', '.join(UPSTREAMS)}, not {raw['upstream']!r}")
    for pkg, spec in raw["affects"].items():
        try:
            parse_spec(pkg, spec)
        except VersionSpecError as exc:
            raise bad("affects", str(exc)) from None
    for table in ("cases", "cases_except"):
        _check_facts(raw.get(table, {}), lambda why, table=table: bad(table, why))
    if not raw["fails"]:
        raise bad("fails", "needs at least one [[issue.fails]] table")
    fails = []
    for f in raw["fails"]:
        for key, value in f.items():
            if key not in _FAIL_FIELDS:
                raise bad("fails", f"unknown field {key!r}; the fields are {', '.join(_FAIL_FIELDS)}")
            if not isinstance(value, _FAIL_FIELDS[key]):
                raise bad("fails", f"{key} must be a {_FAIL_FIELDS[key].__name__}")
        if bool(f.get("exception")) == bool(f.get("output")):
            raise bad("fails", "give exactly one of `exception` or `output`")
        if f.get("output") and f["output"] not in OUTPUT_KINDS:
            raise bad("fails", f"unknown output kind {f['output']!r}; the kinds are {', '.join(OUTPUT_KINDS)}")
        for table in ("cases", "cases_except"):
            _check_facts(f.get(table, {}), lambda why, table=table: bad("fails", f"{table}: {why}"))
        if f.get("effect_above") and not f.get("output"):
            raise bad("fails", "effect_above applies to output failures only")
        if f.get("exception") and not f.get("match"):
            raise bad("fails", "an exception needs a message pattern (`match`): a bare type absorbs other bugs")
        try:
            re.compile(f.get("match", ""))
        except re.error as exc:
            raise bad("fails", f"match is not a regex: {exc}") from None
        if not f.get("at"):
            raise bad("fails", "`at` must name at least one property:point")
        for where in f["at"]:
            prop, _, point = where.partition(":")
            if prop != ANY and prop not in properties.BY_NAME:
                raise bad("fails", f"at {where!r}: unknown property {prop!r}")
            known_points = properties.STEPS if prop == ANY else properties.get(prop).points
            if point not in known_points:
                raise bad("fails", f"at {where!r}: {point!r} is not a step or claim of {prop}")
        fails.append(
            Failure(
                at=tuple(f["at"]),
                exception=f.get("exception", ""),
                output=f.get("output", ""),
                match=f.get("match", ""),
                effect_above=float(f.get("effect_above", 0.0)),
                cases={k: tuple(v) for k, v in f.get("cases", {}).items()},
                cases_except={k: tuple(v) for k, v in f.get("cases_except", {}).items()},
            )
        )
    return KnownIssue(
        id=raw["id"],
        title=raw["title"],
        affects=dict(raw["affects"]),
        fails=tuple(fails),
        cases={k: tuple(v) for k, v in raw.get("cases", {}).items()},
        cases_except={k: tuple(v) for k, v in raw.get("cases_except", {}).items()},
        references=tuple(raw.get("references", ())),
        found_by_suite=raw.get("found_by_suite", False),
        report=raw.get("report", ""),
        notes=raw.get("notes", ""),
        upstream=raw.get("upstream", ""),
    )


def parse(text: str, source: str = "known_issues.toml") -> tuple[KnownIssue, ...]:
    """The registry in `text`, validated; RegistryError (one line) names what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"issue"}
    if unknown:
        raise RegistryError(f"{source}: unknown top-level keys {sorted(unknown)}; entries are [[issue]] tables")
    entries = tuple(_entry(raw, i, source) for i, raw in enumerate(data.get("issue", [])))
    seen = set()
    for entry in entries:
        if entry.id in seen:
            raise RegistryError(f"{source}: entry {entry.id!r}, field 'id': duplicate id")
        seen.add(entry.id)
    return entries


def load(path: str | Path = REGISTRY_FILE) -> tuple[KnownIssue, ...]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the registry: {exc.strerror}") from None
    return parse(text, path.name)


REGISTRY: tuple[KnownIssue, ...] = load()


def by_id(issue_id: str) -> KnownIssue:
    for issue in REGISTRY:
        if issue.id == issue_id:
            return issue
    raise KeyError(f"no known issue {issue_id!r}")


def matching(prop: str, case: Case, versions: dict[str, str] | None = None) -> tuple[KnownIssue, ...]:
    """Every entry with a place in `prop` that covers `case` under the versions, most specific first."""
    found = [issue for issue in REGISTRY if issue.applies(prop, case, versions)]
    return tuple(sorted(found, key=lambda i: i.specificity, reverse=True))


@dataclass(frozen=True)
class Judgement:
    """Which entry explains a failure at (property, point), and what else was considered."""

    issue: KnownIssue | None
    also: tuple[str, ...] = ()  # other entries that explain it too (less specific)
    notes: tuple[str, ...] = ()  # entries that apply here but expect something else

    @property
    def known(self) -> bool:
        return self.issue is not None


def signatures(prop: str, point: str, case: Case, exc: BaseException) -> tuple[str, ...]:
    """The ids of every entry whose signature this failure at (prop, point) is, whatever the
    installed versions (KnownIssue.signature_of)."""
    return tuple(i.id for i in REGISTRY if i.signature_of(prop, point, case, exc))


def judge(prop: str, point: str, case: Case, exc: BaseException, versions: dict[str, str] | None = None) -> Judgement:
    """The one decision: is this failure, at this place, the known way an entry says it fails?"""
    entries = matching(prop, case, versions)
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


def validate(registry: tuple[KnownIssue, ...] | None = None) -> None:
    """Re-check a registry built in code (the TOML is validated when it loads)."""
    for issue in registry if registry is not None else REGISTRY:
        raw = {
            "id": issue.id,
            "title": issue.title,
            "affects": issue.affects,
            "fails": [
                {
                    k: v
                    for k, v in (
                        ("at", list(f.at)),
                        ("exception", f.exception),
                        ("output", f.output),
                        ("match", f.match),
                    )
                    if v
                }
                for f in issue.fails
            ],
            "cases": {k: list(v) for k, v in issue.cases.items()},
            "cases_except": {k: list(v) for k, v in issue.cases_except.items()},
            "references": list(issue.references),
            "found_by_suite": issue.found_by_suite,
            "report": issue.report,
            "notes": issue.notes,
            "upstream": issue.upstream,
        }
        _entry({k: v for k, v in raw.items() if v or k in _REQUIRED}, 0, "registry")


def markdown_table(registry: tuple[KnownIssue, ...] = REGISTRY) -> str:
    """The registry as a Markdown table (README's known-issue section is generated from this)."""
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


README_MARKERS = ("<!-- known-issues:start -->", "<!-- known-issues:end -->")


def readme_with_table(text: str) -> str:
    """README text with the known-issue table between its markers replaced by the registry's."""
    start, end = README_MARKERS
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{markdown_table()}\n{end}{tail}"


def main(argv: list[str]) -> int:
    """Validate and print the table (or write it into README), then every entry whose declared
    bounds disagree with what `python -m matrix bisect --registry` measured (prefixcheck.bounds):
    a flag for the registry's keeper, not an error (the measured file may lag)."""
    from . import bounds

    if argv[:1] == ["--write-readme"]:
        readme = Path(argv[1] if len(argv) > 1 else "README.md")
        readme.write_text(readme_with_table(readme.read_text()))
        return 0
    print(markdown_table())
    try:
        measured = bounds.load()
    except bounds.MeasuredError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    flagged = bounds.flags(REGISTRY, measured)
    name = bounds.MEASURED_FILE.name
    print(f"\nMeasured bounds ({name}): {len(measured)} entries measured, {len(flagged)} disagree with `affects`")
    for issue_id, lines in flagged.items():
        for line in lines:
            print(f"FLAG {issue_id}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
