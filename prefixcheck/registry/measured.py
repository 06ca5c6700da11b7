"""Measured bounds of the registry's entries: the facts `python -m matrix bisect --registry`
records in `known_issues_measured.json` beside this file, and where an entry's declared `affects`
disagrees with them.

The registry (known_issues.toml) declares which versions an entry affects; this file says what
was measured, with the date: the entry's witness (one example that hit it) run on released
versions along an axis of matrix/grid/cells.toml, each version's verdict, and from those the first
bad, last good and first fixed release. A version measured *bad* (the entry's own failure at its
place) that the declared range excludes, or measured *good* (the place ran and held) that the
range includes, is a disagreement: a flag for whoever keeps the registry (`python -m
prefixcheck.registry` lists them), never a failure of the suite, since this file may lag.

    {"schema": 1, "entries": {ID: {
        "date": "YYYY-MM-DD",
        "witness": {"property", "point", "case_key", "case", "families", "summary_versions"},
        "axes": {"peft" | "transformers": {
            "tested": {version: verdict}, "versions": {version: {package: version}},
            "details": {version: text}, "first_bad", "last_good", "first_fixed", "last_bad",
            "observed": the failure line of the first bad version}}}},
     "history": {ID: [text, ...]}}

`history`: what was measured by hand before the sweeps, one dated paragraph each (a cell's run,
a reproduction on a few releases, a bisect), kept as it was written; a sweep never rewrites it.
The registry's TOML holds no measurements: this file is their one place.

Only the standard library, prefixcheck.verdicts and prefixcheck.versions are imported here.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..verdicts import BAD, GOOD, MEASURED_VERDICTS
from ..versions import VersionSpecError, satisfies

MEASURED_FILE = Path(__file__).with_name("known_issues_measured.json")
SCHEMA = 1
AXES = ("peft", "transformers")
_BOUNDS = ("first_bad", "last_good", "first_fixed", "last_bad")


class MeasuredError(ValueError):
    """The measured file cannot be used; the message (one line) names the file and what is wrong."""


def boundaries(order: list[str], tested: dict[str, str]) -> dict[str, str | None]:
    """first_bad, last_good (the good release before it), first_fixed (the first good release
    after a bad one) and last_bad (the bad release before that) from the verdicts of the tested
    versions, read in axis order. Versions that did not decide are passed over, so a boundary
    spans them. None where there is no such release."""
    decided = [(v, tested[v]) for v in order if tested.get(v) in (BAD, GOOD)]
    out: dict[str, str | None] = dict.fromkeys(_BOUNDS)
    for i, (version, verdict) in enumerate(decided):
        if verdict != BAD:
            continue
        if out["first_bad"] is None:
            out["first_bad"] = version
            out["last_good"] = decided[i - 1][0] if i else None
        if i + 1 < len(decided) and decided[i + 1][1] == GOOD and out["first_fixed"] is None:
            out["last_bad"], out["first_fixed"] = version, decided[i + 1][0]
    return out


def axis_line(facts: dict) -> str:
    """One sentence for one measured axis."""
    tested = facts.get("tested", {})
    decided = {v for v, verdict in tested.items() if verdict in (BAD, GOOD)}
    if not decided:
        return f"no tested release could decide ({len(tested)} tried)"
    if not any(tested[v] == BAD for v in decided):
        return f"good in every tested release ({len(decided)} decided)"
    if not any(tested[v] == GOOD for v in decided):
        return f"bad in every tested release ({len(decided)} decided)"
    first_bad, last_good = facts.get("first_bad"), facts.get("last_good")
    parts = [
        f"first bad {first_bad} (last good {last_good})"
        if last_good
        else f"bad from the oldest release that decided ({first_bad})"
    ]
    if facts.get("first_fixed"):
        parts.append(f"first fixed {facts['first_fixed']} (last bad {facts['last_bad']})")
    else:
        parts.append("not fixed in any tested release after it")
    return "; ".join(parts)


# -- the file ------------------------------------------------------------------------------------
def _check(entries: object, where: str) -> dict[str, dict]:
    def bad(what: str) -> MeasuredError:
        return MeasuredError(f"{where}: {what}")

    if not isinstance(entries, dict):
        raise bad("'entries' must be an object keyed by registry id")
    for issue, record in entries.items():
        if not isinstance(record, dict):
            raise bad(f"entry {issue!r}: not an object")
        for key, kind in (("date", str), ("witness", dict), ("axes", dict)):
            if not isinstance(record.get(key), kind):
                raise bad(f"entry {issue!r}: {key!r} missing or not a {kind.__name__}")
        for key in ("property", "point", "case_key"):
            if not isinstance(record["witness"].get(key), str):
                raise bad(f"entry {issue!r}: witness has no {key!r}")
        for axis, facts in record["axes"].items():
            if axis not in AXES:
                raise bad(f"entry {issue!r}: unknown axis {axis!r} (the axes are {', '.join(AXES)})")
            if not isinstance(facts, dict) or not isinstance(facts.get("tested"), dict):
                raise bad(f"entry {issue!r}, axis {axis}: 'tested' missing")
            for version, verdict in facts["tested"].items():
                if verdict not in MEASURED_VERDICTS:
                    raise bad(f"entry {issue!r}, axis {axis}: {version}: unknown verdict {verdict!r}")
                pair = facts.get("versions", {}).get(version)
                if not isinstance(pair, dict):
                    raise bad(f"entry {issue!r}, axis {axis}: {version} has no 'versions' record")
            for key in _BOUNDS:
                if facts.get(key) is not None and facts[key] not in facts["tested"]:
                    raise bad(f"entry {issue!r}, axis {axis}: {key} {facts[key]!r} was not tested")
    return entries


def _read(path: Path) -> dict:
    """The whole file, checked for its schema ({} where it does not exist yet)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise MeasuredError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    except json.JSONDecodeError as exc:
        raise MeasuredError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise MeasuredError(f"{path}: not a measured-bounds file (schema {SCHEMA} expected)")
    history = data.get("history", {})
    if not isinstance(history, dict) or not all(
        isinstance(v, list) and all(isinstance(t, str) for t in v) for v in history.values()
    ):
        raise MeasuredError(f"{path}: 'history' must map entry ids to lists of text")
    return data


