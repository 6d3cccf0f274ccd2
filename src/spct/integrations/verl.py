"""verl custom reward: `custom_reward_function.path=.../spct/integrations/verl.py`, `name=compute_score`.

verl passes the decoded response (`solution_str`), the dataset's `ground_truth` and its
`extra_info`, not the prompt; put the question in `extra_info["question"]` (or
`extra_info["prompt"]`) when preparing the data. A single response is judged pointwise (one
score 1..10). `compute_score_batch` is for verl's batch reward manager: responses that share
a question are judged together. Options come as keyword arguments
(`custom_reward_function.reward_kwargs`: url, api_key, model, k, max_new_tokens) or from the
environment (see RewardClient.from_env).
"""

from __future__ import annotations

from typing import Any

from spct.integrations.client import RewardClient, RewardError, group_equal, scatter

_clients: dict[tuple, RewardClient] = {}


def _client(kwargs: dict) -> RewardClient:
    options = {k: kwargs[k] for k in ("url", "api_key", "model", "k", "max_new_tokens") if kwargs.get(k) is not None}
    key = tuple(sorted(options.items()))
    if key not in _clients:
        _clients[key] = RewardClient.from_env(**options)
    return _clients[key]


def _question(extra_info: Any, i: int | None = None) -> Any:
    where = "extra_info" if i is None else f"extra_infos[{i}]"
    if isinstance(extra_info, dict):
        for key in ("question", "prompt", "query"):
            if extra_info.get(key):
                return extra_info[key]
    raise RewardError(f"{where} has no 'question' (or 'prompt'): the judge needs the question the response answers")


def compute_score(data_source: str, solution_str: str, ground_truth: Any = None, extra_info: dict | None = None,
                  **kwargs: Any) -> dict:
    """{"score": mean judge score 1..10} for one response."""
    [[score]] = _client(kwargs).judge_groups([(_question(extra_info), [solution_str])])
    if score is None:
        raise RewardError("no valid judgment: every sampled judgment failed to parse")
    return {"score": score}


def compute_score_batch(data_sources: list[str], solution_strs: list[str], ground_truths: list[Any],
                        extra_infos: list[dict], **kwargs: Any) -> list[dict]:
    """Scores for a batch; responses to the same question are judged together (listwise)."""
    questions = [_question(x, i) for i, x in enumerate(extra_infos)]
    groups = group_equal(questions)
    scores = scatter(groups, _client(kwargs).judge_groups([(questions[g[0]], [solution_strs[i] for i in g]) for g in groups]),
                     len(solution_strs))
    failed = [i for i, s in enumerate(scores) if s is None]
    if failed:
        raise RewardError(f"no valid judgment for response {failed}: every sampled judgment failed to parse")
    return [{"score": s} for s in scores]
