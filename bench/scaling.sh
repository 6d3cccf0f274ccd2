#!/usr/bin/env bash
# Inference-time scaling on real HH-RLHF harmless pairs with the embedded model (bench/RESULTS.md,
# "Inference-time scaling (issue 3)"). Every step appends as it goes: rerun to resume.
# Usage: bench/scaling.sh OUTDIR [N_META] [N_EVAL] [MAX_NEW_TOKENS]
set -euo pipefail
out=${1:?usage: bench/scaling.sh OUTDIR [N_META] [N_EVAL] [MAX_NEW_TOKENS]}
tokens=${4:-32}
python bench/scaling_data.py "$out" "${2:-32}" "${3:-24}"
# 1. Labelled judgments for the meta RM (disjoint examples), 4 samples each.
spct meta-data "$out/meta_train.jsonl" -o "$out/meta_data.jsonl" --k 4 --max-new-tokens "$tokens" --batch-size 16
# 2. The meta RM: embedded MiniLM + scalar head, BCE, 25% of the examples held out.
spct train-meta "$out/meta_data.jsonl" -o "$out/meta_rm" --epochs 4 --batch-size 16 --eval-fraction 0.25
# 3. One greedy and 8 sampled judgments per evaluation example; curves for k = 1, 2, 4, 8.
spct scale "$out/eval.jsonl" -o "$out/scale" --k 1,2,4,8 --meta-rm "$out/meta_rm" --max-new-tokens "$tokens"
