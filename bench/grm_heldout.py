"""Held-out figures for a GRM: strict accuracy with a 95% bootstrap CI, tie rate, own-score-line rate,
the share of the most common judgment text and how often the first-shown response wins.

Judges held-out files with one model (greedy, k = 1, or voting@k) under the score-line
constraint, appending to OUT/<name>.jsonl as it goes (a rerun resumes). Both views come from
the same run: the constrained figures use every judgment; the *unconstrained* ones count a
judgment only when the model wrote its own score line (not `forced`, not cut), which is
exactly what `--no-constrain` would have returned, since the free phase is generated first.

    python bench/grm_heldout.py --model spct-grm-135m --data runs/grm/data/hh/heldout.jsonl \
        --name hh --out runs/grm/eval/shipped --limit 128

`--revote DIR` generates nothing: it re-aggregates the judgments of an earlier voting@k run
(DIR/<name>.jsonl), so meta-guided voting (`--meta-rm`) is compared with plain voting on the
very same samples.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from spct.backends import EngineConfig, load_backend
from spct.data import Reward, iter_jsonl, read_examples
from spct.intervals import bootstrap_ci
from spct.jobs import judge_file
from spct.judge import POLICIES, READOUTS, GenerativeRewardModel, JudgeConfig, policy_for
from spct.voting import voted_scores


def mean_ci(hits: list[bool]) -> list[float]:
    return [round(float(x), 4) for x in bootstrap_ci([hits], np.mean)] if hits else [float("nan"), float("nan")]


def summarise(path: Path, examples: dict, policy) -> dict:
    rewards = [Reward.from_dict(obj) for _, obj in iter_jsonl(path)]
    correct, own_correct, ties, own, judged = [], [], 0, 0, 0
    # Degeneracy checks: one judgment text for every input (the second training round wrote one
    # fixed judgment everywhere and looked perfect on the own-score-line rate), and position bias.
    texts: Counter[str] = Counter(j.text for r in rewards for j in r.judgments if j.ok)
    pairs = [j for r in rewards for j in r.judgments if j.ok and len(j.scores) == 2]
    first_wins = sum(voted_scores(j)[j.order[0]] > voted_scores(j)[j.order[1]] for j in pairs)
    for r in rewards:
        ex = examples[r.id]
        correct.append(bool(r.correct))
        ties += r.rewards is not None and r.best is None
        own_js = [j for j in r.judgments if j.ok and not j.forced and not j.truncated]
        own += len(own_js)
        judged += len(r.judgments)
        own_correct.append(bool(policy.vote(ex, own_js).correct))
    n = len(rewards)
    return {
        "items": n,
        "strict_accuracy": round(sum(correct) / n, 4) if n else None,
        "ci95": mean_ci(correct),
        "tie_rate": round(ties / n, 4) if n else None,
        "own_score_line_rate": round(own / judged, 4) if judged else None,
        "accuracy_unconstrained": round(sum(own_correct) / n, 4) if n else None,
        "ci95_unconstrained": mean_ci(own_correct),
        "top_judgment_share": round(texts.most_common(1)[0][1] / sum(texts.values()), 4) if texts else None,
        "first_shown_win_rate": round(first_wins / len(pairs), 4) if pairs else None,
    }


def revote(stored: Path, examples: dict, policy, out: Path) -> None:
    """Aggregate the stored judgments of the examples again, with `policy` (voting, meta-guided or not)."""
    with open(out, "w", encoding="utf-8") as fh:
        for _, obj in iter_jsonl(stored):
            r = Reward.from_dict(obj)
            if r.id in examples:
                fh.write(json.dumps(policy.aggregate(examples[r.id], r.judgments).to_dict(), ensure_ascii=False) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, nargs="+", help="held-out JSONL file(s)")
    p.add_argument("--name", required=True, nargs="+", help="one name per data file")
    p.add_argument("--out", required=True)
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--limit", type=int, nargs="+", default=None, help="first N items of each file")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--gen-batch-size", type=int, default=48)
    p.add_argument("--engine", default="transformers", choices=("transformers", "vllm"))
    p.add_argument("--dtype", default=None, help="weights' dtype (vLLM on this CPU picks bfloat16; float32 matches transformers)")
    p.add_argument("--enforce-eager", action="store_true", help="vLLM: skip compilation (start-up 62 s instead of 128-163 s here)")
    p.add_argument("--batch-size", type=int, default=64, help="examples per judge call")
    p.add_argument("--no-constrain", dest="constrain", action="store_false",
                   help="no forced score line: accuracy counts the model's own lines only")
    p.add_argument("--meta-rm", default=None, help="meta RM folder: meta-guided voting over the top k/2")
    p.add_argument("--policy", default="voting", choices=POLICIES)
    p.add_argument("--readout", default="sampled", choices=READOUTS)
    p.add_argument("--revote", default=None, metavar="DIR",
                   help="re-aggregate the judgments stored in DIR/<name>.jsonl instead of generating (with --meta-rm: "
                        "meta-guided voting on the same samples)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = None
    if args.meta_rm:
        from spct.meta_rm import MetaRM

        meta = MetaRM(args.meta_rm).score
    config = JudgeConfig(k=args.k, max_new_tokens=args.max_new_tokens, constrain=args.constrain, policy=args.policy,
                         readout=args.readout)
    if args.revote is None:
        engine = EngineConfig(args.model, args.engine, gen_batch_size=args.gen_batch_size, enforce_eager=args.enforce_eager,
                              dtype=args.dtype)
        grm = GenerativeRewardModel(load_backend(engine), config, meta)
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    for i, (data, name) in enumerate(zip(args.data, args.name, strict=True)):
        examples, _ = read_examples(data)
        if args.limit:
            examples = examples[: args.limit[min(i, len(args.limit) - 1)]]
        t0, load0 = time.perf_counter(), os.getloadavg()[0]
        if args.revote is None:
            judge_file(grm, examples, out / f"{name}.jsonl", k=args.k, batch_size=args.batch_size)
        else:
            revote(Path(args.revote) / f"{name}.jsonl", {ex.id: ex for ex in examples}, policy_for(config, meta),
                   out / f"{name}.jsonl")
        row = summarise(out / f"{name}.jsonl", {ex.id: ex for ex in examples}, policy_for(config, meta))
        row.update(model=args.model, engine=args.engine, dtype=args.dtype, constrained=args.constrain, k=args.k, policy=args.policy,
                   readout=args.readout, meta_rm=args.meta_rm, wall_s_this_run=round(time.perf_counter() - t0, 1),
                   load_avg_start=round(load0, 2), load_avg_end=round(os.getloadavg()[0], 2))
        results[name] = row
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        print(name, json.dumps(row), flush=True)


if __name__ == "__main__":
    main()  # vLLM spawns its engine: keep the entry point guarded
