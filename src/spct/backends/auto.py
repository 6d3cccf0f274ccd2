"""`--engine auto`: which engine to run a job on, decided in one place from what is installed and the job's size.

vLLM judges faster than transformers once started, but its start-up (torch.compile included) is
long; a job pays it back only past a number of judgments. That number comes from measured
figures (bench/RESULTS.md, "Engines and speed"), not from taste. `choose_engine` is the pure
decision; `resolve_engine` looks at this machine, applies it, and logs one line saying why.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from importlib.util import find_spec

from .config import AUTO, EngineConfig

log = logging.getLogger(__name__)

# Measured on this 2-core CPU (bench/RESULTS.md, "vLLM against transformers on this CPU", issue 12,
# `bench/vllm_cpu.py --model spct-grm-135m --n 16 --k 4 --max-new-tokens 128 --dtype float32`):
# 64 judgments, transformers judge_s 299.8, vLLM judge_s 65.9 and load_s 143.4.
VLLM_STARTUP_S = 143.4
VLLM_SPEEDUP = 4.56  # vLLM's judgments/s over transformers' once started (0.972 / 0.213)
CPU_TRANSFORMERS_S_PER_JUDGMENT = 299.8 / 64  # 4.68 s
# The shipped judge on an H100 (bench/RESULTS.md, "Held-out accuracy": transformers bf16, 256 new
# tokens, batch 512): 512 HH judgments in 42.2 s.
GPU_TRANSFORMERS_S_PER_JUDGMENT = 42.2 / 512  # 0.082 s


def break_even(transformers_s_per_judgment: float, startup_s: float = VLLM_STARTUP_S,
               speedup: float = VLLM_SPEEDUP) -> int:
    """The fewest judgments n for which vLLM, start-up included, finishes first.

    With transformers taking t_t a judgment and vLLM S to start and t_t / r a judgment, vLLM wins
    when n * t_t > S + n * t_t / r, i.e. n > S / (t_t * (1 - 1/r)). transformers' own load (5.6 s
    in the same run) is left out, which favours transformers by a couple of judgments.

    On this CPU: t_t = 299.8 s / 64 = 4.68 s, S = 143.4 s, r = 4.56, so n > 143.4 / 3.66 = 39.2:
    40 judgments (at 128 new tokens; longer judgments make vLLM win sooner).
    On a GPU only transformers has been measured (t_t = 42.2 s / 512 = 0.082 s): with the CPU's S
    and r standing in for vLLM's, n > 143.4 / 0.064 = 2,229. An estimate, not a measurement.
    """
    return math.floor(startup_s / (transformers_s_per_judgment * (1 - 1 / speedup))) + 1


CPU_BREAK_EVEN = break_even(CPU_TRANSFORMERS_S_PER_JUDGMENT)  # 40
GPU_BREAK_EVEN = break_even(GPU_TRANSFORMERS_S_PER_JUDGMENT)  # 2229


@dataclass(frozen=True)
class EngineChoice:
    engine: str
    reason: str


def choose_engine(model: str, *, vllm: bool, llamacpp: bool, gpu: bool, judgments: int | None,
                  cpu_break_even: int = CPU_BREAK_EVEN, gpu_break_even: int = GPU_BREAK_EVEN) -> EngineChoice:
    """The engine for a job: `judgments` is examples x samples when the caller knows it, else None.

    A .gguf file goes to llama.cpp (it reads GGUF natively) or, without it, to transformers. Other
    models go to vLLM when it is installed and the job reaches the break-even of this hardware
    (`break_even`); a job of unknown size goes to vLLM on a GPU, where long jobs are the rule and
    transformers scales worst, and stays on transformers on a CPU, where vLLM's start-up is the
    larger cost for anything short.
    """
    if model.lower().endswith(".gguf"):
        if llamacpp:
            return EngineChoice("llamacpp", "a .gguf file, and llama.cpp is installed")
        return EngineChoice("transformers", "a .gguf file, and llama.cpp is not installed")
    if not vllm:
        return EngineChoice("transformers", "vLLM is not installed")
    device, threshold = ("GPU", gpu_break_even) if gpu else ("CPU", cpu_break_even)
    if judgments is None:
        if gpu:
            return EngineChoice("vllm", "vLLM is installed and a GPU is present; the job's size is not known")
        return EngineChoice("transformers", f"the job's size is not known, and on a CPU vLLM's start-up pays off only "
                                            f"from {threshold} judgments")
    if judgments >= threshold:
        return EngineChoice("vllm", f"{judgments} judgments, at least the {threshold} from which vLLM's faster judging "
                                    f"pays back its start-up on a {device}")
    return EngineChoice("transformers", f"{judgments} judgments, fewer than the {threshold} from which vLLM's faster "
                                        f"judging pays back its start-up on a {device}")


def _gpu_present(device: str | None) -> bool:
    """A CUDA GPU the job may use (`--device cpu` rules it out)."""
    if device == "cpu":
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve_engine(config: EngineConfig, judgments: int | None = None) -> EngineConfig:
    """`config` with `auto` replaced by the chosen engine (logged); any other engine is returned as it is."""
    if config.resolved_engine != AUTO:
        return config
    choice = choose_engine(config.model, vllm=find_spec("vllm") is not None, llamacpp=find_spec("llama_cpp") is not None,
                           gpu=_gpu_present(config.device), judgments=judgments)
    log.info("--engine auto: %s (%s)", choice.engine, choice.reason)
    return replace(config, engine=choice.engine)
