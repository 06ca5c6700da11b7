"""`python -m matrix bisect-new CHANGES --run RUN`: a bisect for each new failure a diff reports.

    python -m matrix bisect-new changes --run nightly --out bisect --limit 3 --timeout 1200

CHANGES is the folder `matrix diff --out` wrote (changes.json); RUN the results it compared (the
nightly's folder: reports/<env>/ of each property suite with its reproduction scripts, results/
and artifacts/ of the matrix). For each new failure, in the diff's order, one `python -m matrix
bisect` (matrix/bisect/commands.py):
- a property-suite failure: its reproduction script as --case, one package moving over the
  releases between the known-good pair and the run's (`suite_arguments` says which, and why);
- a matrix square that went bad: `--square PRODUCER:CONSUMER --run RUN --row CASE`, once per
  square (its other new rows name the row that stands for them).
At most --limit bisects run, each in a process group of its own, stopped with everything it started
after --timeout seconds. Every new failure gets one line: the bisect's `boundary: ...`, "broken
since it was added in ..." (it fails wherever it runs, and every release below the first of those has
no such family, task or method), "same verdict in every tested release: ...", "could not bisect:
..." or "not bisected: ...". OUT holds
each bisect's report (.md), record (.json) and output (.log), bisects.json (per new failure: the
line, the command, the verdict lines, the files) and bisects.md (the job summary). `matrix track
--bisects OUT` attaches them to the tracking issue (`attachment`). Exit 0 whenever bisects.json is
written: a bisect that finds no boundary is a result, not an error.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INDEX = "bisects.json"
SUMMARY = "bisects.md"
ARTIFACT = "nightly-bisect"  # what the nightly uploads OUT as (.github/workflows/nightly.yml)
SUMMARY_ROOM = 500_000  # a job summary holds 1 MiB
_TESTED = re.compile(r"^(peft|transformers) \S+: ")  # bisect's line per tested version
_SINCE_ADDED = "since added: "  # bisect's line where the case fails since its family, task or method exists
_NO_BOUNDARY = re.compile(r"^no boundary: every version that ran gives (.*?)(?: \(|$)")


class NotBisected(Exception):
    """Why one new failure gets no bisect; the message follows `not bisected: `."""


# -- what to bisect ---------------------------------------------------------------------------------
def _is_release(version: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return not (parsed.is_devrelease or parsed.local)


def _script(failure: dict, run: Path) -> Path:
    """The failure's reproduction script inside RUN (the summary names it as the suite wrote it,
    `reports/<env>/repros/NAME.py`, relative to the suite's working folder)."""
    repro = failure.get("repro")
    if not repro:
        raise NotBisected("the failure has no reproduction script")
    candidates = [Path(repro)] if Path(repro).is_absolute() else []
    candidates += [run / repro, run / "reports" / failure.get("env", "") / "repros" / Path(repro).name]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise NotBisected(f"its reproduction script {repro} is not in {run}")


def suite_arguments(failure: dict, run: Path, good) -> tuple[list[str], str]:
    """`matrix bisect` arguments for a property-suite failure, and one line saying why that range.
    `good`: the known-good cell (matrix/grid/cells.toml)."""
    from packaging.version import Version

    versions = failure.get("versions") or {}
    peft, transformers = versions.get("peft"), versions.get("transformers")
    for package, version in (("peft", peft), ("transformers", transformers)):
        if not version:
            raise NotBisected(f"the run's summary does not record its {package} version")
        if not _is_release(version):
            raise NotBisected(
                f"{package} {version} is a development build, not a release (its commits: `matrix bisect --git`)"
            )
    script = _script(failure, run)
    # One package moves, from the known-good pin (CI keeps that pair green) to the run's release;
    # transformers wherever the run's differs from its pin, as it is the one that moves under a
    # pinned PEFT every few weeks (a fail in every release then points at the run's PEFT instead).
    if transformers != good.transformers:
        package, pin, run_version, fixed = "transformers", good.transformers, transformers, ("peft", peft)
    elif peft != good.peft:
        package, pin, run_version, fixed = "peft", good.peft, peft, ("transformers", transformers)
    else:
        raise NotBisected(f"the run used the known-good pair (peft {peft}, transformers {transformers}): no range")
    lo, hi = sorted((pin, run_version), key=Version)
    why = (
        f"{package} moves from the known-good pin {pin} to the run's {run_version}, {fixed[0]} {fixed[1]} "
        "(the run's) fixed: the pinned pair passes CI"
    )
    args = ["--property", failure["property"], "--case", str(script)]
    return args + [f"--{package}", f"{lo}..{hi}", f"--{fixed[0]}", fixed[1]], why


