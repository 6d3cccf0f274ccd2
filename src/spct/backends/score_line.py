"""The constrained score line in each engine's own language: a regex, a GBNF grammar, a cut point.

Every engine honours `ScoreConstraint` the same way as the transformers engine: the model
writes freely; a generation whose last box already holds the right number of valid scores is
kept; any other is cut before its score line and continued from the forced prefix under a
constraint that admits only the score list. What differs is how the constraint is spelled:
vLLM and SGLang take a regex, llama.cpp a GBNF grammar. This module writes both, and finds
where to cut. Nothing here imports an engine.
"""

from __future__ import annotations

import re

from .base import ScoreConstraint

_BOX = re.compile(r"\\boxed\s*\{([^{}]*)\}")
_SCORE_LABEL = re.compile(r"(?:\*\*)?\bscores?(?:\*\*)?\s*:?(?:\*\*)?\s*$", re.IGNORECASE)


def constraint_satisfied(text: str, c: ScoreConstraint) -> bool:
    """True when the last `\\boxed{...}` of `text` already holds c.count integers in c.lo..c.hi."""
    boxes = _BOX.findall(text)
    if not boxes:
        return False
    items = [x.strip() for x in boxes[-1].split(",")]
    return len(items) == c.count and all(x.isdigit() and c.lo <= int(x) <= c.hi for x in items)


def head_before_score_line(text: str) -> str:
    """The generation up to (not including) its last score box and any `Scores:` label before it."""
    cut = text.rfind("\\boxed")
    head = text[:cut] if cut >= 0 else text
    return _SCORE_LABEL.sub("", head.rstrip()).rstrip()


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
