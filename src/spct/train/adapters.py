"""Stack LoRA adapters trained one after another into one adapter of the summed rank.

SPCT trains in two stages: SFT on the rejective-sampling data, then GRPO with a KL penalty to
the SFT model. With LoRA, the RL stage trains a fresh adapter on the SFT-merged weights (so
TRL's reference model, the adapter switched off, is exactly the SFT model). The shipped judge
is base + ΔW_sft + ΔW_rl, and a sum of low-rank products is itself low-rank:

    s1·B1·A1 + s2·B2·A2 = [s1·B1 | s2·B2] · [A1 ; A2]

so the two adapters become one of rank r1 + r2 with scaling 1, exactly, with no refitting.
Not peft's `add_weighted_adapter(combination_type="cat")`: it needs the base model loaded and keeps
the first adapter's `use_rslora`, so an rsLoRA stage comes out wrong (checked on a tiny model).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def _scaling(cfg: dict) -> float:
    r = cfg["r"]
    return cfg["lora_alpha"] / (r**0.5 if cfg.get("use_rslora") else r)


def stack_adapters(folders: list[str | Path], out: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write one PEFT LoRA adapter to `out` equal to applying `folders` one after another."""
    configs = [json.loads((Path(f) / CONFIG).read_text()) for f in folders]
    weights = [load_file(str(Path(f) / WEIGHTS)) for f in folders]
    for cfg in configs:
        if cfg.get("peft_type", "LORA") != "LORA":
            raise ValueError(f"only LoRA adapters stack, got {cfg.get('peft_type')}")
    modules = sorted({k.removesuffix(".lora_A.weight") for w in weights for k in w if k.endswith(".lora_A.weight")})
    stacked: dict[str, torch.Tensor] = {}
    for m in modules:
        a_parts, b_parts = [], []
        for cfg, w in zip(configs, weights, strict=True):
            if f"{m}.lora_A.weight" in w:
                a_parts.append(w[f"{m}.lora_A.weight"].float())
                b_parts.append(w[f"{m}.lora_B.weight"].float() * _scaling(cfg))
            else:  # this stage did not adapt the module: a zero block keeps the ranks aligned
                ref = next(x for x in weights if f"{m}.lora_A.weight" in x)
                a_parts.append(torch.zeros(cfg["r"], ref[f"{m}.lora_A.weight"].shape[1]))
                b_parts.append(torch.zeros(ref[f"{m}.lora_B.weight"].shape[0], cfg["r"]))
        stacked[f"{m}.lora_A.weight"] = torch.cat(a_parts, 0).to(dtype).contiguous()
        stacked[f"{m}.lora_B.weight"] = torch.cat(b_parts, 1).to(dtype).contiguous()
    rank = sum(cfg["r"] for cfg in configs)
    targets = sorted({t for cfg in configs for t in _targets(cfg)})
    merged_cfg = {**configs[0], "r": rank, "lora_alpha": rank, "use_rslora": False, "target_modules": targets,
                  "lora_dropout": 0.0}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(stacked, str(out / WEIGHTS), metadata={"format": "pt"})
    (out / CONFIG).write_text(json.dumps(merged_cfg, indent=2) + "\n")
    return out


def _targets(cfg: dict) -> list[str]:
    t = cfg.get("target_modules") or []
    return [t] if isinstance(t, str) else list(t)
