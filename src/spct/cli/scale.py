"""spct scale IN.jsonl --k 1,2,4,8 -o OUTDIR: accuracy against k for greedy, voting, meta-guided and adaptive voting."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from ..data import InputError, check_output_dir, write_text
from ..defaults import SERVE_MAX_NEW_TOKENS
from ..judge import GenerativeRewardModel
from ..policies import StopRule
from ..scaling import LABELS, collect_samples, evaluate_scaling, plot_scaling
from ..settings import int_within
from . import flag_words
from .common import (
    add_judge_args,
    add_model_args,
    build_grm,
    load_labelled,
    positive_float,
    positive_int,
    report_issues,
)

# Counts that size time and memory (the bootstrap holds resamples x examples numbers): past these, no
# interval or average moves, and a typo must not run for days or exhaust memory.
MAX_SUBSETS = 4096
MAX_BOOTSTRAP = 100_000


def subset_count(text: str) -> int:
    return int_within(text, 1, MAX_SUBSETS)


def resample_count(text: str) -> int:
    return int_within(text, 1, MAX_BOOTSTRAP)


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k wants comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1 or ks[-1] > GenerativeRewardModel.MAX_K:
        raise argparse.ArgumentTypeError(f"--k values must be in 1..{GenerativeRewardModel.MAX_K}")
    return ks


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scale", conflict_handler="resolve", help="scaling curve: accuracy against k (resumable sampling)",
                       description="Judge each labelled example once greedily and with max(k) samples (stored in "
                                   "OUTDIR/samples.jsonl; rerunning resumes), then evaluate accuracy at every k on random "
                                   "k-subsets of those samples for greedy, voting, meta-guided voting (with --meta-rm) and "
                                   "adaptive voting (voting policy only), with 95% bootstrap intervals; "
                                   "under --policy pointwise, k judgments of each response alone. Writes OUTDIR/scaling.json and "
                                   "OUTDIR/scaling.png.")
    p.add_argument("input", help="labelled examples (JSONL, .jsonl.gz or a HF dataset name)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--split", default="test", help="split, when IN is a HF dataset (default: test)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N labelled examples")
    p.add_argument("--batch-size", type=positive_int, default=8, help="examples per generation batch (default: 8)")
    p.add_argument("--meta-rm", default=None, help="folder of a meta RM (spct train-meta) for meta-guided voting")
    p.add_argument("--subsets", type=subset_count, default=16,
                   help=f"random k-subsets averaged per example and k, at most {MAX_SUBSETS} (default: 16)")
    p.add_argument("--bootstrap", type=resample_count, default=2000,
                   help=f"bootstrap resamples for the intervals, at most {MAX_BOOTSTRAP} (default: 2000)")
    p.add_argument("--round-size", type=positive_int, default=1, help="adaptive voting: samples drawn per round (default: 1)")
    p.add_argument("--z", type=positive_float, default=1.96, help="adaptive bound rule: confidence bound width in standard errors (default: 1.96)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    add_model_args(p)
    add_judge_args(p, max_new_tokens=SERVE_MAX_NEW_TOKENS)
    p.add_argument("--k", type=parse_ks, default=[1, 2, 4, 8], help="values of k, comma-separated (default: 1,2,4,8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.output)
    examples = load_labelled(args)
    if args.meta_rm and not Path(args.meta_rm).is_dir():
        raise InputError(f"--meta-rm {args.meta_rm}: not a folder (train one with `spct train-meta`)")
    ks = args.k
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    # Samples are drawn plain; the meta RM (if any) re-ranks them inside evaluate_scaling.
    grm = build_grm(argparse.Namespace(**{**vars(args), "meta_rm": None}), k=ks[-1],
                    judgments=len(examples) * (1 + max(ks[-1], 2)))  # collect_samples: greedy + max(k) sampled
    rows, too_large = collect_samples(grm, examples, max(ks[-1], 2), out / "samples.jsonl", args.batch_size, args.progress)
    report_issues([flag_words(issue) for issue in too_large])
    if not rows:
        raise InputError(f"{args.input}: nothing was judged: every example is too large for the model's context")
    meta_scorer = None
    if args.meta_rm:
        from ..meta_rm import MetaRM

        meta_scorer = MetaRM(args.meta_rm, device=args.device).score
    with tqdm(total=len(rows), desc="evaluating", unit="ex", disable=not args.progress) as bar:
        results = evaluate_scaling(rows, ks, policy=grm.config.policy, meta_scorer=meta_scorer, subsets=args.subsets, round_size=args.round_size,
                                   bound_rule=StopRule("bound", z=args.z), n_boot=args.bootstrap, seed=args.seed,
                                   progress=bar.update)
    results["input"] = str(args.input)
    results["model"] = args.model
    results["max_new_tokens"] = args.max_new_tokens
    results["meta_rm"] = args.meta_rm
    write_text(out / "scaling.json", json.dumps(results, indent=2) + "\n")
    plot_scaling(results, out / "scaling.png")
    print(format_table(results))
    print(f"wrote {out / 'scaling.json'} and {out / 'scaling.png'}", file=sys.stderr)
    return 0


def format_table(results: dict) -> str:
    ks = results["ks"]
    lines = [f"accuracy on {results['examples']} examples (95% bootstrap CI); "
             f"{results['failed_judgments']}/{results['judgments']} judgments failed to parse",
             "method".ljust(34) + "".join(f"k={k}".ljust(31) for k in ks)]
    for m, points in results["accuracy"].items():
        cells = [f"{p['accuracy']:.3f} [{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]" for p in points]
        lines.append(LABELS[m].ljust(34) + "".join(c.ljust(31) for c in cells))
    for name, points in results["adaptive"].items():
        cells = [f"{p['mean_samples']:.2f} ({p['fraction_of_k']:.0%}), agree {p['agrees_with_voting']:.0%}" for p in points]
        lines.append(f"adaptive ({name}): samples drawn".ljust(34) + "".join(c.ljust(31) for c in cells))
    return "\n".join(lines)
