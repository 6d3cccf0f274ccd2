"""TRL `GRPOTrainer` reward functions that judge each prompt's completions together (listwise).

GRPOTrainer calls `f(prompts, completions, **columns)` with the completions of one prompt in
consecutive runs of `num_generations`. A pointwise GRM scores all responses of one query in a
single judgment, so each run is judged as one example and the scores within a group are
directly comparable, which is what GRPO's group-relative advantage needs.

    from spct.integrations.trl import GRMRewardFunc, AsyncGRMRewardFunc
    reward = GRMRewardFunc(grm, num_generations=4)                 # in-process
    reward = AsyncGRMRewardFunc(url="http://127.0.0.1:8000")       # against `spct serve`
    GRPOTrainer(..., reward_funcs=[reward])

The reward is the mean judge score (1..10); None (TRL reads NaN) where every judgment failed.
AsyncGRMRewardFunc needs TRL >= 1.14: older TRL recognises only `async def` functions as async
(`inspect.iscoroutinefunction`) and would call this object without awaiting it.
`reward_func` at the bottom is a ready module-level function for `trl grpo --reward_funcs
spct.integrations.trl.reward_func`, configured by environment (see RewardClient.from_env).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from ..judge import GenerativeRewardModel
from .client import Group, RewardClient, group_runs, scatter

log = logging.getLogger(__name__)


def _text(completion: Any) -> str:
    """A completion is a string, or (conversational) a list of messages: join their contents."""
    if isinstance(completion, str):
        return completion
    return "\n".join(m["content"] for m in completion if isinstance(m.get("content"), str))


def _query(prompt: Any) -> Any:
    return prompt if isinstance(prompt, str) else [{"role": m["role"], "content": m["content"]} for m in prompt]


_warned_split = False


def _groups(prompts: Sequence[Any], completions: Sequence[Any], size: int | None) -> tuple[list[list[int]], list[Group]]:
    global _warned_split
    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts and {len(completions)} completions; expected one prompt per completion")
    runs = group_runs(prompts, size)
    if size and not _warned_split and any(len(r) < size for r in runs):
        # With several processes TRL cuts the generation batch into per-process slices.
        _warned_split = True
        log.warning("a group of %d generations reached this process in part (%s completions); each part is judged "
                    "on its own. Make per_device_train_batch_size x steps_per_generation a multiple of "
                    "num_generations to keep groups whole (docs/serving.md)", size, min(len(r) for r in runs))
    return runs, [(_query(prompts[idx[0]]), [_text(completions[i]) for i in idx]) for idx in runs]


class GRMRewardFunc:
    """Synchronous reward function for GRPOTrainer."""

    def __init__(self, grm: GenerativeRewardModel | None = None, *, url: str | None = None, api_key: str | None = None,
                 k: int | None = None, num_generations: int | None = None, client: RewardClient | None = None):
        self.client = client or RewardClient(grm, url=url, api_key=api_key, k=k)
        self.num_generations = num_generations
        self.__name__ = "spct_grm"

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        runs, groups = _groups(prompts, completions, self.num_generations)
        return scatter(runs, self.client.judge_groups(groups), len(prompts))


class AsyncGRMRewardFunc(GRMRewardFunc):
    """The same, as a coroutine: GRPOTrainer (TRL >= 1.14) runs async reward functions concurrently on its own loop."""

    async def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        runs, groups = _groups(prompts, completions, self.num_generations)
        return scatter(runs, await self.client.ajudge_groups(groups), len(prompts))


_default: GRMRewardFunc | None = None
_default_lock = threading.Lock()


def reward_func(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
    """Module-level reward function configured from the environment (SPCT_REWARD_URL or SPCT_MODEL, SPCT_K)."""
    global _default
    if _default is None:
        with _default_lock:  # concurrent first calls build one client, not one model each
            if _default is None:
                _default = GRMRewardFunc(client=RewardClient.from_env())
    return _default(prompts, completions, **columns)
