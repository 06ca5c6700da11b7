"""What happened to each example, and the run's summary.

Each example of a property (prefixcheck.example) leaves one `ExampleRecord`: its outcome
(passed, failed, known, inconclusive), the verdict of every claim (passed, failed, known under
an entry, blocked by an entry or a failed step, inconclusive), the steps that failed, which
claims each known issue stopped, and other entries that matched the same failure.

Counts are per distinct example (property, case key). When a test item fails, the examples
Hypothesis runs while shrinking are dropped again (`Recorder.forget_shrinking`): the summary
counts the generated examples plus the one minimal failing example it reports. Each process
writes its own part file; the pytest session merges them into `reports/<env>/summary.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .case import Case
from .versions import installed

PASSED, FAILED, KNOWN, BLOCKED, INCONCLUSIVE = "passed", "failed", "known", "blocked", "inconclusive"


@dataclass
class ExampleRecord:
    outcome: str
    claims: dict[str, list] = field(default_factory=dict)  # claim -> [verdict, issue id or reason]
    steps: dict[str, list] = field(default_factory=dict)  # failed step -> [known|failed, issue id]
    stopped: dict[str, list] = field(default_factory=dict)  # issue id -> claims it stopped
    also: dict[str, list] = field(default_factory=dict)  # issue id -> less specific entries that matched too
    failure: dict | None = None
    describe: str = ""
    axes: dict[str, list] = field(default_factory=dict)  # coverage axis -> values (prefixcheck.coverage)
    case: dict | None = None  # Case.to_dict(), kept only where an entry was hit: the summary's witnesses


class Recorder:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], ExampleRecord] = {}
        self.log: list[tuple[str, str]] = []  # (prop, key) in the order examples ran

    def record(self, prop: str, case: Case, record: ExampleRecord) -> None:
        record.describe = record.describe or case.describe()
        if record.stopped and record.case is None:
            record.case = case.to_dict()
        if not record.axes:
            from . import architectures, coverage

            try:
                curated = architectures.get(case.model.arch).curated
            except KeyError:  # a case from another version's discovery
                curated = False
            record.axes = coverage.axes(prop, case, curated)
        self.records[(prop, case.key)] = record
        self.log.append((prop, case.key))

    @property
    def outcomes(self) -> dict[tuple[str, str], str]:
        return {k: r.outcome for k, r in self.records.items()}

    def mark(self) -> int:
        return len(self.log)

    def forget_shrinking(self, start: int) -> None:
        """After a failed test item: keep what ran up to its first failure, and its last failure
        (Hypothesis' minimal example); forget the shrinking runs in between."""
        run = self.log[start:]
        failed = [i for i, k in enumerate(run) if self.records[k].outcome == FAILED]
        if not failed:
            return
        keep = set(run[: failed[0] + 1]) | {run[failed[-1]]} | set(self.log[:start])
        for k in set(run) - keep:
            self.records.pop(k, None)
        self.log[start:] = [k for k in run if k in keep]

    def write_part(self, path: str | Path) -> None:
        rows = [[p, k, asdict(r)] for (p, k), r in self.records.items()]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(rows))

    def load_part(self, path: str | Path) -> None:
        for prop, key, record in json.loads(Path(path).read_text()):
            self.records[(prop, key)] = ExampleRecord(**record)


RECORDER = Recorder()

# Judgements of the committed legacy artifacts in this process (matrix/legacy.py; one dict per
# artifact: producer, case, describe, verdict, issue, outcome, why); merged into summary["legacy"].
LEGACY_ROWS: list[dict] = []


def legacy_section(rows: list[dict]) -> dict:
    """summary.json's `legacy`: outcome counts overall and per producer, the rows that failed."""
    by_producer: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for row in rows:
        slot = by_producer.setdefault(row["producer"], {})
        slot[row["outcome"]] = slot.get(row["outcome"], 0) + 1
        totals[row["outcome"]] = totals.get(row["outcome"], 0) + 1
    return {
        "totals": totals,
        "by_producer": by_producer,
        "record": rows[0]["record"] if rows else None,
        "failed": [r for r in rows if r["outcome"] == FAILED],
    }


def failure_record(case: Case, point: str, exc: BaseException, repro_path) -> dict:
    first = (str(exc).strip().splitlines() or [""])[0]
    return {
        "describe": case.describe(),
        "at": point,
        "kind": getattr(exc, "kind", type(exc).__name__),
        "error": f"{type(exc).__name__}: {first}"[:300],
        "repro": str(repro_path) if repro_path else None,
    }


