#!/usr/bin/env bash
# Inference-time scaling on real HH-RLHF harmless pairs with the embedded model (bench/RESULTS.md,
# "Inference-time scaling (issue 3)"). Sampling appends as it goes: stop it any time (Ctrl-C) and
# the cross-fitted evaluation uses the examples finished so far; rerun to resume.
# Usage: bench/scaling.sh OUTDIR [N_EVAL] [MAX_NEW_TOKENS]
set -euo pipefail
out=${1:?usage: bench/scaling.sh OUTDIR [N_EVAL] [MAX_NEW_TOKENS]}
python bench/scaling_data.py "$out" 0 "${2:-24}"
# One greedy and 8 sampled judgments per example, stored in $out/scale/samples.jsonl.
nice -n 10 spct scale "$out/eval.jsonl" -o "$out/scale" --k 1,2,4,8 --max-new-tokens "${3:-32}" --batch-size 8 || true
# Meta RM cross-fitted on those samples (2 folds), then every curve with 95% bootstrap CIs.
nice -n 10 python bench/scaling_crossfit.py "$out/scale" --k 1,2,4,8 --epochs 4
# With a sampling budget to spare, train the meta RM on separate examples instead:
#   spct meta-data "$out/meta_train.jsonl" -o "$out/meta_data.jsonl" --k 4 --max-new-tokens 32
#   spct train-meta "$out/meta_data.jsonl" -o "$out/meta_rm"
#   spct scale "$out/eval.jsonl" -o "$out/scale" --k 1,2,4,8 --meta-rm "$out/meta_rm"
