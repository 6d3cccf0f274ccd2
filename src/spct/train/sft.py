"""Supervised fine-tuning on the rejective-sampling data with TRL's SFTTrainer.

The dataset is conversational prompt/completion rows (train/rft.py), so the loss is on the
completion only (`completion_only_loss`). LoRA via PEFT is optional; a LoRA run saves the
merged weights, so the output folder is a plain model that every backend loads
(`TransformersBackend(out)`, vLLM, `spct judge --model out`), and the adapter alone in
`out/adapter/` (what spct ships). With `save_steps` the trainer checkpoints into the output
folder and a rerun resumes from the newest checkpoint; the log history (loss per step) is
written to `out/log_history.json` for plots.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..backends.models import resolve_model
from ..data import InputError


@dataclass
class SFTSettings:
    """The knobs spct exposes; everything else keeps TRL's defaults (see `sft_config`)."""

    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 1e-5
    batch_size: int = 4  # per device
    grad_accum: int = 4
    max_length: int = 4096  # prompt + completion tokens; longer rows are truncated
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    gradient_checkpointing: bool = False
    use_cpu: bool = False
    seed: int = 0
    logging_steps: int = 10
    save_steps: int = 0  # > 0: checkpoint every N steps; a rerun resumes from the newest
    report_to: str = "none"


def sft_config(s: SFTSettings, output_dir: str | Path, model_init_kwargs: dict[str, Any] | None = None,
               trl_overrides: dict[str, Any] | None = None):
    """TRL's SFTConfig from spct's settings; `trl_overrides` sets any other SFTConfig field (and wins)."""
    from trl import SFTConfig

    on_gpu = torch.cuda.is_available() and not s.use_cpu
    return SFTConfig(**{**dict(
        output_dir=str(output_dir),
        model_init_kwargs=model_init_kwargs or None,
        num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        learning_rate=s.learning_rate,
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        max_length=s.max_length,
        completion_only_loss=True,
        gradient_checkpointing=s.gradient_checkpointing,
        bf16=on_gpu,
        use_cpu=s.use_cpu,
        seed=s.seed,
        logging_steps=s.logging_steps,
        save_strategy="steps" if s.save_steps > 0 else "no",
        save_steps=s.save_steps or 500,
        save_total_limit=2,
        report_to=s.report_to,
    ), **(trl_overrides or {})})


def load_train_rows(data: str | Path):
    """RFT_DIR (its train.jsonl) or a JSONL file of prompt/completion rows -> datasets.Dataset."""
    from datasets import load_dataset

    p = Path(data)
    if p.is_dir():
        p = p / "train.jsonl"
    if not p.is_file():
        raise InputError(f"{p}: no such file (run `spct rft` first)")
    ds = load_dataset("json", data_files=str(p), split="train")
    missing = {"prompt", "completion"} - set(ds.column_names)
    if missing:
        raise InputError(f"{p}: rows need 'prompt' and 'completion' (missing {', '.join(sorted(missing))})")
    if len(ds) == 0:
        raise InputError(f"{p}: no training rows (rejective sampling kept nothing)")
    return ds.select_columns(["prompt", "completion"])


def resolve_policy(model: str) -> tuple[str, dict[str, Any], Any]:
    """Model spec -> (path, from_pretrained kwargs, tokenizer).

    The trainer is given the path, not a loaded model, so TRL loads it after the DeepSpeed
    config exists (ZeRO-3 then shards the weights while loading instead of every process
    holding a full copy).
    """
    from transformers import AutoTokenizer

    path, gguf = resolve_model(model)
    init_kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    tokenizer = AutoTokenizer.from_pretrained(path, **init_kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return path, init_kwargs, tokenizer


ADAPTER_DIR = "adapter"
LOG_FILE = "log_history.json"


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest `checkpoint-N` folder in output_dir, to resume from; None when there is none."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def save_model(trainer, tokenizer, output_dir: str | Path) -> None:
    """Save a plain model folder. `Trainer.save_model` gathers ZeRO-3 shards; LoRA adapters are
    saved alone in output_dir/adapter, then merged into the base weights for the plain folder
    (use LoRA with ZeRO-2 or one device: merging needs whole weights)."""
    if trainer.accelerator.is_main_process:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / LOG_FILE).write_text(json.dumps(trainer.state.log_history, indent=1) + "\n")
    if hasattr(trainer.model, "merge_and_unload"):
        if trainer.accelerator.is_main_process:
            trainer.model.save_pretrained(Path(output_dir) / ADAPTER_DIR)
            trainer.model.merge_and_unload().save_pretrained(output_dir)
            tokenizer.save_pretrained(output_dir)
        return
    trainer.save_model(str(output_dir))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(output_dir)


def lora_config(s: SFTSettings):
    from peft import LoraConfig

    return LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")


def train_sft(base_model: str, data: str | Path, output_dir: str | Path, settings: SFTSettings | None = None,
              trl_overrides: dict[str, Any] | None = None) -> dict[str, float]:
    """Fine-tune `base_model` on RFT data; save the (merged) model to output_dir; return timing metrics.

    `trl_overrides` sets any TRL SFTConfig field beyond `settings` (it wins over them).
    """
    from trl import SFTTrainer

    s = settings or SFTSettings()
    dataset = load_train_rows(data)
    path, init_kwargs, tokenizer = resolve_policy(base_model)
    trainer = SFTTrainer(
        model=path,
        args=sft_config(s, output_dir, init_kwargs, trl_overrides),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(s) if s.lora else None,
    )
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last_checkpoint(output_dir))
    seconds = time.perf_counter() - t0
    save_model(trainer, tokenizer, output_dir)
    steps = max(1, result.global_step)
    return {"rows": len(dataset), "steps": result.global_step, "seconds": round(seconds, 2),
            "seconds_per_step": round(seconds / steps, 3), "train_loss": round(result.training_loss, 4)}