def reports_dir() -> Path:
    # PREFIXCHECK_ENV names a run apart from its tox env (the nightly runs peft-pr for two mains)
    env = os.environ.get("PREFIXCHECK_ENV") or os.environ.get("TOX_ENV_NAME") or "local"
    return Path(os.environ.get("PREFIXCHECK_REPORTS", "reports")) / env


def _bump(slot: dict, key: str, issue: str | None = None) -> None:
    if key in (KNOWN, BLOCKED):
        bucket = slot.setdefault(key, {})
        bucket[issue or "?"] = bucket.get(issue or "?", 0) + 1
    else:
        slot[key] = slot.get(key, 0) + 1


def counts(recorder: Recorder) -> dict[str, dict]:
    """Per property: examples by outcome (known by entry), and per claim its verdicts."""
    out: dict[str, dict] = {}
    for (prop, _), record in sorted(recorder.records.items()):
        slot = out.setdefault(prop, {"passed": 0, "failed": 0, "known": {}, "inconclusive": 0, "claims": {}})
        if record.outcome == KNOWN:
            for issue in record.stopped or {"?": []}:
                slot["known"][issue] = slot["known"].get(issue, 0) + 1
        else:
            slot[record.outcome] += 1
        for claim, (verdict, issue) in record.claims.items():
            _bump(slot["claims"].setdefault(claim, {}), verdict, issue)
    return out


def known_point(record: ExampleRecord, issue: str) -> str | None:
    """The step or claim at which `issue` explained the example's failure (a step first: it
    stopped the example before any claim ran)."""
    for point, (verdict, by) in [*record.steps.items(), *record.claims.items()]:
        if verdict == KNOWN and by == issue:
            return point
    return None


def witness_rank(witness: dict) -> tuple:
    """The order in which witnesses are preferred, the same in every process and every merge: a
    curated family first (a discovered one makes every bisected environment discover families
    first), then a case older releases can run (no `init_weights`: PEFT before 0.16 has no such
    field, so such a case is unsupported there), then the smallest case key, then the property."""
    newer_only = (witness.get("case") or {}).get("prefix", {}).get("init_weights") is not None
    return (witness.get("families") != "curated", newer_only, witness["case_key"], witness["property"])


def _witness(prop: str, key: str, record: ExampleRecord, issue: str) -> dict | None:
    point = known_point(record, issue)
    if record.case is None or point is None:
        return None
    families = (record.axes.get("families") or ["?"])[0]
    return {"property": prop, "point": point, "case": record.case, "case_key": key, "families": families}


def summary(recorder: Recorder, live_entries: list[str] | None = None) -> dict:
    """The run's summary.json. `live_entries`: the ids of the registry entries that apply to these
    versions, to list those no example hit (as array-api-tests warns about unused xfails)."""
    props = counts(recorder)
    totals = {"passed": 0, "failed": 0, "known": 0, "inconclusive": 0}
    for slot in props.values():
        for key in ("passed", "failed", "inconclusive"):
            totals[key] += slot[key]
    totals["known"] = sum(1 for r in recorder.records.values() if r.outcome == KNOWN)
    failures = [
        {"property": prop, "case": key, **(record.failure or {})}
        for (prop, key), record in sorted(recorder.records.items())
        if record.outcome == FAILED
    ]
    hits: dict[str, dict] = {}
    for (prop, key), record in recorder.records.items():
        for issue, stopped in record.stopped.items():
            hit = hits.setdefault(issue, {"examples": 0, "stopped": {}, "also_matched": []})
            hit["examples"] += 1
            # one example that hit the entry, chosen by witness_rank among all of them, so every
            # split of the examples across xdist workers gives the same one
            witness = _witness(prop, key, record, issue)
            if witness and ("witness" not in hit or witness_rank(witness) < witness_rank(hit["witness"])):
                hit["witness"] = witness
            for claim in stopped:
                where = f"{prop}:{claim}"
                hit["stopped"][where] = hit["stopped"].get(where, 0) + 1
            for other in record.also.get(issue, []):
                if other not in hit["also_matched"]:
                    hit["also_matched"].append(other)
    from . import coverage

    out = {
        "versions": installed(),
        "totals": totals,
        "properties": props,
        "failures": failures,
        "known_hits": hits,
        "coverage": coverage.table(recorder.records.values()),
    }
    if live_entries is not None:
        out["unused_entries"] = sorted(i for i in live_entries if i not in hits)
    return out


