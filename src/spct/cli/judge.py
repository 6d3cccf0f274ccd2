"""spct judge IN.jsonl -o OUT.jsonl: judge every example of a file, resumably."""

from __future__ import annotations

import argparse
import sys

from ..data import InputError, load_examples
from ..jobs import judge_file
from . import flag_words
from .common import (
    add_adaptive_args,
    add_judge_args,
    add_meta_args,
    add_model_args,
    build_grm,
    check_output_file,
    positive_int,
    report_issues,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge", help="judge a JSONL file of examples (resumable)",
                       description="Judge every example of IN (JSONL, .jsonl.gz, or a HF dataset name) and append one "
                                   "Reward line per example, with its judgments, to OUT. Rerunning resumes.")
    p.add_argument("input", help="examples: {query, responses[, best, ratings]} or {prompt, chosen, rejected} or HH-RLHF lines")
    p.add_argument("-o", "--output", required=True, help="output JSONL (appended to; finished ids are skipped)")
    p.add_argument("--split", default="test", help="split, when IN is a HF dataset (default: test)")
    p.add_argument("--limit", type=positive_int, default=None, help="judge only the first N examples")
    p.add_argument("--batch-size", type=positive_int, default=8, help="examples per generation batch (default: 8)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    add_model_args(p)
    add_judge_args(p)
    add_adaptive_args(p)
    add_meta_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_file(args.input, args.output)
    examples, issues = load_examples(args.input, args.split)
    report_issues(issues)
    if args.limit is not None:
        examples = examples[: args.limit]
    if not examples:
        raise InputError(f"{args.input}: no usable examples" + (f" ({len(issues)} bad line(s))" if issues else ""))
    grm = build_grm(args, judgments=len(examples) * args.k)
    s = judge_file(grm, examples, args.output, k=args.k, batch_size=args.batch_size, progress=args.progress)
    report_issues([flag_words(issue) for issue in s.too_large])
    line = (f"{s.written} judged, {s.skipped_done} already done, {len(issues) + len(s.too_large)} bad line(s) skipped; "
            f"{s.failed_judgments}/{s.judgments} judgments failed to parse, {s.forced_judgments} needed a forced score line")
    if s.accuracy is not None:
        line += f"; accuracy {s.accuracy:.3f} on {s.labelled} labelled"
    if args.adaptive and s.rewards:
        drawn = sum(r.k for r in s.rewards) / len(s.rewards)
        line += f"; adaptive ({args.adaptive}) drew {drawn:.2f} of {args.k} samples per example"
    print(line, file=sys.stderr)
    if s.backend_failed:
        print(f"error: the backend failed on {len(s.backend_failed)} example(s); rerun to retry them", file=sys.stderr)
        return 1
    return 0
