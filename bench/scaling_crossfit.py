"""Scaling curve with a cross-fitted meta RM, reusing the samples `spct scale` already drew.

When sampling is the bottleneck (the shared 2-core CPU), there is no budget for a separate meta
RM training set. Instead the examples of OUTDIR/samples.jsonl are split in two folds; a meta RM
(embedded MiniLM + scalar head, BCE, HF Trainer) is trained on the judgments of one fold and
scores the judgments of the other, so no example is scored by a meta RM that saw it. The
held-out AUC of each fold's meta RM is reported, and the curve is evaluated exactly as
`spct scale --meta-rm` does. Writes OUTDIR/crossfit/{scaling.json, scaling.png, meta_rm_*}.
Usage: python bench/scaling_crossfit.py OUTDIR [--k 1,2,4,8] [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spct.cli.scale import format_table
from spct.data import Example, JsonlAppender, Judgment
from spct.meta_rm import MetaRM, evaluate, meta_row, train_meta_rm
from spct.scaling import evaluate_scaling, plot_scaling


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--k", default="1,2,4,8")
    ap.add_argument("--epochs", type=float, default=4.0)
    args = ap.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    out = Path(args.outdir) / "crossfit"
    with JsonlAppender(Path(args.outdir) / "samples.jsonl") as samples:
        rows = list(samples.done.values())
    folds = [rows[0::2], rows[1::2]]
    meta_by_id: dict[str, MetaRM] = {}
    report = {"examples": len(rows), "folds": []}
    for f, (held, train) in enumerate([(folds[0], folds[1]), (folds[1], folds[0])]):
        train_rows, held_rows = [], []
        for part, dest in ((train, train_rows), (held, held_rows)):
            for row in part:
                ex = Example(**row["example"])
                for j in (Judgment(**d) for d in row["samples"]):
                    dest.append((ex, j, meta_row(ex, j)["label"]))
        metrics = train_meta_rm(train_rows, out / f"meta_rm_{f}", epochs=args.epochs, batch_size=16, eval_fraction=0.0)
        meta = MetaRM(out / f"meta_rm_{f}")
        metrics["held_out"] = evaluate(meta, held_rows)
        report["folds"].append(metrics)
        print(f"fold {f}: trained on {len(train_rows)} judgments, held-out {json.dumps(metrics['held_out'])}", file=sys.stderr)
        for row in held:
            meta_by_id[row["id"]] = meta

    def cross_fitted(example, judgments):
        return meta_by_id[example.id].score(example, judgments)

    results = evaluate_scaling(rows, ks, meta_scorer=cross_fitted)
    results["meta_rm"] = report
    (out / "scaling.json").write_text(json.dumps(results, indent=2) + "\n")
    plot_scaling(results, out / "scaling.png", title=f"{len(rows)} HH-RLHF harmless pairs, SmolLM2-135M, 95% bootstrap bands")
    print(format_table(results))
    for f, m in enumerate(report["folds"]):
        h = m["held_out"]
        print(f"meta RM fold {f}: held-out AUC {h['auc']}, accuracy {h['accuracy']:.3f} "
              f"(majority {h['majority_accuracy']:.3f}) on {h['n']} judgments; train loss {m['train_loss']:.3f}")


if __name__ == "__main__":
    main()
