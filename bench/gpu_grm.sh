#!/usr/bin/env bash
# The shipped judge's third round on one GPU inside a fixed time budget: RFT rows -> SFT -> GRPO
# -> validation check -> held-out figures. Every stage resumes; a stage stopped by its time limit
# keeps what it finished (RFT: the examples sampled so far; GRPO: its newest checkpoint).
#
#   BUDGET=540 OUT=/somewhere bash bench/gpu_grm.sh
#
# Stages, in order of priority (later ones get what time is left):
#   1. rft   the first RFT_LIMIT rows of the 7:3 HH/gsm mix, N_RFT = 3. The committed samples
#            (bench/artifacts/grm/rft_samples.jsonl.gz) hold them all, so on a fresh machine this
#            only rebuilds the rows: 1-336 were drawn by the base with the format demo, 337-528 by
#            round 1's judge with the demo, 529-1528 by round 2's judge *without* it (T = 0.8, 256
#            tokens, vLLM on the 2-core CPU; bench/RESULTS.md "Rejective sampling (RFT)"). Forced, cut, wrong and
#            too-easy samples are rejected, and so are copies of the demo where the demo was shown.
#            Every kept pair judgment trains in both response orders (`swap_pair`), so the rows
#            favour each position equally: round 2's judge always preferred the second one.
#   2. sft   a fresh rank-16 LoRA on the *base* (smollm2-135m) over every row, SFT_EPOCHS epochs
#   3. rl    GRPO from the SFT model on the next RL_PROMPTS rows of the mix (never used by RFT):
#            beta 0.08, G = 4, +1/-1 rule reward, T = 1.0, a fresh LoRA, checkpoints every 2 steps
#   4. eval  validation slice (model selection, first-shown win rate), then greedy held-out figures
#            (512 HH + 200 gsm) for RL and SFT; in what is left, voting@8 of the model the
#            validation slice picks (128 HH + 64 gsm) and k = 8 judgments of the RL prompts
#            (training rows) for a meta RM
# Outputs under $OUT: rft.tgz, sft.tgz and rl.tgz (float16 adapters + logs), eval.tgz. Shipping is
# one step on any machine:
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
BUDGET=${BUDGET:-540}
RFT_LIMIT=${RFT_LIMIT:-1528}
RL_PROMPTS=${RL_PROMPTS:-640}
PROMPTS_PER_STEP=${PROMPTS_PER_STEP:-32}   # per optimizer step, generated together
MICRO=${MICRO:-8}                         # prompts per forward/backward (x G completions)
TOKENS=${TOKENS:-256}            # judgment budget: RFT samples and evaluation
RL_TOKENS=${RL_TOKENS:-160}      # GRPO completions (round 2's judgments are 60-120 tokens)
SFT_EPOCHS=${SFT_EPOCHS:-2}
# Rehearsal knobs (a dry run on a CPU): SLOW, SFT_BATCH, SFT_MAX_STEPS, EVAL_LIMIT (per held-out file)
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
if (( $(wc -l < "$RUN/rft/samples.jsonl") < RFT_LIMIT )); then
  timeout "$(cap 170 330)" $SPCT rft "$DATA/rft_mix.jsonl" -o "$RUN/rft" --limit "$RFT_LIMIT" --model spct-grm-135m \
    --no-constrain --no-hinted --temperature 0.8 --max-new-tokens "$TOKENS" --batch-size 192 --gen-batch-size 576 --no-progress
  log "rft exit $? with $(wc -l < "$RUN/rft/samples.jsonl") examples"
fi
$PY bench/gpu_grm_tools.py rft-finish "$RUN/rft"
pack rft.tgz rft/stats.json

# 2. sft --------------------------------------------------------------------------------------
if [ ! -f "$RUN/sft/adapter/adapter_model.safetensors" ]; then
  timeout "$(cap 200 280)" $SPCT sft "$RUN/rft" -o "$RUN/sft" --model smollm2-135m --lora --lora-r 16 --lora-alpha 32 \
    --lr 2e-4 --epochs "$SFT_EPOCHS" --batch-size "${SFT_BATCH:-16}" --grad-accum 1 --max-length 1536 --logging-steps 5 \
    --save-steps 25 $SFT_STEPS
  log "sft exit $?"
  $PY bench/gpu_grm_tools.py finish "$RUN" sft smollm2-135m
