"""Aggregating k judgments into one reward per response, and the paper's accuracy rule.

Voting sums each response's integer scores over the valid samples (range k..10k), which both
averages out sampling noise and widens the reward range. Failed samples are counted, never
read as zeros. A judgment read with the expected-score readout votes with its expected scores
(`Judgment.expected`: real numbers, so two responses almost never tie). Meta-guided voting
keeps only the k_meta judgments the meta RM rates highest.
"""

from __future__ import annotations

from collections.abc import Sequence

from .data import Example, InputError, Judgment, Reward
from .score_line import MAX_SCORE, MIN_SCORE


def strict_best(values: Sequence[float]) -> int | None:
    """Index of the strictly highest value; None on a tie for first (a tie picks no one)."""
    if not values:
        return None
    top = max(values)
    winners = [i for i, v in enumerate(values) if v == top]
    return winners[0] if len(winners) == 1 else None


def rating_scale_error(ratings: Sequence[float] | None) -> str | None:
    """Why a single-response rating cannot be compared with a judge's score, or None when it can.

    With one response the accuracy rule compares the score with the rating for equality, so the
    rating must be an integer on the judge's own MIN_SCORE..MAX_SCORE scale: a 0/1 error label or
    a 1-5 rating would silently never (or only by accident) match.
    """
    if ratings is None or len(ratings) != 1:
        return None
    r = ratings[0]
    if float(r).is_integer() and MIN_SCORE <= r <= MAX_SCORE:
        return None
    return (f"single-response rating {r!r} is not an integer on the judge's {MIN_SCORE}..{MAX_SCORE} score scale; "
            f"map it onto {MIN_SCORE}..{MAX_SCORE} first (e.g. a 0/1 label to {MIN_SCORE}/{MAX_SCORE}, or a 1-5 rating r to "
            f"round(1 + (r - 1) * 9 / 4)), or score such sets by ROC-AUC with `spct eval`")


def check_rating_scale(examples: Sequence[Example]) -> None:
    """Raise InputError naming the first example whose single-response rating is off the score scale."""
    for ex in examples:
        if (why := rating_scale_error(ex.ratings if len(ex.responses) == 1 else None)) is not None:
            raise InputError(f"{ex.source or f'example {ex.id}'}: {why}", field="ratings")


def labelled_best(best: Sequence[int] | None, ratings: Sequence[float] | None) -> list[int]:
    """The labelled best response(s): `best`, else (ratings only) the highest-rated response(s)."""
    if best:
        return list(best)
    if not ratings or len(ratings) < 2:
        return []
    top = max(ratings)
    return [i for i, r in enumerate(ratings) if r == top]


def is_correct(scores: Sequence[float] | None, best: Sequence[int] | None, ratings: Sequence[float] | None) -> bool | None:
    """The accuracy rule (used for rejection, the RL reward, meta RM labels and benchmarks).

    n >= 2: right iff a labelled best response scores strictly above every other response.
    n == 1: right iff the score equals the rating label.
    None when there is no label to compare with; False when the judgment failed.
    """
    if not best and ratings is None:
        return None
    if (why := rating_scale_error(ratings)) is not None:
        raise InputError(why, field="ratings")
    if scores is None:
        return False
    if len(scores) == 1:
        if ratings is None:
            return None
        return round(scores[0]) == round(ratings[0])
    winner = strict_best(scores)
    return winner is not None and winner in labelled_best(best, ratings)


def vote(
    example_id: str,
    judgments: list[Judgment],
    n: int,
    *,
    best: Sequence[int] | None = None,
    ratings: Sequence[float] | None = None,
    k_meta: int | None = None,
) -> Reward:
    """Sum the scores of the valid judgments (the top k_meta by meta score when given)."""
    valid = [j for j in judgments if j.ok]
    failed = len(judgments) - len(valid)
    if k_meta is not None:
        if any(j.meta is None for j in valid):
            raise ValueError("meta-guided voting needs a meta score on every judgment")
        valid = sorted(valid, key=lambda j: -j.meta)[:k_meta]  # type: ignore[operator]
    if not valid:
        return Reward(example_id, None, len(judgments), 0, failed, None,
                      False if (best or ratings is not None) else None, judgments)
    rows = [voted_scores(j) for j in valid]
    rewards = [_tidy(sum(row[i] for row in rows)) for i in range(n)]
    if n == 1:
        mean = [rewards[0] / len(valid)]
        correct = is_correct(mean, best, ratings)
    else:
        correct = is_correct(rewards, best, ratings)
    margin, conf = vote_confidence(rows, n)
    return Reward(example_id, rewards, len(judgments), len(valid), failed, strict_best(rewards) if n > 1 else 0, correct, judgments,
                  margin, conf)


def voted_scores(j: Judgment) -> list[float]:
    """What a judgment contributes to the vote: its expected scores when it has them, else its integer scores."""
    return j.expected if j.expected is not None else j.scores  # type: ignore[return-value]


def _tidy(x: float) -> float:
    """Integer sums stay integers; real sums are rounded to 4 places (stable JSON)."""
    return x if isinstance(x, int) else round(x, 4)


def vote_confidence(score_rows: Sequence[Sequence[float]], n: int) -> tuple[float | None, float]:
    """(margin, confidence) of a vote over `score_rows` (one row of n scores per voted judgment).

    n >= 2: margin = top summed reward minus the runner-up's (0 on a tie); confidence divides it
    by the widest margin the same number of samples could give (9 a sample), so 1 means every
    sample scored the winner 10 and the rest 1, and 0 means a tie. n == 1: no margin; confidence
    is 1 minus the spread (max - min) of the samples' scores over 9, i.e. how much they agree.
    An RL caller can multiply a reward by it to down-weight uncertain ones.
    """
    if not score_rows:
        return None, 0.0
    widest = MAX_SCORE - MIN_SCORE
    if n == 1:
        values = [row[0] for row in score_rows]
        return None, 1.0 - (max(values) - min(values)) / widest
    totals = sorted((sum(row[i] for row in score_rows) for i in range(n)), reverse=True)
    margin = round(float(totals[0] - totals[1]), 4)
    return margin, margin / (widest * len(score_rows))