def load(path: str | Path | None = None) -> dict[str, dict]:
    """The measured records by entry id ({} where nothing was measured yet); MeasuredError (one
    line) for a file that cannot be read or is not in this form. Default: MEASURED_FILE."""
    path = Path(path or MEASURED_FILE)
    data = _read(path)
    return _check(data.get("entries"), str(path)) if data else {}


def history(path: str | Path | None = None) -> dict[str, list[str]]:
    """The entries' measurements by hand, by entry id (see the module's docstring)."""
    return _read(Path(path or MEASURED_FILE)).get("history", {})


def save(updates: dict[str, dict], path: str | Path | None = None) -> dict[str, dict]:
    """Merge `updates` into the file (default MEASURED_FILE): an entry's new record replaces its
    old one (matrix.registry.measure.merged_record keeps the axes not measured again); the history
    stays as it is."""
    path = Path(path or MEASURED_FILE)
    data = _read(path)
    entries = {**(_check(data.get("entries"), str(path)) if data else {}), **updates}
    _check(entries, str(path))
    out = {"schema": SCHEMA, "entries": dict(sorted(entries.items()))}
    if data.get("history"):
        out["history"] = data["history"]
    path.write_text(json.dumps(out, indent=1) + "\n")
    return entries


# -- declared vs measured ------------------------------------------------------------------------
def declared_inside(affects: dict[str, str], versions: dict[str, str]) -> bool:
    """Whether the declared range holds for these versions (a package not recorded: not judged)."""
    try:
        return all(satisfies(pkg, spec, versions) for pkg, spec in affects.items() if pkg in versions)
    except VersionSpecError:
        return False


def _pair(versions: dict[str, str]) -> str:
    return ", ".join(f"{k} {versions[k]}" for k in ("peft", "transformers", "torch") if k in versions)


def disagreements(issue, record: dict) -> list[str]:
    """Where the declared `affects` of `issue` (a known_issues.KnownIssue) and the measured
    record disagree: a version measured bad that the range excludes, or measured good (the case
    ran there and held) that the range includes. One line each."""
    declared = ", ".join(f"{k} {v}" for k, v in issue.affects.items()) or "every version"
    lines = []
    for axis in AXES:
        facts = record["axes"].get(axis)
        if not facts:
            continue
        for version, verdict in facts["tested"].items():
            if verdict not in (BAD, GOOD):
                continue
            pair = facts["versions"][version]
            inside = declared_inside(issue.affects, pair)
            if verdict == BAD and not inside:
                lines.append(f"measured bad with {_pair(pair)}, which its affects ({declared}) excludes")
            elif verdict == GOOD and inside:
                lines.append(f"measured good with {_pair(pair)}, which its affects ({declared}) includes")
    return lines


def flags(registry, measured: dict[str, dict]) -> dict[str, list[str]]:
    """Every measured entry whose declared bounds disagree with its measurement (and records of
    entries the registry no longer has), by id."""
    by_id = {i.id: i for i in registry}
    out = {}
    for issue_id, record in sorted(measured.items()):
        if issue_id not in by_id:
            out[issue_id] = ["measured, but the registry has no such entry any more"]
            continue
        lines = disagreements(by_id[issue_id], record)
        if lines:
            out[issue_id] = lines
    return out