def square_arguments(failure: dict, run: Path) -> tuple[list[str], str]:
    """`matrix bisect --square` arguments for a matrix row that went bad."""
    if not failure.get("consumer"):
        raise NotBisected("the matrix row names no consumer")
    if not (run / "results" / f"{failure['consumer']}.json").is_file():
        raise NotBisected(f"{run}/results/{failure['consumer']}.json is not here")
    square = f"{failure['producer']}:{failure['consumer']}"
    why = "the consumer's side moves from the producer's release to its own (peft where they differ, else transformers)"
    return ["--square", square, "--run", str(run), "--row", failure["case"]], why


def plan(changes: dict, run: Path, limit: int, good) -> list[dict]:
    """One entry per new failure, in the diff's order: `args` where a bisect is to run (at most
    `limit`: those that cannot be bisected do not count), else `line` saying why not."""
    entries: list[dict] = []
    squares: dict[str, str] = {}  # square -> the case whose bisect stands for it
    started = 0
    for failure in changes.get("new_failures", []):
        what = failure.get("what") or failure["property"]  # the subject matrix/ci/diff.py gave the row
        entry = {"where": failure["where"], "what": what, "error": failure.get("error", "")}
        entries.append(entry)
        try:
            square = f"{failure['producer']}:{failure.get('consumer')}" if failure.get("producer") else None
            if square:
                args, why = square_arguments(failure, run)
            elif failure.get("env"):
                args, why = suite_arguments(failure, run, good)
            else:
                raise NotBisected("the diff does not say which run or square failed")
            if square in squares:
                raise NotBisected(f"same square as case {squares[square]} (one bisect per square)")
            if started >= limit:
                raise NotBisected(f"limit of {limit} reached")
        except NotBisected as exc:
            entry.update(status="not-bisected", line=f"not bisected: {exc}")
            continue
        started += 1
        if square:
            squares[square] = failure["case"]
        entry.update(args=args, why=why)
    return entries


# -- running one bisect -------------------------------------------------------------------------------
def run_bisect(args: list[str], timeout: float) -> tuple[int | None, str, str]:
    """`python -m matrix bisect ARGS`: (exit status, stdout, stderr). The status is None when it
    ran past `timeout` seconds: it is then killed with every environment build and probe it
    started (they share its process group)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "matrix", "bisect", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out, err
    return proc.returncode, out, err


def outcome(status: int | None, out: str, err: str, timeout: float) -> dict:
    """The one line (and the verdict lines) a bisect's exit status and output come to."""
    lines = out.splitlines()
    result = {"exit": status, "verdicts": [line for line in lines if _TESTED.match(line)]}
    if status is None:
        return {**result, "status": "could-not-bisect", "line": f"could not bisect: stopped after {timeout:.0f} s"}
    boundary = [line for line in lines if line.startswith("boundary: ")]
    if status == 0 and boundary:
        return {**result, "status": "boundary", "line": boundary[-1]}
    same = [m[1] for m in map(_NO_BOUNDARY.match, lines) if m]
    added = [line[len(_SINCE_ADDED) :] for line in lines if line.startswith(_SINCE_ADDED)]
    if status == 1 and added:
        return {**result, "status": "since-added", "line": added[-1]}
    if status == 1 and same:
        return {**result, "status": "same-verdict", "line": f"same verdict in every tested release: {same[-1]}"}
    errors = [line[len("error: ") :] for line in err.splitlines() if line.startswith("error: ")]
    last = errors or err.strip().splitlines() or [f"exit status {status} and no boundary line"]
    return {**result, "status": "could-not-bisect", "line": f"could not bisect: {last[-1][:300]}"}


def _shown(arg: str) -> str:
    """A path argument as the reader's working folder sees it."""
    try:
        return str(Path(arg).relative_to(Path.cwd())) if os.path.isabs(arg) else arg
    except ValueError:
        return arg


def _name(n: int, entry: dict) -> str:
    return f"{n:02d}-" + re.sub(r"[^\w.-]+", "_", f"{entry['where']}-{entry['what']}")[:80].strip("_")


