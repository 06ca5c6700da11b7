"""How each matrix-row verdict is shown: the order bars are drawn in, the colour and emoji of each,
what it means to a reader, and how a square's mix is summed up (worst first, the producer's sentences)."""

from __future__ import annotations

from prefixcheck.verdicts import (
    BASE_MISMATCH,
    FAIL,
    INCONCLUSIVE,
    INVALID_ARTIFACT,
    KNOWN_ISSUE,
    LOAD_ERROR,
    PASS,
    ROW_VERDICTS,
    UNSUPPORTED,
)

# The verdicts in the order bars are drawn: what computes the same, then what breaks (differs,
# cannot load), then what is known or cannot be judged, then what is not PEFT's doing.
VERDICTS = ROW_VERDICTS
# verdict -> (HTML colour, the Markdown emoji of the same hue, what it means to a reader)
STYLE = {
    PASS: ("#43a047", "🟩", "loads and computes the same"),
    FAIL: ("#e53935", "🟥", "loads but computes differently"),
    LOAD_ERROR: ("#795548", "🟫", "fails to load"),
    INVALID_ARTIFACT: ("#263238", "⬛", "the artifact cannot be trusted"),
    KNOWN_ISSUE: ("#fb8c00", "🟧", "fails the way a known issue says"),
    INCONCLUSIVE: ("#fdd835", "🟨", "computes the same, but the prefix moves outputs too little to tell"),
    BASE_MISMATCH: ("#8e24aa", "🟪", "the base model alone computes differently (not PEFT's doing)"),
    UNSUPPORTED: ("#bdbdbd", "⬜", "the consumer cannot build the case"),
}
UNKNOWN_STYLE = ("#90a4ae", "❔", "a verdict this report does not know")
NO_CASES = "➖"  # Markdown: a producer with no case of that family in that consumer
# The worst verdict first: what a small group (a family in one square) is shown as in Markdown.
SEVERITY = (FAIL, LOAD_ERROR, INVALID_ARTIFACT, BASE_MISMATCH, KNOWN_ISSUE, INCONCLUSIVE, UNSUPPORTED)
# The producer sentence's groups: what a user wants to know, in the order they want it.
OUTCOMES = (
    ("load and compute the same in", (PASS,)),
    ("load but compute differently in", (FAIL,)),
    ("fail to load in", (LOAD_ERROR, INVALID_ARTIFACT)),
    ("hit known issues in", (KNOWN_ISSUE,)),
)
# ...and what is said apart, since it is not about PEFT's save/load.
ASIDE = (
    ("the prefix moves outputs too little to tell (inconclusive) in", (INCONCLUSIVE,)),
    ("the base model alone computes differently (not PEFT's doing) in", (BASE_MISMATCH,)),
    ("the consumer cannot build the case (unsupported) in", (UNSUPPORTED,)),
)
