"""A short GRPO run on a GPU through spct.train.rl, for step time and the CUDA code path.

The policy is SmolLM2-135M's architecture with random weights (the real weights are too big
to carry to the lent GPU machine), so rewards stay at -1 and no learning is measured here.

    python bench/gpu_grpo_step.py --config-dir CONFIG_AND_TOKENIZER_DIR --data pairs.jsonl
"""

import argparse
import json
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from spct.data import read_examples
from spct.train.rl import GRPO_DEFAULTS, RLSettings, train_rl


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config-dir", required=True, help="a folder with SmolLM2's config.json and tokenizer files")
    ap.add_argument("--data", required=True, help="labelled pairs (JSONL)")
    ap.add_argument("--examples", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.config_dir))
    model.save_pretrained("/tmp/rand-smol")
    AutoTokenizer.from_pretrained(args.config_dir).save_pretrained("/tmp/rand-smol")
    examples = read_examples(args.data)[0][: args.examples]
    print("gpu", torch.cuda.get_device_name(0), "examples", len(examples))
    for length in (128, 256):
        trl = dict(max_steps=3, num_generations=4, gradient_accumulation_steps=1, max_completion_length=length,
                   use_vllm=False, logging_steps=1)
        t = time.perf_counter()
        metrics = train_rl("/tmp/rand-smol", examples, f"/tmp/out-{length}", RLSettings(prompts_per_step=4), trl_overrides=trl)
        print(json.dumps({"G": 4, "max_completion_length": length, "prompts_per_step": 4, "beta": GRPO_DEFAULTS["beta"],
                          **metrics, "wall_s": round(time.perf_counter() - t, 1)}))
    print("peak GPU memory GiB", round(torch.cuda.max_memory_allocated() / 2**30, 2))


if __name__ == "__main__":
    main()
