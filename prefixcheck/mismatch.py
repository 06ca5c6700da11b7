"""How two outputs fail to agree, as distinct kinds (and the one way a check that held can still
say nothing: Inconclusive). Standard library only: the registry names these kinds in its
entries' `output` (a known-issue entry for one kind never absorbs another), and the matrix's
command line reads the registry without torch. prefixcheck.compare raises them.
"""

from __future__ import annotations


class OutputMismatch(AssertionError):
    """Two outputs that should agree do not; the subclass says how."""

    kind = "mismatch"


class ShapeMismatch(OutputMismatch):
    kind = "shape"


class NonFinite(OutputMismatch):
    """The checked side has NaN/inf where the expected side is finite."""

    kind = "non-finite"


class BeyondTolerance(OutputMismatch):
    """Finite, same shape, but farther apart than the stated tolerance; `max_diff` is the size."""

    kind = "beyond-tolerance"

    def __init__(self, message: str, max_diff: float) -> None:
        super().__init__(message)
        self.max_diff = max_diff


class PrefixIgnored(OutputMismatch):
    """The output equals (or follows) the base model's: the prefix was never applied."""

    kind = "prefix-ignored"


class ValueChanged(OutputMismatch):
    """Something that must be carried over exactly (a config, a tensor's dtype or name) changed."""

    kind = "value-changed"


OUTPUT_KINDS = tuple(c.kind for c in (ShapeMismatch, NonFinite, BeyondTolerance, PrefixIgnored, ValueChanged))


class Inconclusive(Exception):
    """A check held, but the prefix moved the outputs too little for that to mean anything: the
    example is neither a pass of the claim nor evidence that a known bug is fixed."""
