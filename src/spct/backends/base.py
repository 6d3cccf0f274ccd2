"""The one small interface every generation engine implements.

A judge hands the backend a batch of chat prompts; the backend returns `n` generations per
prompt. Engines differ in how they batch, sample and constrain output, never in this shape.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ..data import Message
from ..score_scale import MAX_NEW_TOKENS, MAX_SCORE, MIN_SCORE, SCORE_PREFIX


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
    temperature: float = 0.0  # 0 = greedy
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


class BackendError(RuntimeError):
    """The engine failed (timeout, server error, out of memory); the message says which."""


class Backend(ABC):
    """Generate `n` samples for each request. Implementations batch however suits the engine."""

    name: str = "backend"
    #: Tokens the model can attend to (prompt + generation); None when unknown.
    context_length: int | None = None

    @abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[list[Generation]]: ...

    def count_tokens(self, text: str) -> int:
        """Token count of `text`; engines without a tokenizer estimate (4 characters a token)."""
        return max(1, len(text) // 4)

    def truncate(self, text: str, max_tokens: int) -> str:
        """Keep the first `max_tokens` tokens of `text` (approximate without a tokenizer)."""
        return text[: max_tokens * 4]


class HFTokenizerMixin:
    """Exact token counting, truncation and chat rendering for engines holding a HF `self.tokenizer`."""

    tokenizer: Any

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])
