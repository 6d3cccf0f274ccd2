"""spct meta-data IN -o OUT.jsonl: sample judgments on a labelled set and label each for the meta RM."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from ..data import Example, InputError, JsonlAppender
from ..jobs import judge_fitting
from ..meta_rm import meta_row, pointwise_meta_rows
from . import flag_words
from .common import (
    add_judge_args,
    add_model_args,
    build_grm,
    check_output_file,
    load_labelled,
    positive_int,
    report_issues,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("meta-data", help="sample labelled judgments to train a meta RM (resumable)",
                       description="Sample K judgments per labelled example (and optionally one hinted judgment) and "
                                   "write one line per judgment with its label by the accuracy rule "
                                   "(1 = the labelled best response strictly wins). Rerunning resumes.")
    p.add_argument("input", help="labelled examples (JSONL, .jsonl.gz or a HF dataset name)")
    p.add_argument("-o", "--output", required=True, help="output JSONL (appended to; finished judgments are skipped)")
    p.add_argument("--split", default="test", help="split, when IN is a HF dataset (default: test)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N examples")
    p.add_argument("--hinted", action="store_true",
                   help="also sample one hinted judgment per example (the prompt names the best response); marked "
                        "'hinted', and left out by `spct train-meta` unless --include-hinted")
    p.add_argument("--batch-size", type=positive_int, default=8, help="examples per generation batch (default: 8)")
    add_model_args(p)
    add_judge_args(p, k=4)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_file(args.input, args.output)
    examples = load_labelled(args)
    grm = build_grm(args, judgments=len(examples) * (args.k + args.hinted))
    # A pointwise judge is rated on what it judges: each response alone, k times (`pointwise_meta_rows`).
    pointwise = grm.config.policy == "pointwise"
    if pointwise and args.hinted:
        raise InputError("--hinted names the best response among those shown; a pointwise judge is shown one",
                         field="hinted")

    def keys(ex: Example) -> list[str]:  # the rows an example gives: per sample, or per response and sample
        shown = [f"{i}|" for i in range(len(ex.responses))] if pointwise else [""]
        return [f"{ex.id}|{i}{s}|u" for i in shown for s in range(args.k)] + ([f"{ex.id}|0|h"] if args.hinted else [])
    counts = {"written": 0, "right": 0}
    too_large: list[str] = []

    def keep(out: JsonlAppender, rows: list[dict]) -> None:
        for row in rows:
            if row["key"] not in out:
                out.write(row)
                counts["written"] += 1
                counts["right"] += row["label"]

    with JsonlAppender(args.output, key="key", fields=()) as out:  # a resume holds the keys, not the rows
        todo = [ex for ex in examples if any(key not in out for key in keys(ex))]
        bar = tqdm(total=len(examples), initial=len(examples) - len(todo), desc="sampling", unit="ex")
        for b in range(0, len(todo), args.batch_size):
            chunk = todo[b : b + args.batch_size]
            # An example too large for the model's context is skipped and reported, as `spct judge` does.
            sampled, oversized = judge_fitting(lambda exs: grm.policy.draw(grm.sample, exs, args.k, greedy=False), chunk)
            too_large += oversized
            for ex, js in sampled:
                keep(out, pointwise_meta_rows(ex, js) if pointwise else [meta_row(ex, j) for j in js])
            if args.hinted:
                hints = {ex.id: ex.best[0] for ex, _ in sampled if ex.best}
                hinted = [ex for ex, _ in sampled if ex.id in hints]
                for ex, js in zip(hinted, grm.sample(hinted, 1, hints=hints), strict=True):
                    keep(out, [meta_row(ex, j, hinted=True) for j in js])
            bar.update(len(chunk))
        bar.close()
    report_issues([flag_words(issue) for issue in too_large])
    rate = f"; {counts['right'] / counts['written']:.1%} labelled right" if counts["written"] else ""
    rate += f"; {len(too_large)} example(s) too large for the model's context skipped" if too_large else ""
    print(f"{counts['written']} judgments written to {args.output} ({len(examples) - len(todo)} examples already done){rate}",
          file=sys.stderr)
    return 0