fi
$PY bench/gpu_grm_tools.py fp16 "$RUN/sft/adapter" "$RUN/sft/adapter_fp16" && pack sft.tgz sft/adapter_fp16 sft/log_history.json

# 3. rl ---------------------------------------------------------------------------------------
tail -n +"$((RFT_LIMIT + 1))" "$DATA/rft_mix.jsonl" | head -n "$RL_PROMPTS" > "$RUN/rl_prompts.jsonl"
if [ -f "$RUN/sft/config.json" ] && [ ! -f "$RUN/rl/adapter_fp16/adapter_model.safetensors" ]; then
  timeout "$(cap 150 130)" $SPCT rl "$RUN/rl_prompts.jsonl" --model "$RUN/sft" -o "$RUN/rl" --lora --no-vllm \
    --max-completion-length "$RL_TOKENS" --temperature 1.0 --prompts-per-step "$MICRO" --grad-accum "$((PROMPTS_PER_STEP / MICRO))" --lr 5e-5 \
    --max-steps "$((RL_PROMPTS / PROMPTS_PER_STEP))" --logging-steps 1 --save-steps 2
  log "rl exit $?"
  $PY bench/gpu_grm_tools.py finish "$RUN" rl sft && $PY bench/gpu_grm_tools.py fp16 "$RUN/rl/adapter" "$RUN/rl/adapter_fp16" \
    && pack rl.tgz rl/adapter_fp16 rl/log_history.json
fi

# 4. eval -------------------------------------------------------------------------------------
judge() {  # NAME MODEL WANT RESERVE SET [extra grm_heldout args]
  local name=$1 model=$2 want=$3 reserve=$4 set=$5; shift 5
  timeout "$(cap "$want" "$reserve")" $PY bench/grm_heldout.py --engine transformers --model "$model" --out "$RUN/eval/$name" \
    --data "$DATA/hh/$set.jsonl" "$DATA/gsm/$set.jsonl" --name hh gsm --max-new-tokens "$TOKENS" \
    --batch-size 512 --gen-batch-size 512 "$@"
  log "eval $name exit $?"
  pack eval.tgz eval
}
# Model selection on the validation slice of the training data (64 HH + 32 gsm), never held-out rows.
[ -f "$RUN/rl/config.json" ] && judge val_rl "$RUN/rl" 20 120 validation $EVAL_LIMITS
[ -f "$RUN/sft/config.json" ] && judge val_sft "$RUN/sft" 20 100 validation $EVAL_LIMITS
[ -f "$RUN/rl/config.json" ] && judge rl "$RUN/rl" 60 60 heldout $EVAL_LIMITS
[ -f "$RUN/sft/config.json" ] && judge sft "$RUN/sft" 60 0 heldout $EVAL_LIMITS
SHIP=$($PY bench/gpu_grm_tools.py pick "$RUN/eval" rl sft)
log "validation picks $SHIP"
echo "$SHIP" > "$RUN/eval/picked"
# In what is left: voting@8 of the picked model on the first 128 HH + 64 held-out gsm pairs, then
# k = 8 judgments of training rows (the RL prompts) for a meta RM trained elsewhere.
if [ -f "$RUN/$SHIP/config.json" ] && (( $(left) > 30 )); then
  judge "${SHIP}_k8" "$RUN/$SHIP" 120 0 heldout --k 8 --limit 128 64 $EVAL_LIMITS
fi
if [ -f "$RUN/$SHIP/config.json" ] && (( $(left) > 30 )); then
  timeout "$(cap 120 0)" $SPCT meta-data "$RUN/rl_prompts.jsonl" -o "$RUN/eval/meta_train_k8.jsonl" --model "$RUN/$SHIP" \
    --k 8 --max-new-tokens "$TOKENS" --batch-size 64 --gen-batch-size 512
  log "meta-data exit $?"
  pack eval.tgz eval
fi
log "done, $(left) s of the budget left"
