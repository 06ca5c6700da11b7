"""The plan of a bisect: which package moves over which versions, what stays fixed, which
property, point and case decide, and the environment (a matrix cell) each version runs in."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from prefixcheck.verdicts import FAILING_ROWS

from .inputs import _check_property, _git, _releases, commit_range, parse_range, place_of, read_case, release_range
from .search import BisectError


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

        from ..grid.cells import Cell, CellError
        from ..grid.cells import load as load_cells

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
    (matrix/grid/releases.py); the known-good cell's where the index cannot say."""
    from ..grid.cells import load as load_cells

    try:
        releases = _releases()
        newest = releases.release_history("peft")[-1].version
        return releases.accelerate_for(peft or newest, transformers)
    except Exception:  # noqa: BLE001 (an offline index: the known-good pin still installs)
        return load_cells().known_good().accelerate


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
    failing = [r for r in rows if r["verdict"] in FAILING_ROWS]
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
