"""Hypothesis profiles and the per-run report (reports/<env>/summary.json, and summary.md: the
Markdown job summary).

HYPOTHESIS_PROFILE picks the profile: `dev` (default; few examples, database under
.hypothesis/), `ci` (derandomized, sized for CI; default when CI is set), `nightly`, or `smoke`
(one fixed example per item: the workflow self-tests, which test the plumbing, not PEFT).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per xdist worker: 2 workers on 2 cores

from prefixcheck import records  # noqa: E402  (after OMP_NUM_THREADS, before torch loads)

_DB = DirectoryBasedExampleDatabase(".hypothesis/examples")
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILES = {
    # Each example trains a model: sizes below are examples per test item (a property x task).
    "dev": dict(max_examples=5, database=_DB, **_COMMON),
    # derandomize=True implies no database (Hypothesis refuses both)
    "ci": dict(max_examples=7, derandomize=True, database=None, print_blob=True, **_COMMON),
    "nightly": dict(max_examples=80, database=_DB, print_blob=True, **_COMMON),
    # one fixed example per item: for the workflow self-tests, which check the plumbing around the
    # suite (jobs, summaries, artifacts), not the properties themselves
    "smoke": dict(max_examples=1, derandomize=True, database=None, **_COMMON),
}
for _name, _kwargs in PROFILES.items():
    settings.register_profile(_name, **_kwargs)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
if PROFILE not in PROFILES:
    raise pytest.UsageError(
        f"HYPOTHESIS_PROFILE={PROFILE!r} is not a profile of this suite; use one of {sorted(PROFILES)}"
    )
settings.load_profile(PROFILE)
if PROFILE == "nightly":  # realistic sizes too (strategies.size_tiers)
    os.environ.setdefault("PREFIXCHECK_SIZE_TIERS", "tiny,wide")


def pytest_collection_modifyitems(config, items):
    # On a GPU runner a CUDA test that skips is a failure of the runner, not a clean skip.
    if os.environ.get("PREFIXCHECK_REQUIRE_CUDA") == "1":
        from prefixcheck.versions import features

        if not features().cuda:
            raise pytest.UsageError("PREFIXCHECK_REQUIRE_CUDA=1 but torch sees no CUDA device (CPU build of torch?)")


def scaled(prop: str) -> settings:
    """Settings for a property whose examples cost more (Trainer runs): its `cost` fraction of the
    profile's examples (prefixcheck/properties.py)."""
    from prefixcheck import properties

    fraction = properties.get(prop).cost
    return settings(max_examples=max(2, int(settings.default.max_examples * fraction)))


def _parts_dir(config) -> str:
    return str(records.reports_dir() / "parts" / os.environ["PREFIXCHECK_RUN_ID"])


def _runs_properties(config) -> bool:
    return any(os.path.normpath(str(a)).split("::")[0] in ("tests", "tests/properties") or
               str(a).startswith("tests/properties") for a in config.args)  # fmt: skip


def _whole_property_suite(config) -> bool:
    """Every property item was selected: no -k, no -m, no single file or item."""
    args = {os.path.normpath(str(a)) for a in config.args}
    return (
        bool(args) and args <= {"tests", "tests/properties"}
        and not config.option.keyword and not config.option.markexpr
    )  # fmt: skip


def pytest_configure(config):
    os.environ.setdefault("PREFIXCHECK_RUN_ID", uuid.uuid4().hex[:12])  # inherited by xdist workers
    if getattr(config, "workerinput", None) is None and _runs_properties(config):
        # discover the installed transformers' families once, here, before xdist starts workers;
        # the workers read the cached result (prefixcheck/architectures/discovery.py)
        from prefixcheck.architectures import discovery, family_set

        if family_set() == "all":
            discovery.result()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    start = records.RECORDER.mark()
    try:
        return (yield)
    except BaseException:
        records.RECORDER.forget_shrinking(start)
        raise


def pytest_report_header(config):
    from prefixcheck.versions import installed

    return [f"prefix-roundtrip: profile={PROFILE} " + " ".join(f"{k}={v}" for k, v in installed().items())]


def _pinned(versions: dict) -> bool:
    """Whether this run's peft/transformers are the pair this project pins (matrix/grid/cells.toml)."""
    from matrix.grid.cells import load

    good = load().known_good()
    return (versions.get("peft"), versions.get("transformers")) == (good.peft, good.transformers)


def _observed() -> dict:
    import sys

    compare = sys.modules.get("prefixcheck.compare")  # only where a property ran (it imports torch)
    return dict(compare.OBSERVED) if compare else {}


