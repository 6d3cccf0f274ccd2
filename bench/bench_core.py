"""Judging-core figures on this machine: model load (first = GGUF conversion, then cached),
tokens/s of one judgment, and k = 4 shuffled samples generated as one batch vs one at a time.

Run: nice -n 10 python bench/bench_core.py [--max-new-tokens 32] [--k 4]
All figures come from one run, so the batched/sequential ratio compares like with like.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch

from spct.backends.base import GenerationRequest
from spct.data import Example
from spct.judge import GenerativeRewardModel, JudgeConfig, sample_order
from spct.prompts import judge_messages

EXAMPLE = Example(
    "bench",
    "My landlord hasn't returned my deposit after two months. What can I do?",
    [
        "Send a written demand letter citing your local deposit law and a deadline; if that fails, file in small-claims court.",
        "Just wait, they usually pay eventually.",
        "Check your lease, document the flat's condition with photos, and contact a tenants' union for advice.",
        "You could stop paying rent at your next place to make up for it.",
    ],
    best=[0],
)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")

    with tempfile.TemporaryDirectory() as cache:
        os.environ["SPCT_CACHE"] = cache  # empty: the first load converts the GGUF
        from spct.backends.transformers import TransformersBackend

        _, first = timed(lambda: TransformersBackend("smollm2-135m"))
        backend, cached = timed(lambda: TransformersBackend("smollm2-135m"))
    print(f"model load, first (GGUF -> safetensors into an empty cache): {first:.1f} s")
    print(f"model load, cached:                                          {cached:.1f} s")

    def request(order: list[int], temperature: float, seed: int) -> GenerationRequest:
        return GenerationRequest(judge_messages(EXAMPLE, order), temperature=temperature,
                                 max_new_tokens=args.max_new_tokens, seed=seed)

    backend.generate([request([0, 1, 2, 3], 0.0, 0)])  # warm-up (allocations, kernels)
    [[one]], t_one = timed(lambda: backend.generate([request([0, 1, 2, 3], 0.0, 0)]))
    prompt_tokens = backend.count_tokens(backend.render(request([0, 1, 2, 3], 0.0, 0).messages))
    print(f"one judgment, greedy: {one.new_tokens} new tokens after a {prompt_tokens}-token prompt in {t_one:.2f} s "
          f"= {one.new_tokens / t_one:.1f} tokens/s")

    k = args.k
    reqs = [request(sample_order(0, EXAMPLE.id, s, 4), 0.5, 100 + s) for s in range(k)]
    batched, t_batch = timed(lambda: backend.generate(reqs))
    sequential, t_seq = timed(lambda: [backend.generate([r])[0] for r in reqs])
    n_batch = sum(g[0].new_tokens for g in batched)
    n_seq = sum(g[0].new_tokens for g in sequential)
    print(f"k={k} shuffled samples, one batch:  {n_batch} tokens in {t_batch:.2f} s = {n_batch / t_batch:.1f} tokens/s")
    print(f"k={k} shuffled samples, one by one: {n_seq} tokens in {t_seq:.2f} s = {n_seq / t_seq:.1f} tokens/s")
    print(f"batched vs sequential: {t_seq / t_batch:.2f}x faster wall time, "
          f"{(n_batch / t_batch) / (n_seq / t_seq):.2f}x the throughput")

    grm = GenerativeRewardModel(backend, JudgeConfig(k=k, max_new_tokens=args.max_new_tokens))
    [reward], t_judge = timed(lambda: grm.judge([EXAMPLE]))
    forced = sum(j.forced for j in reward.judgments)
    print(f"full judge call, k={k}, constrained score line: {t_judge:.2f} s, rewards {reward.rewards}, "
          f"{reward.failed} failed, {forced}/{k} score lines forced")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
