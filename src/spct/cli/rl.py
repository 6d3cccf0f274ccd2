"""spct rl DATA --model MODEL_DIR -o MODEL_DIR2: rule-based GRPO (TRL GRPOTrainer, +1/-1 reward)."""

from __future__ import annotations

import argparse

from ..settings import from_namespace
from ..train.rl import GRPO_DEFAULTS, RLSettings, train_rl
from .common import load_labelled, positive_int
from .sft import add_spct_args, print_summary
from .trl_args import TRLHelpFormatter, add_trl_args, trl_fields


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rl", help="rule-based online RL of a GRM (TRL GRPOTrainer)", formatter_class=TRLHelpFormatter,
                       usage="%(prog)s DATA -o OUTPUT [--model MODEL] [--lora] [...]\n       [any TRL GRPOConfig field: --lr X, "
                             "--beta X, ...] [--config YAML] [--trl FIELD=VALUE]",
                       description="GRPO on labelled examples: reward +1 when the generated judgment parses and singles out "
                                   "the labelled best response (n = 1: matches the rating), else -1; group size 4, "
                                   "KL beta 0.08, no format reward, responses shuffled per prompt. Uses vLLM for "
                                   "generation when a GPU is present. Every TRL GRPOConfig field is a flag (TRL's "
                                   "defaults unless spct's are shown).")
    p.add_argument("input", help="labelled examples (JSONL, .jsonl.gz, or a HF dataset name)")
    p.add_argument("-o", "--output", required=True, help="folder for the trained model (TRL's output_dir)")
    p.add_argument("--split", default="train", help="split, when DATA is a HF dataset (default: train)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N examples")
    p.add_argument("--no-principles", dest="principles", action="store_false", help="ablation: judge without principles")
    add_spct_args(p, RLSettings, ("prompts_per_step",))
    add_trl_args(p, "GRPOConfig", GRPO_DEFAULTS,
                 aliases={"vllm_tensor_parallel_size": ("--vllm-tp",), "vllm_gpu_memory_utilization": ("--vllm-memory",)},
                 switches={"--vllm": ("use_vllm", True, "generate with vLLM (spct's default when a GPU is present)"),
                           "--no-vllm": ("use_vllm", False, "generate with transformers")},
                 helps={"beta": "KL coefficient (the paper's; TRL's default is 0)",
                        "num_generations": "group size G",
                        "per_device_train_batch_size": "completions per device per step (spct's default: "
                                                       "--prompts-per-step x --num-generations)",
                        "max_completion_length": "token budget of a judgment",
                        "temperature": "sampling temperature of the rollouts"})
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trl import GRPOConfig

    fields = trl_fields(args, GRPOConfig)
    examples = load_labelled(args)
    s = from_namespace(RLSettings, args)
    print_summary(train_rl(args.model, examples, args.output, s, principles=args.principles, trl_overrides=fields))
    return 0
