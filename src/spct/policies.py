"""Sampling policies: how many judgments to draw for an example and how to turn them into a reward.

- `Voting` (voting@k): k judgments, each response's scores summed over the valid ones; k = 1
  is one greedy judgment. With a meta scorer it is meta-guided voting: only the k_meta
  judgments the meta RM rates highest are summed.
- `BothOrders`: k judgments, half showing the responses as given and half reversed (greedy
  when k = 2), so no position is favoured.
- `Pointwise`: each response judged alone, k judgments each; the reward is its mean score.
- `Greedy`: always one greedy judgment, whatever k is asked for.
- `Adaptive`: judgments drawn in rounds, each example stopping once more samples cannot
  change (`exact`) or are unlikely to change (`bound`) the winner; `Reward.k` is what it drew.

A policy never builds prompts or calls an engine: it asks the judge's `sample` function for
judgments (examples, k, first sample index, greedy or not; `is_greedy` by default) and
aggregates what comes back.

Adaptive stop rules. Voting@K sums MIN..MAX scores, so one more sample can move any response
at most MAX - MIN points closer to the leader. If the leader's lead over every other response is
larger than that times the samples still to draw, no outcome can unseat it, so stopping there
gives exactly voting@K's winner (the `exact` rule). A tie for first is no winner under the
accuracy rule, and a tie can still be broken while samples remain, so the exact rule never
stops early without a strict leader. The opt-in `bound` rule also stops when, for every rival,
a normal confidence bound on the leader's per-sample score lead is above zero: it saves more
samples and may disagree with voting@K (`spct scale` measures how often). Single-response
examples (n = 1) have no winner to settle: they always take all K samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from .data import Example, Judgment, Reward
from .score_line import MAX_SCORE, MIN_SCORE
from .voting import is_correct, strict_best, vote

# Scores a list of judgments of one example; returns one probability per judgment.
MetaScorer = Callable[[Example, list[Judgment]], list[float]]

MAX_GAIN = MAX_SCORE - MIN_SCORE  # the most one sample can close a gap between two responses
RULES = ("exact", "bound")


def is_greedy(k: int, orders: str = "shuffled") -> bool:
    """Whether a budget of k judgments is judged greedily: when it holds one judgment per order shown.

    k = 1 is one greedy judgment; with both orders, k = 2 is one greedy judgment in each. Any
    larger budget samples (at temperature 0 a second judgment of the same order would repeat the first).
    """
    return k == (2 if orders == "both" else 1)


class SampleFn(Protocol):
    """The judge's sampler: per example, k judgments numbered from `first_sample`."""

    def __call__(self, examples: list[Example], k: int, *, first_sample: int = 0, greedy: bool | None = None,
                 orders: str = "shuffled") -> list[list[Judgment]]: ...


class Policy(Protocol):
    """How many judgments to draw per example and how to aggregate them."""

    def rate(self, example: Example, judgments: list[Judgment]) -> None: ...

    def vote(self, example: Example, judgments: list[Judgment]) -> Reward: ...

    def aggregate(self, example: Example, judgments: list[Judgment]) -> Reward: ...

    def draw(self, sample: SampleFn, examples: list[Example], k: int, greedy: bool | None = None) -> list[list[Judgment]]: ...

    def judge(self, sample: SampleFn, examples: list[Example], k: int) -> list[Reward]: ...


# -- voting -------------------------------------------------------------------------------------


