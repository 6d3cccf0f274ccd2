"""verl's reward hooks, called the way verl calls them (checked against verl 0.9.1).

verl >= 0.9 (`main_ppo`) reads `reward.custom_reward_function.*`; new keys need Hydra's `+`:

    reward.custom_reward_function.path=pkg://spct.integrations.verl
    reward.custom_reward_function.name=compute_score_async      # or compute_score (sync, run in threads)
    +reward.custom_reward_function.reward_kwargs.url=http://127.0.0.1:8000   # optional: a running `spct serve`

Keep the question in each row's extra_info["question"]. To judge each GRPO group together
(listwise), add spct's reward manager (registered in verl's registry as "spct_listwise"):

    reward.reward_manager.source=importlib
    reward.reward_manager.module.path=pkg://spct.integrations.verl
    reward.reward_manager.name=SPCTListwiseRewardManager

With reward_kwargs.url the manager leaves the grouping to the server (POST /v1/rollout, keyed by
the sample's uid, G = actor_rollout_ref.rollout.n), so a group spread over verl's reward
workers (reward.num_workers, 8 by default) is still judged whole.

verl <= 0.8 reads the top-level keys instead (`custom_reward_function.path=<file of
spct/integrations/verl.py>`, `custom_reward_function.name=compute_score`, or
`compute_score_batch` with `reward_model.reward_manager=batch`).

    python examples/verl_reward.py [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import asyncio

from spct.integrations.verl import compute_score, compute_score_async


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=None, help="a running `spct serve` (default: judge in-process)")
    args = ap.parse_args()
    options = {"url": args.url} if args.url else {"max_new_tokens": 32}
    info = {"question": "What is the boiling point of water at sea level in Celsius?"}
    print("sync:", compute_score("demo", "100 degrees Celsius.", None, info, **options))

    async def group() -> list[dict]:
        # verl >= 0.9 awaits the reward of every sample concurrently on its reward loop.
        answers = ["100 degrees Celsius.", "About 50 degrees.", "It depends on the kettle."]
        return await asyncio.gather(*(compute_score_async("demo", a, None, info, **options) for a in answers))

    print("async:", asyncio.run(group()))


if __name__ == "__main__":
    main()
