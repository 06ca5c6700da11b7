"""The package index's release history: every final release of a package with its upload time,
the releases between two versions (a bisect's range), the latest patch of each minor, and the
accelerate a user got with a PEFT/transformers pair.

Release data comes from the simple JSON API (PEP 691, upload times from PEP 700) of PyPI, or of the
index named by UV_INDEX_URL / PIP_INDEX_URL; `fetch` is injectable so the self-tests use recorded
answers (tests/selftest/data/releases/).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from prefixcheck.compat import tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPI_SIMPLE = "https://pypi.org/simple/"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
INDEX_VARIABLES = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL")  # first one set wins


class ReleasesError(ValueError):
    """The package index cannot answer, or a version is not a release: one line naming which."""


@dataclass(frozen=True)
class Release:
    version: str
    uploaded: str  # ISO 8601 UTC time of the release's first (non-yanked) file upload


def index_url() -> str:
    """The simple index to ask: UV_INDEX_URL / UV_DEFAULT_INDEX / PIP_INDEX_URL, else PyPI, so a
    refresh sees the releases the environments will be built from."""
    for var in INDEX_VARIABLES:
        value = os.environ.get(var, "").strip()
        if value:
            return value.rstrip("/") + "/"
    return PYPI_SIMPLE


def project_url(package: str) -> str:
    """The simple-API page of `package` (PEP 503 normalised name) on the configured index."""
    return f"{index_url()}{canonicalize_name(package)}/"


@cache
def fetch_json(url: str) -> dict:
    """GET a simple-API page as JSON (PEP 691). Cached for the process: one request per package."""
    request = urllib.request.Request(url, headers={"Accept": SIMPLE_JSON, "User-Agent": "prefix-roundtrip"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:
        raise ReleasesError(f"{url}: the index answered HTTP {exc.code} ({exc.reason})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReleasesError(f"{url}: cannot reach the package index ({reason})") from None
    try:
        return json.loads(body)
    except ValueError:
        raise ReleasesError(f"{url}: not a simple-API JSON answer (does the index speak PEP 691?)") from None


def _memoized(fetch):
    """`fetch` answering each URL once: one request per package however often a run asks."""
    if fetch is None:
        return fetch_json  # already cached for the process
    if getattr(fetch, "memoized", False):
        return fetch
    answers: dict[str, dict] = {}

    def once(url: str) -> dict:
        if url not in answers:
            answers[url] = fetch(url)
        return answers[url]

    once.memoized = True
    return once


def _ask(package: str, fetch) -> dict:
    """The index's answer for `package`; any failure of `fetch` becomes a one-line ReleasesError."""
    url = project_url(package)
    try:
        page = (fetch or fetch_json)(url)
    except ReleasesError:
        raise
    except (OSError, ValueError) as exc:
        raise ReleasesError(f"{url}: cannot read {package}'s releases ({exc})".splitlines()[0]) from None
    if not isinstance(page, dict) or not isinstance(page.get("files"), list):
        raise ReleasesError(f"{url}: no 'files' list in the answer for {package}")
    return page


def _file_version(filename: str) -> Version | None:
    """The version a distribution file belongs to, or None for files that are not wheels/sdists."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def _utc(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (naive means UTC; a bare date is its midnight).
    Written out here because Python 3.10's fromisoformat takes neither 'Z' nor every fraction."""
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(?:\.(\d+))?)?(Z|[+-]\d\d:?\d\d)?", text.strip()
    )
    if not match:
        raise ReleasesError(f"{text!r} is not an ISO 8601 time")
    day, clock, fraction, zone = match.groups()
    stamp = f"{day}T{clock or '00:00'}"
    if fraction:
        stamp += "." + fraction[:6].ljust(6, "0")
    zone = "+00:00" if zone in (None, "Z") else zone[:3] + ":" + zone[-2:]
    return datetime.fromisoformat(stamp + zone).astimezone(timezone.utc)


def release_history(package: str, *, fetch=None) -> list[Release]:
    """Every final release of `package` (no pre-, dev- or release candidates, nothing yanked),
    ascending by version, each with the time its first file was uploaded."""
    page = _ask(package, fetch)
    first: dict[Version, tuple[datetime, str]] = {}
    for entry in page["files"]:
        if not isinstance(entry, dict):  # the answer is untrusted input: say where it went wrong
            raise ReleasesError(f"{project_url(package)}: a 'files' entry that is not an object: {entry!r:.80}")
        version = _file_version(str(entry.get("filename", "")))
        if version is None or version.is_prerelease or entry.get("yanked"):
            continue  # is_prerelease covers dev releases and rcs too
        uploaded = entry.get("upload-time")
        if not uploaded:
            raise ReleasesError(
                f"{project_url(package)}: no upload-time for {entry['filename']} (PEP 700 index needed)"
            )
        try:
            when = _utc(str(uploaded))
        except ReleasesError as exc:
            raise ReleasesError(f"{project_url(package)}: {entry['filename']}: upload-time {exc}") from None
        if version not in first or when < first[version][0]:
            first[version] = (when, str(uploaded))
    if not first:
        raise ReleasesError(f"{project_url(package)}: no final releases of {package}")
    return [Release(str(v), first[v][1]) for v in sorted(first)]


