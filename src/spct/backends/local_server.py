"""A small OpenAI-compatible chat server over any spct engine (FastAPI + uvicorn).

It serves a local model (by default the embedded SmolLM2 through the transformers engine) at
`/v1/chat/completions` and `/v1/models`, so the OpenAI backend, other tools and the tests can
talk HTTP to a real model on 127.0.0.1. It understands `n`, `temperature`, `max_tokens`,
`seed`, and one extension: `spct_score_constraint: {count, prefix, lo, hi}` runs the engine's
own constrained score line (the OpenAI backend's `guided="spct"`); choices then carry
`spct_forced` and `spct_new_tokens`. Requests are served one at a time (the engine batches
within a request).

    python -m spct.backends.local_server --model smollm2-135m --port 8000
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from ..defaults import CHAT_API_TEMPERATURE, MAX_NEW_TOKENS
from ..score_line import MAX_SCORE, MIN_SCORE, SCORE_PREFIX
from .base import Backend, BackendError, GenerationRequest, ScoreConstraint


class ChatMessage(BaseModel):
    role: str
    content: str


class ScoreConstraintBody(BaseModel):
    count: int
    prefix: str = SCORE_PREFIX
    lo: int = MIN_SCORE
    hi: int = MAX_SCORE


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage]
    n: int = 1
    temperature: float = CHAT_API_TEMPERATURE
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    spct_score_constraint: ScoreConstraintBody | None = None


def create_app(backend: Backend, model_name: str, max_tokens: int = MAX_NEW_TOKENS) -> FastAPI:
    app = FastAPI(title="spct local OpenAI-compatible server")
    lock = threading.Lock()  # one engine call at a time; the engine batches inside a call

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "spct"}]}

    @app.post("/v1/chat/completions")
    def chat(body: ChatRequest) -> dict:
        if body.n < 1:
            raise HTTPException(400, "n must be >= 1")
        c = body.spct_score_constraint
        req = GenerationRequest(
            messages=[m.model_dump() for m in body.messages],
            n=body.n,
            temperature=body.temperature,
            max_new_tokens=body.max_completion_tokens or body.max_tokens or max_tokens,
            seed=body.seed or 0,
            constraint=ScoreConstraint(c.count, c.prefix, c.lo, c.hi) if c else None,
        )
        try:
            with lock:
                gens = backend.generate([req])[0]
        except BackendError as e:
            raise HTTPException(503, str(e)) from e
        choices = [
            {"index": i, "message": {"role": "assistant", "content": g.text}, "finish_reason": g.finish_reason,
             "spct_forced": g.forced, "spct_new_tokens": g.new_tokens}
            for i, g in enumerate(gens)
        ]
        completion_tokens = sum(g.new_tokens for g in gens)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": choices,
            "usage": {"prompt_tokens": 0, "completion_tokens": completion_tokens, "total_tokens": completion_tokens},
        }

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the model EngineConfig's flags name (the same `--model`, `--engine`, ... as `spct judge`)."""
    import uvicorn

    from ..settings import add_dataclass_args, from_namespace
    from . import EngineConfig, load_backend

    p = argparse.ArgumentParser(prog="python -m spct.backends.local_server", description=__doc__.split("\n\n")[0])
    add_dataclass_args(p, EngineConfig)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args(argv)
    config = from_namespace(EngineConfig, args)
    app = create_app(load_backend(config), config.model)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")

if __name__ == "__main__":
    main()
