"""Rule-based online RL (SPCT stage 2) with TRL's GRPOTrainer.

The reward of one generated judgment is +1 when it parses and satisfies the accuracy rule (the
labelled best response scores strictly above every other; n = 1: the score equals the rating),
else -1; an unparseable judgment is -1. There is no format or length reward. Group size 4 and
a KL coefficient beta = 0.08 (the paper's setting; TRL's default beta is 0).

The dataset holds one prompt per example, its responses shuffled (a seeded shuffle per example)
so the policy cannot learn a position; the label is stored in *shown* positions, which is what
the generated score line refers to.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import Example, InputError
from ..defaults import ROLLOUT_TEMPERATURE
from ..format import JudgingFormat
from ..judge import sample_order
from ..settings import positive_int, setting
from ..voting import check_rating_scale, is_correct
from .sft import TRAINER_DEFAULTS, LoraSettings, on_gpu, resolve_policy, save_model, trl_config


def completion_text(completion: Any) -> str:
    """TRL passes a string (standard data) or a list of messages (conversational data)."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if m.get("role") == "assistant")


def judgment_reward(text: str, n: int, best: list[int] | None, ratings: list[float] | None) -> float:
    """+1 if the judgment parses (by the judging format's parser) and is right by the accuracy rule, else -1."""
    scores = JudgingFormat().shown_scores(text, n)
    if scores is None:
        return -1.0
    return 1.0 if is_correct(scores, best or None, ratings or None) else -1.0


def rule_reward(prompts: list, completions: list, n: list[int], best: list[list[int]], ratings: list[list[float]], **_: Any) -> list[float]:
    """TRL reward function: columns `n`, `best`, `ratings` (shown positions) come from `rl_dataset`."""
    return [judgment_reward(completion_text(c), k, b, r) for c, k, b, r in zip(completions, n, best, ratings, strict=True)]


def rl_rows(examples: list[Example], seed: int = 0, principles: bool = True) -> list[dict[str, Any]]:
    """One conversational prompt per example, responses shuffled, labels mapped to shown positions."""
    rows = []
    fmt = JudgingFormat(principles=principles)
    check_rating_scale(examples)
    for ex in examples:
        if not ex.labelled:
            raise InputError(f"example {ex.id}: RL needs a label ('best' or 'ratings')")
        order = sample_order(seed, ex.id, 0, len(ex.responses))
        rows.append({
            "id": ex.id,
            "prompt": fmt.messages(ex, order),
            "n": len(order),
            "best": sorted(order.index(b) for b in ex.best) if ex.best else [],
            "ratings": [float(ex.ratings[i]) for i in order] if ex.ratings is not None else [],
        })
    return rows


@dataclass
class RLSettings(LoraSettings):
    """What `spct rl` adds to TRL's GRPOConfig (which holds every trainer knob: `grpo_config`)."""

    prompts_per_step: int = setting(1, "prompts per device per step: per_device_train_batch_size is this times "
                                       "num_generations unless given", type=positive_int)


#: spct's GRPOConfig defaults: the paper's G = 4 and beta = 0.08 (TRL's beta is 0), generation colocated with
#: training. `use_vllm` None: on a GPU; `per_device_train_batch_size` None: prompts_per_step x num_generations.
GRPO_DEFAULTS: dict[str, Any] = dict(
    TRAINER_DEFAULTS,
    learning_rate=1e-6,
    num_train_epochs=1.0,
    per_device_train_batch_size=None,
    beta=0.08,
    num_generations=4,
    max_completion_length=1024,
    temperature=ROLLOUT_TEMPERATURE,
    use_vllm=None,
    vllm_mode="colocate",  # generation runs inside the training processes, no separate server
)


def grpo_config(s: RLSettings, output_dir: str | Path, trl_overrides: Mapping[str, Any] | None = None,
                model_init_kwargs: dict[str, Any] | None = None):
    """TRL's GRPOConfig: the fields in `trl_overrides`, spct's GRPO_DEFAULTS for the rest, then TRL's defaults."""
    from trl import GRPOConfig

    values = {**GRPO_DEFAULTS, **(trl_overrides or {})}
    if values["use_vllm"] is None:
        values["use_vllm"] = on_gpu(values)
    if values["per_device_train_batch_size"] is None:
        values["per_device_train_batch_size"] = s.prompts_per_step * values["num_generations"]
    return trl_config(GRPOConfig, values, output_dir, model_init_kwargs)


def train_rl(model: str, examples: list[Example], output_dir: str | Path, settings: RLSettings | None = None,
             principles: bool = True, trl_overrides: Mapping[str, Any] | None = None) -> dict[str, float]:
    """GRPO from `model` (usually the SFT output); saves the policy to output_dir; returns metrics.

    `trl_overrides` holds TRL GRPOConfig fields (`learning_rate`, `beta`, `max_steps`, ...); the others
    take spct's GRPO_DEFAULTS, then TRL's.
    """
    from datasets import Dataset
    from trl import GRPOTrainer

    from .sft import last_checkpoint, lora_config

    s = settings or RLSettings()
    seed = {**GRPO_DEFAULTS, **(trl_overrides or {})}["seed"]
    dataset = Dataset.from_list(rl_rows(examples, seed, principles))
    path, init_kwargs, tokenizer = resolve_policy(model)
    tokenizer.padding_side = "left"
    peft = lora_config(s) if s.lora else None
    trainer = GRPOTrainer(model=path, reward_funcs=[rule_reward], args=grpo_config(s, output_dir, trl_overrides, init_kwargs),
                          train_dataset=dataset, processing_class=tokenizer, peft_config=peft)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last_checkpoint(output_dir))
    seconds = time.perf_counter() - t0
    save_model(trainer, tokenizer, output_dir)
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    steps = max(1, result.global_step)
    return {"prompts": len(dataset), "steps": result.global_step, "processes": trainer.accelerator.num_processes,
            "seconds": round(seconds, 2), "seconds_per_step": round(seconds / steps, 3),
            "mean_reward_first_log": round(rewards[0], 4) if rewards else float("nan"),
            "mean_reward_last_log": round(rewards[-1], 4) if rewards else float("nan")}
