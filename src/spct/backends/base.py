"""The one small interface every generation engine implements.

A judge hands the backend a batch of chat prompts; the backend returns `n` generations per
prompt. Engines differ in how they batch, sample and constrain output, never in this shape.

Two-phase decoding lives here, once: `generate` asks the engine for free text
(`generate_free`), and where a request carries a `ScoreConstraint` and a sample's text does not
already end in a valid score line, cuts it before its score line and asks the engine to continue
from the forced prefix under the constraint (`generate_forced`), each engine in its own way (a
logits processor, a regex, a grammar). Greedy requests are generated once and copied. Engines
know nothing of prompts or parsing: the constraint is data (`spct.generation`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..data import Message
from ..generation import Generation, GenerationRequest
from ..score_line import ScoreConstraint, constraint_satisfied, forced_prompt_tail

__all__ = ["Backend", "BackendError", "Continuation", "Generation", "GenerationRequest", "HFTokenizerMixin",
           "ScoreConstraint", "ScoreQuery", "common_prefix_len"]


@dataclass
class Continuation:
    """A sample to finish under its request's constraint: continue the assistant turn from `prefill`.

    `prefill` is the sample's free text up to its score line, a newline and the constraint's
    prefix; `sample` is the sample's index within its request (engines derive seeds from it).
    """

    request: GenerationRequest
    sample: int
    prefill: str


@dataclass
class ScoreQuery:
    """Candidate continuations of one prompt whose log-probabilities are wanted (the expected-score readout).

    The model reads `messages` (rendered as for generation), then an assistant turn that starts
    with `prefill`; each candidate is scored as `prefill + candidate`.
    """

    messages: list[Message]
    prefill: str
    candidates: list[str]


def common_prefix_len(a: list[int], b: list[int]) -> int:
    """How many leading tokens two token-id lists share."""
    return next((p for p, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def expected_readout_unsupported(engine: str) -> str:
    return (f"the {engine} engine cannot read the model's probabilities of the scores, so it cannot give expected "
            "scores; use the transformers or vllm engine, or --readout sampled")


class BackendError(RuntimeError):
    """The engine failed (timeout, server error, out of memory); the message says which."""


class Backend(ABC):
    """Generate `n` samples for each request. Implementations batch however suits the engine."""

    name: str = "backend"
    #: Tokens the model can attend to (prompt + generation); None when unknown.
    context_length: int | None = None
    #: Whether `continuation_logprobs` works (the expected-score readout needs it).
    reads_logprobs: bool = False

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

    def continuation_logprobs(self, queries: list[ScoreQuery]) -> list[list[float]]:
        """Per query, the log-probability of each candidate following its prefill (summed over its tokens)."""
        raise BackendError(expected_readout_unsupported(self.name))

    def forces_score_line(self, request: GenerationRequest) -> bool:
        """Whether `generate` should force this request's score line (engines that cannot, or leave it to a server, say no)."""
        return True

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
