"""Options shared by every subcommand that runs a judge: EngineConfig's and JudgeConfig's fields as flags.

The value checks (`positive_int`, ...) live in `spct.settings`; they are re-exported here for the
commands' own flags.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..backends import Backend, EngineConfig, load_backend
from ..backends.models import JUDGING_FILE, RECOMMENDABLE, recommended_judging
from ..data import Example, InputError, InputIssue, load_examples
from ..judge import GenerativeRewardModel, JudgeConfig, readable_by
from ..policies import MetaScorer
from ..settings import add_dataclass_args, from_namespace, int_within
from ..settings import non_negative_float as non_negative_float
from ..settings import non_negative_int as non_negative_int
from ..settings import positive_float as positive_float
from ..settings import positive_int as positive_int
from ..settings import sample_count as sample_count
from ..voting import check_rating_scale

MAX_BODY_MB = 1024.0  # a request body past 1 GiB is no reward request


def body_size_mb(text: str) -> float:
    """--max-body-mb: a positive size up to MAX_BODY_MB (1e308 MiB would overflow the byte count)."""
    value = positive_float(text)
    if value > MAX_BODY_MB:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_BODY_MB:g} MiB, got {text}")
    return value


def port_number(text: str) -> int:
    """--port: a TCP port."""
    return int_within(text, 0, 65535)


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
    """The engine options every judging command shares: EngineConfig's fields (`build_backend` reads them)."""
    add_dataclass_args(p.add_argument_group("model"), EngineConfig, ("model", "engine", "device", "gen_batch_size", "dtype"),
                       helps={"model": model_help} if model_help else None)
    add_dataclass_args(p.add_argument_group("engines (openai, vllm, llamacpp)"), EngineConfig,
                       ("base_url", "concurrency", "guided", "tensor_parallel_size", "data_parallel_size", "kv_cache_gib",
                        "enforce_eager", "n_threads"))


def add_judge_args(p: argparse.ArgumentParser, k: int | None = 1, max_new_tokens: int | None = None) -> None:
    """Judging options, from JudgeConfig; k=None leaves --k to the command (eval takes several), a `max_new_tokens`
    preset replaces the full budget (defaults)."""
    names = ("k",) * (k is not None) + ("temperature", "max_new_tokens", "seed", "constrain", "retries", "principles",
                                         "policy", "readout")
    # policy/readout: None until judge_config knows the model, which may recommend its own.
    defaults = {"k": k, "max_new_tokens": max_new_tokens or JudgeConfig.max_new_tokens, "policy": None, "readout": None}
    helps = {name: f"{JudgeConfig.__dataclass_fields__[name].metadata['help']} (default: what the model's "
                   f"{JUDGING_FILE} recommends, else {getattr(JudgeConfig, name)})" for name in RECOMMENDABLE}
    add_dataclass_args(p.add_argument_group("judging"), JudgeConfig, names, defaults=defaults, helps=helps)


def add_adaptive_args(p: argparse.ArgumentParser) -> None:
    add_dataclass_args(p.add_argument_group("adaptive voting"), JudgeConfig, ("adaptive", "round_size"))


def build_backend(args: argparse.Namespace, judgments: int | None = None) -> Backend:
    """The backend the command line asks for: EngineConfig from the flags, built by `load_backend`.

    `judgments`, the job's size when the command knows it before loading, lets `--engine auto` choose.
    """
    return load_backend(from_namespace(EngineConfig, args), judgments=judgments)


def judge_config(args: argparse.Namespace, k: int | None = None) -> JudgeConfig:
    """JudgeConfig from the judging flags (those a command lacks keep the library's defaults); `k` wins over --k."""
    k = k or args.k
    k_meta = getattr(args, "k_meta", None)
    if k_meta is not None and not (getattr(args, "meta_rm", None) and 1 <= k_meta <= k):
        raise InputError("--k-meta needs --meta-rm and a value in 1..k")
    values = {name: getattr(args, name, None) for name in RECOMMENDABLE}  # None: no flag given
    if getattr(args, "adaptive", None) and values["policy"] is None:  # adaptive voting is a voting policy
        values["policy"] = "voting"
    if None in values.values() and getattr(args, "model", None):
        recommended = recommended_judging(args.model, getattr(args, "engine", None))
        taken = {name: recommended[name] for name, value in values.items() if value is None and name in recommended}
        if taken:
            print(f"spct: judging {args.model} as it was trained to be read: "
                  + ", ".join(f"--{name} {value}" for name, value in taken.items()) + f" (from its {JUDGING_FILE}; "
                  "a flag overrides it)", file=sys.stderr)
        values.update(taken)
    values = {name: getattr(JudgeConfig, name) if value is None else value for name, value in values.items()}
    return from_namespace(JudgeConfig, args, k=k, **values)


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


def build_grm(args: argparse.Namespace, k: int | None = None, judgments: int | None = None) -> GenerativeRewardModel:
    """Backend, judging config and meta RM (with --meta-rm) from the command line: the judge every command uses.

    `judgments`: the job's size (examples x samples) for `--engine auto`, None when not known up front.
    """
    config = judge_config(args, k)
    meta_scorer = load_meta_scorer(args)
    backend = build_backend(args, judgments)
    if getattr(args, "readout", None) is None:  # only recommended: fit it to the engine (an explicit one is checked)
        config, note = readable_by(config, backend)
        if note:
            print(f"spct: {note}", file=sys.stderr)
    return GenerativeRewardModel(backend, config, meta_scorer)


def add_meta_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("meta RM")
    g.add_argument("--meta-rm", default=None, help="folder of a meta RM (spct train-meta): vote over its top judgments")
    add_dataclass_args(g, JudgeConfig, ("k_meta",))


def report_issues(issues: Sequence[InputIssue | str], limit: int = 20) -> None:
    """Print each skipped input as `warning: skipped file:line [field]: why` (the first `limit` of them)."""
    for issue in issues[:limit]:
        print(f"warning: skipped {issue}", file=sys.stderr)
    if len(issues) > limit:
        print(f"warning: ... and {len(issues) - limit} more bad line(s)", file=sys.stderr)


def load_labelled(args: argparse.Namespace) -> list[Example]:
    """The labelled examples of `args.input` (first `--limit`), bad lines reported and skipped."""
    examples, issues = load_examples(args.input, args.split)
    report_issues(issues)
    examples = [ex for ex in examples if ex.labelled][: args.limit]
    if not examples:
        raise InputError(f"{args.input}: no labelled examples ('best' or 'ratings' is needed)")
    check_rating_scale(examples)
    return examples
