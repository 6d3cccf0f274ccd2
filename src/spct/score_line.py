"""The judgment's score line in one place: the scale, the prefix, the parser's final-box rule, the constraint.

Scores are integers MIN_SCORE..MAX_SCORE; a judgment ends with `SCORE_PREFIX a, b, ...}`. The two
box patterns state the parser's rule for a final score box (the last `\\boxed{...}`, followed only
by closing markdown, punctuation or whitespace); the parser and the engines' constrained decoding
both read them from here, so engines need not import the parser. So do the two checks both apply
to untrusted score text (`ascii_int`: ASCII digits, bounded length; `strip_score_label`, linear
time).

Every engine honours a `ScoreConstraint` the same way as the transformers engine: the model
writes freely; a generation whose last box already holds the right number of valid scores is
kept; any other is cut before its score line and continued from the forced prefix under a
constraint that admits only the score list. What differs is how the constraint is spelled:
vLLM and SGLang take a regex, llama.cpp a GBNF grammar. This module writes both, finds where to
cut and how many tokens the forced line needs. It is plain text and data: nothing here imports
spct, so the format, the parser and every engine can share it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

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
_BOX = re.compile(BOX_PATTERN)
_AFTER_BOX = re.compile(AFTER_BOX_PATTERN)


@dataclass(frozen=True)
class ScoreConstraint:
    """Force the judgment's last line: `prefix` then `count` integers in lo..hi, comma-separated, then `}`.

    Engines let the model write its principles and analysis freely and only constrain the
    score line, so a tiny model's judgment always parses while its reasoning stays its own.
    """

    count: int
    prefix: str = SCORE_PREFIX
    lo: int = MIN_SCORE
    hi: int = MAX_SCORE


def normalise(score: float) -> float:
    """A score (or mean score) on MIN_SCORE..MAX_SCORE mapped onto 0..1."""
    return (score - MIN_SCORE) / (MAX_SCORE - MIN_SCORE)


def score_candidates(n: int, written: Sequence[int] = ()) -> list[str]:
    """The texts whose probabilities an expected-score readout reads at a score line of n responses.

    For each position p in order, each value v in MIN_SCORE..MAX_SCORE after the `written` scores
    before p, as `v,` (or `v}` for the last), so 1 and 10 are told apart: n x 10 texts, 10 a position.
    """
    return [", ".join(str(x) for x in written[:p]) + (", " if p else "") + f"{v}{',' if p < n - 1 else '}'}"
            for p in range(n) for v in range(MIN_SCORE, MAX_SCORE + 1)]


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


def _final_box(text: str) -> re.Match[str] | None:
    """The last score box of `text` when it ends the text (the parser's rule), else None."""
    boxes = list(_BOX.finditer(text))
    if not boxes or not _AFTER_BOX.fullmatch(text, boxes[-1].end()):
        return None
    return boxes[-1]


def last_box_start(text: str) -> int | None:
    """Offset just inside the last score box's `{` (where its scores start), or None.

    `text[:offset]` is what an expected-score readout reads at the judgment's own score line.
    """
    boxes = list(_BOX.finditer(text))
    return boxes[-1].start(1) if boxes else None


def constraint_satisfied(text: str, c: ScoreConstraint) -> bool:
    """True when `text` already ends in a score box the parser accepts (c.count integers in range)."""
    found = _final_box(text)
    if found is None:
        return False
    items = [ascii_int(x.strip()) for x in found.group(1).split(",")]  # engine text: "²".isdigit() is True, int("²") fails
    return len(items) == c.count and all(x is not None and c.lo <= x <= c.hi for x in items)


def head_before_score_line(text: str) -> str:
    """The free part of a generation that failed the constraint, to continue from a forced score line.

    A box that ends the text (but holds bad scores) or one left unclosed at the token limit is
    dropped with its `Scores:` label; a box followed by more text is the model quoting, so kept.
    """
    cut = text.rfind("\\boxed")
    if cut >= 0 and "}" not in text[cut:]:
        text = text[:cut]
    elif (found := _final_box(text)) is not None:
        text = text[: found.start()]
    return strip_score_label(text)


def forced_prompt_tail(text: str, c: ScoreConstraint) -> tuple[str, str]:
    """(head, what the continuation starts from): the head, a newline, then the forced prefix."""
    head = head_before_score_line(text)
    return head, f"{head}\n{c.prefix}"


def score_budget(c: ScoreConstraint) -> int:
    """Tokens enough for the score list and its closing brace, whatever the tokenizer."""
    return 4 * c.count + 4


def _number_alternatives(c: ScoreConstraint) -> list[str]:
    return [str(v) for v in range(c.hi, c.lo - 1, -1)]  # longest first, so "10" is not read as "1"


def score_tail_regex(c: ScoreConstraint) -> str:
    """Regex of what follows the prefix: `a, b, ..., z}`."""
    number = "(?:" + "|".join(_number_alternatives(c)) + ")"
    return ", ".join([number] * c.count) + r"\}"


def _gbnf_literal(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def score_tail_gbnf(c: ScoreConstraint) -> str:
    """GBNF grammar of what follows the prefix: `a, b, ..., z}`."""
    number = " | ".join(_gbnf_literal(v) for v in _number_alternatives(c))
    items = ' ", " '.join(["score"] * c.count)
    return f'root ::= {items} "}}"\nscore ::= {number}\n'


def judgment_gbnf(c: ScoreConstraint, max_principles: int = 5, max_analysis_lines: int = 12) -> str:
    """GBNF grammar of a whole judgment: a principles list, an analysis, then the score line.

    Lines are free text; only the skeleton (headers, bullet list, line counts, the last line)
    is forced, so the model still chooses its own criteria and reasoning.
    """
    number = " | ".join(_gbnf_literal(v) for v in _number_alternatives(c))
    items = ' ", " '.join(["score"] * c.count)
    return (
        f'root ::= "Principles:\\n" principle{{1,{max_principles}}} "Analysis:\\n" line{{1,{max_analysis_lines}}} '
        f'{_gbnf_literal(c.prefix)} {items} "}}"\n'
        'principle ::= "- " text "\\n"\n'
        'line ::= text "\\n"\n'
        "text ::= [^\\n]+\n"
        f"score ::= {number}\n"
    )
