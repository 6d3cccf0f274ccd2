"""The judge's score scale and score line, as plain constants every module shares.

Scores are integers MIN_SCORE..MAX_SCORE; a judgment ends with `SCORE_PREFIX a, b, ...}`. The two
patterns state the parser's rule for a final score box (the last `\\boxed{...}`, followed only by
closing markdown, punctuation or whitespace); the parser and the engines' constrained decoding
both read them from here, so engines need not import the parser. So do the two checks both apply
to untrusted score text (`ascii_int`: ASCII digits, bounded length; `strip_score_label`, linear
time). Nothing here imports spct.
"""

from __future__ import annotations

import math
import re

MIN_SCORE, MAX_SCORE = 1, 10
SCORE_PREFIX = "Scores: \\boxed{"
#: A score box and its content (no nested braces).
BOX_PATTERN = r"\\boxed\s*\{([^{}]*)\}"
#: What may follow the final score box: closing markdown, punctuation, whitespace; no words or digits.
AFTER_BOX_PATTERN = r"[\s*_.`$\])]*"
#: A `Scores:` label right before a score box. It starts at its word, so a search does not retry a
#: long markup run at every offset (linear time on hostile text); the markup before the word is
#: stripped apart (`strip_score_label`).
SCORES_LABEL_PATTERN = r"\bscores?\b[*_\s]*:[*_\s$]*$"
#: Longer digit runs (after leading zeros) are out of range without being converted.
MAX_DIGITS = 4

_SCORES_LABEL = re.compile(SCORES_LABEL_PATTERN, re.IGNORECASE)


def normalise(score: float) -> float:
    """A score (or mean score) on MIN_SCORE..MAX_SCORE mapped onto 0..1."""
    return (score - MIN_SCORE) / (MAX_SCORE - MIN_SCORE)


def expected_score(logprobs: list[float]) -> float:
    """Mean of MIN_SCORE..MAX_SCORE under log-probabilities given in that order (normalised among themselves)."""
    top = max(logprobs)
    weights = [math.exp(x - top) for x in logprobs]
    return sum((MIN_SCORE + v) * w for v, w in enumerate(weights)) / sum(weights)


def ascii_int(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """`text` as a non-negative integer when it is 1..max_digits ASCII digits (after leading zeros), else None.

    Score text is untrusted: Python's int() also reads "٣" and "²".isdigit() is True, and an
    unbounded digit run must not be converted.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= max_digits else None


def strip_score_label(head: str) -> str:
    """Drop a trailing `Scores:` label (with markdown) from the text before a score box."""
    head = head.rstrip()
    label = _SCORES_LABEL.search(head)
    return head if label is None else head[: label.start()].rstrip("*_# \t\n\r\f\v")
