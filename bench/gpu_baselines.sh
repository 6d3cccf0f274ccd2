#!/usr/bin/env bash
# Baselines for the model card on one GPU, on the same rows as the judge: a Bradley-Terry scalar RM
# (`spct train-scalar`, TRL RewardTrainer) on the SmolLM2-135M backbone trained on the judge's
# training mix (HH + gsm), and the token-probability baseline of the base model; both scored on
# all 512 held-out HH and 200 held-out gsm pairs.
#
#   OUT=/somewhere bash bench/gpu_baselines.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
SPCT="$PY -m spct"
RUN=${RUN:-runs/gpu}
DATA=${DATA:-runs/grm/data}
OUT=${OUT:-$RUN/out}
EVAL_LIMITS=${EVAL_LIMIT:+--limit $EVAL_LIMIT}   # rehearsal knobs: first N held-out items, N training items
BT_LIMITS=${BT_LIMIT:+--limit $BT_LIMIT}
mkdir -p "$RUN/eval" "$OUT"
timeout 100 $SPCT train-scalar --data "$DATA/rft_mix.jsonl" --base smollm2-135m -o "$RUN/bt" --max-length 256 \
  --batch-size 32 --epochs 1 --lr 2e-5 $BT_LIMITS
echo "bt train exit $?"
for f in hh gsm; do
  timeout 40 $SPCT eval --benchmark spct --data "$DATA/$f/heldout.jsonl" --method scalar --model "$RUN/bt" \
    -o "$RUN/eval/bt_$f" --no-progress $EVAL_LIMITS
done
tar czf "$OUT/baselines.tgz" -C "$RUN" eval bt/spct_scalar_rm.json
for f in hh gsm; do
  timeout 60 $SPCT eval --benchmark spct --data "$DATA/$f/heldout.jsonl" --method token-prob --model smollm2-135m \
    -o "$RUN/eval/tokenprob_$f" --no-progress --gen-batch-size 64 $EVAL_LIMITS
done
tar czf "$OUT/baselines.tgz" -C "$RUN" eval bt/spct_scalar_rm.json
