#!/usr/bin/env bash
# The shipped judge's second round (RFT over >= 1,000 examples, SFT, GRPO, held-out figures) on
# one GPU inside a fixed time budget. Every stage resumes; a stage stopped by its time limit
# keeps what it finished (RFT: the examples sampled so far; GRPO: its newest checkpoint).
#
#   BUDGET=560 OUT=/somewhere bash bench/gpu_grm.sh
#
# Stages, in order of priority (later ones get what time is left):
#   1. rft   the first RFT_LIMIT rows of the 7:3 HH/gsm mix, N_RFT = 3 at T = 0.5, 256 tokens, no
#            forced line. Rows 1-336 are round 1's committed samples (the base model with
#            --format-demo); the rest are drawn by round 1's judge (spct-grm-135m), also with the
#            format demo: expert iteration. Forced, cut, wrong and too-easy samples are rejected.
#   2. sft   a fresh rank-16 LoRA on the *base* (smollm2-135m) over every kept row
#   3. rl    GRPO from the SFT model on the next RL_PROMPTS rows of the mix (never used by RFT):
#            beta 0.08, G = 4, +1/-1 rule reward, a fresh rank-16 LoRA, checkpoints every 2 steps
#   4. eval  greedy held-out figures (512 HH + 200 gsm) for RL, SFT and the base; then the BT
#            scalar RM and the token-probability baseline (bench/gpu_baselines.sh)
# Outputs under $OUT (tarballs, for a machine whose files must be fetched back): rft.tgz,
# sft.tgz and rl.tgz (float16 adapters + logs), eval.tgz. Shipping is one step on any machine:
#   python -c "import sys, torch; from spct.train.adapters import stack_adapters; \
#     stack_adapters(sys.argv[2:], sys.argv[1], torch.float16)" src/spct/assets/spct-grm-135m \
#     runs/gpu/sft/adapter_fp16 runs/gpu/rl/adapter_fp16
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
SPCT="$PY -m spct"
RUN=${RUN:-runs/gpu}
DATA=${DATA:-runs/grm/data}
OUT=${OUT:-$RUN/out}
BUDGET=${BUDGET:-560}
RFT_LIMIT=${RFT_LIMIT:-1336}
RL_PROMPTS=${RL_PROMPTS:-320}
PROMPTS_PER_STEP=${PROMPTS_PER_STEP:-32}   # per optimizer step, generated together
MICRO=${MICRO:-4}                         # prompts per forward/backward (x G completions)
TOKENS=${TOKENS:-256}            # judgment budget: RFT samples, GRPO completions, evaluation
# Rehearsal knobs (a dry run on a CPU): SLOW, SFT_BATCH, SFT_MAX_STEPS, EVAL_LIMIT (per held-out file), BT_LIMIT
SFT_STEPS=${SFT_MAX_STEPS:+--max-steps $SFT_MAX_STEPS}
EVAL_LIMITS=${EVAL_LIMIT:+--limit $EVAL_LIMIT}
START=$(date +%s)
mkdir -p "$RUN" "$OUT" "$RUN/eval"
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# cap WANT RESERVE: WANT seconds, or what is left after RESERVE seconds for later stages
SLOW=${SLOW:-1}   # a CPU rehearsal stretches every stage's time limit by this factor
cap() { local w=$(( $1 * SLOW )) l=$(( $(left) - $2 * SLOW )); (( l < w )) && echo $(( l > 5 ? l : 5 )) || echo "$w"; }
log() { echo "[t=$(( $(date +%s) - START ))s] $*"; }
pack() { local name=$1; shift; tar czf "$OUT/$name" -C "$RUN" "$@" 2>/dev/null && log "packed $name ($(du -h "$OUT/$name" | cut -f1))"; }

