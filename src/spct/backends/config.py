"""EngineConfig: which model, on which engine, with which engine options; what `load_backend` builds from.

The command line (`--model`, `--engine`, ...), the RL adapters' environment (`SPCT_MODEL`,
`SPCT_ENGINE`, ...) and both servers of `spct serve` all fill this one dataclass
(`spct.settings`), so an engine option added here reaches every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import positive_float, positive_int, setting
from .models import BASE_MODEL, DEFAULT_JUDGE
from .openai import GUIDED

ENGINES = ("transformers", "openai", "vllm", "llamacpp", "fake")
AUTO = "auto"  # not an engine: `backends.auto` picks one for the job (`resolve_engine`)


@dataclass
class EngineConfig:
    """A model and the engine that runs it; options of other engines than the one chosen are ignored."""

    model: str = setting(DEFAULT_JUDGE, f"'{DEFAULT_JUDGE}' (embedded SPCT-trained judge, default), '{BASE_MODEL}' (its "
                                        "untrained base), a local HF model folder, a .gguf file, or a hub id")
    engine: str = setting("transformers", "generation engine; auto picks vLLM for jobs large enough to pay back its "
                                          "start-up when it is installed, llama.cpp for a .gguf, else transformers "
                                          "(docs/engines.md)", choices=(*ENGINES, AUTO))
    device: str | None = setting(None, "cpu or cuda (default: cuda when available)")
    gen_batch_size: int = setting(16, "sequences per generate call", type=positive_int)
    dtype: str | None = setting(None, "transformers, vllm: weight dtype, e.g. bfloat16 or float32 (default: transformers "
                                      "bfloat16 on a GPU, else float32; vllm the model's own, float32 on a CPU without bf16)")
    base_url: str | None = setting(None, "openai: server URL, e.g. http://127.0.0.1:8000/v1 (key from SPCT_API_KEY or "
                                         "OPENAI_API_KEY)")
    concurrency: int = setting(8, "openai: requests in flight", type=positive_int)
    guided: str = setting("none", "openai: the server's mechanism for the constrained score line", choices=GUIDED)
    tensor_parallel_size: int = setting(1, "vllm: GPUs per model replica", type=positive_int)
    data_parallel_size: int = setting(1, "vllm: model replicas, placed by Ray", type=positive_int)
    kv_cache_gib: float | None = setting(None, "vllm: KV cache size in GiB (default: on CPU sized from the model and the "
                                               "free memory, or VLLM_CPU_KVCACHE_SPACE; on GPUs vLLM's "
                                               "gpu_memory_utilization)", type=positive_float)
    enforce_eager: bool = setting(False, "vllm: skip torch.compile, for a faster start-up at some cost per token")
    n_threads: int | None = setting(None, "llamacpp: CPU threads (default: all cores)", type=positive_int)

    @property
    def resolved_engine(self) -> str:
        """The engine that runs the model: `openai:NAME` always names an OpenAI-compatible server."""
        return "openai" if self.model.startswith("openai:") else self.engine

    def engine_options(self) -> dict:
        """The constructor options of the engine that runs the model (the others' fields do not apply)."""
        engine = self.resolved_engine
        if engine == "transformers":
            return {"device": self.device, "batch_size": self.gen_batch_size, "dtype": self.dtype}
        if engine == "openai":
            return {"base_url": self.base_url, "concurrency": self.concurrency, "guided": self.guided}
        if engine == "vllm":
            return {"tensor_parallel_size": self.tensor_parallel_size, "data_parallel_size": self.data_parallel_size,
                    "kv_cache_gib": self.kv_cache_gib, "enforce_eager": self.enforce_eager, "dtype": self.dtype}
        if engine == "llamacpp":
            return {"n_threads": self.n_threads}
        return {}
