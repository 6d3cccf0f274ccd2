#!/bin/bash
# The GPU-machine run recorded in bench/RESULTS.md (issue 7). The device gets a copy of src/,
# bench/, tests/, SmolLM2-135M's config + tokenizer (no weights: they exceed what can be
# carried) and 64 HH-RLHF pairs under .devcarry/. The model is randomly initialised in
# SmolLM2-135M's shape, so these figures are throughput only: it never stops early and its
# judgments mean nothing. vLLM is not installed there, so its gpu test skips.
set -u
export PYTHONPATH=.devcarry/src
B=".devcarry/bench/engines.py --random-init .devcarry/smollm2-config --data .devcarry/hh64.jsonl"
nvidia-smi --query-gpu=name --format=csv,noheader
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
timeout 110 python $B voting --device cuda --max-new-tokens 128 --repeat 2
timeout 60 python $B overhead --device cuda --n 32 --max-new-tokens 128 --batch-size 32 --repeat 2 --profile
timeout 60 python $B overhead --device cuda --n 32 --max-new-tokens 128 --batch-size 32 --repeat 2 --no-constrain
timeout 100 python $B overhead --device cuda --n 32 --max-new-tokens 128 --batch-size 8 --repeat 1
timeout 80 python $B voting --device cpu --max-new-tokens 64 --repeat 2
timeout 100 python $B overhead --device cpu --n 32 --max-new-tokens 64 --batch-size 8 --repeat 1
timeout 60 python -m pytest -q -p no:cacheprovider -o pythonpath=.devcarry/src -m gpu .devcarry/tests/test_engines.py 2>&1 | tail -3
