"""Judgment text -> principles, critique and scores, or a typed error.

Rules that keep parsing honest:
- the scores are the *last* `\\boxed{...}` in the generation, and it must end the judgment
  (only whitespace or markdown may follow), so a box the model quotes from a judged response
  in its analysis is never taken, not even when the model forgets to write its own;
- a box must hold exactly n integers in 1..10; a wrong count, a non-integer or an out-of-range
  value is an error with a kind, never a silent default;
- the text is untrusted: only ASCII digits count (Python's int() also reads "٣"), a number is
  never converted before its length is bounded, and messages quote at most a short excerpt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .score_line import (
    AFTER_BOX_PATTERN,
    BOX_PATTERN,
    MAX_SCORE,
    MIN_SCORE,
    ascii_int,
    strip_score_label,
)

_BOX = re.compile(BOX_PATTERN)
_AFTER_BOX = re.compile(AFTER_BOX_PATTERN)
_INTEGER = re.compile(r"[+-]?([0-9]+)(?:\.0*)?")
_PRINCIPLES_HEADER = re.compile(r"^[#*\s]*principles?[*\s]*:?[*]*", re.IGNORECASE)
_PRINCIPLES_OPENING = re.compile(r"^\W*(?:the\s+)?(?:principles?|criteria)\b", re.IGNORECASE)
# Within one line (no \s that could run across lines): a long blank run must not cost quadratic time.
_ANALYSIS = re.compile(r"^[#* \t]*(?:analysis|critique|evaluation)[* \t]*:[*]*", re.IGNORECASE | re.MULTILINE)


class JudgmentParseError(ValueError):
    """kind is one of: no_box, not_last, wrong_count, not_integer, out_of_range."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.kind}: {self.args[0]}"


@dataclass
class ParsedJudgment:
    principles: str | None
    critique: str | None
    scores: list[int]


def _excerpt(text: str, limit: int = 40) -> str:
    """repr of `text`, cut to `limit` characters: engine text can be arbitrarily long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def parse_scores(box_content: str, n: int) -> list[int]:
    items = [x.strip() for x in box_content.replace(";", ",").split(",")]
    items = [x for x in items if x]
    if len(items) != n:
        raise JudgmentParseError("wrong_count", f"expected {n} score(s), found {len(items)}: {_excerpt(box_content)}")
    scores: list[int] = []
    for x in items:
        m = _INTEGER.fullmatch(x)
        if not m:  # "7.5", "7/10", "seven", "1e1", "²": not an integer score
            raise JudgmentParseError("not_integer", f"score {_excerpt(x)} is not an integer")
        value = ascii_int(m.group(1))
        if value is not None and x.startswith("-"):
            value = -value
        if value is None or not MIN_SCORE <= value <= MAX_SCORE:
            raise JudgmentParseError("out_of_range", f"score {_excerpt(x)} outside {MIN_SCORE}..{MAX_SCORE}")
        scores.append(value)
    return scores


def final_box(text: str) -> re.Match[str]:
    """The last `\\boxed{...}` of `text`, which must end it; raises JudgmentParseError."""
    boxes = list(_BOX.finditer(text))
    if not boxes:
        raise JudgmentParseError("no_box", "no \\boxed{...} score line found")
    last = boxes[-1]
    if not _AFTER_BOX.fullmatch(text, last.end()):
        raise JudgmentParseError("not_last", "text follows the last \\boxed{...}; the score line must end the judgment")
    return last


def parse_judgment(text: str, n: int) -> ParsedJudgment:
    """Parse one generation for n responses; raises JudgmentParseError."""
    last = final_box(text)
    scores = parse_scores(last.group(1), n)

    # Everything before the score line is the principles, then the critique.
    head = strip_score_label(text[: last.start()]).strip()
    split = _ANALYSIS.search(head)
    if not split:
        # No analysis header: a text that opens with its principles is all principles.
        if _PRINCIPLES_OPENING.match(head):
            return ParsedJudgment(head, None, scores)
        return ParsedJudgment(None, head or None, scores)
    principles = _PRINCIPLES_HEADER.sub("", head[: split.start()], count=1).strip()
    critique = head[split.end():].strip()
    return ParsedJudgment(principles or None, critique or None, scores)


# "Response 2", "response #2", "Responses 1 and 2" (each number), "the first/second response".
_PAIR_REFERENCE = re.compile(
    r"(?i)\b(responses?\s*#?\s*)([12])(?:(\s*(?:and|or|&|,|vs\.?)\s*#?\s*)([12]))?\b"
    r"|\b(first|second)(?=\s+(?:response|one|answer)\b)")
_PAIR_SWAP = {"1": "2", "2": "1", "first": "second", "second": "first"}


def swap_pair(text: str) -> str:
    """A two-response judgment as it would read with the responses shown the other way round.

    References to Response 1 and Response 2 (and "the first/second response") trade places and
    the final score box is reversed; the wording is otherwise untouched. Rejective fine-tuning
    trains every kept pair judgment in both orders with it, so a judge cannot lower its loss by
    preferring a position. Raises JudgmentParseError when the text has no final pair of scores.
    """
    last = final_box(text)
    scores = parse_scores(last.group(1), 2)

    def swap(m: re.Match[str]) -> str:
        if m.group(2):
            pair = m.group(3) + _PAIR_SWAP[m.group(4)] if m.group(4) else ""
            return m.group(1) + _PAIR_SWAP[m.group(2)] + pair
        word = m.group(5)
        new = _PAIR_SWAP[word.lower()]
        return new.capitalize() if word[0].isupper() else new

    head = _PAIR_REFERENCE.sub(swap, text[: last.start()])
    box = text[last.start() : last.end()].replace(last.group(1), f"{scores[1]}, {scores[0]}")
    return head + box + text[last.end() :]
