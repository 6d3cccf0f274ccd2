"""GenerativeRewardModel: the judge = a judging format + a backend + a sampling policy.

Every judgment in spct is made here: the format renders the prompt and parses the generation,
the backend generates, and the policy decides how many judgments to draw and how to vote.
Each sample shows the responses in a fresh order drawn from an RNG seeded by (seed, example
id, sample index), so the orders are reproducible and independent of batching, and position
bias averages out across samples. Scores are mapped back to the original order before
voting. k = 1 is greedy; k > 1 samples at the configured temperature (0.5 by default, the
paper's setting). Sampled text is reproducible for the same inputs, settings and seed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from .backends.base import Backend, GenerationRequest, ScoreQuery, expected_readout_unsupported
from .data import Example, InputError, Judgment, Query, Reward
from .defaults import GREEDY_TEMPERATURE, MAX_NEW_TOKENS, SAMPLE_TEMPERATURE
from .format import Format, JudgingFormat, to_original
from .policies import (
    RULES,
    Adaptive,
    BothOrders,
    MetaScorer,
    Pointwise,
    Policy,
    StopRule,
    Voting,
    is_greedy,
)
from .score_line import (
    MAX_SCORE,
    MIN_SCORE,
    SCORE_PREFIX,
    expected_score,
    last_box_start,
    score_candidates,
)
from .settings import (
    MAX_K,
    check_values,
    non_negative_float,
    positive_int,
    retry_count,
    sample_count,
    setting,
)
from .voting import check_rating_scale

log = logging.getLogger(__name__)

TRUNCATION_NOTE = "\n[... {n} characters cut to fit the model's context ...]"

__all__ = ["ContextOverflow", "GenerativeRewardModel", "JudgeConfig", "MetaScorer", "Shown", "sample_order"]

#: One judgment to make: (example, sample index, shown order, hint position or None).
Shown = tuple[Example, int, list[int], int | None]


def fixed_order(sample: int, n: int) -> list[int]:
    """The both-orders policy's order: as given for even samples, reversed for odd ones."""
    return list(range(n)) if sample % 2 == 0 else list(range(n))[::-1]


def sample_order(seed: int, example_id: str, sample: int, n: int) -> list[int]:
    digest = hashlib.sha256(f"{seed}|{example_id}|{sample}".encode()).digest()
    order = list(range(n))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


POLICIES = ("voting", "both-orders", "pointwise")
READOUTS = ("sampled", "expected", "anchored")


@dataclass
class JudgeConfig:
    """How the judge judges; each field's default and help text are the CLI's too (`spct.settings`)."""

    k: int = setting(1, "judgments sampled per example and voted on; k=1 is one greedy judgment", type=sample_count)
    temperature: float = setting(SAMPLE_TEMPERATURE, "sampling temperature when k > 1", type=non_negative_float)
    max_new_tokens: int = setting(MAX_NEW_TOKENS, "token budget of one judgment", type=positive_int)
    seed: int = setting(0, "seeds response shuffles and sampling")
    constrain: bool = setting(True, "force a parseable score line where the model does not write one")
    retries: int = setting(0, "re-sample a failed judgment up to this many times", type=retry_count)
    principles: bool = setting(True, "write principles before the critique")
    k_meta: int | None = setting(None, "with a meta RM: judgments it keeps for the vote (default: k/2)", type=positive_int)
    adaptive: str | None = setting(None, "sample in rounds and stop an example once more samples cannot (exact) or are "
                                         "unlikely to (bound) change its winner; Reward.k is then the samples drawn "
                                         "(default: off)", choices=RULES)
    round_size: int = setting(1, "adaptive voting: samples drawn per round", type=positive_int)
    format_demo: bool = setting(False, "show a demonstrated judgment before the query when sampling (bootstrapping RFT "
                                       "data from a base model)")
    policy: str = setting("voting", "voting: each judgment shows the responses in a fresh shuffled order; both-orders: "
                                    "half the judgments show them as given and half reversed (at least 2; greedy when "
                                    "k <= 2), so neither position is favoured; pointwise: each response judged alone, k "
                                    "judgments each, rewarded by its mean score", choices=POLICIES)
    readout: str = setting("sampled", "a judgment's score per response: the integer it wrote (sampled, the paper's rule); "
                                      "its expected score under the model's probabilities of 1..10 at its score line "
                                      "(expected: no ties); or the mean of that and the expected score read straight "
                                      "after the prompt, before any analysis, where `spct train-verdict` trains it "
                                      "(anchored). The last two need an engine that gives log-probabilities",
                           choices=READOUTS)

    def __post_init__(self) -> None:
        try:
            check_values(self)
        except ValueError as e:
            raise InputError(str(e), field=str(e).split()[0]) from None
        if self.policy not in POLICIES:
            raise InputError(f"unknown policy {self.policy!r}; choose from {', '.join(POLICIES)}", field="policy")
        if self.readout not in READOUTS:
            raise InputError(f"unknown readout {self.readout!r}; choose from {', '.join(READOUTS)}", field="readout")
        if self.policy != "voting" and self.adaptive:
            raise InputError(f"adaptive voting draws shuffled orders; it cannot be combined with policy {self.policy}",
                             field="adaptive")

    @classmethod
    def for_model(cls, model: str, **settings) -> JudgeConfig:
        """The config `model` was trained to be read with (its `spct_judging.json`: policy, readout); `settings` win.

        A judge trained by `spct train-verdict` is read pointwise by its expected score; other models
        recommend nothing and get the paper's defaults. The CLI does the same for `--model`.
        """
        from .backends.models import recommended_judging

        return cls(**{**recommended_judging(model), **settings})


