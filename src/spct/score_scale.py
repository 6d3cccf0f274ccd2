"""The judge's score scale, score line and sampling defaults, as plain constants every module shares.

Scores are integers MIN_SCORE..MAX_SCORE; a judgment ends with `SCORE_PREFIX a, b, ...}`. The two
patterns state the parser's rule for a final score box (the last `\\boxed{...}`, followed only by
closing markdown, punctuation or whitespace); the parser and the engines' constrained decoding
both read them from here, so engines need not import the parser. So do the two checks both apply
to untrusted score text (`ascii_int`: ASCII digits, bounded length; `strip_score_label`, linear
time). Nothing here imports spct.
"""

from __future__ import annotations

import math
import re

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

# Sampling defaults: the one place they are set.
# Token budgets of one judgment. Judging offline (judge, eval, rft, meta-data) takes the full
# budget; serving a reward in a training loop (serve, the RL reward client) and the many-sample
# scaling runs take less for latency; the demo judges 8 pairs with two models on CPU, so it keeps
# judgments short enough to finish in minutes; the probes judge shorter still.
MAX_NEW_TOKENS = 512
SERVE_MAX_NEW_TOKENS = 256
DEMO_MAX_NEW_TOKENS = 160
PROBE_MAX_NEW_TOKENS = 48
# Temperatures. Sampled judgments (k > 1) use the paper's 0.5; one judgment is greedy (0, see
# `policies.is_greedy`). An OpenAI-style chat request that names none samples at 1.0, that API's
# own default; RL rollouts sample at 1.0, TRL's GRPOConfig default.
SAMPLE_TEMPERATURE = 0.5
GREEDY_TEMPERATURE = 0.0
CHAT_API_TEMPERATURE = 1.0
ROLLOUT_TEMPERATURE = 1.0


def normalise(score: float) -> float:
    """A score (or mean score) on MIN_SCORE..MAX_SCORE mapped onto 0..1."""
    return (score - MIN_SCORE) / (MAX_SCORE - MIN_SCORE)


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
