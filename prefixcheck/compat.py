"""What this project uses from Python 3.11's standard library, on every Python it supports (>= 3.10).

`tomllib` (imported on first use): the standard library's on 3.11+, else the `tomli` package it came from (same API; a
dependency only below 3.11, see pyproject.toml). `add_note(exc, note)`: `BaseException.add_note`
(PEP 678) on 3.11+; on 3.10 the same `__notes__` list, which pytest and the `exceptiongroup` backport
(a pytest dependency there) print with the traceback. `tox -e lint` runs vermin with the minimum
version as target, so a new 3.11+ standard-library use shows up there; vermin cannot see a method
call on an exception object, hence `tests/selftest/test_python_versions.py` checks `add_note` use.
"""

from __future__ import annotations

import sys

__all__ = ["add_note"]  # and `tomllib`, imported when first asked for (__getattr__)


def __getattr__(name: str):
    """`tomllib`, imported when first asked for (a reproduction script carries this module for
    add_note and reads no TOML, so it needs no tomli on 3.10)."""
    if name != "tomllib":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if sys.version_info >= (3, 11):
        import tomllib  # novermin (the 3.10 branch is below)
    else:
        import tomli as tomllib
    return tomllib


def _append_note(exc: BaseException, note: str) -> None:
    """PEP 678 by hand: append to `exc.__notes__`, creating it; what 3.11's `add_note` does."""
    if not isinstance(note, str):
        raise TypeError(f"note must be a str, not {type(note).__name__}")
    notes = getattr(exc, "__notes__", None)
    if notes is None:
        notes = exc.__notes__ = []
    elif not isinstance(notes, list):
        raise TypeError("Cannot add note: __notes__ is not a list")
    notes.append(note)


def add_note(exc: BaseException, note: str) -> None:
    """Attach `note` to `exc`, printed with its traceback: `BaseException.add_note`, 3.10 included."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:
        _append_note(exc, note)
