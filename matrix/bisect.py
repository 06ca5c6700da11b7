"""`python -m matrix bisect`: the last good and first bad release (or commit) for one failing example.

    python -m matrix bisect --property NAME --case CASE --peft 0.15.0..0.21.2 --transformers 4.57.6
    python -m matrix bisect --property NAME --case CASE --peft 0.21.2 --transformers 5.0.0..5.24.0
    python -m matrix bisect --square PRODUCER:CONSUMER --run RUN_DIR
    python -m matrix bisect --property NAME --case CASE --git PATH --good REF --bad REF --transformers T
    python -m matrix bisect --registry [ID ...] --summary S.json [--axis peft|transformers|both]

CASE is a case JSON (Case.to_dict form, a matrix manifest.json, or a summary.json failure record
naming its reproduction script) or a reproduction script written by prefixcheck.repro (its
property:claim is then the point that decides, unless --claim says another).

One package moves, the other stays fixed: the released versions between the two ends (both
included, matrix/releases.py), or for --git the first-parent commits of a local PEFT clone from
--good to --bad (environments install `peft @ git+file://PATH@SHA`). Each version gets a uv
environment exactly as `matrix run` builds one (matrix.envs.build_env with a matrix.cells.Cell;
the pair's cell from cells.toml where there is one, so `matrix run`'s environments are reused, and
kept in --envs for the next bisect), and `python -m matrix.probe` runs the example there.

The search (`search`) evaluates both ends first, then halves the range between the last version
with the low end's verdict and the first with the high end's: a regression (pass -> fail) or a
fix (fail -> pass). Only pass and fail decide; a version whose environment cannot be built, whose
probe cannot run, or where the deciding point is inconclusive or blocked is recorded and skipped
(as `git bisect skip`). A known registry failure is a fail. Output: one line per tested version,
an upstream-ready Markdown report (--out), and last `boundary: <package> <last> (<verdict>) ->
<next> (<verdict>)`. Exit 0: a boundary; 1: every version that ran gave the same verdict; 2: it
could not run (one line `error: ...`).

--registry measures registry entries' bounds on their witnesses along the axes of cells.toml, records
them and writes the upstream reports: matrix/registry_bounds.py.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .envs import cell_environ

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ENVS = ROOT / "matrix-run" / "envs"  # the envs `python -m matrix run` builds: reused
DEFAULT_OUT = Path("reports") / "bisect"
PASS, FAIL, COULD_NOT_RUN = "pass", "fail", "could not run"
DECISIVE = (PASS, FAIL)
REPOS = {"peft": "huggingface/peft", "transformers": "huggingface/transformers"}
# consume verdicts that are a failure of the square (matrix/cellwork.py)
SQUARE_FAILING = ("fail", "load-error", "known-issue")
_VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


class BisectError(ValueError):
    """The bisect cannot start: the message is the one line the user sees after `error: `."""


# -- the search, pure ----------------------------------------------------------------------------
@dataclass
class Verdict:
    """What one version gave: pass or fail decide; anything else (could not run, inconclusive,
    blocked, unsupported) is skipped. `detail`: a short reason; `data`: the probe's RESULT.json."""

    verdict: str
    detail: str = ""
    data: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def decisive(self) -> bool:
        return self.verdict in DECISIVE

    def line(self) -> str:
        return f"{self.verdict} ({self.detail})" if self.detail else self.verdict


def as_verdict(value) -> Verdict:
    if isinstance(value, Verdict):
        return value
    if isinstance(value, dict):
        return Verdict(value.get("verdict", COULD_NOT_RUN), value.get("detail", ""), value)
    return Verdict(str(value))


@dataclass
class Search:
    """A finished search: `tested` in the order versions were evaluated; `boundary` the indices
    (into `versions`) of the two adjacent decisive versions whose verdicts differ, or None."""

    versions: list[str]
    tested: list[tuple[str, Verdict]]
    boundary: tuple[int, int] | None = None
    gave_up: bool = False  # max_skips ends in a row could not decide

    def verdict(self, version: str) -> Verdict | None:
        return next((v for name, v in self.tested if name == version), None)

    @property
    def decisive(self) -> list[tuple[str, Verdict]]:
        return [(n, v) for n, v in self.tested if v.decisive]

    @property
    def direction(self) -> str | None:
        """'regression' (last pass -> first fail) or 'fix' (last fail -> first pass)."""
        if self.boundary is None:
            return None
        return "regression" if self.verdict(self.versions[self.boundary[0]]).verdict == PASS else "fix"

    @property
    def skipped_between(self) -> list[str]:
        """Versions inside the boundary that could not decide (so the boundary spans them)."""
        if self.boundary is None:
            return []
        return self.versions[self.boundary[0] + 1 : self.boundary[1]]


