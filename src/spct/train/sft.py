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
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..backends.models import resolve_model
from ..data import InputError
from ..settings import positive_int, setting


@dataclass
class LoraSettings:
    """The PEFT knobs `spct sft` and `spct rl` share: LoRA is spct's, not a field of TRL's configs."""

    lora: bool = setting(False, "train LoRA adapters (merged into the saved model; the adapter alone in OUT/adapter)")
    lora_r: int = setting(16, "LoRA rank", type=positive_int)
    lora_alpha: int = setting(32, "LoRA alpha", type=positive_int)


@dataclass
class SFTSettings(LoraSettings):
    """What `spct sft` adds to TRL's SFTConfig (which holds every trainer knob: `sft_config`)."""

    lora_top_layers: int | None = setting(None, "LoRA only in the last N decoder layers, so backward stops there "
                                                "(cheaper; default: every layer)", type=positive_int)
    verdict_weight: float = setting(1.0, "loss weight of the final score box's values; a verdict row's bare score "
                                         "prefix then weighs 0 (default: 1, plain SFT)")


#: Where spct's trainers deliberately differ from TRL's defaults (every other field is TRL's). `bf16` None is
#: decided at run time (on a GPU unless use_cpu), `save_steps` 0 means no checkpoints (`trl_config`).
TRAINER_DEFAULTS: dict[str, Any] = dict(
    gradient_accumulation_steps=4,
    gradient_checkpointing=False,
    bf16=None,
    seed=0,
    save_steps=0,
    save_total_limit=2,
    report_to="none",
)

#: spct's SFTConfig defaults: loss on the completion only, room for a whole judgment.
SFT_DEFAULTS: dict[str, Any] = dict(
    TRAINER_DEFAULTS,
    learning_rate=1e-5,
    num_train_epochs=2.0,
    per_device_train_batch_size=4,
    max_length=4096,
    completion_only_loss=True,
)


def on_gpu(values: Mapping[str, Any]) -> bool:
    """Whether a run with these TRL fields trains on a GPU: one is present and `use_cpu` is off."""
    return torch.cuda.is_available() and not values.get("use_cpu")


def trl_config(config_cls: type, values: Mapping[str, Any], output_dir: str | Path,
               model_init_kwargs: dict[str, Any] | None = None):
    """`config_cls` (TRL's SFTConfig or GRPOConfig) from `values` (spct's defaults under the caller's fields).

    Settles what spct leaves to run time: bf16 None -> on a GPU; save_steps 0 with the "steps"
    strategy -> no checkpoints; model_init_kwargs None -> the model's own (a GGUF file).
    """
    values = {**values, "output_dir": str(output_dir)}
    if values.get("bf16") is None:
        values["bf16"] = on_gpu(values)
    if not values.get("save_steps") and values.get("save_strategy", "steps") == "steps":
        values["save_strategy"] = "no"
    if values.get("model_init_kwargs") is None:
        values["model_init_kwargs"] = model_init_kwargs or None
    config = config_cls(**values)
    check_launch(config)
    return config


def check_launch(config: Any) -> None:
    """Refuse a multi-process launch whose processes would not train together.

    Under `accelerate launch` on a machine without a GPU, accelerate joins the processes only when
    the trainer runs on the CPU; otherwise each trains its own copy and all save into one folder.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate launch / torchrun
    if launched > 1 and config.world_size < launched:
        raise InputError(f"launched as {launched} processes, but they found no device to train together on "
                         "(no GPU): add --cpu to train on the CPU over gloo", field="use_cpu")


def sft_config(output_dir: str | Path, trl_overrides: Mapping[str, Any] | None = None,
               model_init_kwargs: dict[str, Any] | None = None):
    """TRL's SFTConfig: the fields in `trl_overrides`, spct's SFT_DEFAULTS for the rest, then TRL's defaults."""
    from trl import SFTConfig

    return trl_config(SFTConfig, {**SFT_DEFAULTS, **(trl_overrides or {})}, output_dir, model_init_kwargs)


