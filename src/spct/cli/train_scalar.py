"""spct train-scalar: a Bradley-Terry scalar RM baseline, trained with TRL's RewardTrainer."""

from __future__ import annotations

import argparse
import json
import sys

from ..data import InputError
from ..eval.benchmarks import BENCHMARKS, load_benchmark
from ..train.scalar_rm import ScalarTrainConfig, train_scalar_rm
from .common import non_negative_int, positive_float, positive_int, report_issues


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-scalar", help="train a scalar Bradley-Terry RM baseline (TRL RewardTrainer)",
                       description="Train a sequence classifier with one output on (query, chosen) vs (query, rejected) "
                                   "pairs with TRL's RewardTrainer. Default base: the embedded MiniLM encoder. "
                                   "Score with `spct eval --method scalar --model OUTDIR`.")
    p.add_argument("--data", required=True, help="training pairs: a file/folder/dataset readable by --benchmark's loader")
    p.add_argument("--benchmark", default="spct", choices=sorted(BENCHMARKS), metavar="NAME",
                   help="shape of --data (default: spct, i.e. {query, responses, best} or {prompt, chosen, rejected})")
    p.add_argument("--split", default=None, help="split when --data is a HF dataset")
    p.add_argument("-o", "--output", required=True, help="folder for the trained RM")
    p.add_argument("--base", default=None, help="encoder or LM to start from: a folder, a hub id, a .gguf or an embedded name such as smollm2-135m (default: embedded all-MiniLM-L6-v2)")
    p.add_argument("--skip", type=non_negative_int, default=0, help="skip the first N items (e.g. those held out for evaluation)")
    p.add_argument("--limit", type=positive_int, default=None, help="train on at most N items (after --skip)")
    p.add_argument("--epochs", type=positive_float, default=1.0, help="epochs (default: 1)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (default: -1, epochs decide)")
    p.add_argument("--lr", type=positive_float, default=2e-5, help="learning rate (default: 2e-5)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="pairs per step (default: 16)")
    p.add_argument("--max-length", type=positive_int, default=256, help="tokens per (query, response) (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    examples, issues = load_benchmark(args.benchmark, args.data, split=args.split)
    report_issues(issues)
    examples = examples[args.skip :]
    if args.limit is not None:
        examples = examples[: args.limit]
    if not examples:
        raise InputError(f"{args.data}: no usable training items")
    summary = train_scalar_rm(examples, args.output, ScalarTrainConfig(args.base, args.epochs, args.max_steps, args.lr,
                                                                       args.batch_size, args.max_length, args.seed))
    print(json.dumps(summary), file=sys.stderr)
    return 0
