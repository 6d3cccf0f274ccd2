"""The judging format: what one judgment looks like, from the prompt to the parsed scores.

A format owns the prompt renderer (principles + critique by default; the no-principles
ablation; the hinted prompt; any renderer with the same shape, such as the probes' variants),
the score line as data (a `ScoreConstraint` each engine enforces its own way), the parser, and
the mapping between the order the responses were shown in and their original order. The judge
is a format, a backend and a sampling policy; nothing else builds prompts or parses judgments.

The texts themselves live in `spct.prompts` and the parser's rule in `spct.parsing`; both are
fixed (trained adapters and stored judgments depend on them, see tests/test_format_golden.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .data import Example, Judgment, Message
from .generation import Generation
from .parsing import JudgmentParseError, parse_judgment
from .prompts import judge_messages, with_format_demo
from .score_line import MAX_SCORE, MIN_SCORE, SCORE_PREFIX, ScoreConstraint

#: (example, shown order, responses to show, hint position or None) -> chat messages.
Renderer = Callable[[Example, list[int], list[str], int | None], list[Message]]


def to_original(shown: list[int], order: list[int]) -> list[int]:
    """Per-position values (shown order) -> per-response values (original order); order[p] = original index."""
    out = [0] * len(order)
    for pos, idx in enumerate(order):
        out[idx] = shown[pos]
    return out


class Format:
    """What the judge needs of a format (JudgingFormat, or a baseline's verdict format)."""

    def messages(self, example: Example, order: list[int], hint: int | None = None) -> list[Message]:
        raise NotImplementedError

    def sample_messages(self, example: Example, order: list[int], hint: int | None, seed: int) -> list[Message]:
        """The messages of one sampled judgment; `seed` (the request's) lets a format vary per sample."""
        return self.messages(example, order, hint)

    def constraint(self, n: int) -> ScoreConstraint:
        raise NotImplementedError

    def to_judgment(self, example: Example, sample: int, order: list[int], gen: Generation) -> Judgment:
        raise NotImplementedError


@dataclass(frozen=True)
class JudgingFormat(Format):
    """The pointwise judgment: principles (unless `principles=False`), critique, one score per response.

    `render` replaces the prompt (the probes' naive and defused variants); the score line and the
    parser stay the same, so every variant is scored by one rule. `format_demo` shows a
    demonstrated judgment before the query when sampling (bootstrapping RFT data from a base
    model); `messages`, which training rows use, never includes it.
    """

    principles: bool = True
    render: Renderer | None = None
    format_demo: bool = False
    min_score: int = MIN_SCORE
    max_score: int = MAX_SCORE
    prefix: str = SCORE_PREFIX

    def messages(self, example: Example, order: list[int], hint: int | None = None) -> list[Message]:
        """Chat messages for one judgment; `hint` is the shown position (0-based) of the best response."""
        if self.render is not None:
            return self.render(example, order, list(example.responses), hint)
        return judge_messages(example, order, hint=hint, principles=self.principles)

    def sample_messages(self, example: Example, order: list[int], hint: int | None, seed: int) -> list[Message]:
        """`messages`, after a demonstrated judgment with `format_demo`, its orientation drawn from `seed`."""
        messages = self.messages(example, order, hint)
        return with_format_demo(messages, flip=seed % 2 == 1) if self.format_demo else messages

    def constraint(self, n: int) -> ScoreConstraint:
        """The score line for n responses, as data for the engines."""
        return ScoreConstraint(n, self.prefix, self.min_score, self.max_score)

    def shown_scores(self, text: str, n: int) -> list[int] | None:
        """The scores of a judgment text in shown order, or None when it does not parse (the RL reward's view)."""
        try:
            return parse_judgment(text, n).scores
        except JudgmentParseError:
            return None

    def to_judgment(self, example: Example, sample: int, order: list[int], gen: Generation) -> Judgment:
        """Parse one generation and map its scores back to the original order; a parse failure is kept, typed."""
        truncated = gen.finish_reason == "length"
        try:
            parsed = parse_judgment(gen.text, len(order))
        except JudgmentParseError as e:
            error = str(e) + (" (generation hit max_new_tokens)" if truncated else "")
            return Judgment(example.id, sample, order, None, None, None, gen.text, error, None, gen.forced, truncated)
        return Judgment(example.id, sample, order, parsed.principles, parsed.critique, to_original(parsed.scores, order),
                        gen.text, None, None, gen.forced, truncated)

