"""Adaptive voting (kept for callers of the earlier API): the stop rules and policy live in spct.policies.

`AdaptiveRewardModel(backend, config, rule, round_size)` is a GenerativeRewardModel whose
policy is `policies.Adaptive`; `Reward.k` is the number of judgments it drew per example.
"""

from __future__ import annotations

from .backends.base import Backend
from .judge import GenerativeRewardModel, JudgeConfig
from .policies import (
    MAX_GAIN,
    RULES,
    Adaptive,
    MetaScorer,
    StopRule,
    adaptive_vote,
    bound_stop,
    exact_stop,
    samples_needed,
    should_stop,
)

__all__ = ["MAX_GAIN", "RULES", "AdaptiveRewardModel", "StopRule", "adaptive_vote", "bound_stop", "exact_stop",
           "samples_needed", "should_stop"]


class AdaptiveRewardModel(GenerativeRewardModel):
    """A GenerativeRewardModel that samples in rounds and stops each example early when allowed."""

    def __init__(self, backend: Backend, config: JudgeConfig | None = None, rule: StopRule | None = None,
                 round_size: int = 1, meta_scorer: MetaScorer | None = None):
        config = config or JudgeConfig()
        super().__init__(backend, config, policy=Adaptive(rule, round_size, meta_scorer, config.k_meta))
