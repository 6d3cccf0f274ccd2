"""Options shared by every subcommand that runs a judge."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from ..backends import ENGINES, Backend, load_backend
from ..backends.models import BASE_MODEL, DEFAULT_JUDGE
from ..data import Example, InputError, InputIssue, load_examples
from ..judge import POLICIES, READOUTS, GenerativeRewardModel, JudgeConfig
from ..policies import RULES, MetaScorer
from ..voting import check_rating_scale


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def sample_count(text: str) -> int:
    """--k: judgments per example, 1..GenerativeRewardModel.MAX_K (each one is held in memory)."""
    value = positive_int(text)
    if value > GenerativeRewardModel.MAX_K:
        raise argparse.ArgumentTypeError(f"must be in 1..{GenerativeRewardModel.MAX_K}, got {value}")
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


MAX_BODY_MB = 1024.0  # a request body past 1 GiB is no reward request


def body_size_mb(text: str) -> float:
    """--max-body-mb: a positive size up to MAX_BODY_MB (1e308 MiB would overflow the byte count)."""
    value = positive_float(text)
    if value > MAX_BODY_MB:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_BODY_MB:g} MiB, got {text}")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port in 0..65535, got {value}")
    return value


def check_output_file(input_path: str, output: str) -> None:
    """Refuse an output file that is the input, however it is spelled (`dir/../in.jsonl`, a symlink, a hard link),
    or that cannot be appended to (`check_output_path`), before any model loads.

    Both paths are resolved first, so the check holds even when the output does not exist yet.
    """
    from ..data import check_output_path

    src, out = Path(input_path).resolve(), Path(output).resolve()
    if src == out or (src.exists() and out.exists() and src.samefile(out)):
        raise InputError(f"{output}: the output must not be the input file")
    check_output_path(output)


def add_model_args(p: argparse.ArgumentParser, model_help: str | None = None) -> None:
    """The engine options every judging command shares (`build_backend` reads them)."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default=DEFAULT_JUDGE,
                   help=model_help or f"'{DEFAULT_JUDGE}' (embedded SPCT-trained judge, default), '{BASE_MODEL}' (its "
                                      "untrained base), a local HF model folder, a .gguf file, or a hub id")
    g.add_argument("--engine", default="transformers", choices=ENGINES, help="generation engine (default: transformers)")
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    g.add_argument("--gen-batch-size", type=positive_int, default=16, help="sequences per generate call (default: 16)")
    add_engine_args(p)


def add_config_arg(g: argparse._ArgumentGroup, name: str, default=None, **kwargs) -> None:
    """A flag for the JudgeConfig field `name`: its help text and default come from the field.

    A boolean field that defaults to on becomes `--no-NAME`; `default` overrides the field's
    default for one command (a smaller token budget for serving, say).
    """
    f = JudgeConfig.__dataclass_fields__[name]
    value = f.default if default is None else default
    flag = name.replace("_", "-")
    if isinstance(f.default, bool):
        g.add_argument(f"--no-{flag}", dest=name, action="store_false", help=f"do not {f.metadata['help']}")
        return
    shown = "" if value is None else f" (default: {value})"  # None-defaults say what they mean in the help
    g.add_argument(f"--{flag}", default=value, help=f"{f.metadata['help']}{shown}", **kwargs)


def add_judge_args(p: argparse.ArgumentParser, k: int | None = 1, max_new_tokens: int | None = None) -> None:
    """Judging options, from JudgeConfig; k=None leaves --k to the command (eval takes several)."""
    g = p.add_argument_group("judging")
    if k is not None:
        add_config_arg(g, "k", k, type=sample_count)
    add_config_arg(g, "temperature", type=non_negative_float)
    add_config_arg(g, "max_new_tokens", max_new_tokens, type=positive_int)
    add_config_arg(g, "seed", type=int)
    add_config_arg(g, "constrain")
    add_config_arg(g, "retries", type=non_negative_int)
    add_config_arg(g, "principles")
    add_config_arg(g, "policy", choices=POLICIES)
    add_config_arg(g, "readout", choices=READOUTS)


def add_adaptive_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("adaptive voting")
    add_config_arg(g, "adaptive", choices=RULES)
    add_config_arg(g, "round_size", type=positive_int)


