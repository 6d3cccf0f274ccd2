"""Adapters that let RL frameworks use a spct GRM as their reward: TRL, OpenRLHF and verl.

Each adapter works in-process (a GenerativeRewardModel in the trainer's process) or against a
running `spct serve` (its URL), through `client.RewardClient`.
"""

from .client import RewardClient, RewardError

__all__ = ["RewardClient", "RewardError"]
