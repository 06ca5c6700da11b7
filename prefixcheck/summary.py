"""The run's summary: summary.json built in one function (`build`), and its Markdown job summary.

`build(recorder, facts)` takes the examples a run recorded (merged from every xdist worker) and
what the run knows of itself (`RunFacts`: profile, registry entries that apply, the coverage it
must reach, families discovered and set aside, the tolerances' headroom) and returns the whole
summary.json; `markdown` renders it. The pytest plugin (tests/conftest.py) only gathers the two.

Per property: examples by outcome (known by entry) and per claim its verdicts. `known_hits`: for
each registry entry, the claims it stopped, the less specific entries that matched the same
failure, and one `witness` (an example that hit it, chosen by `witness_rank`, the same whichever
worker ran what), which `python -m matrix bisect --registry` measures the entry on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import coverage
from .records import ExampleRecord, Recorder
from .verdicts import BLOCKED, FAILED, INCONCLUSIVE, KNOWN, PASSED, RECORDED
from .versions import installed


@dataclass
class RunFacts:
    """What a run knows of itself besides its records (worked out where torch is imported)."""

    profile: str
    derandomized: bool
    run_id: str = ""
    live_entries: list[str] | None = None  # registry entries that apply here (unused ones are listed)
    expected_coverage: dict[str, list] = field(default_factory=dict)  # axis -> values a whole run must reach
    discovered_families: list[str] | None = None
    skipped_families: list[dict] | None = None
    observed: dict[str, tuple[float, float]] = field(default_factory=dict)  # tolerance -> (largest |diff|, atol)


def build(recorder: Recorder, facts: RunFacts) -> dict:
    """The run's summary.json."""
    out = _examples(recorder, facts.live_entries)
    out["hypothesis_profile"] = facts.profile
    out["derandomized"] = facts.derandomized  # the same cases in every run
    # who ran it: `matrix validate` sets a fresh id per run and refuses a summary with another one
    out["run_id"] = facts.run_id
    if recorder.legacy:
        out["legacy"] = legacy_section(sorted(recorder.legacy, key=lambda r: (r["producer"], r["case"])))
        for row in out["legacy"]["failed"]:  # failures like any other: counted, diffed by signature
            out["failures"].append(
                {
                    "property": "legacy-artifacts",
                    "case": f"{row['producer']}/{row['case']}",
                    "kind": row["verdict"],
                    "error": row["why"][:300],
                    "describe": row["describe"],
                }
            )
            out["totals"][FAILED] += 1
    if facts.discovered_families is not None:
        out["discovered_families"] = facts.discovered_families
    if facts.skipped_families is not None:
        out["skipped_families"] = facts.skipped_families
    expected = {axis: set(values) for axis, values in facts.expected_coverage.items()}
    out["coverage_gaps"] = coverage.gaps(out["coverage"], expected)
    # per tolerance entry, the pass that used the largest share of its atol (the headroom docs/speed.md states)
    out["tolerance_headroom"] = {r: {"max_seen": s, "atol": a} for r, (s, a) in sorted(facts.observed.items())}
    return out


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
        slot = out.setdefault(prop, {PASSED: 0, FAILED: 0, KNOWN: {}, INCONCLUSIVE: 0, "claims": {}})
        if record.outcome == KNOWN:
            for issue in record.stopped or {"?": []}:
                slot[KNOWN][issue] = slot[KNOWN].get(issue, 0) + 1
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


def _known_hits(recorder: Recorder) -> dict[str, dict]:
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
    return hits


def _examples(recorder: Recorder, live_entries: list[str] | None) -> dict:
    """What the records say: versions, totals, per property and claim, failures, known hits, coverage."""
    props = counts(recorder)
    totals = {PASSED: 0, FAILED: 0, KNOWN: 0, INCONCLUSIVE: 0}
    for slot in props.values():
        for key in (PASSED, FAILED, INCONCLUSIVE):
            totals[key] += slot[key]
    totals[KNOWN] = sum(1 for r in recorder.records.values() if r.outcome == KNOWN)
    failures = [
        {"property": prop, "case": key, **(record.failure or {})}
        for (prop, key), record in sorted(recorder.records.items())
        if record.outcome == FAILED
    ]
    hits = _known_hits(recorder)
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
        "record": "; ".join(sorted({r["record"] for r in rows})) or None,  # the matrix columns judged against
        "failed": [r for r in rows if r["outcome"] == FAILED],
    }