def search(
    versions: list[str], evaluate: Callable[[str], object], on_tested=None, jobs: int = 1, max_skips: int | None = None
) -> Search:
    """Search `versions` (ascending) for the change of verdict. `evaluate(version)` returns a
    Verdict, a RESULT.json dict or a verdict string. Both ends are evaluated first; an end that
    cannot decide is replaced by its neighbour inwards (giving up, `gave_up`, after `max_skips`
    such ends in a row). Then each round evaluates the untested versions nearest to `jobs` evenly
    spaced points of the open range (one: its middle, a binary search; two, in parallel threads:
    its thirds), skipping those that cannot decide, until the two verdicts are adjacent. Every
    evaluation is recorded, each version at most once, in the order the rounds asked for them;
    `on_tested(version, verdict)` sees each as its round ends."""
    if not versions:
        raise BisectError("no versions to bisect")
    result = Search(list(versions), [])
    seen: dict[int, Verdict] = {}

    def one(i: int) -> Verdict:
        start = time.perf_counter()
        verdict = as_verdict(evaluate(versions[i]))
        verdict.seconds = verdict.seconds or time.perf_counter() - start
        return verdict

    def run(indices) -> list[int]:
        todo = [i for i in dict.fromkeys(indices) if i not in seen]
        if jobs > 1 and len(todo) > 1:
            with ThreadPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
                verdicts = list(pool.map(one, todo))
        else:
            verdicts = [one(i) for i in todo]
        for i, verdict in zip(todo, verdicts, strict=True):
            seen[i] = verdict
            result.tested.append((versions[i], verdict))
            if on_tested:
                on_tested(versions[i], verdict)
        return todo

    lo, hi = 0, len(versions) - 1
    skips = sum(not seen[i].decisive for i in run([lo, hi]))
    while lo < hi and not (seen[lo].decisive and seen[hi].decisive):
        if max_skips is not None and skips >= max_skips:
            result.gave_up = True
            return result
        if not seen[lo].decisive:
            lo += 1
        if lo < hi and not seen[hi].decisive:
            hi -= 1
        skips += sum(not seen[i].decisive for i in run([lo, hi]))
    if lo == hi or not seen[lo].decisive or seen[lo].verdict == seen[hi].verdict:
        return result
    low_verdict = seen[lo].verdict
    while True:
        untested = [i for i in range(lo + 1, hi) if i not in seen]
        if not untested:
            break
        k = min(max(jobs, 1), len(untested))
        picks: list[int] = []
        for j in range(1, k + 1):
            target = lo + (hi - lo) * j / (k + 1)
            picks.append(min((i for i in untested if i not in picks), key=lambda i: (abs(i - target), i)))
        run(picks)
        decided = [i for i in range(lo + 1, hi) if i in seen and seen[i].decisive]
        highs = [i for i in decided if seen[i].verdict != low_verdict]
        hi = min(highs, default=hi)
        lo = max((i for i in decided if i < hi and seen[i].verdict == low_verdict), default=lo)
    result.boundary = (lo, hi)
    return result


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
        from . import releases
    except ImportError as exc:
        raise BisectError(f"matrix/releases.py cannot be imported ({exc})") from None
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
    """The property:point a matrix consume row's failure corresponds to (matrix/cellwork.py
    consume_one checks config, saved table, table shape, logits, generate() in that order)."""
    detail = row.get("detail") or ""
    if row.get("verdict") == "load-error" and not any(k in detail for k in ("config ", "generate()")):
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


# -- the plan: what moves, what is fixed, how one version is evaluated ------------------------------
@dataclass
class Plan:
    package: str  # the one that moves: "peft" or "transformers"
    versions: list[str]  # ascending releases, or commit SHAs oldest first
    fixed: dict[str, str]  # the other package -> its version
    prop: str
    claim: str | None
    case: dict
    source: str
    accelerate: str | None = None
    git: Path | None = None
    labels: dict[str, str] = field(default_factory=dict)  # commit -> "abc123def456 subject"
    artifact: Path | None = None  # square mode: the artifact every version consumes
    producer: str | None = None
    square: str | None = None
    extra: tuple[str, ...] = ()  # --extra pins for every environment
    entry: str | None = None  # --registry: the entry whose bounds are measured (probe --entry)
    cells: dict = field(default_factory=dict)  # --registry: version -> its matrix.cells.Cell on the axis

    def label(self, version: str) -> str:
        return self.labels.get(version, version)

    def short(self, version: str) -> str:
        return version[:12] if self.git else version

    def pair(self, version: str) -> tuple[str, str]:
        if self.package == "peft":
            return version, self.fixed["transformers"]
        return self.fixed["peft"], version

    def cell(self, version: str):
        """The matrix.cells.Cell for `version`: cells.toml's own cell for that pair where there
        is one (so `matrix run`'s environment is reused), else one made for it. --extra pins get
        their own environment name, so they never rebuild `matrix run`'s over."""
        import hashlib

        from .cells import Cell, CellError
        from .cells import load as load_cells

        if version in self.cells:
            return self.cells[version]
        peft, transformers = self.pair(version)
        tag = "-x" + hashlib.sha256("\n".join(self.extra).encode()).hexdigest()[:6] if self.extra else ""
        if self.git:
            return Cell(
                name=f"peft-git-{version[:12]}-tf-{transformers}{tag}",
                peft=f"git+file://{self.git}@{version}",
                transformers=transformers,
                accelerate=self.accelerate or _accelerate_for(None, transformers),
                extra=self.extra,
            )
        if not self.extra:
            try:
                for cell in load_cells():
                    same = (cell.peft, cell.transformers) == (peft, transformers) and self.accelerate in (
                        None,
                        cell.accelerate,
                    )
                    if same and cell.device == "cpu" and not cell.needs and not cell.unavailable:
                        return cell
            except CellError:
                pass
        releases = _releases()
        return Cell(
            name=f"peft-{peft}-tf-{transformers}{tag}",
            peft=peft,
            transformers=transformers,
            accelerate=self.accelerate or releases.accelerate_for(peft, transformers),
            extra=tuple(releases.extras_for(peft, transformers)) + self.extra,
        )


def _accelerate_for(peft: str | None, transformers: str) -> str:
    """accelerate for a PEFT commit: the one the newest PEFT release pairs with this transformers
    (matrix/releases.py); the known-good cell's where the index cannot say."""
    from .cells import load as load_cells

    try:
        releases = _releases()
        newest = releases.release_history("peft")[-1].version
        return releases.accelerate_for(peft or newest, transformers)
    except Exception:  # noqa: BLE001 (an offline index: the known-good pin still installs)
        return load_cells().known_good().accelerate


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


def plan_from_args(args, fetch=None) -> Plan:
    """Check every input and say what to bisect; a BisectError (one line) for anything wrong."""
    plan = _plan_from_args(args, fetch)
    plan.extra = tuple(getattr(args, "extra", None) or ())
    return plan


