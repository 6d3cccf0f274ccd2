"""Generation engines behind one interface (`Backend`). `load_backend` builds one from an `EngineConfig`.

- `transformers` (default): the embedded judge (`spct-grm-135m`, SmolLM2-135M + spct's adapter), its
  base `smollm2-135m`, or any local/hub causal LM, CPU or one GPU.
- `openai`: any OpenAI-compatible server (`--model openai:NAME --base-url URL`).
- `vllm`: vLLM's offline engine on GPUs (tensor / data parallel, Ray for several nodes).
- `llamacpp`: llama.cpp through llama-cpp-python, GGUF files on CPU (extra `spct[llamacpp]`).
- `fake`: the scripted test backend.
- `auto` is not an engine: `backends.auto.resolve_engine` picks one of the above for the job.
Other engines register here as they are added, one file each.
"""

from __future__ import annotations

from .base import Backend, BackendError, Generation, GenerationRequest, ScoreConstraint
from .config import ENGINES, EngineConfig


def load_backend(config: EngineConfig | str | None = None, *, judgments: int | None = None, **options) -> Backend:
    """The one place a backend is built: from an EngineConfig (a bare model spec for the defaults).

    `judgments` (examples x samples, when the caller knows it) sizes the job for `--engine auto`.
    `options` reach the engine's constructor beyond the config's fields (llama.cpp's `n_ctx`,
    vLLM's `max_model_len`, ...) and win over them.
    """
    from .auto import resolve_engine

    config = resolve_engine(EngineConfig(config) if isinstance(config, str) else config or EngineConfig(), judgments)
    engine, options = config.resolved_engine, {**config.engine_options(), **options}
    if engine == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend(config.model, **options)
    if engine == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(config.model, **options)
    if engine == "llamacpp":
        from .llamacpp import LlamaCppBackend

        return LlamaCppBackend(config.model, **options)
    if engine == "transformers":
        from .transformers import TransformersBackend

        return TransformersBackend(config.model, **options)
    if engine == "fake":
        from .fake import FakeBackend

        return FakeBackend()
    raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


__all__ = ["Backend", "BackendError", "EngineConfig", "Generation", "GenerationRequest", "ScoreConstraint", "load_backend",
           "ENGINES"]
