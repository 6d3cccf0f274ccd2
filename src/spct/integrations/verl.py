"""verl rewards from a spct GRM: reward functions and a listwise reward manager.

Checked against verl 0.9.1. Current verl reads the reward function from
`reward.custom_reward_function.{path,name}` and passes `reward_kwargs` to it (new keys need
Hydra's `+`):

    reward.custom_reward_function.path=pkg://spct.integrations.verl \\
    reward.custom_reward_function.name=compute_score_async \\
    +reward.custom_reward_function.reward_kwargs.url=http://127.0.0.1:8000

(verl <= 0.8 reads the top-level `custom_reward_function.*` instead; a file path to this module
works in both.) verl passes the decoded response (`solution_str`), the dataset's
`ground_truth` and its `extra_info`, not the prompt: put the question in
`extra_info["question"]` (or `extra_info["prompt"]`) when preparing the data. The reward
functions judge each response alone (one score, 1..10).

To judge all responses of a prompt together (listwise, as the paper's pointwise GRM does),
use the reward manager `SPCTListwiseRewardManager`, registered in verl's reward-manager
registry as "spct_listwise" when this module is imported:

    reward.reward_manager.source=importlib \\
    reward.reward_manager.module.path=pkg://spct.integrations.verl \\
    reward.reward_manager.name=SPCTListwiseRewardManager

verl scores every sample in a task of its own; the manager holds each response until the
`actor_rollout_ref.rollout.n` responses with its GRPO `uid` have arrived and judges them in one
example. With a server (`url`) the server holds them (its /v1/rollout, keyed by uid), so a group
spread over verl's reward workers is still judged whole; in-process each worker holds its own
share for up to `group_window_s`. It reads the prompt from the sample itself. Options (url,
api_key, model, k, max_new_tokens, group_window_s) come as keyword arguments (`reward_kwargs`)
or from the environment (see RewardClient.from_env).

verl's own judge (reward.reward_model.enable=True): verl then serves the judge model itself (vLLM
or SGLang behind a router) and passes every reward function and reward manager the router's
address (`reward_router_address`, host:port) and the judge's tokenizer (`reward_model_tokenizer`).
Given those and no `url`, both the functions and the manager judge through that router with
spct's prompts, parsing and voting (spct.integrations.served_judge), so no second server is
needed. Router options (reward_kwargs): k, max_new_tokens, model, guided, context_length,
timeout_s, max_retries; what is not given is read from the router's /v1/models.

Where every sampled judgment of a response fails to parse, its reward is `failure_score`
(default 1, the lowest score, so text that derails the judge never pays) with `spct_failed` = 1
in verl's reward extra info; `failure_score: null` raises RewardError instead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from spct.integrations.client import (
    GroupGatherer,
    RewardClient,
    RewardError,
    ServerGrouper,
    group_equal,
    scatter,
)
from spct.integrations.served_judge import served_judge_client
from spct.rollouts import untemplate
from spct.score_line import MIN_SCORE

log = logging.getLogger(__name__)

CLIENT_OPTIONS = ("url", "api_key", "model", "k", "max_new_tokens")
ROUTER_OPTIONS = ("api_key", "model", "k", "max_new_tokens", "guided", "context_length", "timeout_s", "max_retries")
_clients: dict[tuple, RewardClient] = {}
# verl calls reward functions from many threads at once: the first calls must not each load a model.
_clients_lock = threading.Lock()
_failures = itertools.count(1)


def _cached(key: tuple, build: Callable[[], RewardClient]) -> RewardClient:
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:  # another thread may have built it while this one waited
                client = _clients[key] = build()
    return client


def _client(kwargs: dict) -> RewardClient:
    options = {k: kwargs[k] for k in CLIENT_OPTIONS if kwargs.get(k) is not None}
    return _cached(tuple(sorted(options.items())), lambda: RewardClient.from_env(**options))


def _judge_client(kwargs: dict) -> RewardClient:
    """A running `spct serve` when `url` is given, else the judge verl serves (its reward router,
    when verl passes one), else a judge in this process."""
    address = kwargs.get("reward_router_address")
    if kwargs.get("url") is not None or address is None:
        return _client(kwargs)
    tokenizer = kwargs.get("reward_model_tokenizer")
    options = {k: kwargs[k] for k in ROUTER_OPTIONS if kwargs.get(k) is not None}
    # verl passes the same tokenizer object on every call of a worker: its identity is its key.
    key = ("router", address, id(tokenizer), *sorted(options.items()))
    return _cached(key, lambda: served_judge_client(f"http://{address}/v1", tokenizer=tokenizer, **options))


def _question(extra_info: Any, i: int | None = None) -> Any:
    where = "extra_info" if i is None else f"extra_infos[{i}]"
    if isinstance(extra_info, dict):
        for key in ("question", "prompt", "query"):
            if extra_info.get(key):
                return extra_info[key]
    raise RewardError(f"{where} has no 'question' (or 'prompt'): the judge needs the question the response answers")


def _carried(score: float | None, kwargs: dict) -> tuple[float, int]:
    """(reward, failed): a judged score as is; where every judgment failed, `failure_score` and 1.

    verl cannot carry a missing reward (an exception ends the training step), so the failure
    becomes a number by default, counted in `spct_failed` and in this log.
    """
    if score is not None:
        return score, 0
    failure_score = kwargs.get("failure_score", MIN_SCORE)
    if failure_score is None:
        raise RewardError("no valid judgment: every sampled judgment failed to parse")
    n = next(_failures)
    if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th, ... failure: seen, not flooding the log
        log.warning("every sampled judgment of a response failed to parse (%d so far in this process); its reward "
                    "is failure_score=%s. If this is frequent, raise max_new_tokens or let the judge server force "
                    "the score line (guided)", n, failure_score)
    return float(failure_score), 1


def _reward(score: float | None, kwargs: dict) -> dict:
    reward, failed = _carried(score, kwargs)
    return {"score": reward, "spct_failed": failed}


def compute_score(data_source: str, solution_str: str, ground_truth: Any = None, extra_info: dict | None = None,
                  **kwargs: Any) -> dict:
    """{"score": mean judge score 1..10, "spct_failed": 0 or 1} for one response (verl runs this in threads)."""
    [[score]] = _judge_client(kwargs).judge_groups([(_question(extra_info), [solution_str])])
    return _reward(score, kwargs)


async def compute_score_async(data_source: str, solution_str: str, ground_truth: Any = None,
                              extra_info: dict | None = None, **kwargs: Any) -> dict:
    """The same as a coroutine: verl >= 0.9 awaits it on its reward loop instead of using a thread.

    With verl's own judge enabled, verl adds `reward_router_address` and `reward_model_tokenizer`:
    the response is then judged by that judge through spct's prompts, parsing and voting.
    """
    client = await asyncio.to_thread(_judge_client, kwargs)  # the first call may load a model or ask the router
    [[score]] = await client.ajudge_groups([(_question(extra_info), [solution_str])])
    return _reward(score, kwargs)


def compute_score_batch(data_sources: list[str], solution_strs: list[str], ground_truths: list[Any],
                        extra_infos: list[dict], **kwargs: Any) -> list[dict]:
    """For verl <= 0.8's `batch` reward manager: responses to the same question are judged together."""
    given = {"data_sources": data_sources, "solution_strs": solution_strs, "ground_truths": ground_truths,
             "extra_infos": extra_infos}
    sizes = {name: len(v) for name, v in given.items() if v is not None}
    if len(set(sizes.values())) > 1:  # zip would silently judge some responses against another's question
        raise ValueError("compute_score_batch needs one item per response in every list; got "
                         + ", ".join(f"{n} {name}" for name, n in sizes.items()))
    if extra_infos is None:
        raise RewardError("compute_score_batch got no extra_infos: the judge needs each response's question, in "
                          "extra_info['question'] (or 'prompt')")
    questions = [_question(x, i) for i, x in enumerate(extra_infos)]
    groups = group_equal(questions)
    scores = scatter(groups, _judge_client(kwargs).judge_groups([(questions[g[0]], [solution_strs[i] for i in g])
                                                                 for g in groups]),
                     len(solution_strs))
    return [_reward(s, kwargs) for s in scores]