def versions_between(package: str, lo: str, hi: str, *, fetch=None) -> list[str]:
    """The releases of `package` from `lo` to `hi`, both included, ascending (a bisect's range)."""
    history = release_history(package, fetch=fetch)
    known = {Version(r.version) for r in history}
    for end in (lo, hi):
        if _version(end, package) not in known:
            raise ReleasesError(f"{package} {end} is not a final release on {project_url(package)}")
    low, high = Version(lo), Version(hi)
    if low > high:
        raise ReleasesError(f"{package}: {lo} comes after {hi}; give the older version first")
    return [r.version for r in history if low <= Version(r.version) <= high]


def _version(text: str, package: str = "version") -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise ReleasesError(f"{package}: {text!r} is not a version") from None


def _minor(version: str) -> tuple[int, int]:
    release = Version(version).release
    return (release[0], release[1] if len(release) > 1 else 0)


def latest_patches(releases: list[Release], minimum: str) -> list[Release]:
    """The latest patch of every minor from `minimum`'s minor on, ascending: the release of each
    line a user is told to upgrade to (later patches only fix bugs)."""
    newest: dict[tuple[int, int], Release] = {}
    for release in releases:
        minor = _minor(release.version)
        if minor >= _minor(minimum) and (
            minor not in newest or Version(release.version) > Version(newest[minor].version)
        ):
            newest[minor] = release
    return [newest[m] for m in sorted(newest)]


def newest_before(releases: list[Release], when: str) -> Release:
    """The highest version uploaded at or before `when`: what `pip install` picked at that time
    (by version, not upload order: a late patch of an older minor does not win)."""
    limit = _utc(when)
    chosen = [r for r in releases if _utc(r.uploaded) <= limit]
    if not chosen:
        raise ReleasesError(f"no release uploaded by {when}")
    return max(chosen, key=lambda r: Version(r.version))


def _release(package: str, version: str, fetch) -> Release:
    for release in release_history(package, fetch=fetch):
        if Version(release.version) == _version(version, package):
            return release
    raise ReleasesError(f"{package} {version} is not a final release on {project_url(package)}")


def accelerate_for(peft: str, transformers: str, *, fetch=None) -> str:
    """The accelerate a user installing `peft` and `transformers` got: the newest one uploaded by
    the later of the two (a cell should not pair old code with a far newer accelerate)."""
    when = max(
        (_release("peft", peft, fetch).uploaded, _release("transformers", transformers, fetch).uploaded), key=_utc
    )
    history = release_history("accelerate", fetch=fetch)
    try:
        return newest_before(history, when).version
    except ReleasesError as exc:  # an index whose accelerate history starts after that day
        raise ReleasesError(f"{project_url('accelerate')}: {exc}") from None


# Extra pins, each a measured rule: (peft specifier, transformers specifier, pins, one-line reason).
# Measured 2026-11-29 and not needed: "numpy<2", which the hand-made cells gave transformers 4.40.2
# and 4.45.2: the probe, `matrix produce`/`consume` (llama, gpt2, t5) and the Trainer import give
# the same results under numpy 2.4.6 as under 1.26.4 (peft 0.10.0 / 0.13.2).
EXTRA_RULES: tuple[tuple[str, str, tuple[str, ...], str], ...] = ()


def extras_for(peft: str, transformers: str) -> list[str]:
    """The extra pins of a pair: those of every EXTRA_RULES rule whose specifiers both match it."""
    extras: list[str] = []
    for peft_spec, transformers_spec, pins, _why in EXTRA_RULES:
        if Version(peft) in SpecifierSet(peft_spec) and Version(transformers) in SpecifierSet(transformers_spec):
            extras += [pin for pin in pins if pin not in extras]
    return extras


def stack_minimum(package: str) -> str:
    """The oldest `package` the suite supports: the `>=` bound in pyproject's `stack` extra, so
    the matrix starts where the suite's support starts (peft 0.10, transformers 4.40)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project.get("optional-dependencies", {}).get("stack", []):
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == canonicalize_name(package):
            for spec in requirement.specifier:
                if spec.operator == ">=":
                    return spec.version
    raise ReleasesError(f"pyproject.toml: the stack extra gives no '>=' minimum for {package}")
