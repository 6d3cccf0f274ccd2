"""Options shared by every subcommand that runs a judge."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..backends import ENGINES, load_backend
from ..data import Example, InputError, InputIssue, load_examples
from ..judge import GenerativeRewardModel, JudgeConfig


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port in 0..65535, got {value}")
    return value


def check_output_file(input_path: str, output: str) -> None:
    """Refuse an output file that is the input, however it is spelled (`dir/../in.jsonl`, a symlink, a hard link).

    Both paths are resolved first, so the check holds even when the output does not exist yet.
    """
    src, out = Path(input_path).resolve(), Path(output).resolve()
    if src == out or (src.exists() and out.exists() and src.samefile(out)):
        raise InputError(f"{output}: the output must not be the input file")
    if out.is_dir():
        raise InputError(f"{output}: is a folder; the output must be a file")


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="smollm2-135m",
                   help="'smollm2-135m' (embedded, default), a local HF model folder, a .gguf file, or a hub id")
    g.add_argument("--engine", default="transformers", choices=ENGINES, help="generation engine (default: transformers)")
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    g.add_argument("--gen-batch-size", type=positive_int, default=16, help="sequences per generate call (default: 16)")
    add_engine_args(p)


def add_judge_args(p: argparse.ArgumentParser, k: int = 1, max_new_tokens: int = 512) -> None:
    g = p.add_argument_group("judging")
    g.add_argument("--k", type=positive_int, default=k, help=f"judgments sampled per example and voted on (default: {k}; k=1 is greedy)")
    g.add_argument("--temperature", type=non_negative_float, default=0.5, help="sampling temperature when k > 1 (default: 0.5)")
    g.add_argument("--max-new-tokens", type=positive_int, default=max_new_tokens, help=f"token budget of one judgment (default: {max_new_tokens})")
    g.add_argument("--seed", type=int, default=0, help="seeds response shuffles and sampling (default: 0)")
    g.add_argument("--no-constrain", dest="constrain", action="store_false",
                   help="do not force a parseable score line (the default forces it)")
    g.add_argument("--retries", type=non_negative_int, default=0, help="re-sample a failed judgment up to R times (default: 0)")
    g.add_argument("--no-principles", dest="principles", action="store_false", help="ablation: judge without writing principles")


def build_grm(args: argparse.Namespace) -> GenerativeRewardModel:
    meta_rm, k_meta = getattr(args, "meta_rm", None), getattr(args, "k_meta", None)
    if k_meta is not None and not (meta_rm and 1 <= k_meta <= args.k):
        raise InputError("--k-meta needs --meta-rm and a value in 1..k")
    if meta_rm and not Path(meta_rm).is_dir():
        raise InputError(f"--meta-rm {meta_rm}: not a folder (train one with `spct train-meta`)")
    options = {}
    if args.engine == "transformers" and not args.model.startswith("openai:"):
        options = {"device": args.device, "batch_size": args.gen_batch_size}
    options.update(engine_options(args))
    backend = load_backend(args.model, args.engine, **options)
    config = JudgeConfig(k=args.k, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed,
                         constrain=args.constrain, retries=args.retries, principles=args.principles, k_meta=k_meta,
                         format_demo=getattr(args, "format_demo", False))
    meta_scorer = None
    if meta_rm:
        from ..meta_rm import MetaRM

        meta_scorer = MetaRM(meta_rm, device=args.device).score
    return GenerativeRewardModel(backend, config, meta_scorer)


def add_meta_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("meta RM")
    g.add_argument("--meta-rm", default=None, help="folder of a meta RM (spct train-meta): vote over its top judgments")
    g.add_argument("--k-meta", type=positive_int, default=None, help="judgments kept by the meta RM (default: k/2)")


def report_issues(issues: list[InputIssue], limit: int = 20) -> None:
    for issue in issues[:limit]:
        print(f"warning: skipped {issue}", file=sys.stderr)
    if len(issues) > limit:
        print(f"warning: ... and {len(issues) - limit} more bad line(s)", file=sys.stderr)


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """Options of the openai, vllm and llamacpp engines (ignored by the others)."""
    from ..backends.openai import GUIDED

    g = p.add_argument_group("engines (openai, vllm, llamacpp)")
    g.add_argument("--base-url", default=None,
                   help="openai: server URL, e.g. http://127.0.0.1:8000/v1 (key from SPCT_API_KEY or OPENAI_API_KEY)")
    g.add_argument("--concurrency", type=positive_int, default=8, help="openai: requests in flight (default: 8)")
    g.add_argument("--guided", default="none", choices=GUIDED,
                   help="openai: the server's mechanism for the constrained score line (default: none)")
    g.add_argument("--tensor-parallel-size", type=positive_int, default=1, help="vllm: GPUs per model replica (default: 1)")
    g.add_argument("--data-parallel-size", type=positive_int, default=1, help="vllm: model replicas, placed by Ray (default: 1)")
    g.add_argument("--n-threads", type=positive_int, default=None, help="llamacpp: CPU threads (default: all cores)")


def engine_options(args: argparse.Namespace) -> dict:
    def opt(name: str, default=None):
        return getattr(args, name, default)  # callers may build args by hand, without the engine options

    if args.model.startswith("openai:") or args.engine == "openai":
        return {"base_url": opt("base_url"), "concurrency": opt("concurrency", 8), "guided": opt("guided", "none")}
    if args.engine == "vllm":
        return {"tensor_parallel_size": opt("tensor_parallel_size", 1), "data_parallel_size": opt("data_parallel_size", 1)}
    if args.engine == "llamacpp":
        return {"n_threads": opt("n_threads")}
    return {}


def load_labelled(args: argparse.Namespace) -> list[Example]:
    """The labelled examples of `args.input` (first `--limit`), bad lines reported and skipped."""
    examples, issues = load_examples(args.input, args.split)
    report_issues(issues)
    examples = [ex for ex in examples if ex.labelled][: args.limit]
    if not examples:
        raise InputError(f"{args.input}: no labelled examples ('best' or 'ratings' is needed)")
    return examples