def build_backend(args: argparse.Namespace) -> Backend:
    """The one place a backend is built from command-line options, for every subcommand."""
    options: dict = {}
    if args.engine == "transformers" and not args.model.startswith("openai:"):
        options = {"device": getattr(args, "device", None), "batch_size": getattr(args, "gen_batch_size", 16)}
    options.update(engine_options(args))
    return load_backend(args.model, args.engine, **options)


def judge_config(args: argparse.Namespace, k: int | None = None) -> JudgeConfig:
    """JudgeConfig from the judging options (those a command lacks keep the library's defaults)."""
    d = JudgeConfig()

    def opt(name: str):
        return getattr(args, name, getattr(d, name))

    k_meta = getattr(args, "k_meta", None)
    if k_meta is not None and not (getattr(args, "meta_rm", None) and 1 <= k_meta <= (k or args.k)):
        raise InputError("--k-meta needs --meta-rm and a value in 1..k")
    return JudgeConfig(k=k or args.k, temperature=opt("temperature"), max_new_tokens=opt("max_new_tokens"), seed=opt("seed"),
                       constrain=opt("constrain"), retries=opt("retries"), principles=opt("principles"), k_meta=k_meta,
                       adaptive=opt("adaptive"), round_size=opt("round_size"), format_demo=opt("format_demo"),
                       policy=opt("policy"), readout=opt("readout"))


def load_meta_scorer(args: argparse.Namespace) -> MetaScorer | None:
    meta_rm = getattr(args, "meta_rm", None)
    if not meta_rm:
        return None
    if not Path(meta_rm).is_dir():
        raise InputError(f"--meta-rm {meta_rm}: not a folder (train one with `spct train-meta`)")
    from ..meta_rm import SETTINGS_FILE, MetaRM

    if not (Path(meta_rm) / "config.json").is_file():  # an empty or wrong folder: the tokenizer would fail obscurely
        raise InputError(f"--meta-rm {meta_rm}: no meta RM in this folder (no config.json; `spct train-meta` "
                         f"writes one with {SETTINGS_FILE})")
    try:
        return MetaRM(meta_rm, device=getattr(args, "device", None)).score
    except (OSError, ValueError) as e:  # a damaged folder: transformers' own words, without a traceback
        raise InputError(f"--meta-rm {meta_rm}: cannot load the meta RM ({e})") from e


def build_grm(args: argparse.Namespace, k: int | None = None) -> GenerativeRewardModel:
    """Backend, judging config and meta RM (with --meta-rm) from the command line: the judge every command uses."""
    config = judge_config(args, k)
    meta_scorer = load_meta_scorer(args)
    return GenerativeRewardModel(build_backend(args), config, meta_scorer)


def add_meta_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("meta RM")
    g.add_argument("--meta-rm", default=None, help="folder of a meta RM (spct train-meta): vote over its top judgments")
    add_config_arg(g, "k_meta", type=positive_int)


def report_issues(issues: Sequence[InputIssue | str], limit: int = 20) -> None:
    """Print each skipped input as `warning: skipped file:line [field]: why` (the first `limit` of them)."""
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
    g.add_argument("--kv-cache-gib", type=positive_float, default=None,
                   help="vllm: KV cache size in GiB (default: on CPU sized from the model and the free memory, "
                        "or VLLM_CPU_KVCACHE_SPACE; on GPUs vLLM's gpu_memory_utilization)")
    g.add_argument("--enforce-eager", action="store_true",
                   help="vllm: skip torch.compile, for a faster start-up at some cost per token")
    g.add_argument("--n-threads", type=positive_int, default=None, help="llamacpp: CPU threads (default: all cores)")


def engine_options(args: argparse.Namespace) -> dict:
    def opt(name: str, default=None):
        return getattr(args, name, default)  # callers may build args by hand, without the engine options

    if args.model.startswith("openai:") or args.engine == "openai":
        return {"base_url": opt("base_url"), "concurrency": opt("concurrency", 8), "guided": opt("guided", "none")}
    if args.engine == "vllm":
        return {"tensor_parallel_size": opt("tensor_parallel_size", 1), "data_parallel_size": opt("data_parallel_size", 1),
                "kv_cache_gib": opt("kv_cache_gib"), "enforce_eager": opt("enforce_eager", False)}
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
    check_rating_scale(examples)
    return examples
