"""Adapters saved by older releases load and compute the same here (matrix/grid/legacy.py says how a
verdict reads): every committed legacy artifact, one test item each, judged by the matrix's own
consume step under the installed PEFT and transformers."""

from __future__ import annotations

import pytest

from matrix.grid import legacy
from prefixcheck import records, registry, verdicts
from prefixcheck.versions import installed
from tests.conftest import PROFILE

# Every profile judges every artifact except `ci`, which keeps CI's known-good run within its
# 3-minute budget: there one artifact per release, the task head rotating (12 of 300, ~4 s).
FOLDERS = legacy.folders()
if PROFILE == "ci":
    FOLDERS = legacy.one_per_release(FOLDERS)


@pytest.fixture(scope="module")
def record():
    return legacy.record_for(legacy.load_expected(), installed(), live=registry.default().live(installed()))


@pytest.mark.parametrize(("producer", "folder"), FOLDERS, ids=[f"{p}/{f.name}" for p, f in FOLDERS])
def test_an_adapter_saved_by_an_older_release_loads_and_computes_the_same(producer, folder, record):
    from matrix.grid.consume import consume_one  # imports torch/PEFT: in the test, not at collection

    label, rows, exact = record
    row = consume_one(folder, producer)
    recorded = rows.get(f"{producer}/{folder.name}")
    outcome, why = legacy.judge(row.__dict__, recorded, exact)
    describe = f"{row.arch} {row.task} projection={row.projection}"
    records.RECORDER.legacy.append(
        {
            "producer": producer,
            "case": folder.name,
            "describe": describe,
            "verdict": row.verdict,
            "issue": row.issue,
            "outcome": outcome,
            "why": why,
            "record": label
            if exact
            else f"{(recorded or {}).get('column', label)} (standing in: these versions have no column)",
        }
    )
    if outcome == verdicts.FAILED:
        pytest.fail(f"adapter saved by {producer} ({describe}): {why}", pytrace=False)


def test_the_legacy_artifacts_are_there():
    """The record and the artifacts come together: an empty or half-copied folder is an error."""
    expected = legacy.load_expected()
    producers = {p for p, _ in legacy.folders()}
    assert producers == set(expected["cells"]), (sorted(producers), expected["cells"])
