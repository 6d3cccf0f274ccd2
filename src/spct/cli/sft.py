"""spct sft RFT_DIR -o MODEL_DIR: supervised fine-tuning on rejective-sampling data (TRL SFTTrainer)."""

from __future__ import annotations

import argparse
import json
import sys

from ..train.sft import SFTSettings, train_sft
from .common import positive_float, positive_int
from .trl_args import add_trl_args, trl_overrides


def add_lora_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("LoRA (PEFT)")
    g.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into the saved model; the adapter alone in OUT/adapter)")
    g.add_argument("--lora-r", type=positive_int, default=16, help="LoRA rank (default: 16)")
    g.add_argument("--lora-alpha", type=positive_int, default=32, help="LoRA alpha (default: 32)")


def add_trainer_args(p: argparse.ArgumentParser, lr: float, epochs: float) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--model", default="smollm2-135m", help="base model: 'smollm2-135m' (embedded), a folder, a .gguf or a hub id")
    g.add_argument("--epochs", type=positive_float, default=epochs, help=f"epochs (default: {epochs})")
    g.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (overrides --epochs)")
    g.add_argument("--lr", type=positive_float, default=lr, help=f"learning rate (default: {lr})")
    g.add_argument("--grad-accum", type=positive_int, default=4, help="gradient accumulation steps (default: 4)")
    g.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory")
    g.add_argument("--cpu", dest="use_cpu", action="store_true", help="train on CPU even when a GPU is present")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--logging-steps", type=positive_int, default=10)
    g.add_argument("--save-steps", type=int, default=0,
                   help="checkpoint every N steps into the output folder; a rerun resumes from the newest (default: 0, off)")
    g.add_argument("--report-to", default="none", help="trackers for transformers (e.g. wandb, tensorboard; default: none)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sft", help="fine-tune a GRM on `spct rft` output (TRL SFTTrainer)",
                       description="Supervised fine-tuning on RFT_DIR/train.jsonl (or any JSONL of TRL prompt/completion "
                                   "rows) with loss on the completion only. Saves a plain model folder (LoRA merged). "
                                   "Multi-GPU: launch with `accelerate launch --config_file configs/accelerate/... -m spct sft ...`.")
    p.add_argument("data", nargs="+", help="RFT output folder(s) and/or prompt/completion JSONL files (e.g. `spct data "
                                          "verdict` rows); several are concatenated and shuffled")
    p.add_argument("-o", "--output", required=True, help="folder for the fine-tuned model")
    p.add_argument("--batch-size", type=positive_int, default=4, help="rows per device per step (default: 4)")
    p.add_argument("--max-length", type=positive_int, default=4096, help="max tokens of prompt + completion (default: 4096)")
    p.add_argument("--verdict-weight", type=float, default=1.0,
                   help="loss weight of the final score box's values; a verdict row's bare score prefix then weighs 0 "
                        "(default: 1, plain SFT)")
    add_trainer_args(p, lr=1e-5, epochs=2.0)
    add_lora_args(p)
    p.add_argument("--lora-top-layers", type=positive_int, default=None,
                   help="LoRA only in the last N decoder layers, so backward stops there (cheaper; default: every layer)")
    add_trl_args(p, "SFTConfig")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trl import SFTConfig

    overrides = trl_overrides(args, SFTConfig)
    s = SFTSettings(epochs=args.epochs, max_steps=args.max_steps, learning_rate=args.lr, batch_size=args.batch_size,
                    grad_accum=args.grad_accum, max_length=args.max_length, lora=args.lora, lora_r=args.lora_r,
                    lora_alpha=args.lora_alpha, lora_top_layers=args.lora_top_layers, gradient_checkpointing=args.gradient_checkpointing, use_cpu=args.use_cpu,
                    seed=args.seed, logging_steps=args.logging_steps, save_steps=args.save_steps, report_to=args.report_to,
                    verdict_weight=args.verdict_weight)
    print(json.dumps(train_sft(args.model, args.data, args.output, s, trl_overrides=overrides)), file=sys.stderr)
    return 0
