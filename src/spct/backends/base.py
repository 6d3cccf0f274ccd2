"""The one small interface every generation engine implements.

A judge hands the backend a batch of chat prompts; the backend returns `n` generations per
prompt. Engines differ in how they batch, sample and constrain output, never in this shape.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..data import Message


@dataclass(frozen=True)
class ScoreConstraint:
    """Force the judgment's last line: `prefix` then `count` integers in lo..hi, comma-separated, then `}`.

    Engines let the model write its principles and analysis freely and only constrain the
    score line, so a tiny model's judgment always parses while its reasoning stays its own.
    """

    count: int
    prefix: str = "Scores: \\boxed{"
    lo: int = 1
    hi: int = 10


@dataclass
class GenerationRequest:
    messages: list[Message]
    n: int = 1
    temperature: float = 0.0  # 0 = greedy
    max_new_tokens: int = 512
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


# Control-token shapes of common chat templates (ChatML, Llama 3, Phi, DeepSeek, Gemma, Llama 2,
# SentencePiece). Engines that hand text to a server cannot choose how it is tokenized, so
# they break these strings up instead (see `neutralise`).
CONTROL_TOKENS = re.compile(
    r"<\|[^<>|\s]{1,48}\|>|<｜[^<>｜\s]{1,48}｜>|</?s>|<(?:start|end)_of_turn>|\[/?INST\]|<(?:bos|eos|pad|unk)>"
)
_ZWSP = "\u200b"
_SENTINEL = re.compile("\ue000(\\d+)\ue001")


def neutralise(text: str, pattern: re.Pattern = CONTROL_TOKENS) -> str:
    """Break up control-token look-alikes in judged text with a zero-width space after their
    first character, so no tokenizer reads them as control tokens; other text is unchanged."""
    return pattern.sub(lambda m: m.group(0)[0] + _ZWSP + m.group(0)[1:], text)


def neutralise_messages(messages: list[Message], pattern: re.Pattern = CONTROL_TOKENS) -> list[Message]:
    return [{**m, "content": neutralise(m["content"], pattern)} for m in messages]


def chat_spans(render: Callable[[list[Message]], str], messages: list[Message], tail: str = "") -> list[tuple[str, bool]] | None:
    """The rendered prompt (+ `tail`) cut into (text, judged) spans.

    Judged spans are the message contents and the tail: text the chat template did not write.
    Found by rendering the template around placeholders; None when the template changes the
    contents it is given (trims them, say), so the spans would not add up to the real prompt.
    """
    rendered = render([{**m, "content": f"\ue000{i}\ue001"} for i, m in enumerate(messages)])
    spans: list[tuple[str, bool]] = []
    for j, part in enumerate(_SENTINEL.split(rendered)):
        if j % 2:
            spans.append((messages[int(part)]["content"], True))
        elif part:
            spans.append((part, False))
    if "".join(t for t, _ in spans) != render(messages):
        return None
    if tail:
        spans.append((tail, True))
    return spans


class HFTokenizerMixin:
    """Exact token counting, truncation and prompt encoding for engines holding a HF `self.tokenizer`.

    Judged text never becomes control tokens: `encode_chat` tokenizes the chat template's own
    text as usual and the message contents with special tokens split, so a response that
    contains `<|im_start|>` shows the judge those characters, not a new turn.
    """

    tokenizer: Any
    render: Callable[[list[Message]], str]
    _controls: re.Pattern | None = None

    def control_pattern(self) -> re.Pattern:
        """Regex of the tokenizer's special-token strings (those it would read as control tokens)."""
        if self._controls is None:
            decoder = getattr(self.tokenizer, "added_tokens_decoder", None) or {}
            strings = {t.content for t in decoder.values() if getattr(t, "special", True)}
            strings |= set(getattr(self.tokenizer, "all_special_tokens", []))
            strings.discard("")
            self._controls = re.compile("|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True)) or r"(?!)")
        return self._controls

    def encode_chat(self, messages: list[Message], tail: str = "") -> list[int]:
        """Token ids of `render(messages) + tail`, the contents and the tail tokenized as plain text."""
        text = self.render(messages) + tail
        controls = self.control_pattern()
        if not any(controls.search(t) for t in (*(m["content"] for m in messages), tail)):
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]  # the common case, one pass
        spans = chat_spans(self.render, messages, tail)
        if spans is None:
            safe = self.render(neutralise_messages(messages, controls)) + neutralise(tail, controls)
            return self.tokenizer(safe, add_special_tokens=False)["input_ids"]
        ids: list[int] = []
        for part, judged in spans:
            ids += self.tokenizer(part, add_special_tokens=False, split_special_tokens=judged)["input_ids"]
        return ids

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])
