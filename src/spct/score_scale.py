"""The judge's score scale, score line and token budgets, as plain constants every module shares.

Scores are integers MIN_SCORE..MAX_SCORE; a judgment ends with `SCORE_PREFIX a, b, ...}`. The two
patterns state the parser's rule for a final score box (the last `\\boxed{...}`, followed only by
closing markdown, punctuation or whitespace); the parser and the engines' constrained decoding
both read them from here, so engines need not import the parser. Nothing here imports spct.
"""

from __future__ import annotations

MIN_SCORE, MAX_SCORE = 1, 10
SCORE_PREFIX = "Scores: \\boxed{"
#: A score box and its content (no nested braces).
BOX_PATTERN = r"\\boxed\s*\{([^{}]*)\}"
#: What may follow the final score box: closing markdown, punctuation, whitespace; no words or digits.
AFTER_BOX_PATTERN = r"[\s*_.`$\])]*"
#: A `Scores:` label (with markdown) right before a score box.
SCORES_LABEL_PATTERN = r"[*_#\s]*\bscores?\b[*_\s]*:[*_\s$]*$"

# Token budgets of one judgment: the one place they are set. Judging offline (judge, eval, rft,
# meta-data) takes the full budget; serving a reward in a training loop (serve, the RL reward
# client) and the many-sample scaling runs take less for latency; the probes judge short.
MAX_NEW_TOKENS = 512
SERVE_MAX_NEW_TOKENS = 256
PROBE_MAX_NEW_TOKENS = 48


def normalise(score: float) -> float:
    """A score (or mean score) on MIN_SCORE..MAX_SCORE mapped onto 0..1."""
    return (score - MIN_SCORE) / (MAX_SCORE - MIN_SCORE)
