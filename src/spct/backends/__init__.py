"""Generation engines behind one interface (`Backend`). `load_backend` picks one from a model spec.

- `transformers` (default): the embedded SmolLM2 or any local/hub causal LM, CPU or one GPU.
- `fake`: the scripted test backend.
Other engines register here as they are added, one file each.
"""

from __future__ import annotations

from .base import Backend, BackendError, Generation, GenerationRequest, ScoreConstraint

ENGINES = ("transformers", "fake")


def load_backend(model: str = "smollm2-135m", engine: str = "transformers", **options) -> Backend:
    if engine == "transformers":
        from .transformers import TransformersBackend

        return TransformersBackend(model, **options)
    if engine == "fake":
        from .fake import FakeBackend

        return FakeBackend()
    raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


__all__ = ["Backend", "BackendError", "Generation", "GenerationRequest", "ScoreConstraint", "load_backend", "ENGINES"]
