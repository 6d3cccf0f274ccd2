"""How many GRPO groups the reward server judges whole, under RL-like arrival patterns (fake engine).

Every rollout is its own POST to /get_reward (OpenRLHF >= 0.9.1's pattern, `openrlhf_post`: a
fresh session per attempt, 180 s, 5 tries), P prompts x G rollouts, the rollouts' arrival
times spread evenly over `spread` seconds in a shuffled (seeded) order, so the rollouts of one
prompt arrive seconds apart. A prompt's group is *whole* when every one of its G rollouts
reports `extra_logs.group_size == G`: with G rollouts per prompt, that means all G were judged
in one listwise judgment. The engine is FakeBackend with a simulated cost, so the figures
measure grouping, not a model.

    nice -n 19 python bench/group_whole.py [--json bench/group_whole.json] [--scrape bench/group_whole_metrics.txt]

Scenarios: the server's defaults with no G given (two waves: the first teaches the server G,
the second is judged as each group completes), the issue's pattern of 16 prompts x 4 over 3 s
under the defaults and under the old defaults (1 s window, groups of at most 8), a queue far
smaller than the fan-out, `--group-size` given with rollouts spread over 30 s, two servers
fed alternately (rollout by rollout) versus routed by a hash of the prompt, and verl's reward
loop (8 reward workers, each sample to one at random) with spct's listwise manager in-process
versus through the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_server import serve  # noqa: E402  (sibling bench scripts)
from openrlhf_grouping import ListwiseCostFake, openrlhf_post  # noqa: E402

from spct.integrations.client import GroupGatherer, RewardClient, ServerGrouper  # noqa: E402
from spct.judge import GenerativeRewardModel  # noqa: E402
from spct.serve import ServerConfig, create_app  # noqa: E402

CHAT = "<|im_start|>user\nQuestion {p}: how do I do task {p}?<|im_end|>\n<|im_start|>assistant\n"


def _fake() -> ListwiseCostFake:
    return ListwiseCostFake(batch_s=0.05, item_s=0.02, response_s=0.005)


async def wave(urls: list[str], route: Callable[[int, int], int], prompts: range, group: int, spread: float,
               seed: int) -> list[tuple[int, int, float]]:
    """Post every rollout at its arrival time; per rollout (prompt, judged group size, latency)."""
    rng = random.Random(seed)
    slots = [(p, g) for p in prompts for g in range(group)]
    rng.shuffle(slots)
    step = spread / len(slots)

    async def one(i: int, p: int, g: int) -> tuple[int, int, float]:
        await asyncio.sleep(i * step)  # the policy is still generating this rollout
        prompt = CHAT.format(p=p)
        body = {"query": [prompt + f"Answer {g}: " + "detail " * rng.randint(1, 12) + "<|im_end|>"],
                "prompts": [prompt], "labels": [""]}
        t0 = time.perf_counter()
        out = await openrlhf_post(f"{urls[route(p, g)]}/get_reward", body)
        size = int(out["extra_logs"]["group_size"][0]) if out else 0  # 0: the rollout failed
        return p, size, time.perf_counter() - t0

    return await asyncio.gather(*(one(i, p, g) for i, (p, g) in enumerate(slots)))


def summary(results: list[tuple[int, int, float]], group: int) -> dict:
    by_prompt: dict[int, list[int]] = {}
    for p, size, _ in results:
        by_prompt.setdefault(p, []).append(size)
    whole = sum(all(s == group for s in sizes) for sizes in by_prompt.values())
    latencies = sorted(lat for _, _, lat in results)
    # Judged groups by size: each judgment of n responses is reported by n rollouts.
    judged = {n: c // n for n, c in sorted(Counter(s for _, s, _ in results if s).items())}
    return {"groups_whole": f"{whole}/{len(by_prompt)}", "judged_group_sizes": judged,
            "failed_rollouts": sum(s == 0 for _, s, _ in results),
            "latency_p50_s": round(statistics.median(latencies), 2), "latency_max_s": round(latencies[-1], 2)}


def scenario(name: str, configs: list[dict], waves: list[tuple[int, float]], group: int, seed: int,
             route: Callable[[int, int], int] = lambda p, g: 0, scrape: Path | None = None) -> list[dict]:
    """Run `waves` (prompts, spread) one after the other against fresh servers; a row per wave."""
    apps = [create_app(GenerativeRewardModel(_fake()), ServerConfig(**c)) for c in configs]
    rows, first = [], 0
    with ExitStack() as stack:
        urls = [stack.enter_context(serve(app)) for app in apps]  # each under its own uvicorn on 127.0.0.1
        for i, (prompts, spread) in enumerate(waves):
            t0 = time.perf_counter()
            results = asyncio.run(wave(urls, route, range(first, first + prompts), group, spread, seed + i))
            row = {"scenario": name, "wave": i + 1, "rollouts": len(results), "prompts": prompts, "G": group,
                   "spread_s": spread, "wall_s": round(time.perf_counter() - t0, 1), **summary(results, group)}
            row["servers"] = [httpx.get(f"{u}/metrics/json").json() for u in urls]
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "servers"}), flush=True)
            first += prompts
        if scrape is not None:
            scrape.write_text(httpx.get(f"{urls[0]}/metrics").text)
    return rows


def verl_workers(name: str, via_server: bool, workers: int, prompts: int, group: int, spread: float,
                 seed: int) -> dict:
    """verl's reward loop: each sample goes to one of `workers` reward managers (at random), each
    on an event loop of its own, and is scored there with spct's listwise gatherer: in-process
    (GroupGatherer, a 1 s window per worker) or through the server (ServerGrouper, /v1/rollout)."""
    rng = random.Random(seed)
    slots = [(p, g) for p in range(prompts) for g in range(group)]
    rng.shuffle(slots)
    step = spread / len(slots)
    shares: list[list[tuple[int, int, int]]] = [[] for _ in range(workers)]
    for i, (p, g) in enumerate(slots):
        shares[rng.randrange(workers)].append((i, p, g))
    grm = GenerativeRewardModel(_fake())

    def worker(share: list[tuple[int, int, int]], url: str | None) -> list[tuple[int, int, float]]:
        gatherer = (ServerGrouper(RewardClient(url=url), group) if url is not None
                    else GroupGatherer(RewardClient(grm), group, window_s=1.0))

        async def one(i: int, p: int, g: int) -> tuple[int, int, float]:
            await asyncio.sleep(max(0.0, start + i * step - time.perf_counter()))
            t0 = time.perf_counter()
            _, size = await gatherer.score(f"uid{p}", f"Question {p}: how do I do task {p}?", f"Answer {g}: detail")
            return p, size, time.perf_counter() - t0

        async def run() -> list[tuple[int, int, float]]:
            return await asyncio.gather(*(one(*s) for s in share))

        return asyncio.run(run())

    with ExitStack() as stack:
        url = stack.enter_context(serve(create_app(grm, ServerConfig()))) if via_server else None
        start = time.perf_counter()  # arrival times count from here
        with ThreadPoolExecutor(workers) as pool:
            results = [r for part in pool.map(lambda s: worker(s, url), shares) for r in part]
    row = {"scenario": name, "wave": 1, "rollouts": len(results), "prompts": prompts, "G": group, "spread_s": spread,
           "workers": workers, "wall_s": round(time.perf_counter() - start, 1), **summary(results, group)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the rows here")
    ap.add_argument("--scrape", default=None, help="write the defaults scenario's final /metrics scrape here")
    ap.add_argument("--only", default=None, help="run only the scenarios whose name contains this")
    args = ap.parse_args()
    scrape = Path(args.scrape) if args.scrape else None

    def hashed(p: int, g: int) -> int:
        return zlib.crc32(CHAT.format(p=p).encode()) % 2

    scenarios = [  # name, ServerConfig arguments per server, waves (prompts, spread s), routing
        ("defaults, no G given", [{}], [(8, 6.0), (8, 6.0)], None),
        ("16 x 4 over 3 s, defaults", [{}], [(16, 3.0)], None),
        ("16 x 4 over 3 s, window 1 s, groups <= 8", [{"group_window_s": 1.0, "max_group_size": 8}], [(16, 3.0)], None),
        ("16 x 4 over 3 s, --max-queue 8", [{"max_queue": 8}], [(16, 3.0)], None),
        ("16 x 4 over 30 s, --group-size 4", [{"group_size": 4}], [(16, 30.0)], None),
        ("2 servers, alternating per rollout", [{}, {}], [(16, 3.0)], lambda p, g: g % 2),
        ("2 servers, routed by prompt", [{}, {}], [(16, 3.0)], hashed),
    ]
    rows = []
    for name, configs, waves, route in scenarios:
        if args.only is None or args.only in name:
            rows += scenario(name, configs, waves, 4, args.seed, route or (lambda p, g: 0),
                             scrape if name.startswith("defaults") else None)
    for name, via_server in (("verl, 8 reward workers, in-process gatherer", False),
                             ("verl, 8 reward workers, through spct serve", True)):
        if args.only is None or args.only in name:
            rows.append(verl_workers(name, via_server, 8, 16, 4, 3.0, args.seed))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
