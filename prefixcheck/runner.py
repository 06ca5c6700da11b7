"""Running an example the way the suite does: judged by the registry, recorded, and raised.

    judged = run_property("reload-equality", case)             # the property tests, the benchmark
    judged = run_property(name, case, raise_failure=False)     # the matrix's probe: what was judged

`run_example` runs any body (the engine's example runner, prefixcheck/example.py) with the
registry's expectations for the case (prefixcheck.registry: which failures are known, how large an
effect each claim needs, which entries went stale), records it (`recorder`, default the session's,
records.RECORDER) and, where a failure no entry explains remains, attaches to it the other
failures, the near-miss entries and a standalone reproduction script, and raises it, so that
Hypothesis sees it and shrinks it. The registry is a parameter: default the run's
(`prefixcheck.registry.default()`, PREFIXCHECK_REGISTRY or known_issues.toml).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import checks, example, properties, records
from .case import Case
from .compat import add_note
from .registry import Registry
from .registry import default as default_registry

BODIES = checks.load_all()


def run_example(
    prop: str | properties.Property,
    case: Case,
    body: Callable[..., None],
    recorder: records.Recorder | None = None,
    registry: Registry | None = None,
    versions: dict[str, str] | None = None,
    raise_failure: bool = True,
    **context: Any,
) -> example.Judged:
    """Run `body(ex, case, **context)` as one example of `prop`, judged by `registry` under
    `versions` (default: the run's registry, the installed versions); record it; raise its first
    unexplained failure unless `raise_failure` is off. What was judged is returned."""
    prop = properties.get(prop) if isinstance(prop, str) else prop
    known = (registry or default_registry()).expectations(prop.name, case, versions)
    judged = example.run(prop, case, body, known=known, **context)
    failure = _explain(judged, context) if judged.failures else None
    (recorder or records.RECORDER).record(prop.name, case, _record(judged, failure))
    if judged.failures and raise_failure:
        raise judged.failures[0][1]
    return judged


def run_property(name: str, case: Case, **kwargs: Any) -> example.Judged:
    """One example of property `name` (its body from prefixcheck.checks); see run_example."""
    return run_example(name, case, BODIES[properties.get(name).name], **kwargs)


def _explain(judged: example.Judged, context: dict) -> dict:
    """Notes on the first unexplained failure (the others, its reproduction script); its record."""
    from . import repro

    point, exc = judged.failures[0]
    for other_point, other in judged.failures[1:]:
        add_note(exc, f"also failed at {other_point}: {type(other).__name__}: {str(other).splitlines()[0][:200]}")
    note, path = repro.attach(judged.prop.name, judged.case, point=point, **context)
    add_note(exc, note)
    return records.failure_record(judged.case, point, exc, path)


def _record(judged: example.Judged, failure: dict | None) -> records.ExampleRecord:
    return records.ExampleRecord(
        outcome=judged.outcome,
        claims={c: list(v) for c, v in judged.claim_verdicts().items()},
        steps={s: list(v) for s, v in judged.failed_steps().items()},
        stopped=judged.stopped_by(),
        also={k: sorted(set(v)) for k, v in judged.also.items()},
        failure=failure,
    )
