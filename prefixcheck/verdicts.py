"""Every verdict word this project writes, each defined once, by what it judges.

Standard library only: the suite, the matrix (whose command line needs no torch), the
reproduction scripts and the reports all import their words from here.

- **A claim or step of one example** (prefixcheck.example), and an example's outcome:
  PASSED, FAILED, KNOWN (fails the way a registry entry says), BLOCKED (a step or claim it needs
  failed first), INCONCLUSIVE (it held, but the prefix moved the compared outputs too little for
  that to mean anything).
- **A matrix row**: one artifact, saved by a producer cell, consumed by another (matrix.grid):
  PASS, FAIL, LOAD_ERROR, KNOWN_ISSUE, UNSUPPORTED, BASE_MISMATCH, INVALID_ARTIFACT, INCONCLUSIVE.
  GOOD_ROWS are the ones that are no regression; a row going from one of them to any other
  verdict is a new failure (matrix diff), and a legacy artifact whose verdict is one of them
  passes (tests/legacy).
- **A version in a bisect** (matrix.bisect.probe): PASS and FAIL decide; INCONCLUSIVE, BLOCKED,
  UNSUPPORTED and COULD_NOT_RUN are skipped, as `git bisect skip` skips.
- **A version in a measured bound** of a registry entry (prefixcheck.registry.measured): BAD (the
  entry's own failure) and GOOD decide; OTHER_FAILURE, ANOTHER_ENTRY and the undecided bisect
  words do not.
- **A legacy artifact against its record** (matrix.grid.legacy): PASSED, RECORDED (bad, the way
  the matrix records it for these versions), FAILED.

The translations between them live here too: `probe_verdict` (an example's points -> a bisect
verdict), `ROW_TO_PROBE` (a consumed row -> a bisect verdict), `measured_verdict` (a bisect
verdict -> a measured one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# -- a claim or step of one example, and an example's outcome ----------------------------------
PASSED = "passed"
FAILED = "failed"
KNOWN = "known"
BLOCKED = "blocked"
INCONCLUSIVE = "inconclusive"
CLAIM_VERDICTS = (PASSED, FAILED, KNOWN, BLOCKED, INCONCLUSIVE)
FAILING_POINTS = (FAILED, KNOWN)  # a known failure is still a failure of the place

# -- a matrix row: one artifact consumed by one cell -------------------------------------------
PASS = "pass"
FAIL = "fail"
LOAD_ERROR = "load-error"
KNOWN_ISSUE = "known-issue"
UNSUPPORTED = "unsupported"
BASE_MISMATCH = "base-mismatch"
INVALID_ARTIFACT = "invalid-artifact"
ROW_VERDICTS = (PASS, FAIL, LOAD_ERROR, INVALID_ARTIFACT, KNOWN_ISSUE, INCONCLUSIVE, BASE_MISMATCH, UNSUPPORTED)
# No regression: it computes the same, fails as the registry says, cannot be built by the consumer,
# or cannot be judged (the producer's prefix moved the outputs too little): never a new failure
GOOD_ROWS = (PASS, KNOWN_ISSUE, UNSUPPORTED, INCONCLUSIVE)
# a square whose row reads so is worth bisecting (matrix bisect --square)
FAILING_ROWS = (FAIL, LOAD_ERROR, KNOWN_ISSUE)

# -- a version in a bisect ------------------------------------------------------------------------
COULD_NOT_RUN = "could not run"
DECISIVE = (PASS, FAIL)
PROBE_VERDICTS = (PASS, FAIL, INCONCLUSIVE, BLOCKED, UNSUPPORTED, COULD_NOT_RUN)
# a consumed row, as a bisect reads it; any other row verdict (unsupported, base-mismatch, not PEFT's
# doing; invalid-artifact) means this version cannot judge the artifact
ROW_TO_PROBE = {PASS: PASS, FAIL: FAIL, LOAD_ERROR: FAIL, KNOWN_ISSUE: FAIL, INCONCLUSIVE: INCONCLUSIVE}

# -- a version in a measured bound ----------------------------------------------------------------
BAD = "bad"
GOOD = "good"
OTHER_FAILURE = "other failure"
# the entry's own failure at a version its declared range excludes, where another entry that does
# cover that version explains it as well: the registry already accounts for it there, so it is
# evidence neither against this entry's bounds nor for them
ANOTHER_ENTRY = "another entry"
UNDECIDED = (OTHER_FAILURE, ANOTHER_ENTRY, INCONCLUSIVE, BLOCKED, UNSUPPORTED, COULD_NOT_RUN)
MEASURED_VERDICTS = (BAD, GOOD, *UNDECIDED)

# -- a legacy artifact against what the matrix recorded for it ------------------------------------
RECORDED = "recorded"
LEGACY_OUTCOMES = (PASSED, RECORDED, FAILED)


def probe_verdict(order: Sequence[str], claims: Sequence[str], points: Mapping, claim: str | None) -> tuple:
    """(bisect verdict, point) of one example: `points` maps each step or claim to (verdict, issue
    or reason); `order` is the property's steps then claims, `claims` its claims.

    With `claim`: that point decides (failed or known -> fail, passed -> pass, inconclusive, else
    blocked: a step or claim it needs failed first). Without: the first failing point in the
    property's order decides; pass only when every claim passed."""
    if claim:
        outcome = points.get(claim, (BLOCKED, None))[0]
        if outcome in FAILING_POINTS:
            return FAIL, claim
        if outcome == PASSED:
            return PASS, claim
        return (INCONCLUSIVE if outcome == INCONCLUSIVE else BLOCKED), claim
    for point in order:
        if points.get(point, (None,))[0] in FAILING_POINTS:
            return FAIL, point
    verdicts = [points.get(c, (BLOCKED, None))[0] for c in claims]
    if all(v == PASSED for v in verdicts):
        return PASS, None
    return (INCONCLUSIVE if INCONCLUSIVE in verdicts else BLOCKED), None


def measured_verdict(probe: str) -> str:
    """A bisect verdict in a measured bound's words (fail -> bad, pass -> good, the rest as they are)."""
    return {FAIL: BAD, PASS: GOOD}.get(probe, probe)


def fold_numbers(text: str) -> str:
    """A failure message with its numbers folded to N: the signature by which two runs' failures
    (or a legacy row and its record) are the same failure, whatever the sizes and differences."""
    return re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "N", text or "")