def _plan_from_args(args, fetch) -> Plan:
    modes = [bool(args.square), bool(args.git)]
    if all(modes):
        raise BisectError("--square and --git cannot be combined")
    if args.square:
        return _square_plan(args, fetch)
    if not args.case:
        raise BisectError("--case is required (a case JSON or a reproduction script)")
    source = read_case(args.case)
    prop = args.property
    claim = args.claim or (source.point if source.prop == prop else None)
    _check_property(prop, claim, source.case)
    if args.git:
        if not (args.good and args.bad and args.transformers):
            raise BisectError("--git needs --good REF, --bad REF and --transformers VERSION")
        tf, tf_hi = parse_range("transformers", args.transformers)
        if tf_hi:
            raise BisectError("--git bisects PEFT commits: give --transformers one release, not a range")
        release_range("transformers", tf, None, fetch)
        repo = Path(args.git).expanduser().resolve()
        if not repo.is_dir():
            raise BisectError(f"--git {args.git}: no such folder")
        shas = commit_range(repo, args.good, args.bad)
        labels = {}
        for sha in shas:
            labels[sha] = _git(repo, "log", "-1", "--format=%h %s", sha)[:90]
        return Plan(
            "peft", shas, {"transformers": tf}, prop, claim, source.case, source.what, args.accelerate, repo, labels
        )
    if not (args.peft and args.transformers):
        raise BisectError("give --peft and --transformers (one of them a range A..B), --git, or --square")
    peft, peft_hi = parse_range("peft", args.peft)
    tf, tf_hi = parse_range("transformers", args.transformers)
    if bool(peft_hi) == bool(tf_hi):
        raise BisectError("exactly one of --peft and --transformers must be a range (A..B): one package moves")
    if peft_hi:
        versions = release_range("peft", peft, peft_hi, fetch)
        release_range("transformers", tf, None, fetch)
        return Plan("peft", versions, {"transformers": tf}, prop, claim, source.case, source.what, args.accelerate)
    versions = release_range("transformers", tf, tf_hi, fetch)
    release_range("peft", peft, None, fetch)
    return Plan("transformers", versions, {"peft": peft}, prop, claim, source.case, source.what, args.accelerate)


def _square_plan(args, fetch) -> Plan:
    if not args.run:
        raise BisectError("--square needs --run RUN_DIR (a finished `matrix run` folder)")
    producer, sep, consumer = args.square.partition(":")
    if not (sep and producer and consumer):
        raise BisectError(f"--square {args.square!r}: give PRODUCER:CONSUMER (two cell names)")
    run = Path(args.run)
    results = run / "results" / f"{consumer}.json"
    try:
        data = json.loads(results.read_text())
        rows = [r for r in data["rows"] if r["producer"] == producer]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BisectError(f"{results}: cannot read the consumer's results ({exc})") from None
    if not rows:
        raise BisectError(f"{results}: no rows from producer {producer!r}")
    failing = [r for r in rows if r["verdict"] in SQUARE_FAILING]
    if args.row:
        failing = [r for r in rows if r["case"] == args.row]
        if not failing:
            raise BisectError(f"--row {args.row}: no such case in square {producer}:{consumer}")
    if not failing:
        raise BisectError(f"square {producer}:{consumer} has no failing row: nothing to bisect")
    row = failing[0]
    folder = (run / "artifacts" / producer / row["case"]).resolve()
    try:
        meta = json.loads((folder / "manifest.json").read_text())
        case, made = meta["case"], meta["versions"]
    except (OSError, ValueError, KeyError) as exc:
        raise BisectError(f"{folder}: cannot read the artifact's manifest ({exc})") from None
    used = data.get("versions", {})
    prop, claim = place_of(row)
    prop, claim = args.property or prop, args.claim or claim
    _check_property(prop, claim, case)
    from packaging.version import InvalidVersion, Version

    if made.get("peft") != used.get("peft"):
        package, fixed = "peft", {"transformers": used.get("transformers")}
    elif made.get("transformers") != used.get("transformers"):
        package, fixed = "transformers", {"peft": used.get("peft")}
    else:
        raise BisectError(f"square {producer}:{consumer}: producer and consumer have the same peft and transformers")
    try:
        lo, hi = sorted((made[package], used[package]), key=Version)
    except (InvalidVersion, KeyError) as exc:
        raise BisectError(f"square {producer}:{consumer}: {package} versions not comparable ({exc})") from None
    for pkg, version in fixed.items():
        release_range(pkg, version, None, fetch)
    versions = release_range(package, lo, hi, fetch)
    what = f"matrix square {producer}:{consumer}, artifact {row['case']} ({row.get('verdict')}: {row.get('detail', '')[:200]})"
    return Plan(
        package,
        versions,
        fixed,
        prop,
        claim,
        case,
        what,
        args.accelerate,
        artifact=folder,
        producer=producer,
        square=f"{producer}:{consumer}",
    )


# -- evaluating one version in its environment ---------------------------------------------------
@contextmanager
def _stderr_to(path: Path):
    """Send fd 2 (uv's error output from build_env's subprocesses) to `path`, so a failed install
    becomes one line of the bisect's output and its reason, not pages of resolver text."""
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def _reason(text: str) -> str:
    lines = [line.strip().lstrip("×╰─▶│ ").strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("hint:", "help:", "warning:"))]
    because = [line for line in lines if line.startswith("Because ")]
    return ((because or lines or ["failed without output"])[-1 if not because else 0])[:300]


class NoEnvironment(Exception):
    """build_quietly could not build the environment; the message is uv's reason, one line."""


_BUILDING = threading.Lock()  # one build at a time in this process: _stderr_to redirects fd 2 process-wide


