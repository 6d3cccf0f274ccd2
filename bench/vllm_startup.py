"""vLLM's start-up on CPU: eager against torch.compile (cold and warm cache), in one run.

Run it in the environment made by `make vllm-cpu` (scripts/setup_vllm_cpu.sh), on an otherwise quiet machine:

    nice -n 10 .venv-vllm/bin/python bench/vllm_startup.py [--model smollm2-135m --n 8 --k 4] [--json out.json]

On CPU vLLM 0.32 compiles the model with torch.compile (inductor) at start-up unless
`enforce_eager` is set, and caches what it compiled (VLLM_CACHE_ROOT and the inductor cache),
so a second start of the same model and settings is faster than the first. Three modes, each
in a fresh subprocess (an engine per process, as `spct judge` has):

- eager: `enforce_eager=True` (no compilation; with the KV cache size set, vLLM also skips its
  warm-up pass);
- compile-cold: vLLM's default, with empty compile caches (temporary VLLM_CACHE_ROOT and
  TORCHINDUCTOR_CACHE_DIR);
- compile-warm: the same again, reusing the caches compile-cold filled;
- eager-all-cores: eager with no core kept for vLLM's scheduler (VLLM_CPU_NUM_OF_RESERVED_CPU=0;
  vLLM keeps one per worker and binds the model's threads to the rest, one of the 2 cores here):
  `--modes eager eager-all-cores` runs just the pair.

Reported per mode: start-up seconds (building the spct backend: tokenizer, config, vLLM
engine), the time to judge the same N pairs k times (greedy for k = 1, else shuffled samples)
and the judgments a second, the KV-cache size spct chose, and the 1-minute load average
before and after (a busy machine slows both). The KV cache is spct's auto-sized one in every
mode, so the modes differ only in compilation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

# bench/: run as `python bench/vllm_startup.py`
from vllm_cpu import add_job_args, child_row, demo_pairs

MODES = ("eager", "compile-cold", "compile-warm", "eager-all-cores")


def run_mode(args: argparse.Namespace) -> dict:
    """One engine in this process: start it, judge the demo pairs, measure both."""
    from spct.backends import EngineConfig, load_backend
    from spct.judge import GenerativeRewardModel, JudgeConfig

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    engine = EngineConfig(args.model, "vllm", enforce_eager=args.mode.startswith("eager"))
    backend = load_backend(engine, max_model_len=args.max_model_len)
    startup_s = time.perf_counter() - t0
    examples = demo_pairs(args.n)
    grm = GenerativeRewardModel(backend, JudgeConfig(k=args.k, max_new_tokens=args.max_new_tokens))
    t0 = time.perf_counter()
    rewards = grm.judge(examples, args.k, batch_size=len(examples))
    judge_s = time.perf_counter() - t0
    judgments = sum(len(r.judgments) for r in rewards)
    return {
        "mode": args.mode, "model": args.model, "startup_s": round(startup_s, 1), "judge_s": round(judge_s, 1),
        "judgments": judgments, "judgments_per_s": round(judgments / judge_s, 3),
        "kv_cache_gib": round(backend.engine_args["kv_cache_memory_bytes"] / (1 << 30), 2),
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=MODES, default=None, help="run one mode here (default: --modes, each in a subprocess)")
    ap.add_argument("--modes", choices=MODES, nargs="+", default=MODES, help="modes to run, in this order (default: all)")
    add_job_args(ap, n=8, k=4, n_help="demo pairs to judge after start-up")
    args = ap.parse_args()
    if args.mode:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")  # spct's KV-cache line
        print(json.dumps(run_mode(args)), flush=True)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="vllm-startup-") as caches:
        # compile-cold and compile-warm share these fresh caches; eager compiles nothing.
        env = {**os.environ, "VLLM_CACHE_ROOT": f"{caches}/vllm", "TORCHINDUCTOR_CACHE_DIR": f"{caches}/inductor"}
        for mode in args.modes:
            reserved = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"} if mode == "eager-all-cores" else {}
            argv = [sys.executable, __file__, "--mode", mode, "--model", args.model, "--max-model-len",
                    str(args.max_model_len), "--n", str(args.n), "--k", str(args.k), "--max-new-tokens", str(args.max_new_tokens)]
            rows.append(child_row(argv, {"mode": mode}, {**env, **reserved}))
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    main()
