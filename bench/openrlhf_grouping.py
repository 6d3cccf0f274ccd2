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

`--real N` measures accuracy instead, on a real model (the embedded one by default): N HH-RLHF
pairs, the chosen and the rejected response of each posted as two single-rollout requests
(OpenRLHF's pattern), judged ungrouped (each alone, pointwise) and grouped (both in one
judgment); accuracy = the chosen response gets the strictly higher reward.

    nice -n 10 python bench/openrlhf_grouping.py --real 16 [--k 1 --max-new-tokens 64]
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


async def openrlhf_post(url: str, payload: dict, tries: int = 5, timeout: float = 180) -> dict | None:
    """OpenRLHF's `_post_request`: a fresh session per attempt, 180 s, 5 tries 1 s apart; None if all fail."""
    for _ in range(tries):
        try:
            async with httpx.AsyncClient(timeout=timeout) as session:
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
        metrics = httpx.get(f"{url}/metrics/json").json()
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


def _text(query) -> str:
    """A chat query as the plain prompt text a policy would have been given."""
    if isinstance(query, str):
        return query
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in query) + "Assistant: "


def real_accuracy(name: str, args: argparse.Namespace, **config) -> dict:
    """Chosen vs rejected of N HH-RLHF pairs, each response in its own request, on a real model."""
    from spct.backends import EngineConfig, load_backend
    from spct.data import read_examples
    from spct.judge import JudgeConfig

    hh = Path("/work/shared/data/hh-rlhf-harmless/test.jsonl.gz")
    demo = Path(__file__).resolve().parents[1] / "src" / "spct" / "assets" / "hh_rlhf_demo.jsonl"
    examples = read_examples(hh if hh.exists() else demo)[0][: args.real]
    grm = GenerativeRewardModel(load_backend(EngineConfig(args.model, args.engine)), JudgeConfig(k=args.k, max_new_tokens=args.max_new_tokens))
    app = create_app(grm, ServerConfig(**config))

    async def post_all(url: str) -> list[dict | None]:
        bodies = [{"query": [_text(ex.query) + r], "prompts": [_text(ex.query)], "labels": [""]}
                  for ex in examples for r in ex.responses[:2]]
        # A CPU judge can be slower than OpenRLHF's 180 s per attempt: no client timeout here.
        return await asyncio.gather(*(openrlhf_post(f"{url}/get_reward", b, timeout=3600) for b in bodies))

    with serve(app) as url:
        t0 = time.perf_counter()
        outs = asyncio.run(post_all(url))
        wall = time.perf_counter() - t0
        metrics = httpx.get(f"{url}/metrics/json").json()
    rewards = [o["rewards"][0] if o else None for o in outs]
    correct = []
    for i, ex in enumerate(examples):
        a, b = rewards[2 * i], rewards[2 * i + 1]
        best = ex.best[0] if ex.best else 0
        correct.append(a is not None and b is not None and (a > b if best == 0 else b > a))
    row = {"setting": name, **config, "model": args.model, "pairs": len(examples), "k": args.k,
           "max_new_tokens": args.max_new_tokens, "accuracy": round(sum(correct) / len(correct), 3),
           "failed_rollouts": sum(r is None for r in rewards), "wall_s": round(wall, 1),
           "judgments": metrics["judgments"], "mean_rollout_group_size": metrics["mean_rollout_group_size"]}
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
    ap.add_argument("--real", type=int, default=0, help="measure accuracy on N HH-RLHF pairs with a real model")
    ap.add_argument("--model", default="smollm2-135m", help="--real: the judge model")
    ap.add_argument("--engine", default="transformers", help="--real: its engine (fake: a dry run)")
    ap.add_argument("--k", type=int, default=1, help="--real: judgments per example")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="--real: tokens per judgment")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    if args.real:
        rows = [real_accuracy("ungrouped", args, group_window_s=0.0, max_group_size=1, timeout_s=3600),
                real_accuracy("grouped", args, group_window_s=5.0, max_group_size=2, timeout_s=3600)]
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        return
    rows = [
        run("ungrouped (window 0, group 1)", args, group_window_s=0.0, max_group_size=1),
        run("grouped, window 250 ms", args, group_window_s=0.25, max_group_size=args.group),
        run("grouped, window 1000 ms", args, group_window_s=1.0, max_group_size=args.group),
    ]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