def readable_by(config: JudgeConfig, backend: Backend) -> tuple[JudgeConfig, str | None]:
    """`config` as `backend` can read it, and a note when that changed it.

    For a readout a model only *recommends* (its spct_judging.json): an engine without
    log-probabilities reads the integers the model writes instead. The policy stays. An expected
    or anchored readout asked for explicitly is not passed here; the judge refuses it on such an engine.
    """
    if config.readout == "sampled" or backend.reads_logprobs:
        return config, None
    return replace(config, readout="sampled"), (f"the {backend.name} engine gives no log-probabilities, so the model "
                                                 "is read by the scores it writes (readout sampled)")


def policy_for(config: JudgeConfig, meta_scorer: MetaScorer | None = None) -> Policy:
    """The sampling policy a config asks for: adaptive voting, else voting@k (meta-guided with a scorer)."""
    if config.adaptive:
        return Adaptive(StopRule(config.adaptive), config.round_size, meta_scorer, config.k_meta)
    if config.policy == "both-orders":
        return BothOrders(meta_scorer, config.k_meta)
    if config.policy == "pointwise":
        return Pointwise(meta_scorer, config.k_meta)
    return Voting(meta_scorer, config.k_meta)


def check_examples(examples: Sequence[Example]) -> None:
    """Raise InputError (`where [field]: why`) for an item that is no Example, or an Example changed into one
    that cannot be judged after it was built (`ex.responses = "abc"`; construction checks the rest)."""
    for i, ex in enumerate(examples):
        if not isinstance(ex, Example):
            hint = " (spct.data.example_from_dict builds one from a dict)" if isinstance(ex, dict) else ""
            raise InputError(f"examples[{i}] is a {type(ex).__name__}, not an Example{hint}")
        try:
            ex.check()
        except InputError as e:
            where = f"{ex.source or f'examples[{i}]'}" + (f" [{e.field}]" if e.field else "")
            raise InputError(f"{where}: {e}", e.field) from None


class ContextOverflow(InputError):
    """An example too large for the model's context however its texts are cut: a bad input line, not a failed run.

    `why` is the reason and remedy without the location; str() prefixes `file:line [field]`.
    """

    def __init__(self, example: Example, field: str, why: str):
        super().__init__(f"{example.source or f'example {example.id}'} [{field}]: {why}", field)
        self.why = why


