"""GenerativeRewardModel: examples -> k sampled judgments each -> voted rewards.

Each sample shows the responses in a fresh order drawn from an RNG seeded by (seed, example
id, sample index), so the orders are reproducible and independent of batching, and position
bias averages out across samples. Scores are mapped back to the original order before
voting. k = 1 is greedy; k > 1 samples at the configured temperature (0.5 by default, the
paper's setting). Sampled text is reproducible for the same inputs, settings and seed.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from .backends.base import Backend, GenerationRequest, ScoreConstraint
from .data import Example, InputError, Judgment, Query, Reward
from .parsing import JudgmentParseError, parse_judgment
from .prompts import judge_messages, with_format_demo
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
    format_demo: bool = False  # show a demonstrated judgment first (bootstrapping RFT data from a base model)


class GenerativeRewardModel:
    def __init__(self, backend: Backend, config: JudgeConfig | None = None, meta_scorer: MetaScorer | None = None):
        self.backend = backend
        self.config = config or JudgeConfig()
        self.meta_scorer = meta_scorer

    # -- preparing prompts ------------------------------------------------------------------
    def fit_to_context(self, example: Example) -> tuple[Example, list[str]]:
        """Cut over-long texts so prompt + generation fit the model's context window.

        The judge's own instructions and the token budget come first; the query's turns and the
        responses share what is left, the shortest keeping all of theirs and the longest sharing
        the rest evenly. Cut texts end in a visible note; each cut is returned as a warning
        that names the example's file:line and the field.
        """
        ctx = self.backend.context_length
        if not ctx:
            return example, []
        n = len(example.responses)
        texts: dict[str, str] = {f"responses[{i}]": r for i, r in enumerate(example.responses)}
        if isinstance(example.query, str):
            texts["query"] = example.query
        else:
            texts.update({f"query[{j}]": m["content"] for j, m in enumerate(example.query)})
        bare = judge_messages(replace(example, query="", responses=[""] * n), list(range(n)), principles=self.config.principles)
        if self.config.format_demo:
            bare = with_format_demo(bare)
        overhead = self.backend.count_tokens("\n".join(m["content"] for m in bare))
        # Slack for the chat template, turn labels, a hint line and the forced score line.
        room = ctx - self.config.max_new_tokens - overhead - (64 + 4 * n + 8 * len(texts))
        where = example.source or f"example {example.id}"
        if room < 32 * len(texts):
            raise InputError(f"{where}: max_new_tokens={self.config.max_new_tokens} leaves too little of the model's "
                             f"{ctx}-token context for the query and {n} response(s); lower --max-new-tokens")
        # A byte-level tokenizer never makes more tokens than bytes: most examples stop here.
        if sum(len(t.encode()) for t in texts.values()) <= room:
            return example, []
        sizes = {key: self.backend.count_tokens(t) for key, t in texts.items()}
        if sum(sizes.values()) <= room:
            return example, []
        caps, left = {}, room
        for rank, key in enumerate(sorted(sizes, key=sizes.__getitem__)):
            caps[key] = min(sizes[key], left // (len(sizes) - rank))
            left -= caps[key]
        warnings = []
        for key, cap in caps.items():
            if cap < sizes[key]:
                text = texts[key]
                kept = self.backend.truncate(text, max(0, cap - 24))  # leave room for the note
                texts[key] = kept + TRUNCATION_NOTE.format(n=len(text) - len(kept))
                warnings.append(f"{where} [{key}]: cut from {len(text)} to {len(kept)} characters to fit the "
                                f"model's {ctx}-token context with {self.config.max_new_tokens} new tokens")
        responses = [texts[f"responses[{i}]"] for i in range(n)]
        if isinstance(example.query, str):
            query: Query = texts["query"]
        else:
            query = [{**m, "content": texts[f"query[{j}]"]} for j, m in enumerate(example.query)]
        return replace(example, query=query, responses=responses), warnings

    def _request(self, example: Example, order: list[int], k: int, seed: int, hint: int | None = None) -> GenerationRequest:
        cfg = self.config
        messages = judge_messages(example, order, hint=hint, principles=cfg.principles)
        if cfg.format_demo:
            messages = with_format_demo(messages, flip=seed % 2 == 1)
        return GenerationRequest(
            messages=messages,
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
            # A greedy retry would repeat itself, so retries always sample.
            retry = [replace(requests[i], seed=requests[i].seed + 104729 * attempt,
                             temperature=requests[i].temperature or cfg.temperature) for i in failed]
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