class ListwiseScorer:
    """What the verl reward manager does with one sample, without verl: find its prompt and
    response, and score it together with the other responses of its group."""

    def __init__(self, tokenizer: Any, gatherer: GroupGatherer | ServerGrouper, options: dict | None = None):
        self.tokenizer = tokenizer
        self.gatherer = gatherer
        self.options = options or {}  # reward_kwargs: failure_score

    @classmethod
    def for_verl(cls, tokenizer: Any, options: dict, group_size: int) -> ListwiseScorer:
        """The manager's scorer: `options` are the reward_kwargs plus what verl hands the manager
        (reward_router_address, reward_model_tokenizer); see _judge_client for which judge."""
        client = _judge_client(options)
        # verl spreads one prompt's samples over its reward workers: only a server sees them all.
        gatherer = (ServerGrouper(client, group_size) if client.url is not None
                    else GroupGatherer(client, group_size, float(options.get("group_window_s", 1.0))))
        return cls(tokenizer, gatherer, options)

    def query_of(self, item: Any, prompt_ids: Any) -> Any:
        """The prompt: the raw chat if verl kept it, else extra_info's question, else the decoded prompt."""
        raw = item.non_tensor_batch.get("raw_prompt")
        if raw is not None and len(raw) and all(isinstance(m, dict) for m in raw):
            return [{"role": m["role"], "content": m["content"]} for m in raw]
        try:
            return _question(item.non_tensor_batch.get("extra_info"))
        except RewardError:
            return untemplate(self.tokenizer.decode(prompt_ids, skip_special_tokens=False))

    async def score(self, item: Any) -> dict:
        prompts, responses, mask = item.batch["prompts"], item.batch["responses"], item.batch["attention_mask"]
        prompt_length = prompts.shape[-1]
        prompt_ids = prompts[prompt_length - int(mask[:prompt_length].sum()):]  # prompts are left-padded
        response_ids = responses[: int(mask[prompt_length:].sum())]
        response = self.tokenizer.decode(response_ids, skip_special_tokens=True)
        query = self.query_of(item, prompt_ids)
        uid = item.non_tensor_batch.get("uid")
        score, size = await self.gatherer.score(str(uid) if uid is not None else repr(query), query, response)
        reward, failed = _carried(score, self.options)
        return {"reward_score": reward, "reward_extra_info": {"spct_group_size": size, "spct_failed": failed}}


