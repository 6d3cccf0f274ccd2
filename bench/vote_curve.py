"""Accuracy against k from one stored voting@K run of bench/grm_heldout.py: the curve k = 1, 2, 4, ..., K.

Sampling is the cost, so nothing is generated here: each example's stored judgments are grouped
by what they judged (the example, or under the pointwise policy each response alone), k of each
group are drawn at random (`--subsets` draws, averaged) and voted with the run's policy and
readout, meta-guided when `--meta-rm` is given. The greedy run's accuracy on the same examples is
the reference line. Writes OUT/curve.json and OUT/curve.png.

    python bench/vote_curve.py runs/vp/heldout/vote8 --name hh gsm --data runs/grm/data/hh/heldout.jsonl \
        runs/grm/data/gsm/heldout.jsonl --greedy runs/vp/heldout/shipped --policy pointwise --readout expected
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from spct.data import Reward, iter_jsonl, read_examples
from spct.intervals import bootstrap_ci
from spct.judge import POLICIES, READOUTS, JudgeConfig, policy_for
from spct.scaling import subset


def curve(stored: Path, examples: dict, policy, ks: list[int], subsets: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    hits: dict[int, list[float]] = defaultdict(list)
    for _, obj in iter_jsonl(stored):
        r = Reward.from_dict(obj)
        if r.id not in examples:
            continue
        ex = examples[r.id]
        policy.rate(ex, r.judgments)  # meta scores, once per judgment (nothing without a meta RM)
        drawn = min(Counter(j.id for j in r.judgments).values())
        for k in ks:
            right = [bool(policy.vote(ex, subset(r.judgments, k, rng)).correct) for _ in range(subsets if k < drawn else 1)]
            hits[k].append(float(np.mean(right)))
    rows = []
    for k in ks:
        lo, hi = (round(float(x), 4) for x in bootstrap_ci([hits[k]], np.mean))
        rows.append({"k": k, "accuracy": round(float(np.mean(hits[k])), 4), "ci95": [lo, hi], "items": len(hits[k])})
    return rows


def greedy_accuracy(stored: Path, ids: set[str]) -> float | None:
    rows = [Reward.from_dict(obj) for _, obj in iter_jsonl(stored)] if stored.exists() else []
    picked = [bool(r.correct) for r in rows if r.id in ids]
    return round(float(np.mean(picked)), 4) if len(picked) == len(ids) else None


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        for method, points in res["curves"].items():
            ks = [p["k"] for p in points]
            (line,) = ax.plot(ks, [p["accuracy"] for p in points], marker="o", label=method)
            ax.fill_between(ks, [p["ci95"][0] for p in points], [p["ci95"][1] for p in points], color=line.get_color(), alpha=0.12)
        if res["greedy"] is not None:
            ax.axhline(res["greedy"], color="grey", linestyle="--", label="greedy (k=1, temperature 0)")
        ax.axhline(0.5, color="black", linewidth=0.5)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("k (sampled judgments per response)" if res["policy"] == "pointwise" else "k (sampled judgments)")
        ax.set_ylabel("strict accuracy")
        ax.set_title(f"{name}: {points[0]['items']} pairs, {res['policy']} / {res['readout']}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="folder of a grm_heldout.py voting@K run (<name>.jsonl)")
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--name", required=True, nargs="+")
    p.add_argument("--greedy", default=None, help="folder of the greedy run on the same files (the reference line)")
    p.add_argument("--policy", default="voting", choices=POLICIES)
    p.add_argument("--readout", default="sampled", choices=READOUTS)
    p.add_argument("--meta-rm", default=None, help="also draw meta-guided voting (top k/2 by this meta RM)")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--subsets", type=int, default=16)
    p.add_argument("-o", "--out", default=None, help="output folder (default: the run folder)")
    args = p.parse_args()
    run, out = Path(args.run), Path(args.out or args.run)
    out.mkdir(parents=True, exist_ok=True)
    config = JudgeConfig(policy=args.policy, readout=args.readout)
    methods = {"voting@k": policy_for(config)}
    if args.meta_rm:
        from spct.meta_rm import MetaRM

        methods["meta-guided@k"] = policy_for(config, MetaRM(args.meta_rm).score)
    results = {}
    for data, name in zip(args.data, args.name, strict=True):
        examples = {ex.id: ex for ex in read_examples(data)[0]}
        judged = {obj["id"] for _, obj in iter_jsonl(run / f"{name}.jsonl")}
        examples = {i: ex for i, ex in examples.items() if i in judged}
        results[name] = {"policy": args.policy, "readout": args.readout,
                         "greedy": greedy_accuracy(Path(args.greedy) / f"{name}.jsonl", set(examples)) if args.greedy else None,
                         "curves": {m: curve(run / f"{name}.jsonl", examples, pol, args.ks, args.subsets)
                                    for m, pol in methods.items()}}
        print(name, json.dumps(results[name]), flush=True)
    (out / "curve.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out / "curve.png")
    print(f"wrote {out / 'curve.json'} and {out / 'curve.png'}")


if __name__ == "__main__":
    main()
