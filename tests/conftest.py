"""Shared fixtures. The embedded model is loaded once per test session (about 1 s once cached;
the very first run on a machine converts the GGUF, about 25 s)."""

from __future__ import annotations

import pytest

from spct.data import Example


@pytest.fixture(scope="session")
def embedded_backend():
    from spct.backends.transformers import TransformersBackend

    return TransformersBackend("smollm2-135m", batch_size=8)


@pytest.fixture
def pair_examples() -> list[Example]:
    return [
        Example("p1", "What is the capital of France?", ["Paris is the capital of France.", "I don't know."], best=[0]),
        Example("p2", "Give me a synonym for 'happy'.", ["Sad.", "Joyful."], best=[1]),
    ]
