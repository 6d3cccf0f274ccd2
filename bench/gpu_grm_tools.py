"""Small steps of bench/gpu_grm.sh that have no CLI of their own.

    python bench/gpu_grm_tools.py rft-finish RUN/rft      # train.jsonl + stats.json from samples so far
    python bench/gpu_grm_tools.py fp16 ADAPTER OUT        # a LoRA adapter saved in float16 (half the bytes)
    python bench/gpu_grm_tools.py rl-finish RUN           # RL stopped by its time limit: newest checkpoint
                                                          # -> RUN/rl/adapter, log, merged model in RUN/rl
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


def rl_finish(run: str) -> None:
    """Make RUN/rl look like a finished `spct rl --lora` from its newest checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spct.train.sft import ADAPTER_DIR, LOG_FILE, last_checkpoint

    rl = Path(run) / "rl"
    if (rl / ADAPTER_DIR / "adapter_model.safetensors").exists() and (rl / "config.json").exists():
        print("rl finished normally")
        return
    ckpt = last_checkpoint(rl)
    if ckpt is None:
        sys.exit("rl: no checkpoint to finish from")
    (rl / ADAPTER_DIR).mkdir(parents=True, exist_ok=True)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copy(Path(ckpt) / name, rl / ADAPTER_DIR / name)
    state = json.loads((Path(ckpt) / "trainer_state.json").read_text())
    (rl / LOG_FILE).write_text(json.dumps(state["log_history"], indent=1) + "\n")
    from peft import PeftModel

    sft = Path(run) / "sft"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sft), rl / ADAPTER_DIR).merge_and_unload()
    model.save_pretrained(rl)
    AutoTokenizer.from_pretrained(sft).save_pretrained(rl)
    print(f"rl finished from {ckpt} (step {state['global_step']})")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"rft-finish": rft_finish, "fp16": fp16, "rl-finish": rl_finish}[cmd](*args)
