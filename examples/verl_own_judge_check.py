"""Check spct's reward for verl's own judge before training: call `compute_score_async` exactly
as verl 0.9.1's reward loop does when `reward.reward_model.enable=True` (with
`reward_router_address`, host:port), against any OpenAI-compatible server standing in for
verl's router: vLLM, SGLang, or spct's chat server.

    spct serve --api openai --engine fake --model judge --port 8001 &
    python examples/verl_own_judge_check.py --router 127.0.0.1:8001 --k 2

Prints each answer's reward and reward_extra_info; a better answer should score higher.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from spct.integrations.verl import compute_score_async

QUESTION = "At what temperature does water boil at sea level, in Celsius?"
ANSWERS = ["100 degrees Celsius: at sea level (1 atm) pure water boils at 100 °C.", "About 50.", "Depends."]


async def rewards(router: str, options: dict) -> list[dict]:
    # verl awaits one call per sample, all at once, on its reward loop.
    return await asyncio.gather(*(
        compute_score_async(data_source="demo", solution_str=answer, ground_truth=None,
                            extra_info={"question": QUESTION}, reward_router_address=router,
                            reward_model_tokenizer=None, **options)
        for answer in ANSWERS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--router", required=True, help="host:port of the judge server (what verl passes)")
    ap.add_argument("--k", type=int, default=1, help="judgments voted per answer")
    ap.add_argument("--max-new-tokens", type=int, default=512)
    args = ap.parse_args()
    options = {"k": args.k, "max_new_tokens": args.max_new_tokens}
    for answer, reward in zip(ANSWERS, asyncio.run(rewards(args.router, options)), strict=True):
        print(json.dumps({"answer": answer, **reward}, ensure_ascii=False))


if __name__ == "__main__":
    main()