# 1. rft --------------------------------------------------------------------------------------
mkdir -p "$RUN/rft"
[ -s "$RUN/rft/samples.jsonl" ] || gunzip -c bench/artifacts/grm/rft_samples.jsonl.gz > "$RUN/rft/samples.jsonl"
log "rft: $(wc -l < "$RUN/rft/samples.jsonl") examples sampled before this run"
timeout "$(cap 170 330)" $SPCT rft "$DATA/rft_mix.jsonl" -o "$RUN/rft" --limit "$RFT_LIMIT" --model spct-grm-135m \
  --format-demo --no-constrain --max-new-tokens "$TOKENS" --batch-size 192 --gen-batch-size 576 --no-progress
log "rft exit $? with $(wc -l < "$RUN/rft/samples.jsonl") examples"
$PY bench/gpu_grm_tools.py rft-finish "$RUN/rft"
pack rft.tgz rft/samples.jsonl rft/stats.json rft/train.jsonl

# 2. sft --------------------------------------------------------------------------------------
if [ ! -f "$RUN/sft/adapter/adapter_model.safetensors" ]; then
  timeout "$(cap 110 250)" $SPCT sft "$RUN/rft" -o "$RUN/sft" --model smollm2-135m --lora --lora-r 16 --lora-alpha 32 \
    --lr 2e-4 --epochs 3 --batch-size "${SFT_BATCH:-16}" --grad-accum 1 --max-length 1536 --logging-steps 1 $SFT_STEPS
  log "sft exit $?"
fi
$PY bench/gpu_grm_tools.py fp16 "$RUN/sft/adapter" "$RUN/sft/adapter_fp16" && pack sft.tgz sft/adapter_fp16 sft/log_history.json

# 3. rl ---------------------------------------------------------------------------------------
tail -n +"$((RFT_LIMIT + 1))" "$DATA/rft_mix.jsonl" | head -n "$RL_PROMPTS" > "$RUN/rl_prompts.jsonl"
if [ -f "$RUN/sft/config.json" ]; then
  timeout "$(cap 240 80)" $SPCT rl "$RUN/rl_prompts.jsonl" --model "$RUN/sft" -o "$RUN/rl" --lora --no-vllm \
    --max-completion-length "$TOKENS" --temperature 0.7 --prompts-per-step "$MICRO" --grad-accum "$((PROMPTS_PER_STEP / MICRO))" --lr 5e-5 \
    --max-steps "$((RL_PROMPTS / PROMPTS_PER_STEP))" --logging-steps 1 --save-steps 2
  log "rl exit $?"
  $PY bench/gpu_grm_tools.py rl-finish "$RUN" && $PY bench/gpu_grm_tools.py fp16 "$RUN/rl/adapter" "$RUN/rl/adapter_fp16" \
    && pack rl.tgz rl/adapter_fp16 rl/log_history.json
fi

# 4. eval -------------------------------------------------------------------------------------
heldout() {  # NAME MODEL
  timeout "$(cap 75 5)" $PY bench/grm_heldout.py --engine transformers --model "$2" --out "$RUN/eval/$1" \
    --data "$DATA/hh/heldout.jsonl" "$DATA/gsm/heldout.jsonl" --name hh gsm --max-new-tokens "$TOKENS" \
    --batch-size 512 --gen-batch-size 512 $EVAL_LIMITS
  log "eval $1 exit $?"
  pack eval.tgz eval
}
[ -f "$RUN/rl/config.json" ] && heldout rl "$RUN/rl"
[ -f "$RUN/sft/config.json" ] && heldout sft "$RUN/sft"
heldout base smollm2-135m
# Bradley-Terry scalar RM and token probability on the same rows, in what time is left
(( $(left) > 60 )) && timeout "$(cap 300 0)" env PY="$PY" RUN="$RUN" DATA="$DATA" OUT="$OUT" \
  EVAL_LIMIT="${EVAL_LIMIT:-}" BT_LIMIT="${BT_LIMIT:-}" bash bench/gpu_baselines.sh
pack eval.tgz eval
log "done, $(left) s of the budget left"
