"""spct train-meta DATA -o DIR: train the meta RM on `spct meta-data` output and report held-out AUC."""

from __future__ import annotations

import argparse
import json
import sys

from ..data import InputError
from ..meta_rm import METRICS_FILE, read_meta_rows, train_meta_rm
from .common import positive_float, positive_int, report_issues


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-meta", help="train a meta RM on labelled judgments",
                       description="Train a pointwise meta RM (binary cross-entropy, HF Trainer) on the output of "
                                   "`spct meta-data`, hold out whole examples, report held-out ROC-AUC and "
                                   f"accuracy, and save a loadable model plus {METRICS_FILE} to DIR.")
    p.add_argument("data", help="JSONL written by `spct meta-data`")
    p.add_argument("-o", "--output", required=True, help="folder for the trained model and its metrics")
    p.add_argument("--base", default=None,
                   help="a HF sequence-classification or causal LM folder/hub id (default: the embedded all-MiniLM-L6-v2)")
    p.add_argument("--epochs", type=positive_float, default=3.0, help="training epochs (default: 3)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (default: epochs decide)")
    p.add_argument("--lr", type=positive_float, default=5e-5, help="learning rate (default: 5e-5)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="training batch size (default: 16)")
    p.add_argument("--max-length", type=positive_int, default=512, help="tokens per input (default: 512)")
    p.add_argument("--eval-fraction", type=float, default=0.2, help="share of examples held out (default: 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seeds the split and training (default: 0)")
    p.add_argument("--include-hinted", action="store_true",
                   help="also train on hinted judgments (`spct meta-data --hinted`); by default only unhinted ones, "
                        "the kind the meta RM rates at inference")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.eval_fraction < 1:
        raise InputError("--eval-fraction must be in [0, 1)")
    rows, issues = read_meta_rows(args.data, include_hinted=args.include_hinted)
    report_issues(issues)
    if not rows:
        raise InputError(f"{args.data}: no usable meta RM training rows")
    metrics = train_meta_rm(rows, args.output, base=args.base, epochs=args.epochs, max_steps=args.max_steps,
                            learning_rate=args.lr, batch_size=args.batch_size, max_length=args.max_length,
                            eval_fraction=args.eval_fraction, seed=args.seed)
    print(json.dumps(metrics, indent=2))
    held = metrics["held_out"]
    if held["n"]:
        auc = f"{held['auc']:.3f}" if held["auc"] is not None else "n/a (one class only)"
        print(f"held-out: AUC {auc}, accuracy {held['accuracy']:.3f} (majority class {held['majority_accuracy']:.3f}) "
              f"on {held['n']} judgments; model saved to {args.output}", file=sys.stderr)
    return 0