def build_quietly(cell, envs: Path, uv_log: Path, log=None) -> tuple[Path, float]:
    """matrix.envs.build_env with uv's output in `uv_log`: (python, seconds), or NoEnvironment
    with the one line that says why (every bisect mode and the upstream scripts build this way)."""
    from .envs import build_env

    try:
        with _BUILDING, _stderr_to(uv_log):
            return build_env(cell, envs, log or (lambda message: None))
    except (subprocess.CalledProcessError, OSError) as exc:
        raise NoEnvironment(_reason(uv_log.read_text(errors="replace")) if uv_log.exists() else str(exc)) from None


def describe(data: dict) -> str:
    """The short detail of a probe result: where, how, which registry entry."""
    parts = []
    if data.get("claim"):
        parts.append(data["claim"])
    if data.get("verdict") == FAIL:
        parts.append(data.get("kind") or "?")
        if data.get("known"):
            parts.append(f"known {data['known']}")
        if data.get("max_diff") is not None:
            parts.append(f"max diff {float(data['max_diff']):.3g}")
    elif data.get("verdict") not in DECISIVE and data.get("error"):
        parts.append(str(data["error"])[:200])
    return "; ".join(parts)


class Evaluator:
    """evaluate(version): build the version's environment, run matrix.probe in it, read RESULT.json."""

    def __init__(self, plan: Plan, envs: Path, work: Path, timeout: float = 900, log=None) -> None:
        self.plan, self.envs, self.work, self.timeout = plan, envs, work, timeout
        self.log = log or (lambda message: None)
        self.pythons: dict[str, Path] = {}
        self.case_file = work / "case.json"
        self.case_file.write_text(json.dumps(plan.case, sort_keys=True))

    def __call__(self, version: str) -> Verdict:
        start = time.perf_counter()
        slug = re.sub(r"[^\w.-]", "_", self.plan.short(version))
        try:
            cell = self.plan.cell(version)
        except Exception as exc:  # noqa: BLE001 (no accelerate for the pair, an unknown spec)
            return Verdict(
                COULD_NOT_RUN, f"no environment: {str(exc).splitlines()[0][:200]}", seconds=time.perf_counter() - start
            )
        try:
            python, env_s = build_quietly(cell, self.envs, self.work / f"{slug}-build.log", self.log)
        except NoEnvironment as exc:
            return Verdict(COULD_NOT_RUN, f"environment: {exc}", seconds=time.perf_counter() - start)
        self.pythons[version] = python
        result, script = self.work / f"{slug}.json", self.work / f"{slug}-repro.py"
        cmd = [str(python), "-m", "matrix.probe", "--property", self.plan.prop, "--out", str(result)]
        cmd += ["--script", str(script)]
        if self.plan.claim:
            cmd += ["--claim", self.plan.claim]
        if self.plan.entry:
            cmd += ["--entry", self.plan.entry]
        if self.plan.artifact:
            cmd += ["--artifact", str(self.plan.artifact), "--producer", self.plan.producer or "producer"]
        else:
            cmd += ["--case", str(self.case_file)]
        env = cell_environ(PREFIXCHECK_REPORTS=str(self.work / "reports"))
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return Verdict(
                COULD_NOT_RUN, f"probe: no answer within {self.timeout:.0f} s", seconds=time.perf_counter() - start
            )
        if done.returncode or not result.is_file():
            return Verdict(
                COULD_NOT_RUN, f"probe: {_reason(done.stderr or done.stdout)}", seconds=time.perf_counter() - start
            )
        data = json.loads(result.read_text())
        data["env_seconds"] = round(env_s, 1)
        data["cell"] = cell.name
        return Verdict(data.get("verdict", COULD_NOT_RUN), describe(data), data, time.perf_counter() - start)

    def validate_draft(self, text: str) -> str:
        """validate_draft, in an environment of this bisect where this Python has no torch."""
        checked = validate_draft(text)
        python = next(iter(self.pythons.values()), None)
        if checked != "not checked" or python is None:
            return checked
        draft = self.work / "draft.toml"
        draft.write_text(text)
        code = (
            "import sys\nfrom prefixcheck import known_issues\n"
            "try:\n    known_issues.parse(open(sys.argv[1]).read(), 'draft')\n"
            "except known_issues.RegistryError as exc:\n    print(exc)\nelse:\n    print('ok')\n"
        )
        done = subprocess.run([str(python), "-c", code, str(draft)], cwd=ROOT, capture_output=True, text=True)
        return (done.stdout.strip().splitlines() or ["not checked"])[-1]

    def run_script(self, version: str, script: Path) -> dict:
        """Run a reproduction script with `version`'s Python: its exit status and last line."""
        python = self.pythons.get(version)
        if python is None:
            return {"rc": None, "line": "no environment"}
        env = cell_environ()
        try:
            done = subprocess.run(
                [str(python), str(script)], cwd=self.work, env=env, capture_output=True, text=True, timeout=self.timeout
            )
        except subprocess.TimeoutExpired:
            return {"rc": None, "line": f"no answer within {self.timeout:.0f} s"}
        lines = [line for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
        ok = [line for line in lines if line.startswith(("FAILED:", "OK:"))]
        return {"rc": done.returncode, "line": (ok or lines or [""])[-1][:300]}


class BatchEvaluator:
    """evaluate(version, jobs) -> one Verdict per job: build the version's environment as Evaluator
    does and run `matrix.probe --batch` in it once, so a sweep of many registry witnesses pays the
    imports once per version (`bisect --registry --sweep`). `cells`: version -> matrix.cells.Cell;
    `timeout`: seconds one job may take."""

    def __init__(self, cells: dict, envs: Path, work: Path, timeout: float = 900, log=None) -> None:
        self.cells, self.envs, self.work, self.timeout = cells, envs, work, timeout
        self.log = log or (lambda message: None)

    def __call__(self, version: str, jobs: list[dict]) -> list[Verdict]:
        start = time.perf_counter()
        cell = self.cells[version]

        def nothing(reason: str) -> list[Verdict]:
            seconds = time.perf_counter() - start
            return [Verdict(COULD_NOT_RUN, reason, seconds=seconds) for _ in jobs]

        slug = re.sub(r"[^\w.-]", "_", cell.name)
        try:
            python, _ = build_quietly(cell, self.envs, self.work / f"{slug}-build.log", self.log)
        except NoEnvironment as exc:
            return nothing(f"environment: {exc}")
        jobs_file, result = self.work / f"{slug}-jobs.json", self.work / f"{slug}.json"
        jobs_file.write_text(json.dumps(jobs, sort_keys=True))
        cmd = [str(python), "-m", "matrix.probe", "--batch", str(jobs_file), "--out", str(result)]
        cmd += ["--timeout-each", str(self.timeout)]
        env = cell_environ(PREFIXCHECK_REPORTS=str(self.work / f"{slug}-reports"))
        try:
            done = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=self.timeout * max(1, len(jobs))
            )
        except subprocess.TimeoutExpired:
            return nothing("probe: no answer for the whole batch")
        if done.returncode or not result.is_file():
            return nothing(f"probe: {_reason(done.stderr or done.stdout)}")
        answers = json.loads(result.read_text())
        if len(answers) != len(jobs):
            return nothing(f"probe: {len(answers)} answers to {len(jobs)} jobs")
        verdicts = []
        for data in answers:
            data["cell"] = cell.name
            verdicts.append(Verdict(data.get("verdict", COULD_NOT_RUN), describe(data), data, data.get("seconds", 0.0)))
        return verdicts


