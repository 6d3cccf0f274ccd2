#!/usr/bin/env bash
# spct sft and spct rl under `accelerate launch` with 2 CPU processes over gloo
# (configs/accelerate/cpu-2proc.yaml), a few steps each on the embedded models: the real-model run
# behind docs/training.md section 4 (tests/test_distributed_cpu.py runs the same on a tiny model).
# LoRA in both, as in the recipe, so the main process's merge on save runs too.
#
#   bash bench/distributed_cpu.sh                     # output under runs/distributed_cpu
#   STEPS=5 COMPLETION=128 bash bench/distributed_cpu.sh /tmp/dist
#   SFT_MODEL=DIR RL_MODEL=DIR ...                    # other models (a folder, a .gguf, a hub id)
#
# Per run it prints the summary line (once: the main process's) and "world size N, wall S s".
# Each run starts fresh: earlier sft/ and rl/ folders under OUTDIR are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=${1:-runs/distributed_cpu}
steps=${STEPS:-3}
sft_model=${SFT_MODEL:-smollm2-135m}  # the base, as in the recipe
rl_model=${RL_MODEL:-spct-grm-135m}   # the shipped judge, whose judgments can earn a reward
# half the cores to each of the 2 processes
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) > 2 ? $(nproc) / 2 : 1 ))}
launch=("$PY" -m accelerate.commands.launch --config_file configs/accelerate/cpu-2proc.yaml -m spct)
mkdir -p "$out"
rm -rf "$out/sft" "$out/rl"

# 8 labelled pairs whose longer response is best; `spct rft` with the fake engine (it scores by
# length, so every sample is right) turns them into SFT rows. The data only has to be well formed.
"$PY" - "$out/pairs.jsonl" <<'PYEOF'
import json, sys
rows = [{"id": f"p{i}", "query": f"Question {i}: explain it briefly.", "responses": [
    f"A careful answer to question {i} that explains the point and checks it.", "No."], "best": [0]} for i in range(8)]
open(sys.argv[1], "w").write("".join(json.dumps(r) + "\n" for r in rows))
PYEOF
"$PY" -m spct rft "$out/pairs.jsonl" -o "$out/rft" --engine fake --keep-too-easy --no-progress

run() {  # NAME ARGS...: one launch, its output kept in OUTDIR/NAME.log
  local name=$1 start end
  shift
  start=$(date +%s.%N)
  "${launch[@]}" "$@" 2>&1 | tee "$out/$name.log"
  end=$(date +%s.%N)
  grep '^{"' "$out/$name.log" | "$PY" -c 'import json, sys
name, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
s = json.loads(sys.stdin.readlines()[-1])
world, steps = s["processes"], s["steps"]
print(f"{name}: world size {world}, steps {steps}, wall {end - start:.1f} s")' \
    "$name" "$start" "$end"
}

run sft sft "$out/rft" -o "$out/sft" --model "$sft_model" --cpu --lora --max-steps "$steps" \
  --batch-size 1 --grad-accum 1 --max-length 1024 --logging-steps 1
run rl rl "$out/pairs.jsonl" -o "$out/rl" --model "$rl_model" --cpu --lora --max-steps "$steps" \
  --grad-accum 1 --max-completion-length "${COMPLETION:-64}" --logging-steps 1
