"""Every architecture the installed transformers offers, each task and projection on and off, as
separate test items: a failure in one family never hides another's verdicts (Hypothesis stops
exploring an item at its first failure; these items do not share one).

The architectures are the curated ones and every discovered one (prefixcheck/architectures);
families discovery set aside are listed, with the reason, in the run summary. Each item runs one
property on one fixed small case: every cell runs the input-path properties (the pinned
cross-product of family x task x projection x input path), and per family x task one more that
rotates per task (tests/properties/_common.py).
"""

from __future__ import annotations

import pytest

from prefixcheck.case import SECOND_PREFIX
from prefixcheck.runner import run_property
from tests.properties._common import every_family_cells

CELLS = every_family_cells()


@pytest.mark.parametrize(
    "prop,case",
    CELLS,
    ids=[f"{c.model.arch}-{c.task}-{'proj' if c.prefix.prefix_projection else 'noproj'}-{p}" for p, c in CELLS],
)
def test_every_family_task_and_projection(prop, case):
    run_property(prop, case, **({"second": SECOND_PREFIX} if prop == "multi-adapter" else {}))
