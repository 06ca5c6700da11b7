"""`python -m matrix`: the one command line of the matrix, dispatching to each concept's commands.

    python -m matrix run|report|cells|legacy                 the grid (matrix.grid.commands)
    python -m matrix produce|consume|produce-consume         what `run` calls inside each cell's environment
    python -m matrix bisect|bisect-new|probe                 bisecting (matrix.bisect.commands)
    python -m matrix upstream-script                         the registry's upstream reports (matrix.registry.commands)
    python -m matrix diff|track|validate|pr-spec             CI (matrix.ci.commands)

Each subcommand's handler returns the exit status; an unknown or unusable cell ends in one line
`error: ...` with exit 2. Torch is imported only by the commands that run inside a cell's
environment (produce, consume, probe, upstream-script), so the rest runs on any Python.
"""

from __future__ import annotations

import argparse
import sys

from .bisect import commands as bisect_commands
from .ci import commands as ci_commands
from .grid import commands as grid_commands
from .grid.cells import CellError
from .registry import commands as registry_commands


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m matrix", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    for commands in (grid_commands, bisect_commands, registry_commands, ci_commands):
        commands.register(sub)
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    handler = args.handler
    if args.command == "bisect" and (args.registry is not None or args.reports_only):
        handler = registry_commands.registry_command  # measuring the registry's bounds, not one example
    try:
        return handler(args)
    except CellError as exc:  # an unknown or unusable cell: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
