"""The registry's file format, read off the records in prefixcheck/registry/entry.py.

`parse` turns known_issues.toml's text into entries and refuses a malformed one with one line
naming the entry and the field; `render` writes an entry back as TOML (a drafted entry from
`matrix bisect`, a check that what was built in code is valid); `fields` lists the schema for
people. Every rule about a field is here or in its record; nothing else describes them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from .. import methods, properties
from ..compat import tomllib
from ..mismatch import OUTPUT_KINDS
from ..versions import VersionSpecError, parse_spec
from .entry import ANY, UPSTREAMS, Failure, KnownIssue
from .facts import FACTS

REPORT_CHARS = 200  # a found_by_suite entry's report, ready to file, is at least this long


class RegistryError(ValueError):
    """known_issues.toml is malformed; the message names the entry and the field."""


def _fields(record: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(record))


def fields(record: type = KnownIssue) -> list[tuple[str, str, bool, str]]:
    """(name, TOML type, required, meaning) of every field of `record` (KnownIssue or Failure)."""
    return [(f.name, f.metadata["toml"].__name__, f.metadata["required"], f.metadata["doc"]) for f in _fields(record)]


# -- reading -------------------------------------------------------------------------------------
def _type_problem(raw: dict, record: type) -> tuple[str, str] | None:
    """(field, what is wrong) for the first field of `raw` that `record` does not have ("unknown")
    or that has the wrong TOML type ("must be a ..."); None when every field is known and typed."""
    known = {f.name: f.metadata["toml"] for f in _fields(record)}
    for key, value in raw.items():
        if key not in known:
            return key, "unknown"
        if not isinstance(value, known[key]):
            return key, f"must be a {known[key].__name__}, not {type(value).__name__}"
    return None


def _names(record: type) -> str:
    return ", ".join(f.name for f in _fields(record))


def _missing(raw: dict, record: type) -> str | None:
    return next((f.name for f in _fields(record) if f.metadata["required"] and f.name not in raw), None)


def _check_facts(table: dict, bad) -> None:
    for fact, values in table.items():
        if fact not in FACTS:
            raise bad(f"unknown case fact {fact!r}; known: {', '.join(FACTS)}")
        if not isinstance(values, list) or not values:
            raise bad(f"{fact}: must be a non-empty list of values")


def _check_place(where: str, bad) -> None:
    prop, _, point = where.partition(":")
    if prop != ANY and prop not in properties.BY_NAME:
        raise bad(f"at {where!r}: unknown property {prop!r}")
    known_points = properties.STEPS if prop == ANY else properties.get(prop).points
    if point not in known_points:
        raise bad(f"at {where!r}: {point!r} is not a step or claim of {prop}")


def _failure(raw: dict, bad) -> Failure:
    """One [[issue.fails]] table; `bad(field, why)` names the entry (every problem is its `fails`)."""

    def wrong(why: str) -> RegistryError:
        return bad("fails", why)

    problem = _type_problem(raw, Failure)
    if problem:
        key, why = problem
        raise wrong(f"unknown field {key!r}; the fields are {_names(Failure)}" if why == "unknown" else f"{key} {why}")
    if bool(raw.get("exception")) == bool(raw.get("output")):
        raise wrong("give exactly one of `exception` or `output`")
    if raw.get("output") and raw["output"] not in OUTPUT_KINDS:
        raise wrong(f"unknown output kind {raw['output']!r}; the kinds are {', '.join(OUTPUT_KINDS)}")
    for table in ("cases", "cases_except"):
        _check_facts(raw.get(table, {}), lambda why, table=table: wrong(f"{table}: {why}"))
    if raw.get("effect_above") and not raw.get("output"):
        raise wrong("effect_above applies to output failures only")
    if raw.get("exception") and not raw.get("match"):
        raise wrong("an exception needs a message pattern (`match`): a bare type absorbs other bugs")
    try:
        re.compile(raw.get("match", ""))
    except re.error as exc:
        raise wrong(f"match is not a regex: {exc}") from None
    if not raw.get("at"):
        raise wrong("`at` must name at least one property:point")
    for where in raw["at"]:
        _check_place(where, wrong)
    return Failure(**_record_values(raw, Failure))


def _check_methods(cases: dict, bad) -> None:
    """The prompt-learning methods an entry covers (`method`), each one PEFT has; an entry that
    names none covers prefix tuning only (what every entry before the method axis was measured
    on): a bug seen with prefix tuning is not silently claimed for methods nobody measured."""
    named = cases.setdefault("method", [methods.PREFIX_TUNING])
    unknown = [m for m in named if m not in methods.NAMES]
    if unknown:
        raise bad(f"unknown methods {unknown}; the methods are {', '.join(methods.NAMES)}")


def _record_values(raw: dict, record: type) -> dict[str, Any]:
    """The record's keyword arguments from a TOML table: lists become tuples, fact tables hold tuples."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("cases", "cases_except"):
            value = {k: tuple(v) for k, v in value.items()}
        elif isinstance(value, list) and key != "fails":
            value = tuple(value)
        elif key == "effect_above":
            value = float(value)
        out[key] = value
    return out


