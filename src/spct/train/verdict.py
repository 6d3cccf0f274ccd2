"""Verdict rows: every labelled example becomes training rows whose target is the right score line.

Why: a judgment is ~66 tokens and its verdict ~2 of them, and a small judge's own kept critiques
often contradict the verdict they end in, so SFT on rejective-sampling rows alone learns the
text and not the verdict. Verdict rows put the verdict itself under the loss, on *every*
labelled example (not only those the judge happened to get right), in every response order
that matters (both orders of a pair), so no position can be preferred.

A verdict row's prompt is the plain judging prompt (the same as an RFT row's); its completion is
the score line alone, `Scores: \\boxed{a, b}`, where the labelled best response gets
`HIGH_SCORE` and the others `LOW_SCORE` (a single rated response gets its rating). `spct sft
--verdict-weight W` then weighs the score values W times, and gives the bare `Scores: \\boxed{`
of such a row no weight, so these rows do not teach the judge to skip its principles and
analysis (the RFT rows teach those).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..data import Example, InputError, write_jsonl
from ..format import JudgingFormat
from ..score_line import SCORE_PREFIX
from ..voting import labelled_best

HIGH_SCORE, LOW_SCORE = 8, 3

__all__ = ["HIGH_SCORE", "LOW_SCORE", "orders_for", "score_line", "verdict_rows", "write_verdict_rows"]


def orders_for(n: int) -> list[list[int]]:
    """The shown orders a verdict is trained in: as given and reversed (both orders of a pair)."""
    ident = list(range(n))
    return [ident] if n < 2 else [ident, ident[::-1]]


def target_scores(example: Example) -> list[int]:
    """The right scores in original order; InputError naming the example when it has no usable label."""
    where = example.source or f"example {example.id}"
    n = len(example.responses)
    if n == 1:
        if example.ratings is None:
            raise InputError(f"{where} [ratings]: a single response needs a rating to train a verdict on", field="ratings")
        return [int(round(example.ratings[0]))]
    best = labelled_best(example.best, example.ratings)
    if not best:
        raise InputError(f"{where} [best]: no label (best or ratings) to train a verdict on", field="best")
    if len(best) == n:
        raise InputError(f"{where} [best]: every response is labelled best, so no verdict is right", field="best")
    return [HIGH_SCORE if i in best else LOW_SCORE for i in range(n)]


def score_line(scores: list[int]) -> str:
    return SCORE_PREFIX + ", ".join(str(s) for s in scores) + "}"


def verdict_rows(examples: Iterable[Example], principles: bool = True, max_chars: int | None = None,
                 pointwise: bool = False) -> Iterator[dict[str, Any]]:
    """TRL conversational prompt/completion rows, one per example and shown order.

    `pointwise`: one row per response instead, the response judged alone (n = 1) and its target
    HIGH_SCORE if labelled best, else LOW_SCORE. Examples whose query and responses together
    exceed `max_chars` characters are skipped (a row cut by the trainer's max_length would lose
    its score line, the only thing it teaches).
    """
    fmt = JudgingFormat(principles=principles)
    for ex in examples:
        scores = target_scores(ex)
        if max_chars is not None and len(str(ex.query)) + sum(len(r) for r in ex.responses) > max_chars:
            continue
        if pointwise and len(ex.responses) > 1:
            for i, (response, score) in enumerate(zip(ex.responses, scores, strict=True)):
                alone = Example(f"{ex.id}/{i}", ex.query, [response], ratings=[score], source=ex.source)
                yield {"id": f"{ex.id}~verdict/{i}", "prompt": fmt.messages(alone, [0]),
                       "completion": [{"role": "assistant", "content": score_line([score])}], "source": "verdict"}
            continue
        for order in orders_for(len(ex.responses)):
            shown = [scores[i] for i in order]
            suffix = "" if order == sorted(order) else "~swapped"
            yield {"id": f"{ex.id}~verdict{suffix}", "prompt": fmt.messages(ex, order),
                   "completion": [{"role": "assistant", "content": score_line(shown)}], "source": "verdict"}


def write_verdict_rows(examples: list[Example], out: str | Path, principles: bool = True,
                       max_chars: int | None = None, pointwise: bool = False) -> dict[str, int]:
    """Write verdict rows to `out` (JSONL); return counts."""
    rows = list(verdict_rows(examples, principles, max_chars, pointwise))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(out, rows)  # gzip-compressed under a .gz name
    kept = len({r["id"].split("~verdict")[0] for r in rows})
    return {"examples": len(examples), "kept_examples": kept, "skipped_too_long": len(examples) - kept, "rows": len(rows)}