def markdown(summary: dict, env: str, pinned: bool) -> str:
    """The run's Markdown job summary. On versions this project does not pin, a failure outside
    the registry is named for what it most likely is: an upstream regression, or a fixed bug."""
    versions = ", ".join(f"{k} {v}" for k, v in sorted(summary["versions"].items()) if k != "python")
    totals = summary["totals"]
    mark = "passed" if totals["failed"] == 0 else "FAILED"
    lines = [
        f"## Property suite `{env}`: {mark}",
        "",
        f"{versions}; Hypothesis profile `{summary.get('hypothesis_profile', '?')}`.",
        f"{totals['passed']} examples passed, {totals['known']} hit a known issue as the registry says, "
        f"{totals.get('inconclusive', 0)} were inconclusive (the prefix moved the outputs too little to judge), "
        f"**{totals['failed']} failed**.",
    ]
    hits = summary.get("known_hits") or {}
    if hits:
        lines += ["", "| known issue | examples | claims it stopped (property:claim, examples) |", "|---|---|---|"]
        for issue, hit in sorted(hits.items()):
            stopped = ", ".join(f"`{w}` {n}" for w, n in sorted(hit["stopped"].items()))
            lines.append(f"| `{issue}` | {hit['examples']} | {stopped} |")
    if summary.get("coverage"):
        from . import coverage

        lines += coverage.markdown(summary["coverage"])
    legacy = summary.get("legacy")
    if legacy and legacy["by_producer"]:
        lines += [
            "",
            "### Adapters saved by older releases (tests/legacy)",
            "",
            f"Judged here as `python -m matrix consume` judges them; `recorded`: the incompatibility the matrix "
            f"records for {legacy['record']}, not a new one.",
            "",
            "| saved by | passed | recorded | failed |",
            "|---|---|---|---|",
        ]
        for producer, n in sorted(legacy["by_producer"].items()):
            lines.append(f"| `{producer}` | {n.get('passed', 0)} | {n.get('recorded', 0)} | {n.get('failed', 0)} |")
        for row in legacy["failed"][:20]:
            lines.append(f"\n- FAILED `{row['producer']}/{row['case']}` {row['describe']}: {row['why'][:200]}")
    skipped = summary.get("skipped_families") or []
    if skipped:
        lines += [
            "",
            f"### Families not tested ({len(skipped)} model type/task pairs)",
            "",
            "| reason | pairs |",
            "|---|---|",
        ]
        by_reason: dict[str, list] = {}
        for entry in skipped:
            by_reason.setdefault(entry["reason"], []).append(f"{entry['model_type']}[{entry['task']}]")
        for reason, pairs in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"| {reason.replace('|', '/')} | {', '.join(pairs)} |")
    if summary.get("unused_entries"):
        lines += ["", "Registry entries no example hit: " + ", ".join(f"`{i}`" for i in summary["unused_entries"])]
    if totals["failed"]:
        stale = [f for f in summary.get("failures", []) if f.get("error", "").startswith("StaleKnownIssue")]
        if pinned:
            lines += ["", "These versions are pinned by this project: a failure here is a bug in the suite."]
        else:
            lines += [
                "",
                f"**Upstream change, not a suite bug**: {env} is not pinned by this project. A failure here "
                "that the pinned known-good run does not show is an upstream regression "
                f"({len(stale)} of them a known issue that now passes: narrow its registry entry). "
                "Each reproduction script below runs standalone; attach it to the upstream report.",
            ]
        lines += ["", "| property | failed | known issues hit |", "|---|---|---|"]
        for prop, slot in sorted(summary["properties"].items()):
            if slot["failed"]:
                known = ", ".join(f"{i} ({n})" for i, n in sorted(slot["known"].items())) or "-"
                lines.append(f"| `{prop}` | {slot['failed']} | {known} |")
        lines += ["", "| property | case | error | reproduction |", "|---|---|---|---|"]
        for f in summary.get("failures", [])[:50]:
            error = f.get("error", "").replace("|", "/").replace("\n", " ")[:160]
            lines.append(
                f"| `{f['property']}` | `{f['case']}` {f.get('describe', '')} | {error} | `{f.get('repro', '-')}` |"
            )
    return "\n".join(lines) + "\n"