# -- the report ------------------------------------------------------------------------------------
def compare_link(plan: Plan, a: str, b: str) -> str:
    if plan.git:
        return f"https://github.com/{_github_repo(plan.git)}/compare/{a}...{b}"
    return f"https://github.com/{REPOS[plan.package]}/compare/v{a}...v{b}"


def _github_repo(repo: Path) -> str:
    try:
        url = _git(repo, "remote", "get-url", "origin")
    except BisectError:
        return REPOS["peft"]
    found = re.search(r"github\.com[:/]([\w.-]+/[\w.-]+?)(?:\.git)?$", url)
    return found.group(1) if found else REPOS["peft"]


def _cell(text: str) -> str:
    """Text for one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _in_spec(spec: str, version: str) -> bool | None:
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except Exception:  # noqa: BLE001
        return None


def _claim_statement(prop: str, point: str | None) -> str:
    from prefixcheck import properties

    p = properties.get(prop)
    if point and point in properties.STEPS and point in p.steps:
        return f"step `{point}` ({properties.STEPS[point]}) completes"
    for claim in p.claims:
        if claim.name == point:
            return claim.statement
    return p.statement


def _escape_match(error: str) -> str:
    """A registry `match` pattern for an exception message: its text escaped, numbers generalised."""
    message = error.split(": ", 1)[1] if ": " in error else error
    return re.sub(r"\d+", r"\\d+", re.escape(message[:100]).replace("\\ ", " "))


def draft_entry(plan: Plan, result: Search) -> str:
    """A new registry entry in known_issues.toml's form for a failure no entry explains: affects
    from the boundary (a regression: >= the first failing version, upper end open; a fix: < the
    first passing one), the case's architecture and task, the failing place and how it fails."""
    last, nxt = (result.versions[i] for i in result.boundary)
    regression = result.direction == "regression"
    failing = nxt if regression else last
    fail = result.verdict(failing).data
    # a commit is named by the version it installs as (PEFT main: X.Y.Z.devN)
    bound = (result.verdict(nxt).data.get("versions") or {}).get(plan.package) if plan.git else nxt
    affects = {plan.package: f">={bound}" if regression else f"<{bound}"}
    point = fail.get("point") or plan.claim or "?"
    arch, task = plan.case["model"]["arch"], plan.case["task"]
    where = f"{plan.prop}:{point}"
    fixed = ", ".join(f"{k} {v}" for k, v in plan.fixed.items())
    pkg = "tf" if plan.package == "transformers" else "peft"
    ident = (
        f"{pkg}-{plan.short(nxt)}-{arch}-{point}" if regression else f"{pkg}-before-{plan.short(nxt)}-{arch}-{point}"
    )
    ident = re.sub(r"[^a-z0-9.-]+", "-", ident.lower())
    if regression:
        title = f"{plan.package} {plan.short(nxt)}: {arch} {task} fails {where} ({fail.get('kind') or 'failure'})"
    else:
        title = (
            f"{plan.package} before {plan.short(nxt)}: {arch} {task} fails {where} ({fail.get('kind') or 'failure'})"
        )
    error = fail.get("error") or ""
    report = (
        f"Bisected with python -m matrix bisect ({fixed} fixed): {where} on a tiny {arch} {task} "
        f"{'passes' if regression else 'fails'} with {plan.package} {plan.short(last)} and "
        f"{'fails' if regression else 'passes'} from {plan.short(nxt)} on "
        f"({compare_link(plan, plan.short(last), plan.short(nxt))}). Observed: {error[:300].rstrip('.')}. "
        f"Expected: {_claim_statement(plan.prop, point)}. Case: {json.dumps(plan.case, sort_keys=True)}"
    ).replace("'''", "'")
    lines = [
        "[[issue]]",
        f"id = '{ident}'",
        f"title = '''{title}'''",
        "found_by_suite = true",
        f"# bisected: {plan.package} {plan.short(last)} {result.verdict(last).verdict}, "
        f"{plan.short(nxt)} {result.verdict(nxt).verdict} ({fixed})",
        "affects = { " + ", ".join(f"{k} = '{v}'" for k, v in affects.items()) + " }",
        f"cases = {{ arch = ['{arch}'], task = ['{task}'] }}",
        f"report = '''{report}'''",
        "[[issue.fails]]",
        f"at = ['{where}']",
    ]
    kind = fail.get("kind") or ""
    if kind in ("shape", "non-finite", "beyond-tolerance", "prefix-ignored", "value-changed"):
        lines.append(f"output = '{kind}'")
    else:
        exc_type = error.split(":", 1)[0].strip() if ":" in error else (kind or "Exception")
        lines.append(f"exception = '{exc_type}'")
        lines.append(f"match = '''{_escape_match(error)}'''")
    return "\n".join(lines) + "\n"


