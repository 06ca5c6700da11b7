"""The witnesses a registry entry is measured on: one example of a run that hit it (a summary's
`known_hits[ID].witness`, the one prefixcheck.summary.witness_rank prefers across summaries), or
one given by hand (--case, --property, --claim)."""

from __future__ import annotations

import json
from pathlib import Path

from prefixcheck.summary import witness_rank

from ..bisect.inputs import _check_property, read_case
from ..bisect.search import BisectError


# -- witnesses -----------------------------------------------------------------------------------
def witnesses(paths: list[str]) -> dict[str, dict]:
    """entry id -> the witness the summaries hold for it (with the summary's versions), the one
    outcomes.witness_rank prefers where several summaries hold one."""
    found: dict[str, dict] = {}
    for path in paths:
        try:
            summary = json.loads(Path(path).read_text())
            hits = summary["known_hits"]
            versions = summary.get("versions") or {}
            if not isinstance(hits, dict):
                raise TypeError("known_hits is not an object")
        except (OSError, UnicodeDecodeError) as exc:
            raise BisectError(f"--summary {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise BisectError(f"--summary {path}: not a run summary (summary.json with known_hits): {exc}") from None
        for issue, hit in hits.items():
            witness = hit.get("witness") if isinstance(hit, dict) else None
            if not isinstance(witness, dict) or not {"property", "point", "case", "case_key"} <= set(witness):
                continue
            witness = {**witness, "summary_versions": versions}
            if issue not in found or witness_rank(witness) < witness_rank(found[issue]):
                found[issue] = witness
    if paths and not found:
        raise BisectError(
            f"{', '.join(paths)}: no known_hits entry has a witness (a summary written before witnesses "
            "were recorded, or no example hit an entry): run the property suite again"
        )
    return found


def given_witness(args) -> dict:
    """The witness --case/--property/--claim give (a case JSON or a reproduction script): for an
    entry no summary witnesses, e.g. one found in an every-family run whose summary is gone. Its
    verdict on each release is judged as any witness's is; nothing assumes it hits the entry."""
    from prefixcheck import architectures
    from prefixcheck.case import Case

    source = read_case(args.case)
    prop = args.property or source.prop
    claim = args.claim or (source.point if source.prop == prop else None)
    if not claim:
        raise BisectError("--registry with --case needs --claim: the step or claim the entry fails at")
    _check_property(prop, claim, source.case)
    case = Case.from_dict(source.case)
    try:
        curated = architectures.get(case.model.arch).curated
    except KeyError:  # a family this transformers does not have: discovered where it exists
        curated = False
    return {
        "property": prop,
        "point": claim,
        "case": case.to_dict(),
        "case_key": case.key,
        "families": "curated" if curated else "discovered",
        "summary_versions": {},
    }
