"""Generation engines behind one interface (`Backend`). `load_backend` picks one from a model spec.

- `transformers` (default): the embedded judge (`spct-grm-135m`, SmolLM2-135M + spct's adapter), its
  base `smollm2-135m`, or any local/hub causal LM, CPU or one GPU.
- `openai`: any OpenAI-compatible server (`--model openai:NAME --base-url URL`).
- `vllm`: vLLM's offline engine on GPUs (tensor / data parallel, Ray for several nodes).
- `llamacpp`: llama.cpp through llama-cpp-python, GGUF files on CPU (extra `spct[llamacpp]`).
- `fake`: the scripted test backend.
Other engines register here as they are added, one file each.
"""

from __future__ import annotations

from .base import Backend, BackendError, Generation, GenerationRequest, ScoreConstraint

ENGINES = ("transformers", "openai", "vllm", "llamacpp", "fake")


def load_backend(model: str = "spct-grm-135m", engine: str = "transformers", **options) -> Backend:
    """`model` may name its engine: `openai:NAME` always goes to an OpenAI-compatible server."""
    if model.startswith("openai:"):
        engine = "openai"
    if engine == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend(model, **options)
    if engine == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(model, **options)
    if engine == "llamacpp":
        from .llamacpp import LlamaCppBackend

        return LlamaCppBackend(model, **options)
    if engine == "transformers":
        from .transformers import TransformersBackend

        return TransformersBackend(model, **options)
    if engine == "fake":
        from .fake import FakeBackend

        return FakeBackend()
    raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


__all__ = ["Backend", "BackendError", "Generation", "GenerationRequest", "ScoreConstraint", "load_backend", "ENGINES"]
