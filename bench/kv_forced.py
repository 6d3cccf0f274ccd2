"""The forced score line with KV-cache reuse vs re-reading, and voting@8 vs one greedy judgment (CPU).

    python bench/kv_forced.py [--n 16] [--max-new-tokens 160] [--repeats 3] [--out bench/kv_forced.json]

Loads the embedded SmolLM2-135M once (transformers engine) and judges the same HH-RLHF pairs
(bench/engines.py `examples`: the first --n of the shared test split, else the shipped demo
pairs) greedily, alternating `reuse_kv` off and on --repeats times:

- forced phase: wall time spent forcing score lines, re-reading prompt + judgment (off) vs
  continuing from the free phase's KV cache (on), timed around the two engine methods that do
  it; the judgments must be identical (checked and reported), so the ratio compares like with like;
- whole judging call: the same runs end to end;
- voting@8 vs greedy: `sample(examples, 8)` vs `sample(examples, 1)` with reuse on.

Medians over the repeats are written to --out as JSON and printed. It loads the real model:
run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from engines import examples

from spct.backends.transformers import TransformersBackend
from spct.judge import GenerativeRewardModel, JudgeConfig


def timed_methods(backend: TransformersBackend, names: tuple[str, ...], spent: list[float]) -> None:
    """Wrap backend methods so the seconds spent in them add up in spent[0]."""
    for name in names:
        original = getattr(backend, name)

        def wrapper(*args, _original=original, **kwargs):
            t0 = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t0

        setattr(backend, name, wrapper)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=16, help="HH-RLHF pairs judged (default: 16)")
    p.add_argument("--max-new-tokens", type=int, default=160, help="token budget of one judgment (default: 160)")
    p.add_argument("--batch-size", type=int, default=8, help="sequences per generate call (default: 8)")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs per setting (default: 3)")
    p.add_argument("--out", default=str(Path(__file__).with_name("kv_forced.json")), help="JSON results")
    args = p.parse_args()

    exs = examples(args.n)
    backend = TransformersBackend("smollm2-135m", device="cpu", batch_size=args.batch_size)
    grm = GenerativeRewardModel(backend, JudgeConfig(k=1, max_new_tokens=args.max_new_tokens))
    spent = [0.0]
    timed_methods(backend, ("_force_from_cache", "generate_forced"), spent)
    grm.sample(exs[:2], 1)  # warm-up: first-call allocations and the score-token table

    runs: dict[bool, list[dict]] = {False: [], True: []}
    texts: dict[bool, list[str]] = {}
    for _ in range(args.repeats):
        for reuse in (False, True):
            backend.reuse_kv = reuse
            spent[0] = 0.0
            t0 = time.perf_counter()
            judgments = [j for js in grm.sample(exs, 1) for j in js]
            runs[reuse].append({"total_s": time.perf_counter() - t0, "forced_phase_s": spent[0],
                                "forced": sum(j.forced for j in judgments)})
            texts[reuse] = [j.text for j in judgments]

    def med(reuse: bool, key: str) -> float:
        return statistics.median(r[key] for r in runs[reuse])

    backend.reuse_kv = True
    t1 = [0.0] * args.repeats
    t8 = [0.0] * args.repeats
    for r in range(args.repeats):
        t0 = time.perf_counter()
        grm.sample(exs, 1)
        t1[r] = time.perf_counter() - t0
        t0 = time.perf_counter()
        grm.sample(exs, 8)
        t8[r] = time.perf_counter() - t0

    result = {
        "examples": len(exs), "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
        "repeats": args.repeats, "torch_threads": torch.get_num_threads(),
        "forced_judgments": runs[True][0]["forced"],
        "same_judgments": texts[True] == texts[False],
        "forced_phase_s": {"reread": med(False, "forced_phase_s"), "kv_reuse": med(True, "forced_phase_s")},
        "forced_phase_reread_over_kv_reuse": med(False, "forced_phase_s") / max(med(True, "forced_phase_s"), 1e-9),
        "total_s": {"reread": med(False, "total_s"), "kv_reuse": med(True, "total_s")},
        "total_reread_over_kv_reuse": med(False, "total_s") / med(True, "total_s"),
        "greedy_s": statistics.median(t1), "voting8_s": statistics.median(t8),
        "voting8_over_greedy": statistics.median(t8) / statistics.median(t1),
        "runs": {"reread": runs[False], "kv_reuse": runs[True]},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
