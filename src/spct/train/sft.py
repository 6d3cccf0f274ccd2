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
from ..settings import positive_float, positive_int, setting


@dataclass
class TrainerSettings:
    """The training knobs SFT and RL share; everything else keeps TRL's defaults (`trainer_fields`).

    Each field's help text is its `spct sft` / `spct rl` flag's (`spct.settings`).
    """

    epochs: float = setting(2.0, "epochs", type=positive_float)
    max_steps: int = setting(-1, "stop after N optimizer steps (overrides --epochs; default: -1, off)")
    learning_rate: float = setting(1e-5, "learning rate", type=positive_float, flag="lr")
    grad_accum: int = setting(4, "gradient accumulation steps", type=positive_int)
    gradient_checkpointing: bool = setting(False, "trade compute for memory")
    use_cpu: bool = setting(False, "train on CPU even when a GPU is present", flag="cpu")
    seed: int = setting(0, "seeds the data order and the trainer")
    logging_steps: int = setting(10, "log every N optimizer steps", type=positive_int)
    save_steps: int = setting(0, "checkpoint every N steps into the output folder; a rerun resumes from the newest "
                                 "(default: 0, off)")
    report_to: str = setting("none", "trackers for transformers (e.g. wandb, tensorboard; default: none)")
    lora: bool = setting(False, "train LoRA adapters (merged into the saved model; the adapter alone in OUT/adapter)")
    lora_r: int = setting(16, "LoRA rank", type=positive_int)
    lora_alpha: int = setting(32, "LoRA alpha", type=positive_int)

    def trainer_fields(self) -> dict[str, Any]:
        """These settings as the transformers TrainingArguments fields under TRL's SFTConfig and GRPOConfig."""
        return dict(
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            learning_rate=self.learning_rate,
            gradient_accumulation_steps=self.grad_accum,
            gradient_checkpointing=self.gradient_checkpointing,
            bf16=torch.cuda.is_available() and not self.use_cpu,
            use_cpu=self.use_cpu,
            seed=self.seed,
            logging_steps=self.logging_steps,
            save_strategy="steps" if self.save_steps > 0 else "no",
            save_steps=self.save_steps or 500,
            save_total_limit=2,
            report_to=self.report_to,
        )


@dataclass
class SFTSettings(TrainerSettings):
    """SFT's own knobs beside the shared ones (see `sft_config`)."""

    batch_size: int = setting(4, "rows per device per step", type=positive_int)
    max_length: int = setting(4096, "max tokens of prompt + completion", type=positive_int)
    lora_top_layers: int | None = setting(None, "LoRA only in the last N decoder layers, so backward stops there "
                                                "(cheaper; default: every layer)", type=positive_int)
    verdict_weight: float = setting(1.0, "loss weight of the final score box's values; a verdict row's bare score "
                                         "prefix then weighs 0 (default: 1, plain SFT)")


def sft_config(s: SFTSettings, output_dir: str | Path, model_init_kwargs: dict[str, Any] | None = None,
               trl_overrides: dict[str, Any] | None = None):
    """TRL's SFTConfig from spct's settings; `trl_overrides` sets any other SFTConfig field (and wins)."""
    from trl import SFTConfig

    return SFTConfig(**{**dict(
        output_dir=str(output_dir),
        model_init_kwargs=model_init_kwargs or None,
        per_device_train_batch_size=s.batch_size,
        max_length=s.max_length,
        completion_only_loss=True,
        **s.trainer_fields(),
    ), **(trl_overrides or {})})


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


def lora_config(s: SFTSettings, num_layers: int | None = None):
    """PEFT LoRA on every linear layer, or on those of the last `s.lora_top_layers` decoder layers."""
    from peft import LoraConfig

    layers = None
    if s.lora_top_layers:
        if not num_layers:
            raise InputError("lora_top_layers needs a model whose config states num_hidden_layers", field="lora_top_layers")
        layers = list(range(max(0, num_layers - s.lora_top_layers), num_layers))
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

    from ..score_scale import SCORE_PREFIX

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
              trl_overrides: dict[str, Any] | None = None) -> dict[str, float]:
    """Fine-tune `base_model` on RFT data; save the (merged) model to output_dir; return timing metrics.

    `trl_overrides` sets any TRL SFTConfig field beyond `settings` (it wins over them).
    """
    s = settings or SFTSettings()
    if s.verdict_weight < 0:
        raise InputError("verdict_weight must be >= 0", field="verdict_weight")
    dataset = load_train_rows(data, s.seed)
    path, init_kwargs, tokenizer = resolve_policy(base_model)
    trainer = _verdict_trainer_class()(
        model=path,
        args=sft_config(s, output_dir, init_kwargs, trl_overrides),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(s, _num_layers(path, init_kwargs) if s.lora_top_layers else None) if s.lora else None,
        verdict_weight=s.verdict_weight,
    )
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last_checkpoint(output_dir))
    seconds = time.perf_counter() - t0
    save_model(trainer, tokenizer, output_dir)
    steps = max(1, result.global_step)
    return {"rows": len(dataset), "steps": result.global_step, "seconds": round(seconds, 2),
            "seconds_per_step": round(seconds / steps, 3), "train_loss": round(result.training_loss, 4)}
