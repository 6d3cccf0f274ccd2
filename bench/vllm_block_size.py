"""vLLM's KV block on CPU: its own default (128 tokens) against spct's (32), on the shipped judge's default path.

    nice -n 5 .venv-vllm/bin/python bench/vllm_block_size.py --data runs/grm/data/hh/heldout.jsonl --n 8

One process starts two vLLM CPU engines on the same model, the same KV-cache size and the same
dtype, one with `block_size=128` and one with spct's default, and judges the same pairs on both
the way `spct judge` reads the shipped judge (pointwise, anchored readout): greedy (k = 1), then
k samples of each response. Each workload runs once untimed on each engine, then the two take
turns `--repeats` times; the figure is the ratio of their median times, measured in this one
run. Greedy judgments must come out the same on both engines (same text, expected scores within
1e-3): the block size changes which tokens the prefix cache reuses, not what is computed.
Why the block matters: the prefix cache reuses whole blocks only, and the readout sends about
11 one-token requests per judgment that differ only in their last token.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="spct-grm-135m")
    ap.add_argument("--data", required=True, help="pairs (JSONL or .jsonl.gz)")
    ap.add_argument("--n", type=int, default=8, help="pairs (default: 8)")
    ap.add_argument("--k", type=int, default=4, help="samples of each response in the sampled workload (default: 4)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--kv-cache-gib", type=float, default=2.0, help="each engine's KV cache (default: 2)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from spct.backends import EngineConfig, load_backend
    from spct.data import read_examples
    from spct.judge import GenerativeRewardModel, JudgeConfig

    examples = read_examples(args.data)[0][: args.n]
    config = EngineConfig(args.model, "vllm", dtype="float32", kv_cache_gib=args.kv_cache_gib)
    engines = {"block 128": load_backend(config, block_size=128), "spct default": load_backend(config)}
    blocks = {name: b.llm.llm_engine.vllm_config.cache_config.block_size for name, b in engines.items()}

    def judge(name: str, k: int) -> tuple[float, list]:
        grm = GenerativeRewardModel(engines[name], JudgeConfig(k=k, policy="pointwise", readout="anchored",
                                                               max_new_tokens=args.max_new_tokens))
        t = time.perf_counter()
        rewards = grm.judge(examples, batch_size=len(examples))
        return time.perf_counter() - t, rewards

    result = {"bench": "vllm_block_size", "model": args.model, "pairs": len(examples), "k": args.k,
              "blocks": blocks, "load_before": round(os.getloadavg()[0], 2)}
    for workload, k in (("greedy", 1), (f"k{args.k}", args.k)):
        first = {name: judge(name, k)[1] for name in engines}  # untimed: warms both engines for this workload
        if k == 1:
            a, b = ([j for r in first[name] for j in r.judgments] for name in engines)
            result["greedy_same_text"] = sum(x.text == y.text for x, y in zip(a, b, strict=True))
            result["greedy_judgments"] = len(a)
            result["greedy_max_expected_diff"] = round(max(abs(p - q) for x, y in zip(a, b, strict=True)
                                                           for p, q in zip(x.expected or [], y.expected or [], strict=False)), 5)
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(args.repeats):
            for name in engines:
                times[name].append(judge(name, k)[0])
        med = {name: statistics.median(ts) for name, ts in times.items()}
        result[workload] = {**{name: round(s, 1) for name, s in med.items()},
                            "speedup": round(med["block 128"] / med["spct default"], 2),
                            "rounds_s": {name: [round(t, 1) for t in ts] for name, ts in times.items()}}
        print(json.dumps({workload: result[workload]}), flush=True)
    result["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    main()
