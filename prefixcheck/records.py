"""What happened to each example: one `ExampleRecord` per (property, case), kept by a `Recorder`.

A record holds the example's outcome (passed, failed, known, inconclusive), the verdict of every
claim (passed, failed, known under an entry, blocked by an entry or a failed step, inconclusive),
the steps that failed, which claims each known issue stopped, the other entries that matched the
same failure, its coverage axes and (where it hit an entry) its case, the summary's witness.

Counts are per distinct example (property, case key). When a test item fails, the examples
Hypothesis runs while shrinking are dropped again (`Recorder.forget_shrinking`): the summary
counts the generated examples plus the one minimal failing example it reports. Each process
writes its own part file; the pytest session merges them (prefixcheck.summary builds the rest).
`RECORDER` is the session's recorder, where examples are recorded unless a caller gives another.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .case import Case
from .verdicts import FAILED


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
        # the committed legacy artifacts judged in this process (matrix/grid/legacy.py): one dict per
        # artifact (producer, case, describe, verdict, issue, outcome, why), summary.json's `legacy`
        self.legacy: list[dict] = []

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
