"""OpenRLHF custom reward file: `--reward.remote_url /path/to/spct/integrations/openrlhf.py`.

OpenRLHF loads this file and calls `reward_func(queries, prompts, labels)`, where each query
is the decoded prompt + response. Responses that share a prompt are judged together, as
`spct serve`'s /get_reward does. Configure with environment variables: SPCT_REWARD_URL (+
SPCT_API_KEY) to call a running `spct serve`, else SPCT_MODEL (default: the embedded model),
SPCT_K, SPCT_MAX_NEW_TOKENS and the other SPCT_<FIELD> settings (RewardClient.from_env) to
judge in-process. (To skip this file, point `--reward.remote_url` at the server's http://HOST:PORT/get_reward directly.) The flag is
OpenRLHF >= 0.10.2's; older versions call it `--remote_rm_url`.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from spct.integrations.client import RewardClient, RewardError, group_equal, scatter
from spct.rollouts import check_counts, split_rollouts, untemplate
from spct.score_line import normalise

_client: RewardClient | None = None
# OpenRLHF calls reward_func from many threads at once: the first calls must not each load a model.
_client_lock = threading.Lock()


def _shared_client() -> RewardClient:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:  # another thread may have built it while this one waited
                _client = RewardClient.from_env()
    return _client


def rewards_for(client: RewardClient, queries: list[str], prompts: list[str], labels: list[Any] | None = None) -> dict:
    """OpenRLHF's reward dict: rewards (mean judge score, 1..10), scores (0..1) and extra_logs."""
    check_counts(queries, prompts, labels)
    pairs = split_rollouts(queries, prompts)
    groups = group_equal([p for p, _ in pairs])
    judged = [(untemplate(pairs[idx[0]][0]), [pairs[i][1] for i in idx]) for idx in groups]
    scores = scatter(groups, client.judge_groups(judged), len(pairs))
    failed = [i for i, s in enumerate(scores) if s is None]
    if failed:
        raise RewardError(f"no valid judgment for query {failed}: every sampled judgment failed to parse")
    rewards = torch.tensor(scores, dtype=torch.float32)
    return {"rewards": rewards, "scores": normalise(rewards),
            "extra_logs": {"group_size": torch.tensor([float(len(g)) for g in groups for _ in g])}}


def reward_func(queries: list[str], prompts: list[str], labels: list[Any] | None = None, **kwargs: Any) -> dict:
    return rewards_for(_shared_client(), queries, prompts, labels)
