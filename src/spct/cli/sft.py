"""spct sft RFT_DIR -o MODEL_DIR: supervised fine-tuning on rejective-sampling data (TRL SFTTrainer)."""

from __future__ import annotations

import argparse
import json
import sys

from ..settings import add_dataclass_args, from_namespace
from ..train.sft import SFTSettings, TrainerSettings, train_sft
from .trl_args import add_trl_args, trl_overrides


def add_trainer_args(p: argparse.ArgumentParser, settings: type[TrainerSettings], lora: tuple[str, ...] = ()) -> None:
    """The flags of the training knobs SFT and RL share, from the fields of `settings` (their defaults differ)."""
    g = p.add_argument_group("training")
    g.add_argument("--model", default="smollm2-135m", help="base model: 'smollm2-135m' (embedded), a folder, a .gguf or a hub id")
    add_dataclass_args(g, settings, ("epochs", "max_steps", "learning_rate", "grad_accum", "gradient_checkpointing",
                                     "use_cpu", "seed", "logging_steps", "save_steps", "report_to"))
    add_dataclass_args(p.add_argument_group("LoRA (PEFT)"), settings, ("lora", "lora_r", "lora_alpha", *lora))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sft", help="fine-tune a GRM on `spct rft` output (TRL SFTTrainer)",
                       description="Supervised fine-tuning on RFT_DIR/train.jsonl (or any JSONL of TRL prompt/completion "
                                   "rows) with loss on the completion only. Saves a plain model folder (LoRA merged). "
                                   "Multi-GPU: launch with `accelerate launch --config_file configs/accelerate/... -m spct sft ...`.")
    p.add_argument("data", nargs="+", help="RFT output folder(s) and/or prompt/completion JSONL files (e.g. `spct data "
                                          "verdict` rows); several are concatenated and shuffled")
    p.add_argument("-o", "--output", required=True, help="folder for the fine-tuned model")
    add_dataclass_args(p, SFTSettings, ("batch_size", "max_length", "verdict_weight"))
    add_trainer_args(p, SFTSettings, lora=("lora_top_layers",))
    add_trl_args(p, "SFTConfig")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trl import SFTConfig

    overrides = trl_overrides(args, SFTConfig)
    s = from_namespace(SFTSettings, args)
    print(json.dumps(train_sft(args.model, args.data, args.output, s, trl_overrides=overrides)), file=sys.stderr)
    return 0
