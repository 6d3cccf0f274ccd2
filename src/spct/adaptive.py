"""Adaptive voting: sample judgments in rounds and stop once more samples cannot change the result.

Voting@K sums 1..10 scores, so one more sample can move any response at most 9 points closer
to the leader (the leader gets at least 1, a rival at most 10). If the leader's lead over every
other response is larger than 9 times the samples still to draw, no outcome of those samples
can unseat it, so stopping there gives exactly voting@K's winner (the `exact` rule). A tie for
first is no winner under the accuracy rule, and with any sample left a tie can still be broken,
so the exact rule never stops early without a strict leader.

The opt-in `bound` rule also stops when, for every rival, a normal confidence bound on the
leader's per-sample score lead is above zero. It saves more samples and may disagree with
voting@K; `spct scale` measures how often.

Single-response examples (n = 1) have no winner to settle: they always take all K samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .backends.base import Backend, GenerationRequest
from .data import Example, Judgment, Reward
from .judge import GenerativeRewardModel, JudgeConfig
from .prompts import MAX_SCORE, MIN_SCORE
from .voting import vote

MAX_GAIN = MAX_SCORE - MIN_SCORE  # the most one sample can close a gap between two responses
RULES = ("exact", "bound")


@dataclass(frozen=True)
class StopRule:
    kind: str = "exact"  # "exact" (same winner as voting@K) or "bound" (looser, opt-in)
    z: float = 1.96  # bound rule: width of the confidence bound in standard errors
    min_samples: int = 2  # bound rule: never stop on fewer valid samples than this
    min_sd: float = 1.0  # bound rule: floor on the lead's standard deviation (one score point)

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"unknown stop rule {self.kind!r}; choose from {', '.join(RULES)}")


def exact_stop(totals: Sequence[float], remaining: int) -> bool:
    """True when `remaining` more samples cannot change the strict winner of `totals`."""
    if remaining <= 0:
        return True
    if len(totals) < 2:
        return False
    first, second = sorted(totals, reverse=True)[:2]
    return first - second > MAX_GAIN * remaining


def bound_stop(score_rows: Sequence[Sequence[int]], rule: StopRule) -> bool:
    """True when the leader's mean per-sample lead over every rival is confidently above zero."""
    m = len(score_rows)
    if m < max(2, rule.min_samples):
        return False
    n = len(score_rows[0])
    totals = [sum(row[i] for row in score_rows) for i in range(n)]
    leader = max(range(n), key=lambda i: totals[i])
    for i in range(n):
        if i == leader:
            continue
        leads = [row[leader] - row[i] for row in score_rows]
        mean = sum(leads) / m
        sd = max(rule.min_sd, math.sqrt(sum((x - mean) ** 2 for x in leads) / (m - 1)))
        if mean - rule.z * sd / math.sqrt(m) <= 0:
            return False
    return True


def should_stop(judgments: Sequence[Judgment], n: int, k: int, rule: StopRule) -> bool:
    """Whether adaptive voting stops after these judgments, out of a budget of k."""
    remaining = k - len(judgments)
    if remaining <= 0:
        return True
    if n < 2:
        return False
    rows = [j.scores for j in judgments if j.ok]
    if not rows:
        return False
    totals = [sum(row[i] for row in rows) for i in range(n)]  # type: ignore[index]
    if exact_stop(totals, remaining):
        return True
    return rule.kind == "bound" and bound_stop(rows, rule)  # type: ignore[arg-type]


def samples_needed(judgments: Sequence[Judgment], n: int, k: int, rule: StopRule, round_size: int = 1) -> int:
    """How many of `judgments` (taken in order, `round_size` at a time) adaptive voting draws."""
    drawn = 0
    while drawn < k:
        drawn = min(k, drawn + round_size)
        if should_stop(judgments[:drawn], n, k, rule):
            break
    return drawn


def adaptive_vote(example: Example, judgments: list[Judgment], k: int, rule: StopRule, round_size: int = 1) -> Reward:
    """Replay adaptive voting over already sampled judgments; `Reward.k` is the samples it drew."""
    used = samples_needed(judgments[:k], len(example.responses), k, rule, round_size)
    return vote(example.id, judgments[:used], len(example.responses), best=example.best, ratings=example.ratings)


class AdaptiveRewardModel(GenerativeRewardModel):
    """A GenerativeRewardModel that samples in rounds and stops each example early when allowed.

    `Reward.k` is the number of judgments actually drawn for that example (at most the budget k).
    """

    def __init__(self, backend: Backend, config: JudgeConfig | None = None, rule: StopRule | None = None, round_size: int = 1):
        super().__init__(backend, config)
        if round_size < 1:
            raise ValueError("round_size must be >= 1")
        self.rule = rule or StopRule()
        self.round_size = round_size
        self._budget = 1

    def _request(self, example: Example, order: list[int], k: int, seed: int, hint: int | None = None) -> GenerationRequest:
        # A round draws few samples, but they belong to a k-sample vote: sample at the configured
        # temperature (greedy only when the whole budget is one judgment).
        return super()._request(example, order, self._budget, seed, hint)

    def judge_iter(self, examples: list[Example], k: int | None = None, batch_size: int = 8) -> Iterator[Reward]:
        k = k or self.config.k
        self._budget = k
        for b in range(0, len(examples), batch_size):
            chunk = examples[b : b + batch_size]
            drawn: list[list[Judgment]] = [[] for _ in chunk]
            active = list(range(len(chunk)))
            done = 0
            while active:
                step = min(self.round_size, k - done)
                for i, js in zip(active, self.sample([chunk[i] for i in active], step, first_sample=done), strict=True):
                    drawn[i] += js
                done += step
                active = [i for i in active if not should_stop(drawn[i], len(chunk[i].responses), k, self.rule)]
            for ex, js in zip(chunk, drawn, strict=True):
                yield vote(ex.id, js, len(ex.responses), best=ex.best, ratings=ex.ratings)
