"""spct eval: score a benchmark with a GRM or a baseline; writes results.json, samples.jsonl, report.md, plots."""

from __future__ import annotations

import argparse
import math
import sys

from ..data import Example, InputError, check_output_dir
from ..eval.baselines import METHODS, GRMMethod, ScalarMethod, TokenProbMethod, VerdictMethod
from ..eval.benchmarks import BENCHMARKS, LoadOptions, get_benchmark, load_benchmark
from ..eval.runner import run_eval
from ..judge import JudgeConfig
from . import flag_words
from .common import (
    add_judge_args,
    add_meta_args,
    add_model_args,
    build_backend,
    build_grm,
    positive_int,
    report_issues,
    sample_count,
)


def register(sub: argparse._SubParsersAction) -> None:
    names = ", ".join(sorted(BENCHMARKS))
    p = sub.add_parser("eval", help="evaluate a reward model on a benchmark (resumable)",
                       description="Score a benchmark with the GRM or a baseline method and write results.json, "
                                   "samples.jsonl, report.md and PNG plots to OUTDIR. Rerunning the same command "
                                   f"resumes. Benchmarks: {names}.")
    p.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS), metavar="NAME", help=f"one of: {names}")
    p.add_argument("--data", required=True, help="local .json/.jsonl(.gz)/.parquet file or folder, or a HF dataset name")
    p.add_argument("--split", default=None, help="split when --data is a HF dataset (default: the benchmark's usual one)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (resumes if it exists)")
    p.add_argument("--method", default="grm", choices=METHODS, help="grm (default) or a baseline")
    p.add_argument("--k", type=sample_count, nargs="+", default=[1], help="judgments voted on; several values give a scaling "
                   "curve; k=1 is one greedy judgment, larger k vote over the first k of max(k) sampled ones (default: 1)")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N items")
    p.add_argument("--max-responses", type=positive_int, default=None, help="best-of-N sets: keep at most N responses per item (seeded)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="items per scoring batch (default: 8)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    add_model_args(p, model_help="generator for grm/llm-judge/pairwise-grm/token-prob ('spct-grm-135m' embedded judge, default; 'smollm2-135m' its base; a folder, "
                                 "a .gguf, a hub id); for --method scalar, the folder written by `spct train-scalar`")
    add_judge_args(p, k=None)
    add_meta_args(p)
    p.set_defaults(func=run)


def job_judgments(args: argparse.Namespace, examples: list[Example]) -> int:
    """Judgments the method asks for, for `--engine auto`: per judged group, one greedy (k = 1) and max(k) sampled."""
    if args.method == "token-prob":
        return len(examples)  # one read of the score probabilities per item
    groups = sum(math.comb(len(ex.responses), 2) for ex in examples) if args.method == "pairwise-grm" else len(examples)
    return groups * (max((k for k in args.k if k > 1), default=0) + (1 in args.k))


def build_method(args: argparse.Namespace, judgments: int | None = None):
    if args.meta_rm and args.method not in ("grm", "grm-no-principles"):
        raise InputError("--meta-rm works with --method grm or grm-no-principles")
    if args.method == "scalar":
        return ScalarMethod(args.model, device=args.device)
    if args.method == "token-prob":
        return TokenProbMethod(build_backend(args, judgments), batch_size=args.gen_batch_size)
    args = argparse.Namespace(**{**vars(args), "principles": args.principles and args.method != "grm-no-principles"})
    grm = build_grm(args, k=max(args.k), judgments=judgments)
    if args.method in ("grm", "grm-no-principles"):
        return GRMMethod(grm)
    return VerdictMethod(grm, pairwise=args.method == "pairwise-grm")


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.output)
    bench = get_benchmark(args.benchmark)
    examples, issues = load_benchmark(args.benchmark, args.data, split=args.split, limit=args.limit,
                                      options=LoadOptions(args.max_responses, args.seed))
    report_issues(issues)
    if not examples:
        raise InputError(f"{args.data}: no usable {args.benchmark} items" + (f" ({len(issues)} bad row(s))" if issues else ""))
    config = {"benchmark": args.benchmark, "data": args.data, "method": args.method, "model": args.model,
              "ks": sorted(set(args.k)), "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
              "seed": args.seed, "constrain": args.constrain, "max_responses": args.max_responses,
              "limit": args.limit, "meta_rm": args.meta_rm, "k_meta": args.k_meta}
    method = build_method(args, job_judgments(args, examples))
    # What ran: the engine `auto` chose, the policy and readout the flags or the model chose.
    grm = getattr(method, "grm", None)
    backend = getattr(grm, "backend", None) or getattr(method, "backend", None)
    config["engine"] = backend.name if backend is not None else args.engine
    for name in ("policy", "readout"):
        config[name] = getattr(grm.config, name) if grm is not None else getattr(args, name) or getattr(JudgeConfig, name)
    results = run_eval(bench, examples, method, args.output, config, batch_size=args.batch_size, progress=args.progress)
    report_issues([flag_words(issue) for issue in results["too_large"]])
    for k, m in results["by_k"].items():
        ci = f"[{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]" if m["ci"] else "-"
        tie = f", tie rate {m['tie_rate']:.3f}" if m["tie_rate"] is not None else ""
        score = "-" if m["overall"] is None else f"{m['overall']:.3f}"
        print(f"{args.benchmark} {args.method} k={k}: {m['metric']} {score} {ci} on {m['n']} items{tie}", file=sys.stderr)
    if results["parse_failure_rate"] is not None:
        print(f"parse failures {results['parse_failure_rate']:.3f} of {results['judgments']} judgments; "
              f"report in {args.output}/report.md", file=sys.stderr)
    if results["backend_failed"]:
        print(f"error: the backend failed on {results['backend_failed']} item(s); rerun to retry them", file=sys.stderr)
        return 1
    return 0
