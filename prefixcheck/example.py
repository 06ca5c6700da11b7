"""Running one example of a property: its steps, its claims, and the verdict on each.

A property body (prefixcheck.checks) receives an `Example` and goes through its steps and claims::

    trained = ex.step("train", engine.train_case, case)
    ex.check("reloaded-equals-trained", assert_equal, after, before, tol, "...", base=base)

- `step(name, fn, ...)` runs fn. If it raises, the failure is judged at that step: a known
  failure or not, nothing that follows can run, so every claim not yet checked is *blocked* by
  it. A step inside a `check` blocks only that claim.
- `check(name, fn, ...)` runs one claim. A failure is judged at that claim and recorded; the
  body goes on, so every independent claim of the same example is still checked. A claim whose
  `needs` did not pass is blocked, not run. mismatch.Inconclusive marks it inconclusive: held,
  but the prefix moved the outputs too little for that to count as a pass.

`run()` returns what was judged (`Judged`): the verdict of every step and claim, the exception
seen at each failing one, and the failures no known issue explains. What counts as known is the
caller's `known` (prefixcheck.registry's Expectations; by default nothing is known, as in a
reproduction script): `effect_above(point)` (the multiple of a claim's tolerance its effect must
exceed), `judge(point, exc)` (an answer with `issue_id`, `also`, `notes`) and `stale(points)`
((entry id, places, exception) for each entry whose places all ran and held).

Needs only the standard library and the modules beside it: reproduction scripts carry it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import properties
from .case import Case
from .compare import EFFECT_FLOOR_FACTOR
from .compat import add_note
from .mismatch import Inconclusive
from .verdicts import BLOCKED, FAILED, INCONCLUSIVE, KNOWN, PASSED


class _Stop(Exception):
    """A step failed: the rest of the body cannot run."""

    def __init__(self, point: str, outcome: str, issue: str | None) -> None:
        super().__init__(point)
        self.point, self.outcome, self.issue = point, outcome, issue


class _Verdict:
    """What `known.judge` answers when nothing is known: the failure is a failure."""

    issue_id = None
    also = ()
    notes = ()


class NothingKnown:
    """No registry: every failure fails, no entry goes stale (what a reproduction script judges by)."""

    def effect_above(self, point: str) -> float:
        return 1.0

    def judge(self, point: str, exc: BaseException) -> _Verdict:
        return _Verdict()

    def stale(self, points: dict) -> list:
        return []


@dataclass
class Judged:
    """Everything one example decided. `points`: step or claim -> (verdict, issue id or reason);
    `errors`: the exception seen at each step or claim that failed (known or not); `failures`: the
    (place, exception) pairs no known issue explains, the first one first (stale entries included)."""

    prop: properties.Property
    case: Case
    points: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    failures: list[tuple[str, BaseException]] = field(default_factory=list)
    also: dict[str, list[str]] = field(default_factory=dict)  # issue id -> other entries that explained it
    notes: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # ids of the entries that ran and held everywhere (stale)

    def claim_verdicts(self) -> dict[str, tuple[str, str | None]]:
        return {c.name: self.points.get(c.name, (BLOCKED, None)) for c in self.prop.claims}

    def failed_steps(self) -> dict[str, tuple[str, str | None]]:
        return {s: v for s, v in self.points.items() if s in self.prop.steps and v[0] != PASSED}

    @property
    def known(self) -> list[str]:
        return sorted({i for (o, i) in self.points.values() if o == KNOWN and i})

    def stopped_by(self) -> dict[str, list[str]]:
        """Per known issue hit, the claims it stopped (known there, or blocked by it)."""
        verdicts = self.claim_verdicts()
        return {
            i: sorted(c for c, (o, by) in verdicts.items() if by == i and o in (KNOWN, BLOCKED)) for i in self.known
        }

    @property
    def outcome(self) -> str:
        if self.failures:
            return FAILED
        if self.known:
            return KNOWN
        if any(o == INCONCLUSIVE for o, _ in self.claim_verdicts().values()):
            return INCONCLUSIVE
        return PASSED


class Example:
    def __init__(self, prop: properties.Property, case: Case, known=None, **context: Any) -> None:
        self.prop, self.case, self.context = prop, case, context
        self.known = known or NothingKnown()
        self.judged = Judged(prop, case)
        self.points = self.judged.points

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
        token = EFFECT_FLOOR_FACTOR.set(self.known.effect_above(name))
        try:
            fn(*args, **kwargs)
        except _Stop as stop:  # a step inside this claim failed: only this claim is blocked
            self.points[name] = (BLOCKED, stop.issue or f"step {stop.point} failed")
            return False
        except Inconclusive as exc:
            self.points[name] = (INCONCLUSIVE, None)
            self.judged.notes.append(f"{name}: {exc}")
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
        self.judged.errors.setdefault(point, exc)
        judgement = self.known.judge(point, exc)
        if judgement.issue_id:
            self.points[point] = (KNOWN, judgement.issue_id)
            if judgement.also:
                self.judged.also.setdefault(judgement.issue_id, []).extend(judgement.also)
            return KNOWN, judgement.issue_id
        for note in judgement.notes:
            add_note(exc, note)
        self.points[point] = (FAILED, None)
        self.judged.failures.append((point, exc))
        return FAILED, None

    def finish(self, stopped: _Stop | None) -> Judged:
        for claim in self.prop.claims:  # what a failed step left unchecked
            if claim.name not in self.points:
                if stopped is None:
                    raise RuntimeError(f"property {self.prop.name}: the body never checked claim {claim.name!r}")
                self.points[claim.name] = (BLOCKED, stopped.issue or f"step {stopped.point} failed")
        for issue_id, places, stale in self.known.stale(self.points):
            self.judged.stale.append(issue_id)
            self.judged.failures.append((places, stale))
        return self.judged


def run(prop: str | properties.Property, case: Case, body: Callable[..., None], known=None, **context: Any) -> Judged:
    """Run `body(ex, case, **context)` as one example of `prop`; what it judged (raises nothing a
    body raises: every failure is in the result)."""
    prop = properties.get(prop) if isinstance(prop, str) else prop
    ex = Example(prop, case, known, **context)
    stopped = None
    try:
        body(ex, case, **context)
    except _Stop as stop:
        stopped = stop
    except Inconclusive as exc:  # a precondition of the whole example did not hold
        stopped = _Stop("precondition", INCONCLUSIVE, None)
        ex.judged.notes.append(str(exc))
        for claim in prop.claims:
            ex.points.setdefault(claim.name, (INCONCLUSIVE, None))
    except Exception as exc:  # outside any step or claim: a failure all the same, never swallowed
        ex.points["body"] = (FAILED, None)
        ex.judged.errors["body"] = exc
        ex.judged.failures.append(("body", exc))
        stopped = _Stop("body", FAILED, None)
    return ex.finish(stopped)
