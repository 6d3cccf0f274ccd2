#!/usr/bin/env bash
# Table-2-shaped comparison of every method on HH-RLHF harmless and a verifiable gsm_symbolic set,
# with the embedded models (SmolLM2-135M generator, MiniLM scalar RM). Every run resumes, so this
# script can be stopped and rerun. Sizes: N_SCALAR items for the scalar RM, N_TP for token-prob,
# N_GEN for the generating methods, TRAIN pairs for each scalar RM. The defaults fit a 2-core CPU
# shared by several jobs; the full size is 200 items each:
#   N_TP=200 N_GEN=200 TRAIN=600 bash bench/eval_table.sh
set -euo pipefail
OUT=${OUT:-bench/out/eval}
N_SCALAR=${N_SCALAR:-200}
N_TP=${N_TP:-40}
N_GEN=${N_GEN:-10}
TRAIN=${TRAIN:-160}
TOKENS=${TOKENS:-24}
SETS=${SETS:-gsm hh}
HH=${HH:-../shared/data/hh-rlhf-harmless/test.jsonl.gz}
SPCT="nice -n 10 python -m spct"
mkdir -p "$OUT"

# Data: 200 checked gsm_symbolic pairs to evaluate, 600 more (another seed) to train the scalar RM.
$SPCT data verifiable --source gsm_symbolic -n 200 -o "$OUT/gsm_eval.jsonl"
$SPCT data verifiable --source gsm_symbolic -n 600 --seed 1 -o "$OUT/gsm_train.jsonl"

# Scalar BT RMs (TRL RewardTrainer on MiniLM): HH trains on items from 200 on, evaluation uses 0..199.
TRAIN_ARGS=(--limit "$TRAIN" --max-length 96 --batch-size 8 --lr 1e-4)
[ -f "$OUT/scalar-hh/config.json" ] || $SPCT train-scalar --benchmark hh-rlhf --data "$HH" --skip 200 "${TRAIN_ARGS[@]}" -o "$OUT/scalar-hh"
[ -f "$OUT/scalar-gsm/config.json" ] || $SPCT train-scalar --data "$OUT/gsm_train.jsonl" "${TRAIN_ARGS[@]}" -o "$OUT/scalar-gsm"

for set in $SETS; do
  if [ $set = gsm ]; then args=(--benchmark spct --data "$OUT/gsm_eval.jsonl"); else args=(--benchmark hh-rlhf --data "$HH"); fi
  $SPCT eval "${args[@]}" --method token-prob --limit "$N_TP" -o "$OUT/$set-token-prob" --no-progress
  $SPCT eval "${args[@]}" --method scalar --model "$OUT/scalar-$set" --limit "$N_SCALAR" -o "$OUT/$set-scalar" --no-progress
  $SPCT eval "${args[@]}" --method llm-judge --max-new-tokens 8 --limit "$N_GEN" -o "$OUT/$set-llm-judge" --no-progress
  for m in grm grm-no-principles pairwise-grm; do
    $SPCT eval "${args[@]}" --method $m --max-new-tokens "$TOKENS" --limit "$N_GEN" -o "$OUT/$set-$m" --no-progress
  done
done
$SPCT compare "$OUT"/gsm-* "$OUT"/hh-* --plot "$OUT/compare.png" --markdown "$OUT/compare.md"
