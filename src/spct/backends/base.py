"""The one small interface every generation engine implements.

A judge hands the backend a batch of chat prompts; the backend returns `n` generations per
prompt. Engines differ in how they batch, sample and constrain output, never in this shape.

Two-phase decoding lives here, once: `generate` asks the engine for free text
(`generate_free`), and where a request carries a `ScoreConstraint` and a sample's text does not
already end in a valid score line, cuts it before its score line and asks the engine to continue
from the forced prefix under the constraint (`generate_forced`), each engine in its own way (a
logits processor, a regex, a grammar). Greedy requests are generated once and copied. Engines
know nothing of prompts or parsing: the constraint is data (`score_line`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

from ..data import Message
from ..score_scale import MAX_NEW_TOKENS
from .score_line import ScoreConstraint, constraint_satisfied, forced_prompt_tail

__all__ = ["Backend", "BackendError", "Continuation", "Generation", "GenerationRequest", "HFTokenizerMixin",
           "ScoreConstraint"]


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


@dataclass
class Continuation:
    """A sample to finish under its request's constraint: continue the assistant turn from `prefill`.

    `prefill` is the sample's free text up to its score line, a newline and the constraint's
    prefix; `sample` is the sample's index within its request (engines derive seeds from it).
    """

    request: GenerationRequest
    sample: int
    prefill: str


class BackendError(RuntimeError):
    """The engine failed (timeout, server error, out of memory); the message says which."""


class Backend(ABC):
    """Generate `n` samples for each request. Implementations batch however suits the engine."""

    name: str = "backend"
    #: Tokens the model can attend to (prompt + generation); None when unknown.
    context_length: int | None = None

    def generate(self, requests: list[GenerationRequest]) -> list[list[Generation]]:
        """`n` generations per request: free text, then the forced score line where one is needed."""
        # Greedy samples are identical: generate once, copy.
        asked = [r if r.temperature > 0 or r.n == 1 else replace(r, n=1) for r in requests]
        out = self.generate_free(asked)
        todo = [(i, s) for i, r in enumerate(asked) if r.constraint is not None and self.forces_score_line(r)
                for s, g in enumerate(out[i]) if not constraint_satisfied(g.text, r.constraint)]
        if todo:
            conts = [Continuation(asked[i], s, forced_prompt_tail(out[i][s].text, asked[i].constraint)[1])  # type: ignore[arg-type]
                     for i, s in todo]
            for (i, s), c, (tail, n_new) in zip(todo, conts, self.generate_forced(conts), strict=True):
                g = out[i][s]
                g.text, g.forced, g.new_tokens = c.prefill + tail, True, g.new_tokens + n_new
        return [gens if len(gens) >= r.n else [replace(gens[0], extra=dict(gens[0].extra)) for _ in range(r.n)]
                for gens, r in zip(out, requests, strict=True)]

    @abstractmethod
    def generate_free(self, requests: list[GenerationRequest]) -> list[list[Generation]]:
        """`n` samples per request with no forced score line (an engine may still constrain the whole text)."""

    def generate_forced(self, continuations: list[Continuation]) -> list[tuple[str, int]]:
        """Per continuation, (what follows the prefill, new tokens): only the score list and its `}` allowed."""
        raise NotImplementedError(f"the {self.name} engine cannot force a score line")

    def forces_score_line(self, request: GenerationRequest) -> bool:
        """Whether `generate` should force this request's score line (engines that cannot, or leave it to a server, say no)."""
        return True

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
