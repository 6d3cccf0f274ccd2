"""spct rl DATA --model MODEL_DIR -o MODEL_DIR2: rule-based GRPO (TRL GRPOTrainer, +1/-1 reward)."""

from __future__ import annotations

import argparse
import json
import sys

from ..settings import add_dataclass_args, from_namespace
from ..train.rl import RLSettings, train_rl
from .common import load_labelled, positive_int
from .sft import add_trainer_args
from .trl_args import add_trl_args, trl_overrides


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rl", help="rule-based online RL of a GRM (TRL GRPOTrainer)",
                       description="GRPO on labelled examples: reward +1 when the generated judgment parses and singles out "
                                   "the labelled best response (n = 1: matches the rating), else -1; group size 4, "
                                   "KL beta 0.08, no format reward, responses shuffled per prompt. Uses vLLM for "
                                   "generation when a GPU is present.")
    p.add_argument("input", help="labelled examples (JSONL, .jsonl.gz, or a HF dataset name)")
    p.add_argument("-o", "--output", required=True, help="folder for the trained model")
    p.add_argument("--split", default="train", help="split, when DATA is a HF dataset (default: train)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N examples")
    add_dataclass_args(p, RLSettings, ("beta", "num_generations", "prompts_per_step", "max_completion_length", "temperature"))
    vllm = p.add_mutually_exclusive_group()  # three ways: on, off, or on when a GPU is present (None)
    vllm.add_argument("--vllm", dest="use_vllm", action="store_true", default=None, help="generate with vLLM (default when a GPU is present)")
    vllm.add_argument("--no-vllm", dest="use_vllm", action="store_false", help="generate with transformers")
    add_dataclass_args(p, RLSettings, ("vllm_tensor_parallel_size", "vllm_gpu_memory_utilization"))
    p.add_argument("--no-principles", dest="principles", action="store_false", help="ablation: judge without principles")
    add_trainer_args(p, RLSettings)
    add_trl_args(p, "GRPOConfig")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trl import GRPOConfig

    overrides = trl_overrides(args, GRPOConfig)
    examples = load_labelled(args)
    s = from_namespace(RLSettings, args)
    print(json.dumps(train_rl(args.model, examples, args.output, s, principles=args.principles, trl_overrides=overrides)),
          file=sys.stderr)
    return 0
