"""Merge a LoRA adapter folder (a training checkpoint, or OUT/adapter) into its base: a plain model folder.

    python bench/merge_adapter.py runs/v/point/checkpoint-60 runs/v/point_60 --base spct-grm-135m
"""

from __future__ import annotations

import argparse

from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from spct.backends.models import resolve_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("adapter")
    p.add_argument("out")
    p.add_argument("--base", default="smollm2-135m", help="the model the adapter was trained on")
    args = p.parse_args()
    path, _ = resolve_model(args.base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), args.adapter).merge_and_unload()
    model.save_pretrained(args.out)
    AutoTokenizer.from_pretrained(path).save_pretrained(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
