"""spct train-verdict: train the judge's verdict with a Bradley-Terry loss on its own score readout."""

from __future__ import annotations

import argparse

from ..data import load_examples
from ..settings import add_dataclass_args, from_namespace
from ..train.verdict_pref import VerdictPrefConfig, read_own_lines, train_verdict_pref
from .common import report_issues
from .sft import print_summary


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-verdict", help="train the judge's verdict on labelled pairs (Bradley-Terry loss on its "
                                             "expected score)",
                       description="Each response of a labelled pair is judged alone; the judge's expected score at "
                                   "`Scores: \\boxed{` (the mean of 1..9 under its digit probabilities) is its reward, "
                                   "and TRL's RewardTrainer trains -log sigmoid(chosen - rejected). The result is a "
                                   "model folder that still writes principles and analysis, and OUTDIR/spct_judging.json makes "
                                   "judging commands read it as trained (`--policy pointwise --readout anchored`) "
                                   "unless flags say otherwise. Checkpoints every --save-steps; rerun the "
                                   "same command to resume. See docs/method.md.")
    p.add_argument("data", help="labelled examples: JSONL/.gz ({query, responses, best} or {prompt, chosen, rejected}) "
                                "or a HF dataset")
    p.add_argument("-o", "--output", required=True, help="folder for checkpoints and the trained model")
    p.add_argument("--split", default="train", help="split, when DATA is a HF dataset (default: train)")
    p.add_argument("--own-lines", metavar="JUDGMENTS", help="the judge's own pointwise judgments of DATA's responses "
                   "(JSONL from `spct meta-data --policy pointwise`): each sample judged for both responses of a pair "
                   "adds that pair read at those judgments' own score lines, after their principles and analysis "
                   "(the second reading of `--readout anchored`)")
    add_dataclass_args(p, VerdictPrefConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    examples, issues = load_examples(args.data, args.split)
    report_issues(issues)
    own_lines = None
    if args.own_lines:
        own_lines, issues = read_own_lines(args.own_lines)
        report_issues(issues)
    print_summary(train_verdict_pref(examples, args.output, from_namespace(VerdictPrefConfig, args), resume=True,
                                     own_lines=own_lines))
    return 0
