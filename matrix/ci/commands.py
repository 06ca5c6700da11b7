"""The CI commands: `diff` (what changed between two result folders), `track` (the nightly's
tracking issue), `validate` (a PEFT build against a baseline, only the difference) and `pr-spec`
(the PEFT_SPEC of a pull request)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import diff as diffing
from .pr_spec import pr_spec
from .tracking import COMMENT_LIMIT, GitHub, github_output, track


def register(sub) -> None:
    """Add the CI subcommands to the `python -m matrix` parser's subparsers."""
    p_diff = sub.add_parser("diff", help="what changed between two result folders (matrix.json, */summary.json)")
    p_diff.add_argument("baseline", help="folder (or file) of the earlier/reference results; may be missing")
    p_diff.add_argument("candidate", help="folder (or file) of the new results")
    p_diff.add_argument("--title", default="Prefix-tuning results: what changed")
    p_diff.add_argument("--out", help="folder for changes.md and changes.json")
    p_diff.add_argument("--fail-on-new", action="store_true", help="exit 1 when there are new failures")
    p_diff.set_defaults(handler=diff_command)
    p_track = sub.add_parser("track", help="open or update the tracking issue from `diff --out` (GitHub REST)")
    p_track.add_argument("changes", help="folder holding changes.json and changes.md")
    p_track.add_argument("--repo", required=True, help="owner/name of the repository to file the issue in")
    p_track.add_argument("--run-url", default="", help="link to the run, put into the issue")
    p_track.add_argument("--dry-run", action="store_true", help="print the API calls instead of making them")
    p_track.add_argument("--bisects", help="the --out of `matrix bisect-new`: attached when present")
    p_track.set_defaults(handler=track_command)
    p_val = sub.add_parser("validate", help="one PEFT build against a baseline, only the difference")
    p_val.add_argument("--peft", required=True, help="the PEFT under test: version, git URL or path")
    p_val.add_argument("--baseline", help="the PEFT to compare with (default: the known-good cell's)")
    p_val.add_argument("--transformers", help="transformers for both sides (default: the known-good cell's)")
    p_val.add_argument("--accelerate", help="accelerate for both sides (default: the known-good cell's)")
    p_val.add_argument("--artifacts", help="artifacts of a finished `matrix run` (RUN/artifacts) to consume")
    p_val.add_argument("--out", default="validate-run")
    p_val.add_argument(
        "--workers",
        type=int,
        default=os.environ.get("PYTEST_WORKERS") or "2",  # a string default goes through type=int too
        help="pytest-xdist workers for the property suite (default: PYTEST_WORKERS, as tox reads it, else 2)",
    )
    p_val.set_defaults(handler=validate_command)
    p_spec = sub.add_parser("pr-spec", help="the PEFT_SPEC for a PEFT pull request, repository+ref, or a spec")
    p_spec.add_argument("--pr", default="", help="a huggingface/peft pull-request number")
    p_spec.add_argument("--repository", default="", help="a GitHub repository OWNER/NAME (with --ref)")
    p_spec.add_argument("--ref", default="", help="branch, tag or commit in --repository")
    p_spec.add_argument("--spec", default="", help="any PEFT_SPEC: a version, requirement, git URL")
    p_spec.set_defaults(handler=pr_spec_command)


def validate_command(args) -> int:
    from ..grid import cells as cells_mod
    from .validate import validate

    good = cells_mod.load().known_good()
    args.baseline = args.baseline or good.peft
    args.transformers = args.transformers or good.transformers
    args.accelerate = args.accelerate or good.accelerate
    return validate(args)


def diff_command(args) -> int:
    if not Path(args.candidate).exists():
        raise SystemExit(f"error: {args.candidate}: no such results folder or file")
    try:
        baseline, candidate = diffing.load_results(args.baseline), diffing.load_results(args.candidate)
    except diffing.ResultsError as exc:
        raise SystemExit(f"error: {exc}") from None
    if Path(args.baseline).is_file() and Path(args.candidate).is_file() and len(baseline["suites"]) == 1:
        # two summary.json files: compare them as one suite, whatever their env names
        baseline["suites"] = {name: next(iter(baseline["suites"].values())) for name in candidate["suites"]}
    changes = diffing.diff(baseline, candidate)
    text = diffing.markdown(changes, args.title)
    github_output(changed=str(changes["changed"]).lower(), new_failures=str(len(changes["new_failures"])))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "changes.json").write_text(json.dumps(changes, indent=1))
        (out / "changes.md").write_text(text)
    print(text)
    return 1 if args.fail_on_new and changes["new_failures"] else 0


def track_command(args) -> int:
    folder = Path(args.changes)
    try:
        changes = diffing._read_json(folder / "changes.json")
        text = (folder / "changes.md").read_text()
    except (diffing.ResultsError, OSError) as exc:
        raise SystemExit(f"error: {folder}: no diff output to track ({exc})") from None
    if args.bisects and changes.get("new_failures"):
        from ..bisect.new_failures import attachment

        room = COMMENT_LIMIT - len(text) - len(args.run_url) - 200  # the run's link, the separators
        bisects = attachment(Path(args.bisects), room, args.run_url)
        missing = f"No bisect results for the new failures ({args.bisects} holds no bisects.json: the bisect job did not finish).\n"
        text += "\n" + (bisects or missing)
    github = GitHub(args.repo, os.environ.get("GITHUB_TOKEN"), dry_run=args.dry_run)
    print(track(changes, text, github, args.run_url))
    return 0


def pr_spec_command(args) -> int:
    spec = pr_spec(args.pr.strip(), args.repository.strip(), args.ref.strip(), args.spec)
    github_output(peft_spec=spec)
    print(spec)
    return 0
