"""`matrix.bisect.search`: the pure search over verdicts (regression, fix, versions that cannot
run, no boundary, two jobs a round, giving up), on plain data.
"""

from __future__ import annotations

import pytest

from matrix.bisect.search import Verdict, search
from prefixcheck import verdicts
from tests.selftest.bisect_support import PEFT

pytestmark = pytest.mark.selftest


# -- the pure search --------------------------------------------------------------------------------
def _by_threshold(versions, first_other: str, before: str, after: str, could_not_run=()):
    calls = []

    def evaluate(version):
        calls.append(version)
        if version in could_not_run:
            return Verdict(verdicts.COULD_NOT_RUN, "environment: no matching distribution")
        return before if versions.index(version) < versions.index(first_other) else after

    return evaluate, calls


@pytest.mark.parametrize("first_bad", PEFT[1:])
def test_search_finds_every_regression_boundary(first_bad):
    evaluate, calls = _by_threshold(PEFT, first_bad, "pass", "fail")
    result = search(PEFT, evaluate)
    i = PEFT.index(first_bad)
    assert result.boundary == (i - 1, i)
    assert result.direction == "regression"
    assert calls[:2] == [PEFT[0], PEFT[-1]]  # the ends first
    assert len(calls) == len(set(calls)) <= 2 + 4  # each version once; log2(11) rounds up to 4
    assert [v for v, _ in result.tested] == calls  # every evaluation recorded, in order


def test_search_finds_a_fix_boundary():
    evaluate, _ = _by_threshold(PEFT, "0.19.0", "fail", "pass")
    result = search(PEFT, evaluate)
    assert [result.versions[i] for i in result.boundary] == ["0.18.1", "0.19.0"]
    assert result.direction == "fix"


def test_search_skips_versions_that_cannot_run_ends_included():
    # the oldest two and the middle cannot install; the boundary is still found, and every version
    # that could not run is recorded as such, never as good or bad
    cannot = {"0.15.0", "0.15.1", "0.17.1"}
    evaluate, calls = _by_threshold(PEFT, "0.18.0", "pass", "fail", could_not_run=cannot)
    result = search(PEFT, evaluate)
    assert [result.versions[i] for i in result.boundary] == ["0.17.0", "0.18.0"]
    skipped = {v for v, verdict in result.tested if verdict.verdict == verdicts.COULD_NOT_RUN}
    assert skipped <= cannot and "0.15.0" in skipped and "0.15.1" in skipped
    assert all(v.decisive for n, v in result.tested if n not in cannot)


def test_boundary_spans_a_version_that_cannot_run():
    evaluate, _ = _by_threshold(PEFT, "0.18.1", "pass", "fail", could_not_run={"0.18.0"})
    result = search(PEFT, evaluate)
    assert [result.versions[i] for i in result.boundary] == ["0.17.1", "0.18.1"]
    assert result.skipped_between == ["0.18.0"]


def test_search_without_a_boundary():
    result = search(PEFT, lambda v: "fail")
    assert result.boundary is None and result.direction is None
    assert [v for v, _ in result.tested] == [PEFT[0], PEFT[-1]]  # equal ends: nothing to halve
    nothing = search(PEFT, lambda v: Verdict(verdicts.COULD_NOT_RUN))
    assert nothing.boundary is None and not nothing.decisive and len(nothing.tested) == len(PEFT)


def test_inconclusive_and_blocked_do_not_decide():
    verdicts = {"0.16.0": "inconclusive", "0.17.0": "blocked"}
    evaluate, _ = _by_threshold(PEFT, "0.17.1", "pass", "fail")
    result = search(PEFT, lambda v: verdicts.get(v) or evaluate(v))
    assert [result.versions[i] for i in result.boundary] == ["0.15.2", "0.17.1"]
    assert result.skipped_between == ["0.16.0", "0.17.0"]


@pytest.mark.parametrize("first_bad", PEFT[1:])
def test_two_jobs_find_the_same_boundaries_in_fewer_rounds(first_bad):
    rounds = []
    evaluate, calls = _by_threshold(PEFT, first_bad, "pass", "fail")
    result = search(PEFT, evaluate, on_tested=lambda version, verdict: rounds.append(version), jobs=2)
    i = PEFT.index(first_bad)
    assert result.boundary == (i - 1, i) and result.direction == "regression"
    assert len(calls) == len(set(calls)) <= 2 + 2 * 3  # log3(10) rounds of two, after the ends
    sequential = search(PEFT, _by_threshold(PEFT, first_bad, "pass", "fail")[0])
    assert sequential.boundary == result.boundary


def test_gives_up_after_max_skips_undecided_ends():
    result = search(PEFT, lambda v: Verdict("inconclusive", "the prefix barely moves the outputs"), max_skips=4)
    assert result.gave_up and result.boundary is None and len(result.tested) == 4


def _since(first: str, below: str = verdicts.UNSUPPORTED, verdict: str = "fail"):
    def evaluate(version):
        if PEFT.index(version) < PEFT.index(first):
            return Verdict(below, "this transformers has no architecture 'ergo'")
        return verdict

    return evaluate


def test_a_case_that_fails_wherever_it_can_run_was_broken_since_it_was_added():
    result = search(PEFT, _since("0.19.0"))
    assert result.boundary is None and result.added_in == "0.19.0"
    # the newest release alone runs it: the transformers that added the family (issue 23's Ergo)
    assert search(PEFT, _since(PEFT[-1])).added_in == PEFT[-1]


def test_since_added_needs_every_release_below_unable_to_build_it_and_every_run_failing():
    assert search(PEFT, _since("0.19.0", verdict="pass")).added_in is None  # it works where it runs
    assert search(PEFT, _since("0.19.0", below=verdicts.COULD_NOT_RUN)).added_in is None  # a gap, not absence
    assert search(PEFT, lambda v: "fail").added_in is None  # fails in every release: no "added" to name
    evaluate, _ = _by_threshold(PEFT, "0.18.0", "pass", "fail")
    assert search(PEFT, evaluate).added_in is None  # a boundary
