"""Small steps of bench/gpu_grm.sh that have no CLI of their own.

    python bench/gpu_grm_tools.py rft-finish RUN/rft      # train.jsonl + stats.json from samples so far
    python bench/gpu_grm_tools.py fp16 ADAPTER OUT        # a LoRA adapter saved in float16 (half the bytes)
    python bench/gpu_grm_tools.py finish RUN STAGE BASE   # SFT or RL stopped by its time limit: newest
                                                          # checkpoint -> RUN/STAGE/adapter, log, and the
                                                          # adapter merged into BASE (e.g. smollm2-135m, sft)
    python bench/gpu_grm_tools.py merge ADAPTER OUT BASE  # a LoRA adapter merged into BASE: a plain model folder
    python bench/gpu_grm_tools.py pick EVAL_DIR A B       # the model (A or B) more accurate on the
                                                          # validation slice (EVAL_DIR/val_A, val_B); A on a tie
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def rft_finish(rft_dir: str) -> None:
    from spct.train.rft import build_dataset

    print(json.dumps(build_dataset(rft_dir).to_dict()))


def fp16(src: str, out: str) -> None:
    import torch

    from spct.train.adapters import stack_adapters

    stack_adapters([src], out, torch.float16)


def finish(run: str, stage: str, base: str) -> None:
    """Make RUN/STAGE look like a finished `spct sft|rl --lora` from its newest checkpoint: the
    adapter, the log and the adapter merged into BASE (a model spct resolves, or RUN/<stage>)."""
    from spct.train.sft import ADAPTER_DIR, LOG_FILE, last_checkpoint

    out = Path(run) / stage
    if (out / ADAPTER_DIR / "adapter_model.safetensors").exists() and (out / "config.json").exists():
        print(f"{stage} finished normally")
        return
    ckpt = last_checkpoint(out)
    if ckpt is None:
        sys.exit(f"{stage}: no checkpoint to finish from")
    (out / ADAPTER_DIR).mkdir(parents=True, exist_ok=True)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copy(Path(ckpt) / name, out / ADAPTER_DIR / name)
    state = json.loads((Path(ckpt) / "trainer_state.json").read_text())
    (out / LOG_FILE).write_text(json.dumps(state["log_history"], indent=1) + "\n")
    merge(str(out / ADAPTER_DIR), str(out), str(Path(run) / base) if (Path(run) / base / "config.json").exists() else base)
    print(f"{stage} finished from {ckpt} (step {state['global_step']})")


def merge(adapter: str, out: str, base: str) -> None:
    """A LoRA adapter folder (a checkpoint, or OUT/adapter) merged into BASE (a model spct resolves): a plain model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spct.backends.models import resolve_model

    path = resolve_model(base)[0]
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), adapter).merge_and_unload().save_pretrained(out)
    AutoTokenizer.from_pretrained(path).save_pretrained(out)


def pick(eval_dir: str, a: str, b: str) -> None:
    """Model selection on the validation slice only: strict accuracy over all its items."""
    def accuracy(name: str) -> float:
        path = Path(eval_dir) / f"val_{name}" / "results.json"
        if not path.exists():
            print(f"pick: no validation figures for {name} ({path})", file=sys.stderr)
            return -1.0
        rows = json.loads(path.read_text()).values()
        items = sum(r["items"] for r in rows)
        return sum(r["strict_accuracy"] * r["items"] for r in rows) / items if items else -1.0

    print(a if accuracy(a) >= accuracy(b) else b)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"rft-finish": rft_finish, "fp16": fp16, "finish": finish, "merge": merge, "pick": pick}[cmd](*args)