def validate_draft(text: str) -> str:
    """'ok' if the draft loads as a registry entry (prefixcheck.known_issues.parse), else why not;
    'not checked' where the registry cannot be imported (no torch in the CLI's Python)."""
    try:
        from prefixcheck import known_issues
    except ImportError:
        return "not checked"
    try:
        known_issues.parse(text, "draft")
    except known_issues.RegistryError as exc:
        return str(exc)
    return "ok"


def report_markdown(
    plan: Plan, result: Search, script_text: str | None, script_runs: dict, wall: float, validate=None
) -> str:
    """The upstream-ready report: title, versions with the compare link, every tested version, the
    reproduction script, observed vs expected, and the registry entry (or a draft of one)."""
    last, nxt = (result.versions[i] for i in result.boundary)
    v_last, v_next = result.verdict(last), result.verdict(nxt)
    failing_version, passing_version = (nxt, last) if result.direction == "regression" else (last, nxt)
    fail, passed = result.verdict(failing_version).data, result.verdict(passing_version).data
    point = fail.get("point") or plan.claim
    where = f"{plan.prop}:{point}" if point else plan.prop
    arch, task = plan.case["model"]["arch"], plan.case["task"]
    fixed = ", ".join(f"{k} {v}" for k, v in plan.fixed.items())
    kind = fail.get("kind") or "failure"
    if result.direction == "regression":
        title = (
            f"{plan.package} {plan.short(nxt)}: `{where}` fails on {arch} {task} ({kind}); {plan.short(last)} passed"
        )
    else:
        title = f"{plan.package} {plan.short(nxt)} fixes `{where}` on {arch} {task} ({kind} up to {plan.short(last)})"
    link = compare_link(plan, plan.short(last), plan.short(nxt))
    other = {k: v for k, v in (fail.get("versions") or {}).items() if k not in (plan.package, *plan.fixed)}
    lines = [
        f"# {title}",
        "",
        f"Found by `python -m matrix bisect` (prefix-roundtrip) in {wall:.0f} s: {len(result.tested)} versions tested "
        f"of {len(result.versions)}; {plan.package} moves, {fixed} fixed"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(other.items()))})" if other else "")
        + ".",
        "",
        "## Versions",
        "",
        f"| | {plan.package} | verdict |",
        "|---|---|---|",
        f"| {'last good' if result.direction == 'regression' else 'last failing'} | {_cell(plan.label(last))} | "
        f"{_cell(v_last.line())} |",
        f"| {'first bad' if result.direction == 'regression' else 'first passing'} | {_cell(plan.label(nxt))} | "
        f"{_cell(v_next.line())} |",
        "",
        f"Compare: {link}",
    ]
    if plan.git:
        lines.append(
            f"First {'bad' if result.direction == 'regression' else 'good'} commit: "
            f"https://github.com/{_github_repo(plan.git)}/commit/{nxt}"
        )
    if result.skipped_between:
        lines += [
            "",
            "Between them, could not decide: "
            + ", ".join(plan.short(v) for v in result.skipped_between)
            + " (the boundary spans these).",
        ]
    lines += [
        "",
        "Every version tested, in the order tested:",
        "",
        f"| {plan.package} | verdict | seconds |",
        "|---|---|---|",
    ]
    for version, verdict in result.tested:
        lines.append(f"| {_cell(plan.label(version))} | {_cell(verdict.line())} | {verdict.seconds:.0f} |")
    untested = [v for v in result.versions if result.verdict(v) is None]
    if untested:
        lines += ["", "Not tested (the search did not need them): " + ", ".join(plan.short(v) for v in untested)]
    lines += ["", "## Reproduction", ""]
    if plan.square:
        lines += [
            f"The failure is a matrix square ({plan.square}): the artifact `{plan.artifact.name}` made by "
            f"{plan.producer} is consumed under each version (`python -m matrix.probe --artifact ...`). The "
            f"script below is the in-version check of `{where}` on the same case.",
            "",
        ]
    if script_text:
        runs = []
        for version in (last, nxt):
            run = script_runs.get(version)
            if run:
                runs.append(f"{plan.package} {plan.short(version)}: exit {run['rc']}, `{run['line']}`")
        lines += [
            "Standalone (torch, transformers and peft only); it exits 1 and prints `FAILED` while the bug is there:",
            "",
        ]
        if runs:
            lines += ["Run here: " + "; ".join(runs) + ".", ""]
        lines += ["```python", script_text.rstrip(), "```"]
    else:
        lines.append("(no reproduction script could be written: " + (fail.get("script_error") or "none") + ")")
    lines += [
        "",
        "## Observed vs expected",
        "",
        f"- Property `{plan.prop}`: {_claim_statement(plan.prop, None)}",
        f"- Expected (`{where}`): {_claim_statement(plan.prop, point)}; it holds with {plan.package} "
        f"{plan.short(passing_version)}.",
        f"- Observed with {plan.package} {plan.short(failing_version)} ({kind}"
        + (f", max |diff| {float(fail['max_diff']):.3e}" if fail.get("max_diff") is not None else "")
        + (f", known issue `{fail['known']}`" if fail.get("known") else "")
        + f"): `{fail.get('error') or '(no message)'}`",
    ]
    if passed.get("point") and passed.get("verdict") == PASS:
        lines.append(f"- With {plan.package} {plan.short(passing_version)}: `{plan.prop}:{passed['point']}` passed.")
    lines += ["", f"The case ({plan.source}):", "", "```json", json.dumps(plan.case, indent=1, sort_keys=True), "```"]
    lines += ["", "## Registry", ""]
    known = fail.get("known")
    entries = {e["id"]: e for e in fail.get("matching") or []}
    if known:
        entry = entries.get(known, {"id": known, "title": "", "affects": {}, "references": []})
        lines.append(f"This is known issue `{known}`: {entry.get('title', '')}")
        affects = entry.get("affects") or {}
        lines.append(
            f"- affects: {', '.join(f'{k} {v}' for k, v in affects.items()) or '(any)'}; references: "
            f"{', '.join(entry.get('references') or []) or 'found by this suite (report in the entry)'}"
        )
        spec = affects.get(plan.package)
        if spec and not plan.git:
            inside = _in_spec(spec, failing_version), _in_spec(spec, passing_version)
            if inside == (True, False):
                lines.append(
                    f"- The boundary agrees with its range: {plan.package} {spec} holds for "
                    f"{failing_version} and not for {passing_version}."
                )
            elif None not in inside:
                lines.append(
                    f"- The boundary does NOT agree with its range {plan.package} {spec} "
                    f"({failing_version}: {inside[0]}, {passing_version}: {inside[1]}): narrow the entry."
                )
        elif not spec:
            lines.append(
                f"- Its range does not bound {plan.package}: the bisect says {plan.package} "
                f"{'>=' if result.direction == 'regression' else '<'}{plan.short(nxt)}."
            )
    else:
        here = [i for i, e in entries.items() if point in e.get("places", [point])]
        if here:
            lines.append(
                f"Entries that cover this case at `{where}` here, but do not explain this failure: "
                + ", ".join(f"`{i}`" for i in here)
                + "."
            )
            lines.append("")
        other = {i: e for i, e in entries.items() if i not in here}
        if other:
            lines.append(
                f"Entries that cover this case at other places of `{plan.prop}` here (the same bug, met elsewhere?): "
                + ", ".join(
                    f"`{i}` ({', '.join(e.get('places') or [])}: {e.get('title', '')})" for i, e in other.items()
                )
                + "."
            )
            lines.append("")
        elsewhere: dict[str, list[str]] = {}  # the same failure, known under other versions of the range
        for version, verdict in result.tested:
            data = verdict.data
            if verdict.verdict == FAIL and data.get("known") and data.get("point") == point:
                if (data.get("kind") or "") == (fail.get("kind") or ""):
                    elsewhere.setdefault(data["known"], []).append(version)
        for issue, versions in elsewhere.items():
            entry = next(
                (e for v in versions for e in result.verdict(v).data.get("matching") or [] if e["id"] == issue), {}
            )
            spec = (entry.get("affects") or {}).get(plan.package)
            lines += [
                f"The same failure ({kind} at `{where}`) is known issue `{issue}` with {plan.package} "
                f"{', '.join(plan.short(v) for v in versions)}"
                + (f" (its range: {plan.package} {spec})" if spec else "")
                + f", but no entry covers {plan.package} {plan.short(failing_version)}: if it is the same bug, widen "
                f"that entry's `affects` to take in {plan.short(failing_version)} (the bisect puts the "
                f"{'start' if result.direction == 'regression' else 'fix'} at {plan.short(nxt)}) instead of adding the draft below.",
                "",
            ]
        draft = draft_entry(plan, result)
        checked = (validate or validate_draft)(draft)
        said = {"ok": " (validated by the registry loader)", "not checked": " (not validated: no torch here)"}
        lines += [
            "No registry entry explains it. A draft for `prefixcheck/known_issues.toml`"
            + said.get(checked, f" (it does not validate yet: {checked})")
            + ":",
            "",
            "```toml",
            draft.rstrip(),
            "```",
        ]
    return "\n".join(lines) + "\n"


