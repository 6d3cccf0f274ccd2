"""spct: generalist generative reward models with Self-Principled Critique Tuning.

Data flows one way: data -> prompts -> backends -> parsing -> judge -> voting -> rewards ->
{eval, serve, train}. See docs/architecture.md.
"""

from .data import Example, Judgment, Reward
from .judge import GenerativeRewardModel, JudgeConfig

__version__ = "0.1.0"
__all__ = ["Example", "Judgment", "Reward", "GenerativeRewardModel", "JudgeConfig", "__version__"]
