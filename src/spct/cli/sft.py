"""spct sft RFT_DIR -o MODEL_DIR: supervised fine-tuning on rejective-sampling data (TRL SFTTrainer)."""

from __future__ import annotations

import argparse
import json
import sys

from ..settings import add_dataclass_args, from_namespace
from ..train.sft import SFT_DEFAULTS, LoraSettings, SFTSettings, train_sft
from .trl_args import TRLHelpFormatter, add_trl_args, trl_fields


def add_spct_args(p: argparse.ArgumentParser, settings: type[LoraSettings], names: tuple[str, ...] = ()) -> None:
    """What spct adds to TRL's config, the same for SFT and RL: the base model and LoRA (PEFT), then `names`."""
    g = p.add_argument_group("model and LoRA (spct's; the trainer's knobs are TRL's, below)")
    g.add_argument("--model", default="smollm2-135m", help="base model: 'smollm2-135m' (embedded), a folder, a .gguf or a hub id")
    add_dataclass_args(g, settings, ("lora", "lora_r", "lora_alpha", *names))


def print_summary(metrics: dict) -> None:
    """A training run's figures on stderr, once: under `accelerate launch` every process has them."""
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps(metrics), file=sys.stderr)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sft", help="fine-tune a GRM on `spct rft` output (TRL SFTTrainer)", formatter_class=TRLHelpFormatter,
                       usage="%(prog)s DATA [DATA ...] -o OUTPUT [--model MODEL] [--lora] [...]\n       [any TRL SFTConfig field: --lr X, "
                             "--epochs X, ...] [--config YAML] [--trl FIELD=VALUE]",
                       description="Supervised fine-tuning on RFT_DIR/train.jsonl (or any JSONL of TRL prompt/completion "
                                   "rows) with loss on the completion only. Saves a plain model folder (LoRA merged). "
                                   "Every TRL SFTConfig field is a flag (TRL's defaults unless spct's are shown). "
                                   "Multi-GPU: launch with `accelerate launch --config_file configs/accelerate/... -m spct sft ...`.")
    p.add_argument("data", nargs="+", help="RFT output folder(s) and/or prompt/completion JSONL files (e.g. `spct data "
                                          "verdict` rows); several are concatenated and shuffled")
    p.add_argument("-o", "--output", required=True, help="folder for the fine-tuned model (TRL's output_dir)")
    add_spct_args(p, SFTSettings, ("lora_top_layers", "verdict_weight"))
    add_trl_args(p, "SFTConfig", SFT_DEFAULTS, aliases={"per_device_train_batch_size": ("--batch-size",)},
                 helps={"completion_only_loss": "loss on the completion only"})
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trl import SFTConfig

    fields = trl_fields(args, SFTConfig)
    s = from_namespace(SFTSettings, args)
    print_summary(train_sft(args.model, args.data, args.output, s, trl_overrides=fields))
    return 0
