"""GenerativeRewardModel: examples -> k sampled judgments each -> voted rewards.

Each sample shows the responses in a fresh order drawn from an RNG seeded by (seed, example
id, sample index), so runs are reproducible, independent of batch composition, and position
bias averages out across samples. Scores are mapped back to the original order before
voting. k = 1 is greedy; k > 1 samples at the configured temperature (0.5 by default, the
paper's setting).
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from .backends.base import Backend, GenerationRequest, ScoreConstraint
from .data import Example, Judgment, Reward
from .parsing import JudgmentParseError, parse_judgment
from .prompts import judge_messages
from .voting import vote

log = logging.getLogger(__name__)

TRUNCATION_NOTE = "\n[... {n} characters cut to fit the model's context ...]"

# Scores a list of judgments of one example; returns one probability per judgment.
MetaScorer = Callable[[Example, list[Judgment]], list[float]]


def sample_order(seed: int, example_id: str, sample: int, n: int) -> list[int]:
    digest = hashlib.sha256(f"{seed}|{example_id}|{sample}".encode()).digest()
    order = list(range(n))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


@dataclass
class JudgeConfig:
    k: int = 1
    temperature: float = 0.5  # used when k > 1; k = 1 is greedy
    max_new_tokens: int = 512
    seed: int = 0
    constrain: bool = True  # force a parseable score line (see backends.base.ScoreConstraint)
    retries: int = 0  # re-sample a failed judgment up to this many times
    principles: bool = True
    k_meta: int | None = None  # with a meta scorer: vote over the top k_meta (default k/2)


class GenerativeRewardModel:
    def __init__(self, backend: Backend, config: JudgeConfig | None = None, meta_scorer: MetaScorer | None = None):
        self.backend = backend
        self.config = config or JudgeConfig()
        self.meta_scorer = meta_scorer

    # -- preparing prompts ------------------------------------------------------------------
    def fit_to_context(self, example: Example) -> tuple[Example, list[str]]:
        """Cut over-long responses so prompt + generation fit the model's context window."""
        ctx = self.backend.context_length
        if not ctx:
            return example, []
        overhead = self.backend.count_tokens(judge_messages(example, list(range(len(example.responses))), responses=[""] * len(example.responses))[-1]["content"])
        budget = ctx - self.config.max_new_tokens - overhead - 64
        if budget <= 0:
            raise ValueError(f"example {example.id}: the query alone does not fit a {ctx}-token context")
        per_response = budget // len(example.responses)
        responses, warnings = [], []
        for i, r in enumerate(example.responses):
            # Cheap bound first: a token is never shorter than one character.
            if len(r) > per_response and self.backend.count_tokens(r) > per_response:
                kept = self.backend.truncate(r, per_response - 16)
                cut = len(r) - len(kept)
                responses.append(kept + TRUNCATION_NOTE.format(n=cut))
                warnings.append(f"example {example.id}: response {i} truncated by {cut} characters to fit {ctx} tokens")
            else:
                responses.append(r)
        return (replace(example, responses=responses) if warnings else example), warnings

    def _request(self, example: Example, order: list[int], k: int, seed: int, hint: int | None = None) -> GenerationRequest:
        cfg = self.config
        return GenerationRequest(
            messages=judge_messages(example, order, hint=hint, principles=cfg.principles),
            n=1,
            temperature=cfg.temperature if k > 1 else 0.0,
            max_new_tokens=cfg.max_new_tokens,
            seed=seed,
            constraint=ScoreConstraint(len(order)) if cfg.constrain else None,
        )

    # -- judging ------------------------------------------------------------------------------
    def sample(self, examples: list[Example], k: int, *, hints: dict[str, int] | None = None, first_sample: int = 0) -> list[list[Judgment]]:
        """k judgments per example (one backend call for the whole batch), retried if configured.

        `hints` maps example id -> original index of the best response (hinted sampling).
        """
        cfg = self.config
        jobs: list[tuple[int, int, list[int]]] = []  # (example index, sample index, order)
        requests: list[GenerationRequest] = []
        fitted = []
        for ei, ex in enumerate(examples):
            ex, warnings = self.fit_to_context(ex)
            for w in warnings:
                log.warning(w)
            fitted.append(ex)
            for s in range(first_sample, first_sample + k):
                order = sample_order(cfg.seed, ex.id, s, len(ex.responses))
                hint = order.index(hints[ex.id]) if hints and ex.id in hints else None
                jobs.append((ei, s, order))
                requests.append(self._request(ex, order, k, self._seed(ex.id, s), hint))
        gens = self.backend.generate(requests)
        judgments = [self._to_judgment(fitted[ei], s, order, g[0]) for (ei, s, order), g in zip(jobs, gens, strict=True)]

        for attempt in range(1, cfg.retries + 1):
            failed = [i for i, j in enumerate(judgments) if not j.ok]
            if not failed:
                break
            retry = [replace(requests[i], seed=requests[i].seed + 104729 * attempt) for i in failed]
            for i, g in zip(failed, self.backend.generate(retry), strict=True):
                ei, s, order = jobs[i]
                judgments[i] = self._to_judgment(fitted[ei], s, order, g[0])

        out: list[list[Judgment]] = [[] for _ in examples]
        for (ei, _, _), j in zip(jobs, judgments, strict=True):
            out[ei].append(j)
        return out

    def _seed(self, example_id: str, sample: int) -> int:
        return int.from_bytes(hashlib.sha256(f"gen|{self.config.seed}|{example_id}|{sample}".encode()).digest()[:4], "big")

    @staticmethod
    def _to_judgment(example: Example, sample: int, order: list[int], gen) -> Judgment:
        n = len(order)
        truncated = gen.finish_reason == "length"
        try:
            parsed = parse_judgment(gen.text, n)
        except JudgmentParseError as e:
            error = str(e) + (" (generation hit max_new_tokens)" if truncated else "")
            return Judgment(example.id, sample, order, None, None, None, gen.text, error, None, gen.forced, truncated)
        scores = [0] * n
        for pos, idx in enumerate(order):
            scores[idx] = parsed.scores[pos]
        return Judgment(example.id, sample, order, parsed.principles, parsed.critique, scores, gen.text, None, None, gen.forced, truncated)

    def aggregate(self, example: Example, judgments: list[Judgment]) -> Reward:
        k_meta = None
        if self.meta_scorer is not None:
            for j, m in zip(judgments, self.meta_scorer(example, judgments), strict=True):
                j.meta = float(m)
            k_meta = self.config.k_meta or max(1, len(judgments) // 2)
        return vote(example.id, judgments, len(example.responses), best=example.best, ratings=example.ratings, k_meta=k_meta)

    def judge(self, examples: Iterable[Example], k: int | None = None, batch_size: int = 8) -> list[Reward]:
        return list(self.judge_iter(list(examples), k, batch_size))

    def judge_iter(self, examples: list[Example], k: int | None = None, batch_size: int = 8) -> Iterator[Reward]:
        """Rewards in input order, `batch_size` examples per backend call (so callers can append as they go)."""
        k = k or self.config.k
        for b in range(0, len(examples), batch_size):
            chunk = examples[b : b + batch_size]
            for ex, js in zip(chunk, self.sample(chunk, k), strict=True):
                yield self.aggregate(ex, js)
