"""spct rft DATA -o RFT_DIR: rejective sampling into a TRL prompt/completion dataset (resumable)."""

from __future__ import annotations

import argparse
import json
import sys

from ..data import InputError, check_output_dir, load_examples
from ..train.rft import RFTConfig, run_rft
from . import flag_words
from .common import add_judge_args, add_model_args, build_grm, positive_int, report_issues


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rft", help="rejective sampling for SPCT fine-tuning (resumable)",
                       description="Sample N judgments per labelled example, keep those that single out the labelled "
                                   "best response (n = 1: match the rating; --k is N_RFT, default 3), drop too-easy examples, hint the rest; "
                                   "write RFT_DIR/samples.jsonl (outcomes, resumable), RFT_DIR/train.jsonl (TRL "
                                   "conversational prompt/completion rows) and RFT_DIR/stats.json.")
    p.add_argument("input", help="labelled examples (JSONL, .jsonl.gz, or a HF dataset name)")
    p.add_argument("-o", "--output", required=True, help="output folder (rerunning resumes)")
    p.add_argument("--split", default="train", help="split, when DATA is a HF dataset (default: train)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N examples")
    p.add_argument("--no-hinted", dest="hinted", action="store_false",
                   help="no hinted sample for examples without a right unhinted sample")
    p.add_argument("--keep-too-easy", dest="drop_too_easy", action="store_false",
                   help="keep examples on which every sample was right (dropped by default)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="examples per generation batch (default: 8)")
    p.add_argument("--mix", default=None, help="general instruction data to mix in: JSONL of {messages} or {prompt, completion}")
    p.add_argument("--mix-limit", type=positive_int, default=None, help="mix in at most N instruction rows")
    p.add_argument("--format-demo", action="store_true",
                   help="sample with a demonstrated judgment before the query (bootstraps a base model that never "
                        "writes its own score line); training rows keep the plain prompt")
    p.add_argument("--no-mirror", dest="mirror", action="store_false",
                   help="train each kept two-response judgment only in its sampled order (by default it also trains "
                        "with the responses swapped, so the rows favour both positions equally)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    add_model_args(p)
    add_judge_args(p, k=3)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.output)
    examples, issues = load_examples(args.input, args.split)
    report_issues(issues)
    examples = examples[: args.limit] if args.limit is not None else examples
    if not examples:
        raise InputError(f"{args.input}: no usable examples")
    grm = build_grm(args, judgments=len(examples) * args.k)  # hinted samples come on top
    cfg = RFTConfig(n_samples=args.k, hinted=args.hinted, drop_too_easy=args.drop_too_easy, batch_size=args.batch_size)
    stats = run_rft(grm, examples, args.output, cfg, mix=args.mix, mix_limit=args.mix_limit, progress=args.progress,
                    mirror=args.mirror)
    report_issues([flag_words(issue) for issue in stats.too_large])
    print(json.dumps(stats.to_dict()), file=sys.stderr)
    return 0
