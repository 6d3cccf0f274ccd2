"""Server-side listwise grouping under OpenRLHF's real client pattern, on a simulated engine.

OpenRLHF >= 0.9.1 (checked against 0.11.0, `openrlhf/utils/agent.py`) rewards each rollout as
soon as it is generated: `SingleTurnAgentExecutor.execute` calls
`_fetch_rewards_via_http([query], [prompt], [label])`, one POST per rollout, many at once, each
attempt in a fresh HTTP session with a 180 s total timeout, retried 5 times 1 s apart on any
error and never told about Retry-After. This script replays that pattern against `spct serve`
(uvicorn in a thread, 127.0.0.1): P prompts x G rollouts, every rollout finishing its
(simulated) generation at a random time in [0, --gen-s], then posting its own request.

The engine is FakeBackend with a simulated cost per generation call (`--batch-ms`), per
judgment (`--judgment-ms`) and per response shown (`--response-ms`), so the figures measure
the server's batching and grouping, not a model; accuracy needs a real model. For each server
setting it reports wall time, rollouts rewarded per second, judgments run, mean responses per
judgment, latency and failed rollouts (a failed rollout is a None reward: a trainer crash).

    nice -n 19 python bench/openrlhf_grouping.py [--prompts 32 --group 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_server import CostlyFake, serve  # noqa: E402  (a sibling bench script)

from spct.judge import GenerativeRewardModel  # noqa: E402
from spct.serve import ServerConfig, create_app  # noqa: E402


class ListwiseCostFake(CostlyFake):
    """CostlyFake that also pays per response shown: a listwise prompt is longer."""

    def __init__(self, batch_s: float, item_s: float, response_s: float):
        super().__init__(batch_s, item_s)
        self.response_s = response_s

    def generate(self, requests):
        shown = sum(r.messages[-1]["content"].count("[[End of response ") for r in requests)
        time.sleep(self.response_s * shown)
        return super().generate(requests)


async def openrlhf_post(url: str, payload: dict, tries: int = 5) -> dict | None:
    """OpenRLHF's `_post_request`: a fresh session per attempt, 180 s, 5 tries 1 s apart; None if all fail."""
    for _ in range(tries):
        try:
            async with httpx.AsyncClient(timeout=180) as session:
                response = await session.post(url, json=payload)
                response.raise_for_status()
                return response.json()
        except httpx.HTTPError:
            pass
        await asyncio.sleep(1)
    return None


async def rollouts(url: str, prompts: int, group: int, gen_s: float, seed: int) -> tuple[list, float]:
    rng = random.Random(seed)
    chat = "<|im_start|>user\nQuestion {p}: how do I do task {p}?<|im_end|>\n<|im_start|>assistant\n"

    async def one(p: int, g: int) -> tuple[float | None, float, int]:
        await asyncio.sleep(rng.uniform(0, gen_s))  # the policy is still generating
        prompt = chat.format(p=p)
        response = f"Answer {g} to {p}: " + "detail " * rng.randint(1, 12)
        t0 = time.perf_counter()
        out = await openrlhf_post(f"{url}/get_reward", {"query": [prompt + response + "<|im_end|>"],
                                                        "prompts": [prompt], "labels": [""]})
        latency = time.perf_counter() - t0
        if out is None:
            return None, latency, 0
        return out["rewards"][0], latency, int(out["extra_logs"]["group_size"][0])

    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(p, g) for p in range(prompts) for g in range(group)))
    return results, time.perf_counter() - t0


def run(name: str, args: argparse.Namespace, **config) -> dict:
    fake = ListwiseCostFake(args.batch_ms / 1000, args.judgment_ms / 1000, args.response_ms / 1000)
    app = create_app(GenerativeRewardModel(fake), ServerConfig(**config))
    with serve(app) as url:
        results, wall = asyncio.run(rollouts(url, args.prompts, args.group, args.gen_s, args.seed))
        metrics = httpx.get(f"{url}/metrics").json()
    n = len(results)
    latencies = sorted(lat for _, lat, _ in results)
    judgments = sum(len(call) for call in fake.calls)
    row = {
        "setting": name, **{k: v for k, v in config.items()},
        "rollouts": n, "failed_rollouts": sum(r is None for r, _, _ in results),
        "wall_s": round(wall, 2), "rollouts_per_s": round(n / wall, 2),
        "judgments": judgments, "judgments_per_s": round(judgments / wall, 2),
        "mean_responses_per_judgment": round(n / judgments, 2) if judgments else None,
        "generation_calls": len(fake.calls),
        "latency_p50_s": round(statistics.median(latencies), 2),
        "latency_p99_s": round(latencies[min(n - 1, int(0.99 * n))], 2),
        "server_mean_rollout_group_size": metrics["mean_rollout_group_size"],
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--group", type=int, default=8, help="rollouts per prompt (OpenRLHF --n_samples_per_prompt)")
    ap.add_argument("--gen-s", type=float, default=4.0, help="rollouts finish generating uniformly in [0, gen-s] s")
    ap.add_argument("--batch-ms", type=float, default=100.0, help="simulated cost per generation call")
    ap.add_argument("--judgment-ms", type=float, default=100.0, help="simulated cost per judgment in a call")
    ap.add_argument("--response-ms", type=float, default=20.0, help="simulated cost per response shown")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    rows = [
        run("ungrouped (window 0, group 1)", args, group_window_s=0.0, max_group_size=1),
        run("grouped, window 250 ms", args, group_window_s=0.25, max_group_size=args.group),
        run("grouped, window 1000 ms (default)", args, group_window_s=1.0, max_group_size=args.group),
    ]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
