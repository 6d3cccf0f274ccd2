"""What a judge asks an engine for and what it gets back, as plain data.

These types sit below both the judging format and the engines, so the format can read a
`Generation` and state its `ScoreConstraint` without importing any engine code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data import Message
from .defaults import GREEDY_TEMPERATURE, MAX_NEW_TOKENS
from .score_scale import MAX_SCORE, MIN_SCORE, SCORE_PREFIX


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


@dataclass
class GenerationRequest:
    messages: list[Message]
    n: int = 1
    temperature: float = GREEDY_TEMPERATURE  # 0 = greedy
    max_new_tokens: int = MAX_NEW_TOKENS
    seed: int = 0
    constraint: ScoreConstraint | None = None


@dataclass
class Generation:
    text: str
    finish_reason: str = "stop"  # "stop" or "length"
    forced: bool = False  # the score line was written under the constraint
    new_tokens: int = 0
    extra: dict = field(default_factory=dict)