def load_train_rows(data: str | Path | list[str | Path], seed: int = 0):
    """RFT_DIR (its train.jsonl) or JSONL files of prompt/completion rows -> one shuffled datasets.Dataset.

    Several sources (RFT rows, verdict rows from `spct data verdict`) are concatenated and
    shuffled with `seed`, so every batch mixes them.
    """
    from datasets import concatenate_datasets, load_dataset

    parts = []
    for item in data if isinstance(data, list) else [data]:
        p = Path(item)
        if p.is_dir():
            p = p / "train.jsonl"
        if not p.is_file():
            raise InputError(f"{p}: no such file (run `spct rft` or `spct data verdict` first)")
        ds = load_dataset("json", data_files=str(p), split="train")
        missing = {"prompt", "completion"} - set(ds.column_names)
        if missing:
            raise InputError(f"{p}: rows need 'prompt' and 'completion' (missing {', '.join(sorted(missing))})")
        if len(ds) == 0:
            raise InputError(f"{p}: no training rows (rejective sampling kept nothing)")
        parts.append(ds.select_columns(["prompt", "completion"]))
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts).shuffle(seed=seed)


def check_rows_left(rows: int, kept: int, max_length: int | None) -> None:
    """Refuse to train when truncation left no row a completion token.

    TRL cuts each row to max_length and drops those left with no loss (a prompt alone fills it);
    when that is every row, its trainer would stop with a bare `num_samples=0` error.
    """
    if rows and not kept:
        raise InputError(f"max_length={max_length} cuts away the completion of all {rows} training row(s) (their prompts "
                         "alone fill it), so there is nothing to train on: raise --max-length", field="max_length")


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


def lora_config(s: LoraSettings, top_layers: int | None = None, num_layers: int | None = None):
    """PEFT LoRA on every linear layer, or on those of the last `top_layers` of the model's `num_layers` decoder layers."""
    from peft import LoraConfig

    layers = None
    if top_layers:
        if not num_layers:
            raise InputError("lora_top_layers needs a model whose config states num_hidden_layers", field="lora_top_layers")
        layers = list(range(max(0, num_layers - top_layers), num_layers))
    return LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=0.05, task_type="CAUSAL_LM",
                      target_modules="all-linear" if layers is None else
                      ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                      layers_to_transform=layers)


def verdict_weights(input_ids, labels, prefix: str, decode, weight: float):
    """Per-token loss weights aligned with the shifted labels (`labels[:, 1:]`).

    Completion tokens weigh 1, except the values of the row's final score box (the tokens after
    its last `boxed{`, up to its `}`), which weigh `weight`. In a row whose whole completion
    before those values is the bare score prefix (a verdict row), that prefix weighs 0: such rows
    teach which scores follow the prefix, never to write the prefix before any analysis.
    Also returns a mask of each row's first score value (the verdict of a pair), for logging.
    """
    import torch

    shifted = labels[:, 1:]
    w = (shifted != -100).to(torch.float32)
    first_value = torch.zeros_like(w, dtype=torch.bool)
    for b in range(labels.shape[0]):
        ids = input_ids[b].tolist()
        lab = (labels[b] != -100).nonzero()
        if len(lab) == 0:
            continue
        first = int(lab[0])
        # the last token that completes "boxed{" (read back from text: tokenizers split it differently)
        end = next((t for t in range(len(ids) - 1, first - 1, -1)
                    if "{" in decode([ids[t]]) and decode(ids[max(first, t - 5) : t + 1]).endswith("boxed{")), None)
        if end is None or end >= len(ids) - 1:
            continue  # no box, or no score value after it (instruction data, or cut by max_length)
        close = next((t for t in range(end + 1, len(ids)) if "}" in decode([ids[t]])), len(ids) - 1)
        # token t of the row is predicted at shifted position t - 1
        w[b, end : close] = weight
        first_value[b, end] = True
        if decode(ids[first : end + 1]).strip() == prefix.strip():
            w[b, first - 1 : end] = 0.0
    return w, first_value


