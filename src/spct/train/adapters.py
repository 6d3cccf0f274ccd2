"""Stack LoRA adapters trained one after another into one adapter of the summed rank.

SPCT trains in two stages: SFT on the rejective-sampling data, then GRPO with a KL penalty to
the SFT model. With LoRA, the RL stage trains a fresh adapter on the SFT-merged weights (so
TRL's reference model, the adapter switched off, is exactly the SFT model). The shipped judge
is base + ΔW_sft + ΔW_rl, and a sum of low-rank products is itself low-rank:

    s1·B1·A1 + s2·B2·A2 = [s1·B1 | s2·B2] · [A1 ; A2]

so the two adapters become one of rank r1 + r2 with scaling 1, exactly, with no refitting.

A fully fine-tuned judge (`spct train-verdict` trains whole blocks) ships the same way:
`extract_adapter` cuts each linear layer's weight change to its top singular directions
(the best rank-r approximation), after folding any change of the RMSNorm scales in front of
the layers into them, so a folder of a few hundred MB becomes an adapter of tens of MB.
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


LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj")
NORM_READERS = {"input_layernorm": LINEARS[:3], "post_attention_layernorm": LINEARS[4:6]}


def extract_adapter(base: str | Path, tuned: str | Path, out: str | Path, rank: int,
                    dtype: torch.dtype = torch.float16) -> dict[str, float]:
    """Write a PEFT LoRA adapter for `base` that approximates the fine-tuned model `tuned`; return its errors.

    Per decoder block, a changed RMSNorm scale g' (base g) is folded into the layers that read
    it (W' diag(g'/g)), then each weight change is cut by SVD to `rank`. The final norm, which
    feeds a possibly tied output head, is saved whole (`modules_to_save`). Any other changed
    weight is refused: the adapter could not carry it. Returns the relative Frobenius error of
    the cut, mean and max over layers.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    b = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    t = AutoModelForCausalLM.from_pretrained(str(tuned), dtype=torch.float32)
    tb, tt = b.state_dict(), t.state_dict()
    deltas: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    errors: list[float] = []
    handled = {"model.norm.weight", "lm_head.weight"}
    for i in range(len(b.get_decoder().layers)):
        pre = f"model.layers.{i}."
        scale = {}
        for norm, readers in NORM_READERS.items():
            g_b, g_t = tb[f"{pre}{norm}.weight"], tt[f"{pre}{norm}.weight"]
            handled.add(f"{pre}{norm}.weight")
            if not torch.equal(g_b, g_t):
                if (g_b.abs() < 1e-6).any():
                    raise ValueError(f"{pre}{norm}: a zero scale in the base cannot be folded")
                scale.update(dict.fromkeys(readers, g_t / g_b))
        for name in LINEARS:
            key = f"{pre}{name}.weight"
            handled.add(key)
            w_t = tt[key] * scale[name][None, :] if name in scale else tt[key]
            d = w_t - tb[key]
            if not d.any():
                continue
            u, s, vh = torch.linalg.svd(d, full_matrices=False)
            r = min(rank, len(s))
            lora_b, lora_a = u[:, :r] * s[:r], vh[:r]
            errors.append(float(torch.linalg.norm(d - lora_b @ lora_a) / torch.linalg.norm(d)))
            deltas[f"{pre}{name}"] = (lora_a, lora_b)
    others = [k for k in tt if k not in handled and not torch.equal(tb[k], tt[k])]
    if others:
        raise ValueError(f"{tuned}: weights an adapter cannot carry changed: {others[:5]}")
    final_norm = not torch.equal(tb["model.norm.weight"], tt["model.norm.weight"])
    config = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=[n.split(".")[-1] for n in LINEARS],
                        modules_to_save=["model.norm"] if final_norm else None)
    model = get_peft_model(b, config)
    with torch.no_grad():
        for name, module in model.named_modules():
            key = name.removeprefix("base_model.model.")
            if key in deltas:
                lora_a, lora_b = deltas[key]
                module.lora_A["default"].weight.zero_()[: len(lora_a)].copy_(lora_a)
                module.lora_B["default"].weight.zero_()[:, : lora_b.shape[1]].copy_(lora_b)
            elif hasattr(module, "lora_B"):
                module.lora_B["default"].weight.zero_()
        if final_norm:
            model.base_model.model.model.norm.modules_to_save["default"].weight.copy_(tt["model.norm.weight"])
    model.to(dtype).save_pretrained(str(out))
    return {"layers": len(errors), "rank": rank, "mean_rel_error": round(sum(errors) / max(1, len(errors)), 4),
            "max_rel_error": round(max(errors, default=0.0), 4)}
