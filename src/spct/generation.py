"""What a judge asks an engine for and what it gets back, as plain data.

These types sit below both the judging format and the engines, so the format can read a
`Generation` and attach its `ScoreConstraint` (from `spct.score_line`) without importing any
engine code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data import Message
from .defaults import GREEDY_TEMPERATURE, MAX_NEW_TOKENS
from .score_line import ScoreConstraint


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
