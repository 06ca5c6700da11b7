"""The bisect's report: every part for a known issue, a boundary its registry range disagrees with,
and a drafted registry entry that validates.
"""

from __future__ import annotations

import pytest

from matrix.bisect import report as bisect_report
from matrix.bisect.search import Verdict, search
from tests.selftest.bisect_support import FAIL_DATA, PEFT, TRANSFORMERS, fake_probe, plan_with

pytestmark = pytest.mark.selftest


def test_the_report_has_every_part_for_a_known_issue():
    plan = plan_with()
    result = search(PEFT, fake_probe("0.19.0"))
    runs = {"0.18.1": {"rc": 1, "line": "FAILED: left-padded row"}, "0.19.0": {"rc": 0, "line": "OK: the check holds"}}
    text = bisect_report.report_markdown(plan, result, "print('the script')\n", runs, 42.0)
    assert text.startswith("# peft 0.19.0 fixes `input-paths:left-padded-row-equals-alone` on llama CAUSAL_LM")
    for part in (
        "## Versions",
        "| last failing | 0.18.1 | fail",
        "| first passing | 0.19.0 | pass",
        "Compare: https://github.com/huggingface/peft/compare/v0.18.1...v0.19.0",
        "transformers 4.57.6 fixed",
        "## Reproduction",
        "```python\nprint('the script')\n```",
        "peft 0.18.1: exit 1, `FAILED: left-padded row`",
        "## Observed vs expected",
        "max |diff| 1.234e-02",
        "Expected (`input-paths:left-padded-row-equals-alone`)",
        "## Registry",
        "This is known issue `peft-before-0.19-drops-position-ids`",
        "The boundary agrees with its range: peft <0.19 holds for 0.18.1 and not for 0.19.0",
    ):
        assert part in text, part
    for version, _ in result.tested:
        assert f"| {version} |" in text


def test_a_boundary_the_registry_range_disagrees_with_is_said():
    result = search(PEFT, fake_probe("0.18.0"))  # fixed earlier than the entry says
    text = bisect_report.report_markdown(plan_with(), result, None, {}, 1.0)
    assert "does NOT agree with its range peft <0.19" in text


def test_the_report_drafts_a_registry_entry_that_validates():
    from prefixcheck import registry

    result = search(
        TRANSFORMERS,
        lambda v: (
            "pass"
            if TRANSFORMERS.index(v) < 3
            else Verdict(
                "fail",
                "",
                {
                    **FAIL_DATA,
                    "known": None,
                    "matching": [],
                    "point": "embeds-equal-ids",
                    "kind": "RuntimeError",
                    "error": "RuntimeError: The size of tensor a (8) must match the size of tensor b (5)",
                    "max_diff": None,
                },
            )
        ),
    )
    plan = plan_with(package="transformers", versions=TRANSFORMERS, fixed={"peft": "0.21.2"}, claim=None)
    text = bisect_report.report_markdown(plan, result, None, {}, 1.0)
    assert text.startswith("# transformers 5.0.0: `input-paths:embeds-equal-ids` fails on llama CAUSAL_LM")
    assert "Compare: https://github.com/huggingface/transformers/compare/v4.57.6...v5.0.0" in text
    assert "No registry entry explains it" in text and "validated by the registry loader" in text
    draft = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (entry,) = registry.parse(draft, "draft")
    assert entry.affects == {"transformers": ">=5.0.0"}
    assert entry.cases == {"method": ("PREFIX_TUNING",), "arch": ("llama",), "task": ("CAUSAL_LM",)}
    assert entry.fails[0].at == ("input-paths:embeds-equal-ids",)
    assert entry.fails[0].exception == "RuntimeError"
    # the pattern matches the failure it was drafted from, and the same failure at other sizes
    assert entry.fails[0].matches(RuntimeError("The size of tensor a (9) must match the size of tensor b (6)"))
