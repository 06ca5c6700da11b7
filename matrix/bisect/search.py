"""The bisection search over verdicts: pure, no I/O (tested on plain data).

`search(versions, evaluate)` evaluates both ends first, then halves the range between the last
version with the low end's verdict and the first with the high end's: a regression (pass -> fail)
or a fix (fail -> pass). Only pass and fail decide; a version that could not run, or where the
deciding point is inconclusive or blocked, is recorded and skipped (as `git bisect skip`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prefixcheck.verdicts import COULD_NOT_RUN, DECISIVE, FAIL, PASS, UNSUPPORTED


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
    def added_in(self) -> str | None:
        """Where a case fails in every version that can run it and every version below the first
        of those cannot build it at all (unsupported: no such architecture, task or method yet),
        that first version: the case has been broken since it was added there, which "the same
        verdict in every tested release" would hide. None otherwise (a boundary, a pass, a gap)."""
        decisive = self.decisive
        if self.boundary is not None or not decisive or any(v.verdict != FAIL for _, v in decisive):
            return None
        first = min(self.versions.index(n) for n, _ in decisive)
        below = [self.verdict(v) for v in self.versions[:first]]
        if first == 0 or any(v is None or v.verdict != UNSUPPORTED for v in below):
            return None
        return self.versions[first]

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
