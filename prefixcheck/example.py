"""Running one example of a property: its steps, its claims, and the verdict on each.

A property body (prefixcheck.checks) receives an `Example` and goes through its steps and claims::

    trained = ex.step("train", engine.train_case, case)
    ex.check("reloaded-equals-trained", assert_equal, after, before, tol, "...", base=base)

- `step(name, fn, ...)` runs fn. If it raises, the failure is judged at that step
  (known_issues.judge): a known failure or not, nothing that follows can run, so every claim not
  yet checked is *blocked* by it. A step inside a `check` blocks only that claim.
- `check(name, fn, ...)` runs one claim. A failure is judged at that claim and recorded; the
  body goes on, so every independent claim of the same example is still checked. A claim whose
  `needs` did not pass is blocked, not run. compare.Inconclusive marks it inconclusive: held,
  but the prefix moved the outputs too little for that to count as a pass.

At the end (`run`), every entry that covers the case is held to its word: if none of its places
failed its way and every one of them ran and held, the entry is stale (StaleKnownIssue). The
first failure that no entry explains is raised, with the others, the near-miss entries and a
reproduction script as notes, so Hypothesis sees it and shrinks it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import known_issues, outcomes, properties, repro
from .case import Case
from .compare import EFFECT_FLOOR_FACTOR, Inconclusive
from .compat import add_note

PASSED, FAILED, KNOWN, BLOCKED, INCONCLUSIVE = "passed", "failed", "known", "blocked", "inconclusive"


class _Stop(Exception):
    """A step failed: the rest of the body cannot run."""

    def __init__(self, point: str, outcome: str, issue: str | None) -> None:
        super().__init__(point)
        self.point, self.outcome, self.issue = point, outcome, issue


class Example:
    def __init__(
        self, prop: properties.Property, case: Case, versions: dict[str, str] | None = None, **context: Any
    ) -> None:
        self.prop, self.case, self.versions, self.context = prop, case, versions, context
        self.entries = known_issues.matching(prop.name, case, versions)
        self.points: dict[str, tuple[str, str | None]] = {}  # step or claim -> (outcome, issue id)
        self.failures: list[tuple[str, BaseException]] = []
        self.also: dict[str, list[str]] = {}  # issue id -> other entries that explained the same failure
        self.notes: list[str] = []

    # -- what a body calls ---------------------------------------------------------------
    def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if name not in self.prop.steps:
            raise ValueError(f"property {self.prop.name} declares no step {name!r}")
        try:
            value = fn(*args, **kwargs)
        except (_Stop, Inconclusive):
            raise
        except Exception as exc:
            outcome, issue = self._judge(name, exc)
            raise _Stop(name, outcome, issue) from exc
        if name not in self.points:
            self.points[name] = (PASSED, None)
        return value

    def check(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Run claim `name`; True when it passed (a body may branch on it)."""
        claim = self.prop.claim(name)
        if name in self.points:
            raise ValueError(f"claim {name!r} of {self.prop.name} checked twice")
        unmet = [n for n in claim.needs if self.points.get(n, (None,))[0] != PASSED]
        if unmet:
            reason = self.points.get(unmet[0], (BLOCKED, None))
            self.points[name] = (BLOCKED, reason[1] or f"needs {unmet[0]}")
            return False
        factor = max([1.0, *(issue.effect_above(self.prop.name, name, self.case) for issue in self.entries)])
        token = EFFECT_FLOOR_FACTOR.set(factor)
        try:
            fn(*args, **kwargs)
        except _Stop as stop:  # a step inside this claim failed: only this claim is blocked
            self.points[name] = (BLOCKED, stop.issue or f"step {stop.point} failed")
            return False
        except Inconclusive as exc:
            self.points[name] = (INCONCLUSIVE, None)
            self.notes.append(f"{name}: {exc}")
            return False
        except Exception as exc:
            self._judge(name, exc)
            return False
        finally:
            EFFECT_FLOOR_FACTOR.reset(token)
        self.points[name] = (PASSED, None)
        return True

    # -- judging -------------------------------------------------------------------------
    def _judge(self, point: str, exc: BaseException) -> tuple[str, str | None]:
        judgement = known_issues.judge(self.prop.name, point, self.case, exc, self.versions)
        if judgement.known:
            issue = judgement.issue.id
            self.points[point] = (KNOWN, issue)
            if judgement.also:
                self.also.setdefault(issue, []).extend(judgement.also)
            return KNOWN, issue
        for note in judgement.notes:
            add_note(exc, note)
        self.points[point] = (FAILED, None)
        self.failures.append((point, exc))
        return FAILED, None

    def _stale(self) -> list[known_issues.KnownIssue]:
        stale = []
        for issue in self.entries:
            places = issue.places(self.prop.name, self.case)
            hit = any(self.points.get(p) == (KNOWN, issue.id) for p in places)
            held = all(self.points.get(p, (None,))[0] == PASSED for p in places)
            if not hit and held:
                stale.append(issue)
        return stale

    def claim_verdicts(self) -> dict[str, tuple[str, str | None]]:
        return {c.name: self.points.get(c.name, (BLOCKED, None)) for c in self.prop.claims}

    def finish(self, stopped: _Stop | None, recorder: outcomes.Recorder) -> None:
        for claim in self.prop.claims:  # what a failed step left unchecked
            if claim.name not in self.points:
                if stopped is None:
                    raise RuntimeError(f"property {self.prop.name}: the body never checked claim {claim.name!r}")
                self.points[claim.name] = (BLOCKED, stopped.issue or f"step {stopped.point} failed")
        for issue in self._stale():
            places = ", ".join(issue.places(self.prop.name, self.case))
            stale = known_issues.StaleKnownIssue(
                f"{self.prop.name} passed at {places} on {self.case.describe()} although known issue {issue.id!r} "
                f"({', '.join(issue.references) or 'found by this suite'}) says it fails there with "
                f"{' / '.join(str(f) for f in issue.fails)} for {issue.affects}: the bug looks fixed; narrow or "
                "remove the entry"
            )
            self.failures.append((places, stale))
        verdicts = self.claim_verdicts()
        known = sorted({i for (o, i) in self.points.values() if o == KNOWN and i})
        stopped_by = {
            i: sorted(c for c, (o, by) in verdicts.items() if by == i and o in (KNOWN, BLOCKED)) for i in known
        }
        if self.failures:
            outcome = FAILED
        elif known:
            outcome = KNOWN
        elif any(o == INCONCLUSIVE for o, _ in verdicts.values()):
            outcome = INCONCLUSIVE
        else:
            outcome = PASSED
        failure = None
        if self.failures:
            point, exc = self.failures[0]
            for other_point, other in self.failures[1:]:
                add_note(
                    exc, f"also failed at {other_point}: {type(other).__name__}: {str(other).splitlines()[0][:200]}"
                )
            note, path = repro.attach(self.prop.name, self.case, point=point, **self.context)
            add_note(exc, note)
            failure = outcomes.failure_record(self.case, point, exc, path)
        recorder.record(
            self.prop.name,
            self.case,
            outcomes.ExampleRecord(
                outcome=outcome,
                claims={c: list(v) for c, v in verdicts.items()},
                steps={s: list(v) for s, v in self.points.items() if s in self.prop.steps and v[0] != PASSED},
                stopped=stopped_by,
                also={k: sorted(set(v)) for k, v in self.also.items()},
                failure=failure,
            ),
        )
        if self.failures:
            raise self.failures[0][1]


def run(
    prop: str | properties.Property,
    case: Case,
    body: Callable[..., None],
    recorder: outcomes.Recorder | None = None,
    versions: dict[str, str] | None = None,
    **context: Any,
) -> Example:
    """Run `body(ex, case, **context)` as one example of `prop` and record its verdicts."""
    prop = properties.get(prop) if isinstance(prop, str) else prop
    ex = Example(prop, case, versions, **context)
    stopped = None
    try:
        body(ex, case, **context)
    except _Stop as stop:
        stopped = stop
    except Inconclusive as exc:  # a precondition of the whole example did not hold
        stopped = _Stop("precondition", INCONCLUSIVE, None)
        ex.notes.append(str(exc))
        for claim in prop.claims:
            ex.points.setdefault(claim.name, (INCONCLUSIVE, None))
    except Exception as exc:  # outside any step or claim: a failure all the same, never swallowed
        ex.points["body"] = (FAILED, None)
        ex.failures.append(("body", exc))
        stopped = _Stop("body", FAILED, None)
    ex.finish(stopped, recorder or outcomes.RECORDER)
    return ex