def bisect_all(entries: list[dict], out: Path, timeout: float, log=print) -> None:
    """Run the planned bisects one after the other, filling in each entry's result."""
    todo = [(n, e) for n, e in enumerate(entries, 1) if "args" in e]
    for i, (n, entry) in enumerate(todo, 1):
        name = _name(n, entry)
        args = [*entry.pop("args"), "--out", str((out / f"{name}.md").resolve())]
        entry["command"] = "python -m matrix bisect " + shlex.join(_shown(a) for a in args)
        log(f"[{i}/{len(todo)}] {entry['where']} {entry['what']}: {entry['command']}")
        start = time.monotonic()
        status, stdout, stderr = run_bisect(args, timeout)
        entry["seconds"] = round(time.monotonic() - start, 1)
        (out / f"{name}.log").write_text(f"$ {entry['command']}\n{stdout}\n--- stderr\n{stderr}")
        entry.update(outcome(status, stdout, stderr, timeout), log=f"{name}.log")
        entry["report"] = f"{name}.md" if (out / f"{name}.md").is_file() else None
        log(f"    {entry['line']} ({entry['seconds']:.0f} s)")


def bisect_new(changes_dir: Path, run: Path, out: Path, limit: int, timeout: float, good, log=print) -> dict:
    """Plan, run and record the bisects of CHANGES' new failures; returns bisects.json's content."""
    changes = json.loads((changes_dir / "changes.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    entries = plan(changes, run.resolve(), limit, good)
    bisect_all(entries, out, timeout, log)
    index = {"limit": limit, "timeout": timeout, "entries": entries}
    (out / INDEX).write_text(json.dumps(index, indent=1))
    (out / SUMMARY).write_text(attachment(out, SUMMARY_ROOM))
    return index


# -- the tracking issue's part ------------------------------------------------------------------------
def _close_fences(text: str) -> str:
    """Text cut inside a ``` block gets the block closed, so what follows is not swallowed."""
    fences = sum(1 for line in text.splitlines() if line.lstrip().startswith("```"))
    return text + ("\n```" if fences % 2 else "")


def _details(entry: dict, folder: Path) -> tuple[str, str]:
    """A bisect's collapsed block: (its opening, its body)."""
    summary = html.escape(f"{entry['where']} {entry['what']}: {entry['line']}")
    body = [f"`{entry['command']}` ({entry.get('seconds', 0):.0f} s; range: {entry['why']})", ""]
    if entry.get("verdicts"):
        body += ["```", *entry["verdicts"], "```", ""]
    report = folder / entry["report"] if entry.get("report") else None
    if report and report.is_file():
        body.append(report.read_text())
    return f"<details><summary>{summary}</summary>\n\n", "\n".join(body).rstrip()


def attachment(folder: Path, room: int, run_url: str = "") -> str:
    """The Markdown for the bisects in `folder` (bisects.json), at most `room` characters: one
    line per new failure (the boundary, or why there is none), then each bisect's verdict lines
    and report in a collapsed <details>, the last one that does not fit cut with a note. "" when
    the folder holds no bisects.json."""
    try:
        index = json.loads((folder / INDEX).read_text())
    except (OSError, ValueError):
        return ""
    entries = index.get("entries", [])
    if not entries:
        return ""
    where = f"`{ARTIFACT}` artifact of " + (f"[the run]({run_url})" if run_url else "the run")
    ran = [e for e in entries if e["status"] != "not-bisected"]
    text = (
        f"**Bisects of the new failures** ({len(ran)} of {len(entries)}; at most {index['limit']} bisects of at most "
        f"{index['timeout']:.0f} s each; reports and logs in the {where}):\n\n"
    )
    for n, entry in enumerate(entries):
        line = f"- {entry['where']} `{entry['what']}`: {entry['line']}\n"
        if len(text) + len(line) + 80 > room:
            return text + f"- ... {len(entries) - n} more in bisects.json (comment size limit)\n"
        text += line
    text += "\n"
    close = "\n\n</details>\n\n"
    for entry in ran:
        opening, body = _details(entry, folder)
        left = room - len(text) - len(opening) - len(close)
        if len(body) <= left:
            text += opening + body + close
            continue
        note = (
            f"\n\n(Cut here: {len(body)} characters do not fit GitHub's comment limit; the whole report is "
            f"`{entry.get('report') or entry.get('log')}` in the {where}.)"
        )
        if left - len(note) - 4 < 200:
            return text + f"(The other reports are not attached here: comment size limit. See the {where}.)\n"
        text += opening + _close_fences(body[: left - len(note) - 4]) + note + close
    return text
