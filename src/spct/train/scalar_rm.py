"""The scalar Bradley-Terry RM baseline, trained with TRL's RewardTrainer (`spct train-scalar`).

`spct eval --method scalar` reads the folder it writes (`eval.baselines.ScalarMethod`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data import Example, InputError


def scalar_pairs(examples: list[Example]) -> list[tuple[str, str, str]]:
    """(query, chosen, rejected) for every best response against every other response."""
    pairs = []
    for ex in examples:
        if not ex.best:
            continue
        q = ex.query_text()
        pairs += [(q, ex.responses[b], ex.responses[o]) for b in ex.best for o in range(len(ex.responses)) if o not in ex.best]
    return pairs


@dataclass
class ScalarTrainConfig:
    base: str | None = None  # None: the embedded MiniLM encoder
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-5
    batch_size: int = 16
    max_length: int = 256
    seed: int = 0


def train_scalar_rm(examples: list[Example], out_dir: str | Path, config: ScalarTrainConfig) -> dict[str, Any]:
    """Bradley-Terry RM: TRL RewardTrainer on (query, chosen) vs (query, rejected), saved to out_dir."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from ..backends.models import embedded_encoder_dir, resolve_model

    # An embedded name (`smollm2-135m`), a folder, a .gguf or a hub id, as everywhere else.
    base, gguf = resolve_model(config.base) if config.base else (str(embedded_encoder_dir()), None)
    load = {"gguf_file": gguf} if gguf else {}
    pairs = scalar_pairs(examples)
    if not pairs:
        raise InputError("no labelled pairs to train on (examples need 'best' and at least two responses)")
    tok = AutoTokenizer.from_pretrained(base, **load)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token

    def ids(q: str, r: str) -> list[int]:
        return tok(q, r, truncation=True, max_length=config.max_length)["input_ids"]

    data = Dataset.from_list([{"chosen_ids": ids(q, c), "rejected_ids": ids(q, r)} for q, c, r in pairs])
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, **load)
    model.config.pad_token_id = tok.pad_token_id
    args = RewardConfig(
        output_dir=str(out_dir), num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, per_device_train_batch_size=config.batch_size, seed=config.seed,
        logging_steps=10, save_strategy="no", report_to="none", max_length=None, disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(), dataloader_pin_memory=False,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    result = trainer.train()
    trainer.save_model(str(out_dir))
    tok.save_pretrained(str(out_dir))
    summary = {"pairs": len(pairs), "steps": result.global_step, "train_loss": round(result.training_loss, 4),
               "base": config.base or base, **{k: v for k, v in asdict(config).items() if k != "base"}}
    (Path(out_dir) / "spct_scalar_rm.json").write_text(json.dumps(summary, indent=2))
    return summary