def _rollout_n(config: Any) -> int:
    try:
        return int(config.actor_rollout_ref.rollout.n)
    except (AttributeError, KeyError, TypeError, ValueError):
        return 1


def _reward_kwargs(config: Any) -> dict:
    try:
        return dict(config.reward.custom_reward_function.get("reward_kwargs") or {})
    except (AttributeError, KeyError):
        return {}


try:  # the reward manager exists only where verl (>= 0.9, its reward loop) is installed
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
    from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER, register
except ImportError:
    RewardManagerBase = None

if RewardManagerBase is not None:

    class SPCTListwiseRewardManager(RewardManagerBase):
        """verl reward manager that judges the responses of each GRPO group together."""

        def __init__(self, config: Any, tokenizer: Any, compute_score: Any = None, reward_router_address: str | None = None,
                     reward_model_tokenizer: Any = None, **kwargs: Any):
            super().__init__(config, tokenizer, compute_score)
            options = {**_reward_kwargs(config), "reward_router_address": reward_router_address,
                       "reward_model_tokenizer": reward_model_tokenizer}
            self.scorer = ListwiseScorer.for_verl(tokenizer, options, _rollout_n(config))

        async def run_single(self, data: Any) -> dict:
            return await self.scorer.score(data[-1])

    # A file path loaded twice runs this module twice; register the first class only.
    if "spct_listwise" not in REWARD_MANAGER:
        register("spct_listwise")(SPCTListwiseRewardManager)