class GenerativeRewardModel:
    """The judge: `format` renders and parses, `backend` generates, `policy` decides how many and how to vote.

    By default the format is the principles + critique judgment (`config.principles`) and the
    policy follows the config (voting@k, meta-guided with a `meta_scorer`, adaptive with
    `config.adaptive`); pass `format=` or `policy=` to replace either.
    """

    def __init__(self, backend: Backend, config: JudgeConfig | None = None, meta_scorer: MetaScorer | None = None,
                 *, format: Format | None = None, policy: Policy | None = None):
        self.backend = backend
        self.config = config or JudgeConfig()
        if self.config.readout != "sampled" and not backend.reads_logprobs:
            raise InputError(expected_readout_unsupported(backend.name), field="readout")
        self.format = format or JudgingFormat(principles=self.config.principles, format_demo=self.config.format_demo)
        self.policy = policy or policy_for(self.config, meta_scorer)

    @property
    def meta_scorer(self) -> MetaScorer | None:
        return getattr(self.policy, "meta_scorer", None)

    # -- preparing prompts ------------------------------------------------------------------
    def fit_to_context(self, example: Example) -> tuple[Example, list[str]]:
        """Cut over-long texts so prompt + generation fit the model's context window.

        The judge's own instructions and the token budget come first; the query's turns and the
        responses share what is left, the shortest keeping all of theirs and the longest sharing
        the rest evenly. Cut texts end in a visible note; each cut is returned as a warning
        that names the example's file:line and the field. An example that cannot fit however
        its texts are cut raises ContextOverflow, whose advice names the remedy that makes room.
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
        # seed 0: the format demo (if any) in its default orientation, as long as the other.
        bare = self.format.sample_messages(replace(example, query="", responses=[""] * n), list(range(n)), None, 0)
        overhead = self.backend.count_tokens("\n".join(m["content"] for m in bare))
        # Slack for the chat template, turn labels, a hint line and the forced score line.
        slack = 64 + 4 * n + 8 * len(texts)
        least = 32 * len(texts)  # what each text keeps at the least once cut
        room = ctx - self.config.max_new_tokens - overhead - slack
        if room < least:
            raise self._overflow(example, spare=ctx - overhead - slack - least)
        where = example.source or f"example {example.id}"
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

    def _overflow(self, example: Example, spare: int) -> ContextOverflow:
        """Why `example` cannot fit the context even with its texts cut short, and the remedy that makes room.

        `spare` is what the context leaves for generation once every text is cut to its least:
        lowering max_new_tokens helps only when that still holds a score line.
        """
        ctx, budget, n = self.backend.context_length, self.config.max_new_tokens, len(example.responses)
        turns = 1 if isinstance(example.query, str) else len(example.query)
        field = "responses" if n >= turns else "query"
        score_line = self.backend.count_tokens(SCORE_PREFIX + ", ".join([str(MAX_SCORE)] * n) + "}")
        if spare >= score_line:
            return ContextOverflow(example, field, f"max_new_tokens={budget} leaves too little of the model's {ctx}-token "
                                                   f"context for the query and {n} response(s); lower max_new_tokens to "
                                                   f"{spare} or less, or use a model with a larger context")
        fixes = (["judge fewer responses at a time (split the example)"] if n > 1 else []) + (
            ["keep fewer turns of the query"] if turns > 1 else []) + ["use a model with a larger context"]
        return ContextOverflow(example, field, f"too large for the model's {ctx}-token context: the prompt for {n} "
                                               f"response(s) and {turns} query turn(s) needs about {ctx - spare} tokens "
                                               f"even with every text cut short, before any generation (lowering "
                                               f"max_new_tokens cannot make room); {', or '.join(fixes)}")

    def _request(self, example: Example, order: list[int], *, greedy: bool, seed: int, hint: int | None = None,
                 format: Format | None = None) -> GenerationRequest:
        cfg, fmt = self.config, format or self.format
        return GenerationRequest(
            messages=fmt.sample_messages(example, order, hint, seed),
            n=1,
            temperature=GREEDY_TEMPERATURE if greedy else cfg.temperature,
            max_new_tokens=cfg.max_new_tokens,
            seed=seed,
            constraint=fmt.constraint(len(order)) if cfg.constrain else None,
        )

    def _seed(self, example_id: str, sample: int) -> int:
        return int.from_bytes(hashlib.sha256(f"gen|{self.config.seed}|{example_id}|{sample}".encode()).digest()[:4], "big")

    # -- judging ------------------------------------------------------------------------------
    def judge_shown(self, items: Sequence[Shown], *, greedy: bool, format: Format | None = None) -> list[Judgment]:
        """One judgment per item, in the item's shown order, in one backend call; failures retried if configured.

        Examples are cut to fit the model's context first. `format` overrides the judge's own
        (the probes' prompt variants, the baselines' verdict formats).
        """
        fmt = format or self.format
        fitted: dict[int, Example] = {}
        for ex, _, _, _ in items:
            if id(ex) not in fitted:
                fitted[id(ex)], warnings = self.fit_to_context(ex)
                for w in warnings:
                    log.warning(w)
        shown = [(fitted[id(ex)], s, order, hint) for ex, s, order, hint in items]
        requests = [self._request(ex, order, greedy=greedy, seed=self._seed(ex.id, s), hint=hint, format=fmt)
                    for ex, s, order, hint in shown]
        gens = self.backend.generate(requests) if requests else []
        judgments = [fmt.to_judgment(ex, s, order, g[0]) for (ex, s, order, _), g in zip(shown, gens, strict=True)]
        for attempt in range(1, self.config.retries + 1):
            failed = [i for i, j in enumerate(judgments) if not j.ok]
            if not failed:
                break
            # A greedy retry would repeat itself, so retries always sample.
            retry = [replace(requests[i], seed=requests[i].seed + 104729 * attempt,
                             temperature=requests[i].temperature or self.config.temperature) for i in failed]
            for i, g in zip(failed, self.backend.generate(retry), strict=True):
                ex, s, order, _ = shown[i]
                judgments[i] = fmt.to_judgment(ex, s, order, g[0])
        if self.config.readout != "sampled":
            self.read_expected(judgments, requests, anchored=self.config.readout == "anchored")
        return judgments

    def read_expected(self, judgments: list[Judgment], requests: list[GenerationRequest], anchored: bool = False) -> None:
        """Set `expected` on each parsed judgment: per response, the mean score under the model's probabilities.

        For the score at shown position p, the model reads its own judgment up to the final box
        and the scores it wrote before p, and each value v in MIN..MAX is scored as the text
        `v,` (or `v}` for the last), so 1 and 10 are told apart; the probabilities of the values
        are normalised among themselves.

        `anchored`: the same scores are also read at a score line placed straight after the prompt
        (the position `spct train-verdict` trains), and each response gets the mean of the two
        readings. Why: the embedded judge's verdict read there is right on 63% of held-out HH pairs
        and 55% after its own analysis, whose pointwise text often critiques a response it was not
        shown (bench/RESULTS.md); the mean keeps the analysis in the verdict without trusting it alone.
        """
        todo: list[tuple[Judgment, list[int]]] = []  # a judgment and the indices of its readings in `queries`
        queries: list[ScoreQuery] = []
        straight: dict[str, int] = {}  # k samples of one prompt share one reading straight after it
        for j, req in zip(judgments, requests, strict=True):
            box = last_box_start(j.text) if j.ok else None
            if box is None:
                continue
            shown = [j.scores[i] for i in j.order]  # type: ignore[index]
            n = len(shown)
            cands = score_candidates(n, shown)
            at = [len(queries)]
            queries.append(ScoreQuery(req.messages, j.text[:box], cands))
            if anchored:
                key = json.dumps([req.messages, cands])
                if key not in straight:
                    straight[key] = len(queries)
                    queries.append(ScoreQuery(req.messages, SCORE_PREFIX, cands))
                at.append(straight[key])
            todo.append((j, at))
        if not queries:
            return
        width = MAX_SCORE - MIN_SCORE + 1
        read = self.backend.continuation_logprobs(queries)
        for j, at in todo:
            readings = [[expected_score(read[q][p : p + width]) for p in range(0, len(read[q]), width)] for q in at]
            shown_expected = [round(sum(r[p] for r in readings) / len(at), 4) for p in range(len(readings[0]))]
            j.expected = to_original(shown_expected, j.order)  # type: ignore[arg-type]

    def sample(self, examples: list[Example], k: int, *, hints: dict[str, int] | None = None, first_sample: int = 0,
               greedy: bool | None = None, orders: str = "shuffled") -> list[list[Judgment]]:
        """k judgments per example (one backend call for the whole batch), numbered from `first_sample`.

        `hints` maps example id -> original index of the best response (hinted sampling).
        `greedy` defaults to `is_greedy(k, orders)`. `orders`: "shuffled" (a seeded shuffle per sample) or "both"
        (as given for even samples, reversed for odd ones).
        """
        items: list[Shown] = []
        for ex in examples:
            for s in range(first_sample, first_sample + k):
                order = (fixed_order(s, len(ex.responses)) if orders == "both"
                         else sample_order(self.config.seed, ex.id, s, len(ex.responses)))
                hint = order.index(hints[ex.id]) if hints and ex.id in hints else None
                items.append((ex, s, order, hint))
        judgments = self.judge_shown(items, greedy=is_greedy(k, orders) if greedy is None else greedy)
        return [judgments[i * k : (i + 1) * k] for i in range(len(examples))]

    def aggregate(self, example: Example, judgments: list[Judgment]) -> Reward:
        """The policy's reward from these judgments (meta-guided when the policy has a meta scorer)."""
        return self.policy.aggregate(example, judgments)

    def judge(self, examples: Iterable[Example], k: int | None = None, batch_size: int = 8) -> list[Reward]:
        if isinstance(examples, Example | str | dict):  # list() of these would judge their fields or characters
            raise InputError(f"judge takes a list of Examples, got one {type(examples).__name__}; wrap it in a list")
        return list(self.judge_iter(list(examples), k, batch_size))

    MAX_K = MAX_K  # the most judgments per example (spct.settings)

    def judge_iter(self, examples: list[Example], k: int | None = None, batch_size: int = 8) -> Iterator[Reward]:
        """Rewards in input order, `batch_size` examples per policy round (so callers can append as they go)."""
        k = self.config.k if k is None else k  # not `k or`: k=0 is an error, not the default
        if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= self.MAX_K):
            raise InputError(f"k must be in 1..{self.MAX_K}, got {k!r}", "k")  # a negative k would judge nothing, silently
        if not (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1):
            raise InputError(f"batch_size must be >= 1, got {batch_size!r}", "batch_size")  # -1 would judge nothing
        check_examples(examples)
        check_rating_scale(examples)
        for b in range(0, len(examples), batch_size):
            yield from self.policy.judge(self.sample, examples[b : b + batch_size], k)
