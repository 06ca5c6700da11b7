"""`python -m matrix validate`: one PEFT build against a baseline, reporting only the difference.

Both sides get a uv environment (same transformers), run the property suite (`ci` profile unless HYPOTHESIS_PROFILE says otherwise) and
consume the artifacts of the released cells (from a finished `matrix run`). The report lists new
failures (the baseline passed or knew the failure, the candidate does not) and newly passing cases
(the baseline failed or had a known issue, the candidate passes); the exit status is 1 on any
new failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from .cells import Cell

GOOD = ("pass", "known-issue", "unsupported")


def suite_diff(baseline: dict, candidate: dict) -> dict:
    """Per property: failures and known-issue counts that moved between two summary.json files."""
    out = {"new_failures": {}, "fixed": {}, "known_changed": {}}
    for prop in sorted(set(baseline["properties"]) | set(candidate["properties"])):
        b = baseline["properties"].get(prop, {"passed": 0, "failed": 0, "known": {}})
        c = candidate["properties"].get(prop, {"passed": 0, "failed": 0, "known": {}})
        if c["failed"] > b["failed"]:
            out["new_failures"][prop] = c["failed"] - b["failed"]
        if c["failed"] < b["failed"]:
            out["fixed"][prop] = b["failed"] - c["failed"]
        if c["known"] != b["known"]:
            out["known_changed"][prop] = {"baseline": b["known"], "candidate": c["known"]}
    return out


def matrix_diff(baseline: dict, candidate: dict) -> dict:
    """Per artifact (consumer where the rows name one, producer, case): verdicts that changed
    between two consume results or two matrix.json files."""

    def key(r: dict) -> tuple:
        return (r.get("consumer") or "", r["producer"], r["case"])

    before = {key(r): r for r in baseline.get("rows", [])}
    after = {key(r): r for r in candidate.get("rows", [])}
    regressions, fixes = [], []
    for key in sorted(set(before) & set(after)):
        b, c = before[key], after[key]
        if b["verdict"] in GOOD and c["verdict"] not in GOOD:
            regressions.append({**c, "baseline": b["verdict"]})
        elif b["verdict"] not in ("pass",) and c["verdict"] == "pass":
            fixes.append({**c, "baseline": b["verdict"], "baseline_issue": b.get("issue")})
    return {"regressions": regressions, "fixes": fixes}


def _moves(before: dict, after: dict) -> str:
    """Registry ids whose example counts moved, as `id 3 -> 5` (0 where an id was not hit)."""
    ids = sorted(i for i in set(before) | set(after) if before.get(i, 0) != after.get(i, 0))
    return ", ".join(f"{i} {before.get(i, 0)} -> {after.get(i, 0)}" for i in ids)


def markdown(suite: dict, grid: dict, labels: tuple[str, str]) -> str:
    base, cand = labels
    lines = [f"# PEFT validation: `{cand}` against `{base}`", ""]
    if not (suite["new_failures"] or grid["regressions"]):
        lines.append("**No new failures.**")
    else:
        lines.append("**New failures** (passing or known under the baseline):")
        lines += [f"- property `{p}`: {n} more failing examples" for p, n in suite["new_failures"].items()]
        lines += [
            f"- artifact `{r['producer']}/{r['case']}` ({r['arch']} {r['task']}): {r['baseline']} -> "
            f"{r['verdict']}: {r['detail'][:160]}"
            for r in grid["regressions"][:50]
        ]
    if suite["fixed"] or grid["fixes"]:
        lines += ["", "**Newly passing** (check the registry for entries to narrow or remove):"]
        lines += [f"- property `{p}`: {n} fewer failing examples" for p, n in suite["fixed"].items()]
        lines += [
            f"- artifact `{r['producer']}/{r['case']}` ({r['arch']} {r['task']}): {r['baseline']}"
            f"{' (' + r['baseline_issue'] + ')' if r.get('baseline_issue') else ''} -> pass"
            for r in grid["fixes"][:50]
        ]
    if suite["known_changed"]:
        lines += ["", "Known-issue counts that moved:"]
        lines += [
            f"- `{p}`: {_moves(v['baseline'], v['candidate'])}" for p, v in sorted(suite["known_changed"].items())
        ]
    return "\n".join(lines) + "\n"


def validate(args) -> int:
    from .envs import ROOT, build_env, in_cell

    out = Path(args.out)
    sides = {
        "baseline": Cell("validate-baseline", args.baseline, args.transformers, args.accelerate),
        "candidate": Cell("validate-candidate", args.peft, args.transformers, args.accelerate),
    }
    summaries, consumed = {}, {}
    for side, cell in sides.items():
        python, _ = build_env(cell, out / "envs", lambda m: print(m, flush=True))
        reports = out / side / "reports"
        profile = os.environ.get("HYPOTHESIS_PROFILE") or "ci"
        env = {
            **os.environ,
            "HYPOTHESIS_PROFILE": profile,
            "PREFIXCHECK_REPORTS": str(reports),
            "PREFIXCHECK_ENV": side,
        }
        start = time.perf_counter()
        proc = subprocess.run(
            [str(python), "-m", "pytest", "tests/properties", "-q", "-n", str(args.workers), "-p", "no:cacheprovider"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        summary_file = reports / side / "summary.json"
        if not summary_file.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
            raise SystemExit(f"error: the property suite wrote no {summary_file} under {side} ({cell.peft}): {tail}")
        summaries[side] = json.loads(summary_file.read_text())
        print(f"[{side}] property suite: {summaries[side]['totals']} ({time.perf_counter() - start:.0f} s)", flush=True)
        if args.artifacts:
            proc = in_cell(python, "consume", "--artifacts", args.artifacts, "--out", str(out / side / "consume.json"))
            if proc.returncode:
                raise SystemExit(f"error: consume failed under {side}: {proc.stderr.strip().splitlines()[-1:]}")
            consumed[side] = json.loads((out / side / "consume.json").read_text())
    suite = suite_diff(summaries["baseline"], summaries["candidate"])
    grid = matrix_diff(*(consumed.get(s, {"rows": []}) for s in ("baseline", "candidate")))
    text = markdown(suite, grid, (args.baseline, args.peft))
    (out / "validation.md").write_text(text)
    (out / "validation.json").write_text(json.dumps({"suite": suite, "matrix": grid}, indent=1))
    print(text)
    return 1 if suite["new_failures"] or grid["regressions"] else 0
