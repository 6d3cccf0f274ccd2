#!/usr/bin/env bash
# Table-2-shaped comparison of every method on HH-RLHF harmless and a verifiable gsm_symbolic set,
# with the embedded models (SmolLM2-135M generator, MiniLM scalar RM). Every run resumes, so this
# script can be stopped and rerun. Sizes: N_CHEAP items for token-prob and scalar, N_GEN items for
# the generating methods (defaults sized for a shared 2-core CPU; the full size is 200 each:
#   N_CHEAP=200 N_GEN=200 bash bench/eval_table.sh).
set -euo pipefail
OUT=${OUT:-bench/out/eval}
N_CHEAP=${N_CHEAP:-200}
N_GEN=${N_GEN:-24}
TOKENS=${TOKENS:-32}
HH=${HH:-../shared/data/hh-rlhf-harmless/test.jsonl.gz}
SPCT="nice -n 10 python -m spct"
mkdir -p "$OUT"

# Data: 200 checked gsm_symbolic pairs to evaluate, 600 more (another seed) to train the scalar RM.
$SPCT data verifiable --source gsm_symbolic -n 200 -o "$OUT/gsm_eval.jsonl"
$SPCT data verifiable --source gsm_symbolic -n 600 --seed 1 -o "$OUT/gsm_train.jsonl"

# Scalar BT RMs (TRL RewardTrainer on MiniLM): HH trains on items 200..799, evaluation uses 0..199.
[ -f "$OUT/scalar-hh/config.json" ] || $SPCT train-scalar --benchmark hh-rlhf --data "$HH" --skip 200 --limit 600 --max-length 128 -o "$OUT/scalar-hh"
[ -f "$OUT/scalar-gsm/config.json" ] || $SPCT train-scalar --data "$OUT/gsm_train.jsonl" --max-length 128 -o "$OUT/scalar-gsm"

for set in gsm hh; do
  if [ $set = gsm ]; then args=(--benchmark spct --data "$OUT/gsm_eval.jsonl"); else args=(--benchmark hh-rlhf --data "$HH"); fi
  $SPCT eval "${args[@]}" --method token-prob --limit "$N_CHEAP" -o "$OUT/$set-token-prob" --no-progress
  $SPCT eval "${args[@]}" --method scalar --model "$OUT/scalar-$set" --limit "$N_CHEAP" -o "$OUT/$set-scalar" --no-progress
  $SPCT eval "${args[@]}" --method llm-judge --max-new-tokens 8 --limit "$N_GEN" -o "$OUT/$set-llm-judge" --no-progress
  for m in grm grm-no-principles pairwise-grm; do
    $SPCT eval "${args[@]}" --method $m --max-new-tokens "$TOKENS" --limit "$N_GEN" -o "$OUT/$set-$m" --no-progress
  done
done
$SPCT compare "$OUT"/gsm-* "$OUT"/hh-* --plot "$OUT/compare.png" --markdown "$OUT/compare.md"
