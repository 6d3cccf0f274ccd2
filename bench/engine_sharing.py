"""Shared prefill in the transformers engine (issue 21): what voting@k costs against one judgment, with ratios from one run.

    python bench/engine_sharing.py [--model smollm2-135m] [--n 8] [--k 8] [--max-new-tokens 64]
                                   [--batch-size 16] [--repeat 3] [--device cpu] [--out FILE]

On the first --n HH-RLHF pairs (bench/engines.py `examples`: the shared test split, else the
shipped demo pairs), taking turns after one untimed warm-up round (median of --repeat):

- greedy: one greedy judgment per pair;
- voting: k sampled judgments per pair in one engine call, samples of a prompt sharing its prefill;
- voting, unshared: the same with the sharing off (every sample reads its prompt);
- sequential: the same k samples, one engine call each (what a naive loop does).

It prints the times, the ratios voting/greedy, unshared/shared and sequential/voting, whether
the shared and unshared votes wrote the same judgments, the distinct prompts and rows the shared
prefills read, and `os.getloadavg()` before and after (ratios from one run on a busy machine
still compare like with like; absolute times do not).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from engines import examples, interleaved

from spct.backends.transformers import TransformersBackend
from spct.judge import GenerativeRewardModel, JudgeConfig, sample_order


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="model spec: embedded name, local folder or hub id")
    p.add_argument("--n", type=int, default=8, help="HH-RLHF pairs (default: 8)")
    p.add_argument("--k", type=int, default=8, help="samples per pair for voting (default: 8)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="token budget of one judgment (default: 64)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per generate call (default: 16)")
    p.add_argument("--repeat", type=int, default=3, help="timed rounds, taking turns (default: 3)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--out", default=None, help="also write the results here (JSON)")
    args = p.parse_args()

    load_before = os.getloadavg()
    exs = examples(args.n)
    backend = TransformersBackend(args.model, device=args.device, batch_size=args.batch_size)
    grm = GenerativeRewardModel(backend, JudgeConfig(max_new_tokens=args.max_new_tokens))
    prefills: list[tuple[int, int]] = []
    shared_prefill = backend._shared_prefill
    backend._shared_prefill = lambda ids, mask, first, where: prefills.append((len(first), len(where))) or shared_prefill(
        ids, mask, first, where)

    def voting(share: bool):
        backend.share_prefill = share
        try:
            return [j.text for js in grm.sample(exs, args.k) for j in js]
        finally:
            backend.share_prefill = True

    def sequential():
        return [grm.judge_shown([(ex, s, sample_order(grm.config.seed, ex.id, s, len(ex.responses)), None)], greedy=False)
                for ex in exs for s in range(args.k)]

    runs = [lambda: grm.sample(exs, 1), lambda: voting(True), lambda: voting(False), sequential]
    (greedy_s, _), (voting_s, shared), (unshared_s, unshared), (sequential_s, _) = interleaved(runs, args.repeat)
    result = {
        "model": args.model, "device": str(backend.device), "torch_threads": torch.get_num_threads(), "pairs": len(exs),
        "k": args.k, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "repeat": args.repeat,
        "greedy_s": greedy_s, "voting_s": voting_s, "voting_unshared_s": unshared_s, "sequential_s": sequential_s,
        "voting_over_greedy": voting_s / greedy_s, "unshared_over_shared": unshared_s / voting_s,
        "sequential_over_voting": sequential_s / voting_s, "same_judgments_shared_and_unshared": shared == unshared,
        # Over every call (warm-up and timed rounds): distinct prompts prefilled, rows they fed.
        "prefill_distinct_prompts": sum(d for d, _ in prefills), "prefill_rows": sum(r for _, r in prefills),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }
    result = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