def _write_observed(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(_observed(), f)


def _run_context() -> dict:
    """What the summary needs to know of this install besides the records: the registry entries
    that apply, the families discovered and set aside, and the coverage a whole run must reach.
    Worked out where torch, transformers and PEFT are already imported (each xdist worker, or the
    only process), so the xdist controller never imports them after the last test just to write
    the summary (measured: 5-9 s of serial time at the end of a 2-worker run)."""
    from prefixcheck import architectures, coverage, registry
    from prefixcheck.architectures import discovery
    from prefixcheck.versions import features
    from tests.properties._common import TASKS

    archs = architectures.available_architectures()
    tiers = ("tiny", "wide") if PROFILE == "nightly" else ("tiny",)
    expected = coverage.expected(archs, TASKS, features().cuda, tiers)
    context = {
        "live_entries": registry.default().live(),
        "expected_coverage": {axis: sorted(values) for axis, values in expected.items()},
    }
    if architectures.family_set() == "all":
        context["discovered_families"] = sorted(a.name for a in discovery.discovered())
        context["skipped_families"] = [vars(s) for s in discovery.skipped()]
    return context


def _write_part(parts: str, worker: str) -> None:
    """A worker's share of the report: its records, tolerances, legacy rows and the run's context."""
    records.RECORDER.write_part(os.path.join(parts, f"{worker}.json"))
    _write_observed(os.path.join(parts, f"tolerances-{worker}.json"))
    if records.RECORDER.outcomes:
        with open(os.path.join(parts, f"context-{worker}.json"), "w") as f:
            json.dump(_run_context(), f)
    if records.RECORDER.legacy:
        with open(os.path.join(parts, f"legacy-{worker}.json"), "w") as f:
            json.dump(records.RECORDER.legacy, f)


def _merge_parts(parts: str) -> tuple[records.Recorder, dict, dict | None]:
    """Every worker's records, legacy rows and tolerances merged with this process's; the context."""
    recorder = records.Recorder()
    recorder.records.update(records.RECORDER.records)  # what ran here (all of it without xdist)
    recorder.legacy = list(records.RECORDER.legacy)
    observed = _observed()
    context = None
    if os.path.isdir(parts):
        for name in sorted(os.listdir(parts)):
            text = open(os.path.join(parts, name)).read()
            if name.startswith("tolerances-"):
                for reason, (seen, atol) in json.loads(text).items():
                    kept_seen, kept_atol = observed.get(reason, (0.0, atol))
                    if seen / atol >= kept_seen / kept_atol:  # the pass that used most of its atol
                        observed[reason] = (seen, atol)
            elif name.startswith("legacy-"):
                recorder.legacy += json.loads(text)
            elif name.startswith("context-"):
                context = json.loads(text)  # the same from every worker
            else:
                recorder.load_part(os.path.join(parts, name))
        shutil.rmtree(parts, ignore_errors=True)
    return recorder, observed, context


def pytest_sessionfinish(session, exitstatus):
    parts = _parts_dir(session.config)
    worker = getattr(session.config, "workerinput", None)
    if worker is not None:
        _write_part(parts, worker["workerid"])
        return
    recorder, observed, context = _merge_parts(parts)
    if not recorder.outcomes and not recorder.legacy:
        return  # only self-tests or nothing ran: keep the last property summary
    context = context or _run_context()
    from prefixcheck import summary as summary_mod  # light: no torch

    facts = summary_mod.RunFacts(
        profile=PROFILE,
        derandomized=bool(PROFILES[PROFILE].get("derandomize")),
        run_id=os.environ.get("PREFIXCHECK_RUN_ID", ""),
        live_entries=context["live_entries"],
        expected_coverage=context["expected_coverage"],
        discovered_families=context.get("discovered_families"),
        skipped_families=context.get("skipped_families"),
        observed=observed,
    )
    summary = summary_mod.build(recorder, facts)
    path = records.reports_dir() / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    path.with_suffix(".md").write_text(summary_mod.markdown(summary, path.parent.name, _pinned(summary["versions"])))
    totals = summary["totals"]
    session.config._prefix_summary_line = (
        f"prefix-roundtrip summary: {path} ({totals['passed']} passed, {totals['failed']} failed, "
        f"{totals['known']} known-issue examples, {totals['inconclusive']} inconclusive)"
    )
    # a whole ci run must reach every value of every axis (prefixcheck/coverage.py)
    if PROFILE == "ci" and _whole_property_suite(session.config) and summary["coverage_gaps"]:
        session.config._prefix_summary_line += "\nCOVERAGE GAP: no example took " + ", ".join(summary["coverage_gaps"])
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    line = getattr(config, "_prefix_summary_line", None)
    if line:
        terminalreporter.write_line(line)
