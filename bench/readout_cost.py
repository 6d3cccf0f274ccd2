"""What the expected and anchored readouts cost on top of sampling, on the same judgments (vLLM).

    nice -n 5 .venv-vllm/bin/python bench/readout_cost.py --dtype float32 \
        --data runs/grm/data/hh/heldout.jsonl --n 4 --k 4 --repeats 2 [--block-size 128]

N pairs are judged pointwise (each response alone), k judgments of each at the judge's sampling
temperature, once. The judgments and the requests that produced them are kept; then
`read_expected` reads them again and again, `expected` (each judgment at its own score line) and
`anchored` (that, plus one reading straight after the prompt per response) taking turns. Each
reading prints its time, the requests and prompt tokens it sent vLLM and how many of those
tokens came from the prefix cache; last, the median time of each and their ratio. Why:
voting@8 under `anchored` took twice the wall time of `expected` on the same 128 HH pairs
(bench/RESULTS.md, seventh stop), while the anchored readout adds only one short reading per
response.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from copy import deepcopy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="spct-grm-135m")
    ap.add_argument("--data", required=True, help="labelled pairs (JSONL or .jsonl.gz)")
    ap.add_argument("--n", type=int, default=8, help="pairs (default: 8)")
    ap.add_argument("--k", type=int, default=8, help="judgments per response (default: 8)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--block-size", type=int, default=None, help="vLLM's KV block in tokens (default: spct's, 32 on CPU)")
    args = ap.parse_args()

    from spct.backends import EngineConfig, load_backend
    from spct.data import read_examples
    from spct.judge import GenerativeRewardModel, JudgeConfig

    examples = read_examples(args.data)[0][: args.n]
    options = {"block_size": args.block_size} if args.block_size else {}
    backend = load_backend(EngineConfig(args.model, "vllm", dtype=args.dtype, enforce_eager=args.enforce_eager),
                           **options)
    grm = GenerativeRewardModel(backend, JudgeConfig(k=args.k, policy="pointwise", readout="expected",
                                                     max_new_tokens=args.max_new_tokens))
    captured: list[tuple[list, list]] = []
    original = grm.read_expected
    grm.read_expected = lambda judgments, requests, anchored=False: captured.append((deepcopy(judgments), requests))
    t = time.perf_counter()
    grm.judge(examples, batch_size=len(examples))
    sample_s = time.perf_counter() - t
    (judgments, requests), = captured

    # What each reading asks of the engine: prompt tokens, and how many of them came from the prefix cache.
    tally = {"requests": 0, "prompt_tokens": 0, "cached_tokens": 0}
    generate = backend.llm.generate

    def counted(prompts, params, **kw):
        outs = generate(prompts, params, **kw)
        tally["requests"] += len(outs)
        tally["prompt_tokens"] += sum(len(o.prompt_token_ids) for o in outs)
        tally["cached_tokens"] += sum(o.num_cached_tokens or 0 for o in outs)
        return outs

    backend.llm.generate = counted

    def read(anchored: bool) -> dict:
        js = deepcopy(judgments)
        for key in tally:
            tally[key] = 0
        t = time.perf_counter()
        original(js, requests, anchored)
        row = {"readout": "anchored" if anchored else "expected", "s": round(time.perf_counter() - t, 2), **tally,
               "load": round(os.getloadavg()[0], 2)}
        print(json.dumps(row), flush=True)
        return row

    block = backend.llm.llm_engine.vllm_config.cache_config.block_size
    print(json.dumps({"bench": "readout_cost", "engine": "vllm", "pairs": len(examples), "k": args.k, "block_size": block,
                      "judgments": len(judgments), "parsed": sum(j.ok for j in judgments),
                      "sample_s": round(sample_s, 1)}), flush=True)
    rows = [read(anchored) for _ in range(args.repeats) for anchored in (False, True)]
    med = {name: statistics.median(r["s"] for r in rows if r["readout"] == name) for name in ("expected", "anchored")}
    print(json.dumps({"expected_s": med["expected"], "anchored_s": med["anchored"],
                      "anchored_over_expected": round(med["anchored"] / med["expected"], 2)}), flush=True)


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    main()