class Voting:
    """voting@k (greedy when k = 1); meta-guided voting over the top k_meta when a meta scorer is set."""

    def __init__(self, meta_scorer: MetaScorer | None = None, k_meta: int | None = None):
        self.meta_scorer = meta_scorer
        self.k_meta = k_meta

    def rate(self, example: Example, judgments: list[Judgment]) -> None:
        """Set each judgment's meta score (nothing to do without a meta scorer)."""
        if self.meta_scorer is not None and judgments:
            for j, m in zip(judgments, self.meta_scorer(example, judgments), strict=True):
                j.meta = float(m)

    def vote(self, example: Example, judgments: list[Judgment]) -> Reward:
        """Vote over already rated judgments: all valid ones, or the top k_meta with a meta scorer."""
        k_meta = (self.k_meta or max(1, len(judgments) // 2)) if self.meta_scorer is not None else None
        return vote(example.id, judgments, len(example.responses), best=example.best, ratings=example.ratings, k_meta=k_meta)

    def aggregate(self, example: Example, judgments: list[Judgment]) -> Reward:
        """Vote over `judgments` (meta-scoring them first when a meta scorer is set)."""
        self.rate(example, judgments)
        return self.vote(example, judgments)

    def draw(self, sample: SampleFn, examples: list[Example], k: int, greedy: bool | None = None) -> list[list[Judgment]]:
        """The judgments this policy votes over, per example, for a budget of k (`greedy`: the sampler's default)."""
        return sample(examples, k, greedy=greedy)

    def judge(self, sample: SampleFn, examples: list[Example], k: int) -> list[Reward]:
        drawn = self.draw(sample, examples, k)
        return [self.aggregate(ex, js) for ex, js in zip(examples, drawn, strict=True)]


class BothOrders(Voting):
    """Half the judgments show the responses as given, half reversed; voted like voting@k.

    k is rounded up to an even number of at least 2; k = 2 is one greedy judgment in each order.
    Every response is shown in every position equally often, so the first-shown win rate of
    any judge is 0.5 by construction and a positional preference cancels in the vote.
    """

    def draw(self, sample: SampleFn, examples: list[Example], k: int, greedy: bool | None = None) -> list[list[Judgment]]:
        return sample(examples, max(2, k + k % 2), greedy=greedy, orders="both")


class Pointwise(Voting):
    """Each response judged alone (a one-response judgment), k judgments per response, rewarded by its mean score.

    No response is ever shown beside another, so there is no position to prefer and nothing to
    compare against: the judge rates each response on its own, as a scalar reward model does.
    The Reward's judgments are the single-response ones, each with `id` "EXAMPLE/INDEX".
    """

    def draw(self, sample: SampleFn, examples: list[Example], k: int, greedy: bool | None = None) -> list[list[Judgment]]:
        singles = [single(ex, i) for ex in examples for i in range(len(ex.responses))]
        drawn = iter(sample(singles, k, greedy=greedy))
        return [[j for _ in ex.responses for j in next(drawn)] for ex in examples]

    @staticmethod
    def per_response(example: Example, judgments: list[Judgment]) -> list[list[Judgment]]:
        """The single-response judgments grouped by the response they judged (their ids)."""
        return [[j for j in judgments if j.id == f"{example.id}/{i}"] for i in range(len(example.responses))]

    def rate(self, example: Example, judgments: list[Judgment]) -> None:
        """Meta-rate each response's judgments against that response alone (what the judge saw)."""
        for i, js in enumerate(self.per_response(example, judgments)):
            super().rate(single(example, i), js)

    def vote(self, example: Example, judgments: list[Judgment]) -> Reward:
        """Each response's mean score over its valid judgments (its top k_meta with a meta RM)."""
        per_response = self.per_response(example, judgments)
        k_meta = (self.k_meta or max(1, len(per_response[0]) // 2)) if self.meta_scorer is not None else None
        if len(per_response) == 1:  # one response: summed and checked against its rating, like voting@k
            return replace(vote(example.id, per_response[0], 1, best=example.best, ratings=example.ratings, k_meta=k_meta),
                           judgments=judgments)
        votes = [vote(f"{example.id}/{i}", js, 1, k_meta=k_meta) for i, js in enumerate(per_response)]
        failed = sum(v.failed for v in votes)
        if any(v.rewards is None for v in votes):
            return Reward(example.id, None, len(judgments), 0, failed, None, False if example.labelled else None, judgments)
        rewards = [round(v.rewards[0] / v.used, 4) for v in votes]  # type: ignore[index]  # mean: equal weight per response
        correct = is_correct(rewards, example.best, example.ratings) if example.labelled else None
        top = sorted(rewards, reverse=True)
        margin = round(top[0] - top[1], 4)
        return Reward(example.id, rewards, len(judgments), sum(v.used for v in votes), failed, strict_best(rewards), correct,
                      judgments, margin, margin / (MAX_SCORE - MIN_SCORE), aggregate="mean")


def single(example: Example, i: int) -> Example:
    """Response i of an example as a one-response example of its own (id "EXAMPLE/i")."""
    return Example(f"{example.id}/{i}", example.query, [example.responses[i]], domain=example.domain, source=example.source)


class Greedy(Voting):
    """One greedy judgment per example, whatever k is asked for."""

    def draw(self, sample: SampleFn, examples: list[Example], k: int, greedy: bool | None = None) -> list[list[Judgment]]:
        return super().draw(sample, examples, 1, greedy)


# -- adaptive -----------------------------------------------------------------------------------


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


class Adaptive(Voting):
    """Adaptive voting: rounds of `round_size` samples until the stop rule says more cannot matter.

    Every round samples at the judge's temperature (greedy only when the whole budget is one
    judgment). With a meta scorer, the drawn judgments are then meta-voted; the stop rule itself
    reads plain score sums.
    """

    def __init__(self, rule: StopRule | None = None, round_size: int = 1, meta_scorer: MetaScorer | None = None,
                 k_meta: int | None = None):
        super().__init__(meta_scorer, k_meta)
        if round_size < 1:
            raise ValueError("round_size must be >= 1")
        self.rule = rule or StopRule()
        self.round_size = round_size

    def judge(self, sample: SampleFn, examples: list[Example], k: int) -> list[Reward]:
        drawn: list[list[Judgment]] = [[] for _ in examples]
        active = list(range(len(examples)))
        done = 0
        while active:
            step = min(self.round_size, k - done)
            got = sample([examples[i] for i in active], step, first_sample=done, greedy=is_greedy(k))
            for i, js in zip(active, got, strict=True):
                drawn[i] += js
            done += step
            active = [i for i in active if not should_stop(drawn[i], len(examples[i].responses), k, self.rule)]
        return [self.aggregate(ex, js) for ex, js in zip(examples, drawn, strict=True)]