def markdown(summary: dict, env: str, pinned: bool) -> str:
    """The run's Markdown job summary. On versions this project does not pin, a failure outside
    the registry is named for what it most likely is: an upstream regression, or a fixed bug."""
    lines = _md_head(summary, env)
    lines += _md_known(summary.get("known_hits") or {})
    if summary.get("coverage"):
        lines += coverage.markdown(summary["coverage"])
    lines += _md_legacy(summary.get("legacy"))
    lines += _md_skipped(summary.get("skipped_families") or [])
    if summary.get("unused_entries"):
        lines += ["", "Registry entries no example hit: " + ", ".join(f"`{i}`" for i in summary["unused_entries"])]
    if summary["totals"][FAILED]:
        lines += _md_failures(summary, env, pinned)
    return "\n".join(lines) + "\n"


def _md_head(summary: dict, env: str) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(summary["versions"].items()) if k != "python")
    totals = summary["totals"]
    mark = PASSED if totals[FAILED] == 0 else "FAILED"
    return [
        f"## Property suite `{env}`: {mark}",
        "",
        f"{versions}; Hypothesis profile `{summary.get('hypothesis_profile', '?')}`.",
        f"{totals[PASSED]} examples passed, {totals[KNOWN]} hit a known issue as the registry says, "
        f"{totals.get(INCONCLUSIVE, 0)} were inconclusive (the prefix moved the outputs too little to judge), "
        f"**{totals[FAILED]} failed**.",
    ]


def _md_known(hits: dict) -> list[str]:
    if not hits:
        return []
    lines = ["", "| known issue | examples | claims it stopped (property:claim, examples) |", "|---|---|---|"]
    for issue, hit in sorted(hits.items()):
        stopped = ", ".join(f"`{w}` {n}" for w, n in sorted(hit["stopped"].items()))
        lines.append(f"| `{issue}` | {hit['examples']} | {stopped} |")
    return lines


def _md_legacy(legacy: dict | None) -> list[str]:
    if not legacy or not legacy["by_producer"]:
        return []
    lines = [
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
        lines.append(f"| `{producer}` | {n.get(PASSED, 0)} | {n.get(RECORDED, 0)} | {n.get(FAILED, 0)} |")
    for row in legacy["failed"][:20]:
        lines.append(f"\n- FAILED `{row['producer']}/{row['case']}` {row['describe']}: {row['why'][:200]}")
    return lines


def _md_skipped(skipped: list[dict]) -> list[str]:
    if not skipped:
        return []
    lines = [
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
    return lines


def _md_failures(summary: dict, env: str, pinned: bool) -> list[str]:
    stale = [f for f in summary.get("failures", []) if f.get("error", "").startswith("StaleKnownIssue")]
    if pinned:
        lines = ["", "These versions are pinned by this project: a failure here is a bug in the suite."]
    else:
        lines = [
            "",
            f"**Upstream change, not a suite bug**: {env} is not pinned by this project. A failure here "
            "that the pinned known-good run does not show is an upstream regression "
            f"({len(stale)} of them a known issue that now passes: narrow its registry entry). "
            "Each reproduction script below runs standalone; attach it to the upstream report.",
        ]
    lines += ["", "| property | failed | known issues hit |", "|---|---|---|"]
    for prop, slot in sorted(summary["properties"].items()):
        if slot[FAILED]:
            known = ", ".join(f"{i} ({n})" for i, n in sorted(slot[KNOWN].items())) or "-"
            lines.append(f"| `{prop}` | {slot[FAILED]} | {known} |")
    lines += ["", "| property | case | error | reproduction |", "|---|---|---|---|"]
    for f in summary.get("failures", [])[:50]:
        error = f.get("error", "").replace("|", "/").replace("\n", " ")[:160]
        lines.append(
            f"| `{f['property']}` | `{f['case']}` {f.get('describe', '')} | {error} | `{f.get('repro', '-')}` |"
        )
    return lines