def report_name(plan: Plan) -> str:
    point = plan.claim or "any"
    ends = f"{plan.short(plan.versions[0])}-{plan.short(plan.versions[-1])}"
    arch = plan.case["model"]["arch"]
    return re.sub(r"[^\w.-]+", "_", f"{plan.prop}-{point}-{arch}-{plan.package}-{ends}")


# -- the command --------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `python -m matrix bisect` (added to its subparser)."""
    parser.add_argument("--property", help="the property whose example to bisect (prefixcheck.properties)")
    parser.add_argument(
        "--case", help="case JSON (Case.to_dict, manifest.json, summary failure record) or repro script"
    )
    parser.add_argument(
        "--claim", help="the step or claim that decides (default: the script's, else the first failing)"
    )
    parser.add_argument(
        "--peft", help="a release (fixed) or a range A..B (bisected); with --registry, the PEFT axis' stretch"
    )
    parser.add_argument(
        "--transformers",
        help="a release (fixed) or a range A..B (bisected); with --registry, the transformers axis' stretch",
    )
    parser.add_argument("--accelerate", help="accelerate for every environment (default: matrix/releases.py's pick)")
    parser.add_argument(
        "--extra", action="append", default=[], help="an extra requirement for every environment (repeatable)"
    )
    parser.add_argument("--git", help="a local PEFT clone: bisect its commits from --good to --bad")
    parser.add_argument("--good", help="with --git: the older end (a ref)")
    parser.add_argument("--bad", help="with --git: the newer end (a ref)")
    parser.add_argument("--square", help="PRODUCER:CONSUMER: bisect the consumer side of a failing matrix square")
    parser.add_argument("--run", help="with --square: the finished `matrix run` folder")
    parser.add_argument("--row", help="with --square: the artifact (case key) to bisect (default: the first failing)")
    parser.add_argument(
        "--registry",
        nargs="*",
        metavar="ID",
        help="measure these registry entries' bounds (none named: every entry the summaries witness)",
    )
    parser.add_argument(
        "--summary", action="append", help="with --registry: a run's summary.json holding witnesses (repeatable)"
    )
    parser.add_argument(
        "--axis",
        choices=("peft", "transformers", "both"),
        default="both",
        help="with --registry: the axis of matrix/cells.toml to measure on (default both)",
    )
    parser.add_argument(
        "--reports-only", action="store_true", help="with --registry: write docs/upstream only, measure nothing"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="with --registry: test every release of each axis, all entries' witnesses in one process per release",
    )
    parser.add_argument(
        "--measured", help="with --registry: the measured-bounds file (default prefixcheck/known_issues_measured.json)"
    )
    parser.add_argument(
        "--envs", help=f"where environments live, kept (default: RUN/envs with --square, else {DEFAULT_ENVS})"
    )
    parser.add_argument(
        "--out", help="report folder, or a .md file (default reports/bisect; with --registry docs/upstream)"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds one version's probe may take")
    parser.add_argument(
        "-j", "--jobs", type=int, default=2, help="versions evaluated at once (default 2: each round splits in thirds)"
    )
    parser.add_argument(
        "--max-skips",
        type=int,
        default=6,
        help="give up (exit 2) after this many end versions in a row could not decide (default 6)",
    )
    parser.add_argument(
        "--no-script-check",
        action="store_true",
        help="do not run the reproduction script under the two boundary versions",
    )


def bisect_command(args, *, fetch=None, evaluate=None, out=print) -> int:
    """Run a bisect from parsed arguments. `fetch`: matrix.releases' index answers (tests);
    `evaluate(version) -> Verdict`: replaces building environments and probing (tests); with
    --registry, `evaluate(plan, version)` (matrix/registry_bounds.py)."""
    if args.registry is not None or args.reports_only:
        from .registry_bounds import registry_command

        return registry_command(args, evaluate=evaluate, out=out)
    start = time.perf_counter()
    try:
        plan = plan_from_args(args, fetch)
    except BisectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fixed = ", ".join(f"{k} {v}" for k, v in plan.fixed.items())
    ends = f"{plan.short(plan.versions[0])}..{plan.short(plan.versions[-1])}"
    focus = f"{plan.prop}:{plan.claim}" if plan.claim else f"{plan.prop} (any failing point)"
    out(
        f"bisect {plan.package} {ends} ({len(plan.versions)} {'commits' if plan.git else 'releases'}), {fixed} "
        f"fixed: {focus} on {plan.source}"
    )
    work = Path(tempfile.mkdtemp(prefix="matrix-bisect-"))
    try:
        evaluator = None
        if evaluate is None:
            envs = Path(args.envs) if args.envs else (Path(args.run) / "envs" if plan.square else DEFAULT_ENVS)
            envs.mkdir(parents=True, exist_ok=True)
            evaluator = Evaluator(plan, envs.resolve(), work, args.timeout)
            evaluate = evaluator

        def tested(version: str, verdict: Verdict) -> None:
            env = verdict.data.get("env_seconds")
            took = f"{verdict.seconds:.0f} s" + (f", environment {env:.0f} s" if env is not None else "")
            out(f"{plan.package} {plan.label(version)}: {verdict.line()} [{took}]")

        result = search(plan.versions, evaluate, tested, jobs=max(1, args.jobs), max_skips=args.max_skips)
        if result.gave_up:
            skipped = [v for _, v in result.tested if not v.decisive]
            print(
                f"error: {len(skipped)} versions at the ends of the range could not decide (last: "
                f"{skipped[-1].line()[:200]}); try another case, --claim, or --max-skips",
                file=sys.stderr,
            )
            return 2
        if not result.decisive:
            print(
                f"error: no version could be evaluated ({len(result.tested)} tried; "
                f"{result.tested[0][1].detail[:200]})",
                file=sys.stderr,
            )
            return 2
        if result.boundary is None:
            verdicts = sorted({v.verdict for _, v in result.decisive})
            out(
                f"no boundary: every version that ran gives {' / '.join(verdicts)} "
                f"({', '.join(plan.short(n) for n, _ in result.decisive)})"
            )
            return 1
        last, nxt = (result.versions[i] for i in result.boundary)
        failing = nxt if result.direction == "regression" else last
        script_path = Path(result.verdict(failing).data.get("script") or "")
        script_text = script_path.read_text() if script_path.is_file() else None
        runs = {}
        if script_text and evaluator is not None and not args.no_script_check:
            with ThreadPoolExecutor(max_workers=2) as pool:
                runs = dict(
                    zip((last, nxt), pool.map(lambda v: evaluator.run_script(v, script_path), (last, nxt)), strict=True)
                )
        wall = time.perf_counter() - start
        text = report_markdown(
            plan, result, script_text, runs, wall, validate=evaluator.validate_draft if evaluator else None
        )
        target = Path(args.out or DEFAULT_OUT)
        if target.suffix != ".md":
            target = target / f"{report_name(plan)}.md"
        record = {
            "package": plan.package,
            "fixed": plan.fixed,
            "property": plan.prop,
            "claim": plan.claim,
            "case": plan.case,
            "source": plan.source,
            "versions": plan.versions,
            "tested": [
                {
                    "version": n,
                    "verdict": v.verdict,
                    "detail": v.detail,
                    "seconds": round(v.seconds, 1),
                    "result": v.data,
                }
                for n, v in result.tested
            ],
            "boundary": [last, nxt],
            "direction": result.direction,
            "script_runs": runs,
            "wall_seconds": round(wall, 1),
        }
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            target.with_suffix(".json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
        except OSError as exc:
            print(f"error: cannot write the report {target}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        if result.skipped_between:
            out(
                f"note: {', '.join(plan.short(v) for v in result.skipped_between)} could not decide; "
                "the boundary spans them"
            )
        out(f"report: {target} ({wall:.0f} s)")
        out(
            f"boundary: {plan.package} {plan.short(last)} ({result.verdict(last).verdict}) -> "
            f"{plan.short(nxt)} ({result.verdict(nxt).verdict})"
        )
        return 0
    except BisectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matrix bisect", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return bisect_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