def entry(raw: dict, index: int = 0, source: str = "known_issues.toml") -> KnownIssue:
    """One [[issue]] table as a KnownIssue; RegistryError names the entry and the field."""
    name = raw.get("id", f"#{index + 1}")

    def bad(fld: str, why: str) -> RegistryError:
        return RegistryError(f"{source}: entry {name!r}, field {fld!r}: {why}")

    problem = _type_problem(raw, KnownIssue)
    if problem:
        key, why = problem
        raise bad(key, f"unknown field; the fields are {_names(KnownIssue)}" if why == "unknown" else why)
    missing = _missing(raw, KnownIssue)
    if missing:
        raise bad(missing, "missing")
    if not raw.get("references") and not raw.get("found_by_suite"):
        raise bad("references", "needs an upstream reference, or found_by_suite = true with a report")
    if raw.get("found_by_suite") and len(raw.get("report", "")) < REPORT_CHARS:
        raise bad(
            "report", f"found by this suite, so it must carry a report ready to file upstream (>= {REPORT_CHARS} chars)"
        )
    if "upstream" in raw and raw["upstream"] not in UPSTREAMS:
        raise bad("upstream", f"must be one of {', '.join(UPSTREAMS)}, not {raw['upstream']!r}")
    for pkg, spec in raw["affects"].items():
        try:
            parse_spec(pkg, spec)
        except VersionSpecError as exc:
            raise bad("affects", str(exc)) from None
    for table in ("cases", "cases_except"):
        _check_facts(raw.get(table, {}), lambda why, table=table: bad(table, why))
    _check_methods(raw.get("cases", {}), lambda why: bad("cases", why))
    if not raw["fails"]:
        raise bad("fails", "needs at least one [[issue.fails]] table")
    values = _record_values(raw, KnownIssue)
    values["fails"] = tuple(_failure(f, bad) for f in raw["fails"])
    values["affects"] = dict(raw["affects"])
    return KnownIssue(**values)


def parse(text: str, source: str = "known_issues.toml") -> tuple[KnownIssue, ...]:
    """The registry in `text`, validated; RegistryError (one line) names what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"issue"}
    if unknown:
        raise RegistryError(f"{source}: unknown top-level keys {sorted(unknown)}; entries are [[issue]] tables")
    entries = tuple(entry(raw, i, source) for i, raw in enumerate(data.get("issue", [])))
    seen = set()
    for issue in entries:
        if issue.id in seen:
            raise RegistryError(f"{source}: entry {issue.id!r}, field 'id': duplicate id")
        seen.add(issue.id)
    return entries


# -- writing -------------------------------------------------------------------------------------
def to_raw(record) -> dict[str, Any]:
    """A KnownIssue or Failure as the TOML table it is read from: only fields that differ from
    their default, tuples as lists, failures as tables."""
    out: dict[str, Any] = {}
    for f in _fields(type(record)):
        value = getattr(record, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING
        )  # fmt: skip
        if not f.metadata["required"] and value == default:
            continue
        if f.name == "fails":
            value = [to_raw(x) for x in value]
        elif f.name in ("cases", "cases_except"):
            value = {k: list(v) for k, v in value.items()}
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def _string(text: str) -> str:
    """A TOML string for `text`: a literal string where it can be one (patterns keep their
    backslashes as they are), a multi-line literal for quotes and newlines, else a basic string."""
    if "'" not in text and "\n" not in text:
        return f"'{text}'"
    if "'''" not in text and not text.endswith("'"):
        return f"'''{text}'''"
    return json.dumps(text, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def render(issue: KnownIssue, comment: str = "") -> str:
    """The entry as one [[issue]] table of known_issues.toml (`comment`: a line above it)."""
    raw = to_raw(issue)
    lines = [f"# {line}" for line in comment.splitlines()] + ["[[issue]]"]
    lines += [f"{key} = {_value(value)}" for key, value in raw.items() if key != "fails"]
    for failure in raw["fails"]:
        lines += ["[[issue.fails]]", *(f"{key} = {_value(value)}" for key, value in failure.items())]
    return "\n".join(lines) + "\n"


def validate(entries) -> None:
    """Check entries built in code against the schema, as if they were read from the TOML."""
    for i, issue in enumerate(entries):
        entry(to_raw(issue), i, "registry")
