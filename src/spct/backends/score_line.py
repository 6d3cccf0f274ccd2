"""The constrained score line in each engine's own language: a regex, a GBNF grammar, a cut point.

Every engine honours `ScoreConstraint` the same way as the transformers engine: the model
writes freely; a generation whose last box already holds the right number of valid scores is
kept; any other is cut before its score line and continued from the forced prefix under a
constraint that admits only the score list. What differs is how the constraint is spelled:
vLLM and SGLang take a regex, llama.cpp a GBNF grammar. This module writes both, and finds
where to cut, by the parser's own rule (the box must end the judgment), read from
`spct.score_scale`. Nothing here imports an engine or the parser.
"""

from __future__ import annotations

import re

from ..generation import ScoreConstraint
from ..score_scale import AFTER_BOX_PATTERN, BOX_PATTERN, ascii_int, strip_score_label

_BOX = re.compile(BOX_PATTERN)
_AFTER_BOX = re.compile(AFTER_BOX_PATTERN)


def _final_box(text: str) -> re.Match[str] | None:
    """The last score box of `text` when it ends the text (the parser's rule), else None."""
    boxes = list(_BOX.finditer(text))
    if not boxes or not _AFTER_BOX.fullmatch(text, boxes[-1].end()):
        return None
    return boxes[-1]


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
