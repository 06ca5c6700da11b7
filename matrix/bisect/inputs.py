"""What a bisect is given: a case (a case JSON, a manifest, a summary's failure record or a
reproduction script), a release range or a commit range, and a matrix square's row. Every
problem is a BisectError with the one line the user sees after `error: `."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from prefixcheck.verdicts import LOAD_ERROR

from .search import BisectError

_VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


# -- inputs --------------------------------------------------------------------------------------
def parse_range(package: str, text: str) -> tuple[str, str | None]:
    """`A..B` -> (A, B); `A` -> (A, None). Anything else is a BisectError naming the spec."""
    parts = text.split("..")
    if len(parts) > 2 or not all(_VERSION.match(p) for p in parts):
        raise BisectError(f"--{package} {text!r}: give a release (0.17.1) or a range of two releases (0.15.0..0.21.2)")
    if len(parts) == 2:
        from packaging.version import Version

        if Version(parts[0]) >= Version(parts[1]):
            raise BisectError(f"--{package} {text!r}: the range must go from the older release to the newer")
        return parts[0], parts[1]
    return parts[0], None


def _script_case(text: str) -> dict:
    """The case of a reproduction script (prefixcheck.repro.case_from_script), as a dict. Done here
    without importing prefixcheck.repro where torch is missing (the CLI needs no torch)."""
    try:
        from prefixcheck.repro import case_from_script
    except ImportError:
        for line in text.splitlines():
            if line.startswith("CASE = json.loads("):
                return json.loads(ast.literal_eval(line[len("CASE = json.loads(") : -1]))
        raise ValueError("not a reproduction script: no CASE line") from None
    return case_from_script(text).to_dict()


_SCRIPT_POINT = re.compile(r"Reproduction: prefix tuning, property '([\w-]+)(?::([\w-]+))?'")


@dataclass
class CaseSource:
    case: dict
    prop: str | None = None  # what the source says it reproduces
    point: str | None = None
    what: str = ""


def read_case(path: str) -> CaseSource:
    """A case from a case JSON, a manifest, a summary failure record or a reproduction script."""
    from prefixcheck.case import Case, CaseError

    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BisectError(f"--case {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        if "CASE = json.loads(" in text:
            source = CaseSource(_script_case(text), what=f"reproduction script {p.name}")
            found = _SCRIPT_POINT.search(text)
            if found:
                source.prop, source.point = found.group(1), found.group(2)
        else:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if "model" in data:
                source = CaseSource(data, what=f"case {p.name}")
            elif isinstance(data.get("case"), dict):
                source = CaseSource(data["case"], what=f"manifest {p.name}")
            elif isinstance(data.get("repro"), str):  # a summary.json failure record
                script = Path(data["repro"])
                if not script.is_absolute() and not script.exists():
                    script = p.parent / script
                inner = read_case(str(script))
                point = data.get("at") if data.get("at") and ", " not in data.get("at", "") else inner.point
                source = CaseSource(inner.case, data.get("property") or inner.prop, point, f"failure record {p.name}")
            else:
                raise ValueError(
                    "neither a case (no 'model'), a manifest (no 'case') nor a failure record (no 'repro')"
                )
        Case.from_dict(source.case)
    except BisectError:
        raise
    except (ValueError, CaseError, SyntaxError, TypeError, KeyError) as exc:
        raise BisectError(f"--case {path}: not a case: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    return source


def _releases():
    try:
        from ..grid import releases
    except ImportError as exc:
        raise BisectError(f"matrix/grid/releases.py cannot be imported ({exc})") from None
    return releases


def release_range(package: str, lo: str, hi: str | None, fetch=None) -> list[str]:
    """The releases of `package` from lo to hi (or [lo]): every end must be a final release."""
    releases = _releases()
    try:
        versions = releases.versions_between(package, lo, hi or lo, fetch=fetch)
    except releases.ReleasesError as exc:
        raise BisectError(str(exc)) from None
    for end in (lo, hi or lo):
        if end not in versions:
            raise BisectError(f"{package} {end} is not a release")
    return versions


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    except OSError as exc:
        raise BisectError(f"git cannot run here ({exc.strerror})") from None
    if done.returncode:
        raise BisectError(f"git {' '.join(args)} in {repo}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    return done.stdout.strip()


def commit_range(repo: Path, good: str, bad: str) -> list[str]:
    """Full SHAs from `good` to `bad` (both included), oldest first, along bad's first parents."""
    if not (repo / ".git").exists() and not (repo / "HEAD").is_file():
        raise BisectError(f"--git {repo}: not a git repository")
    ends = []
    for flag, ref in (("--good", good), ("--bad", bad)):
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise BisectError(f"{flag} {ref!r}: no such commit in {repo}")
        ends.append(done.stdout.strip())
    good_sha, bad_sha = ends
    if good_sha == bad_sha:
        raise BisectError(f"--good and --bad are the same commit ({good_sha[:12]})")
    if subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", good_sha, bad_sha]).returncode:
        raise BisectError(f"--good {good!r} is not an ancestor of --bad {bad!r}")
    between = _git(repo, "rev-list", "--reverse", "--first-parent", f"{good_sha}..{bad_sha}").split()
    return [good_sha, *between]


def place_of(row: dict) -> tuple[str, str]:
    """The property:point a matrix consume row's failure corresponds to (matrix/grid/consume.py
    consume_one checks config, saved table, table shape, logits, generate() in that order)."""
    detail = row.get("detail") or ""
    if row.get("verdict") == LOAD_ERROR and not any(k in detail for k in ("config ", "generate()")):
        return "reload-equality", "load"
    for needle, place in (
        ("config ", ("config-roundtrip", "loaded-equals-saved")),
        ("prefix table shape", ("saved-shapes", "table-shape")),
        ("loaded prefix table", ("resave-identical", "tensors-identical")),
        ("adapter logits", ("reload-equality", "reloaded-equals-trained")),
        ("generate()", ("generate-roundtrip", "tokens-survive")),
    ):
        if needle in detail:
            return place
    return "reload-equality", "load"


def _check_property(prop: str | None, claim: str | None, case: dict):
    from prefixcheck import properties

    if not prop:
        raise BisectError("--property is required (the property whose example to bisect)")
    try:
        p = properties.get(prop)
    except KeyError as exc:
        raise BisectError(str(exc).strip("'\"")) from None
    if claim and claim not in p.points:
        raise BisectError(f"--claim {claim!r}: not a step or claim of {prop} ({', '.join(p.points)})")
    if p.cuda:
        raise BisectError(f"property {prop} runs on CUDA only; bisect runs on CPU")
    if p.generative_only and case.get("task") not in ("CAUSAL_LM", "SEQ_2_SEQ_LM"):
        raise BisectError(f"property {prop} needs a generative task; the case is {case.get('task')}")
    return p
