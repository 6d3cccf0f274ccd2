"""spct rl DATA --model MODEL_DIR -o MODEL_DIR2: rule-based GRPO (TRL GRPOTrainer, +1/-1 reward)."""

from __future__ import annotations

import argparse
import json
import sys

from ..train.rl import RLSettings, train_rl
from .common import load_labelled, non_negative_float, positive_float, positive_int
from .sft import add_lora_args, add_trainer_args
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
    p.add_argument("--beta", type=non_negative_float, default=0.08, help="KL coefficient (default: 0.08, the paper's; TRL's is 0)")
    p.add_argument("--num-generations", type=positive_int, default=4, help="group size G (default: 4)")
    p.add_argument("--prompts-per-step", type=positive_int, default=1, help="prompts per device per step (default: 1)")
    p.add_argument("--max-completion-length", type=positive_int, default=1024, help="token budget of a judgment (default: 1024)")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="sampling temperature of the rollouts (default: 1.0)")
    vllm = p.add_mutually_exclusive_group()
    vllm.add_argument("--vllm", dest="use_vllm", action="store_true", default=None, help="generate with vLLM (default when a GPU is present)")
    vllm.add_argument("--no-vllm", dest="use_vllm", action="store_false", help="generate with transformers")
    p.add_argument("--vllm-tp", type=positive_int, default=1, help="tensor-parallel size of the colocated vLLM engine (default: 1)")
    p.add_argument("--vllm-memory", type=positive_float, default=0.3, help="share of GPU memory vLLM may use (default: 0.3)")
    p.add_argument("--no-principles", dest="principles", action="store_false", help="ablation: judge without principles")
    add_trainer_args(p, lr=1e-6, epochs=1.0)
    add_lora_args(p)
    add_trl_args(p, "GRPOConfig")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trl import GRPOConfig

    overrides = trl_overrides(args, GRPOConfig)
    examples = load_labelled(args)
    s = RLSettings(beta=args.beta, num_generations=args.num_generations, prompts_per_step=args.prompts_per_step,
                   grad_accum=args.grad_accum, max_completion_length=args.max_completion_length,
                   temperature=args.temperature, learning_rate=args.lr, epochs=args.epochs, max_steps=args.max_steps,
                   use_vllm=args.use_vllm, vllm_tensor_parallel_size=args.vllm_tp,
                   vllm_gpu_memory_utilization=args.vllm_memory, gradient_checkpointing=args.gradient_checkpointing, lora=args.lora,
                   lora_r=args.lora_r, lora_alpha=args.lora_alpha, use_cpu=args.use_cpu, seed=args.seed,
                   logging_steps=args.logging_steps, save_steps=args.save_steps, report_to=args.report_to)
    print(json.dumps(train_rl(args.model, examples, args.output, s, principles=args.principles, trl_overrides=overrides)),
          file=sys.stderr)
    return 0
