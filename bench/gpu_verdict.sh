#!/usr/bin/env bash
# Verdict training of the embedded judge on one GPU inside a time budget (issue 18): the variants the
# 2-core CPU cannot afford, chosen on the validation slice, then held-out figures of the winner.
# Prepared on CPU, not yet run on a GPU. On a lent machine: STEP=bench/gpu_verdict.sh bash bench/gpu_grm_lent.sh
#
#   BUDGET=540 OUT=/somewhere bash bench/gpu_verdict.sh
#
# 1. rows    RFT rows from the committed samples (both orders) + verdict rows from every training
#            pair of the 7:3 HH/gsm mix: pairs in both orders (verdict_pair.jsonl) and each
#            response alone (verdict_point.jsonl)
# 2. sft     a fresh rank-64 LoRA on the base per variant, RFT rows + verdict rows, --verdict-weight W:
#              pair   RFT + pair rows        (read with --policy both-orders)
#              point  RFT + pointwise rows   (read with --policy pointwise)
# 3. pick    bench/verdict_probe.py on the validation slice (64 HH + 32 gsm), the score line alone
# 4. eval    the winner on all 512 HH + 200 gsm held-out pairs, greedy with its policy and
#            --readout expected, then voting@8 on 128 HH + 64 gsm, as far as the budget goes
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
SPCT="$PY -m spct"
RUN=${RUN:-runs/gpu-verdict}
DATA=${DATA:-runs/grm/data}
OUT=${OUT:-$RUN/out}
BUDGET=${BUDGET:-540}
EPOCHS=${EPOCHS:-2}
W=${W:-4}
START=$(date +%s)
mkdir -p "$RUN" "$OUT"
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
log() { echo "[t=$(( $(date +%s) - START ))s] $*"; }
cap() { local l=$(( $(left) - $2 )); (( l < $1 )) && echo $(( l > 5 ? l : 5 )) || echo "$1"; }

# 1. rows --------------------------------------------------------------------------------------
mkdir -p "$RUN/rft"
[ -s "$RUN/rft/samples.jsonl" ] || gunzip -c bench/artifacts/grm/rft_samples.jsonl.gz > "$RUN/rft/samples.jsonl"
$PY bench/gpu_grm_tools.py rft-finish "$RUN/rft"
$SPCT data verdict "$DATA/rft_mix.jsonl" -o "$RUN/verdict_pair.jsonl" --max-chars 2400
$SPCT data verdict "$DATA/rft_mix.jsonl" -o "$RUN/verdict_point.jsonl" --max-chars 2400 --pointwise

# 2. sft ---------------------------------------------------------------------------------------
for v in pair point; do
  [ -f "$RUN/$v/adapter/adapter_model.safetensors" ] && continue
  timeout "$(cap 150 240)" $SPCT sft "$RUN/rft" "$RUN/verdict_$v.jsonl" -o "$RUN/$v" --model smollm2-135m --lora \
    --lora-r 64 --lora-alpha 128 --lr 2e-4 --epochs "$EPOCHS" --batch-size 32 --grad-accum 1 --max-length 1024 \
    --logging-steps 5 --save-steps 50 --verdict-weight "$W"
  log "sft $v exit $?"
  $PY bench/gpu_grm_tools.py finish "$RUN" "$v" smollm2-135m
  $PY bench/gpu_grm_tools.py fp16 "$RUN/$v/adapter" "$RUN/$v/adapter_fp16"
  tar czf "$OUT/$v.tgz" -C "$RUN" "$v/adapter_fp16" "$v/log_history.json"
done

# 3. pick --------------------------------------------------------------------------------------
for v in pair point; do
  mode=$([ $v = pair ] && echo pair || echo pointwise)
  [ -f "$RUN/$v/config.json" ] && timeout "$(cap 60 150)" $PY bench/verdict_probe.py --model "$RUN/$v" --mode "$mode" \
    --data "$DATA/hh/validation.jsonl" "$DATA/gsm/validation.jsonl" --name hh gsm | tee "$RUN/val_$v.txt"
done
PICK=$($PY - "$RUN" <<'EOF'
import json, sys
run = sys.argv[1]
def score(v):
    try:
        rows = [json.loads(line.split(" ", 1)[1]) for line in open(f"{run}/val_{v}.txt")]
    except OSError:
        return -1.0
    return sum(r["strict_accuracy"] * r["items"] for r in rows) / max(1, sum(r["items"] for r in rows))
print(max(["pair", "point"], key=score))
EOF
)
log "validation picks $PICK"
POLICY=$([ "$PICK" = pair ] && echo both-orders || echo pointwise)

# 4. eval --------------------------------------------------------------------------------------
timeout "$(cap 200 60)" $PY bench/grm_heldout.py --engine transformers --model "$RUN/$PICK" --out "$RUN/eval/$PICK" \
  --data "$DATA/hh/heldout.jsonl" "$DATA/gsm/heldout.jsonl" --name hh gsm --max-new-tokens 256 --policy "$POLICY" \
  --readout expected --batch-size 256 --gen-batch-size 512
log "held-out exit $?"
timeout "$(cap 200 0)" $PY bench/grm_heldout.py --engine transformers --model "$RUN/$PICK" --out "$RUN/eval/${PICK}_k8" \
  --data "$DATA/hh/heldout.jsonl" "$DATA/gsm/heldout.jsonl" --name hh gsm --max-new-tokens 256 --policy "$POLICY" \
  --readout expected --k 8 --limit 128 64 --batch-size 64 --gen-batch-size 512
log "voting@8 exit $?"
tar czf "$OUT/eval.tgz" -C "$RUN" eval $(cd "$RUN" && ls val_*.txt 2>/dev/null)
log "done, $(left) s of the budget left"
