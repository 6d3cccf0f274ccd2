"""GRPO with TRL, rewarded by a spct GRM that judges each prompt's completions together.

In-process (the embedded judge; one tiny step on CPU takes a few minutes):
    python examples/trl_grpo_reward.py
Against a running reward server (`spct serve --k 2` in another shell):
    python examples/trl_grpo_reward.py --url http://127.0.0.1:8000
(--url uses AsyncGRMRewardFunc, which TRL awaits from 1.14 on; spct's train extra needs trl>=1.14.)
"""

from __future__ import annotations

import argparse
import tempfile

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from spct.backends import load_backend
from spct.backends.models import resolve_model
from spct.integrations.trl import AsyncGRMRewardFunc, GRMRewardFunc
from spct.judge import GenerativeRewardModel, JudgeConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=None, help="a running `spct serve` (default: judge in-process)")
    ap.add_argument("--steps", type=int, default=1)
    args = ap.parse_args()

    num_generations = 4
    if args.url:
        reward = AsyncGRMRewardFunc(url=args.url, num_generations=num_generations)
    else:
        grm = GenerativeRewardModel(load_backend("smollm2-135m"), JudgeConfig(k=1, max_new_tokens=16))
        reward = GRMRewardFunc(grm, num_generations=num_generations)

    prompts = ["How do I keep basil alive indoors?", "What is a polite way to decline an invitation?"]
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in prompts]})
    policy, _ = resolve_model("smollm2-135m")  # the embedded model doubles as a tiny policy
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(output_dir=out, max_steps=args.steps, per_device_train_batch_size=num_generations,
                            num_generations=num_generations, max_completion_length=16, beta=0.08,  # the paper's KL
                            learning_rate=1e-6, logging_steps=1, report_to=[], use_cpu=True, save_strategy="no")
        trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=config, train_dataset=dataset)
        trainer.train()
    for row in trainer.state.log_history:
        if "reward" in row:
            print(f"step {row.get('step')}: mean reward {row['reward']:.2f} (judge score 1..10), reward std {row.get('reward_std', 0):.2f}")


if __name__ == "__main__":
    main()
