"""verl's custom reward hook, called the way verl calls it.

In a verl config:
    custom_reward_function.path=$(python -c "import spct.integrations.verl as m; print(m.__file__)")
    custom_reward_function.name=compute_score          # or compute_score_batch with the batch reward manager
    custom_reward_function.reward_kwargs.url=http://127.0.0.1:8000   # optional: use a running `spct serve`
and keep the question in each row's extra_info["question"].

    python examples/verl_reward.py [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse

from spct.integrations.verl import compute_score, compute_score_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=None, help="a running `spct serve` (default: judge in-process)")
    args = ap.parse_args()
    options = {"url": args.url} if args.url else {"max_new_tokens": 32}
    info = {"question": "What is the boiling point of water at sea level in Celsius?"}
    print("single:", compute_score("demo", "100 degrees Celsius.", None, info, **options))
    answers = ["100 degrees Celsius.", "About 50 degrees.", "It depends on the kettle."]
    print("batch:", compute_score_batch(["demo"] * 3, answers, [None] * 3, [info] * 3, **options))


if __name__ == "__main__":
    main()
