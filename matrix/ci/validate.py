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
import uuid
from pathlib import Path

from prefixcheck.verdicts import FAILED

from ..grid.cells import Cell
from .diff import matrix_diff, suite_diff, verdict_text


def _moves(before: dict, after: dict) -> str:
    """Registry ids whose example counts moved, as `id 3 -> 5` (0 where an id was not hit)."""
    ids = sorted(i for i in set(before) | set(after) if before.get(i, 0) != after.get(i, 0))
    return ", ".join(f"{i} {before.get(i, 0)} -> {after.get(i, 0)}" for i in ids)


def markdown(suite: dict, grid: dict, labels: tuple[str, str]) -> str:
    base, cand = labels
    lines = [f"# PEFT validation: `{cand}` against `{base}`", ""]
    if not (suite["new_failures"] or grid["regressions"] or grid["disappeared"]):
        lines.append("**No new failures.**")
    else:
        lines.append(f"**New failures** (passing or known under the baseline; failures keyed by {suite['keyed_by']}):")
        lines += [
            f"- property `{f['property']}` case `{f['case']}` {f['describe']}: {f['kind']}: {f['error'][:160]}"
            for f in suite["new_failures"][:50]
        ]
        lines += [
            f"- artifact `{r['producer']}/{r['case']}` ({r.get('arch')} {r.get('task')}): {verdict_text(r, 'baseline')} -> "
            f"{r['verdict']}: {r.get('detail', '')[:160]}"
            for r in grid["regressions"][:50]
        ]
        lines += [
            f"- artifact `{r['producer']}/{r['case']}`: {verdict_text(r, 'baseline')} under the baseline, not judged by the candidate"
            for r in grid["disappeared"][:50]
        ]
    if suite["fixed"] or grid["fixes"]:
        lines += ["", "**Newly passing** (check the registry for entries to narrow or remove):"]
        lines += [
            f"- property `{f['property']}` case `{f['case']}`: {f['kind']} no longer" for f in suite["fixed"][:50]
        ]
        lines += [
            f"- artifact `{r['producer']}/{r['case']}` ({r.get('arch')} {r.get('task')}): {verdict_text(r, 'baseline')} -> pass"
            for r in grid["fixes"][:50]
        ]
    if grid["changed"]:
        lines += ["", "**Other verdicts that moved** (a known issue appeared, went or changed):"]
        lines += [
            f"- artifact `{r['producer']}/{r['case']}` ({r.get('arch')} {r.get('task')}): {verdict_text(r, 'baseline')} -> {verdict_text(r)}"
            for r in grid["changed"][:50]
        ]
    if suite["known_changed"]:
        lines += ["", "Known-issue counts that moved:"]
        lines += [
            f"- `{p}`: {_moves(v['baseline'], v['candidate'])}" for p, v in sorted(suite["known_changed"].items())
        ]
    return "\n".join(lines) + "\n"


def read_summary(path: Path, run_id: str, proc: subprocess.CompletedProcess, what: str) -> dict:
    """The summary.json this run wrote, or SystemExit with one line: a summary from another run
    (a stale file in a reused folder), or pytest ending in a way the summary does not explain
    (an xdist worker crash, a collection error, a coverage gap: exit status 1 with no failed
    example; 2-5: interrupted, internal or usage error, nothing collected)."""
    tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-2:])[-300:]
    if not path.is_file():
        raise SystemExit(f"error: {what}: the property suite wrote no {path} (pytest exit {proc.returncode}): {tail}")
    summary = json.loads(path.read_text())
    if summary.get("run_id") != run_id:
        raise SystemExit(
            f"error: {what}: {path} is from another run (run id {summary.get('run_id')!r}, this run {run_id!r}): {tail}"
        )
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not summary["totals"][FAILED]):
        raise SystemExit(
            f"error: {what}: pytest exited {proc.returncode} with {summary['totals'][FAILED]} failed examples in the summary: {tail}"
        )
    return summary


def validate(args) -> int:
    from ..grid.envs import ROOT, build_env, in_cell

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
        run_id = uuid.uuid4().hex[:12]
        env = {
            **os.environ,
            "PREFIXCHECK_RUN_ID": run_id,
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
        summaries[side] = read_summary(reports / side / "summary.json", run_id, proc, f"{side} ({cell.peft})")
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
    return 1 if suite["new_failures"] or grid["regressions"] or grid["disappeared"] else 0