def _verdict_trainer_class():
    """SFTTrainer whose loss weighs the score box's values (`--verdict-weight`); built lazily (TRL is an extra)."""
    from trl import SFTTrainer

    from ..score_line import SCORE_PREFIX

    class VerdictWeightedSFTTrainer(SFTTrainer):
        """TRL's SFT loss with per-token weights: the verdict's values `verdict_weight` times, a verdict row's bare prefix 0.

        The sum is divided by the same token count TRL divides by, so weight 1 is TRL's loss exactly.
        Logs `verdict_accuracy` and `verdict_loss`: top-1 accuracy and loss on each row's first score value.
        """

        def __init__(self, *args, verdict_weight: float = 1.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.verdict_weight = verdict_weight
            self._decode = self.processing_class.decode

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.verdict_weight == 1.0 or return_outputs or "labels" not in inputs or "input_ids" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            mode = "train" if model.training else "eval"
            inputs["use_cache"] = False
            weights, first_value = verdict_weights(inputs["input_ids"], inputs["labels"], SCORE_PREFIX, self._decode,
                                                   self.verdict_weight)
            weights, first_value = weights.to(inputs["input_ids"].device), first_value.to(inputs["input_ids"].device)
            outputs = model(**inputs, fused_lm_head=True)
            num_tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = (-outputs.log_probs * weights).sum() / torch.as_tensor(num_tokens).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            if first_value.any():  # the top token is the right first score value
                hits = (outputs.is_top1.bool() & first_value).sum() / first_value.sum()
                self._metrics[mode]["verdict_accuracy"].append(hits.item())
                verdict_nll = (-outputs.log_probs * first_value).sum() / first_value.sum()
                self._metrics[mode]["verdict_loss"].append(verdict_nll.item())
            valid = outputs.label_mask.sum()
            self._metrics[mode]["mean_token_accuracy"].append((outputs.is_top1.sum() / valid.clamp(min=1)).item())
            return loss

    return VerdictWeightedSFTTrainer


def _num_layers(path: str, init_kwargs: dict[str, Any]) -> int | None:
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(path, **init_kwargs), "num_hidden_layers", None)


def train_sft(base_model: str, data: str | Path | list[str | Path], output_dir: str | Path, settings: SFTSettings | None = None,
              trl_overrides: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Fine-tune `base_model` on RFT data; save the (merged) model to output_dir; return timing metrics.

    `trl_overrides` holds TRL SFTConfig fields (`learning_rate`, `max_steps`, ...); the others take
    spct's SFT_DEFAULTS, then TRL's.
    """
    s = settings or SFTSettings()
    if s.verdict_weight < 0:
        raise InputError("verdict_weight must be >= 0", field="verdict_weight")
    dataset = load_train_rows(data, {**SFT_DEFAULTS, **(trl_overrides or {})}["seed"])  # bad data stops before a model loads
    path, init_kwargs, tokenizer = resolve_policy(base_model)
    trainer = _verdict_trainer_class()(
        model=path,
        args=sft_config(output_dir, trl_overrides, init_kwargs),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=(lora_config(s, s.lora_top_layers, _num_layers(path, init_kwargs) if s.lora_top_layers else None)
                     if s.lora else None),
        verdict_weight=s.verdict_weight,
    )
    check_rows_left(len(dataset), len(trainer.train_dataset), trainer.args.max_length)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last_checkpoint(output_dir))
    seconds = time.perf_counter() - t0
    save_model(trainer, tokenizer, output_dir)
    steps = max(1, result.global_step)
    return {"rows": len(dataset), "steps": result.global_step, "processes": trainer.accelerator.num_processes,
            "seconds": round(seconds, 2), "seconds_per_step": round(seconds / steps, 3),
            "train_loss": round(result.training_loss, 4)}
