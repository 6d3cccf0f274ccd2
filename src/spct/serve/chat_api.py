"""The chat server: any spct engine behind OpenAI's /v1/chat/completions and /v1/models.

`spct serve --api openai` runs it, so the OpenAI backend (`--engine openai`), verl's reward
router and other OpenAI clients can reach a local model over HTTP, with the reward server's
Host check, API key and body limit (`guard.py`) and its request deadline (`connection.py`).
It understands `n`, `temperature`, `max_tokens` / `max_completion_tokens` and `seed`, and one
extension: `spct_score_constraint: {count, prefix, lo, hi}` runs the engine's own constrained
score line; choices then carry `spct_forced` and `spct_new_tokens`.

Requests are answered one at a time: the engine batches the n samples of a request, and the
reward server's batcher groups judging examples, not raw chats, so it does not apply here.
"""

from __future__ import annotations

import threading
import time
import uuid

from fastapi import FastAPI

from ..backends.base import Backend, BackendError, GenerationRequest, ScoreConstraint
from ..defaults import MAX_NEW_TOKENS
from .app import ServerConfig
from .guard import install_guard, refusal
from .protocol import ChatRequest


def create_chat_app(backend: Backend, model_name: str, config: ServerConfig | None = None,
                    max_tokens: int = MAX_NEW_TOKENS) -> FastAPI:
    """The chat server over `backend`, listed as `model_name`; of `config` it uses the API key,
    allowed hosts and body limit. `max_tokens`: the budget of a request that names none."""
    cfg = config or ServerConfig()
    app = FastAPI(title="spct OpenAI-compatible chat server")
    install_guard(app, cfg.api_key, cfg.allowed_hosts, cfg.max_body_bytes)
    lock = threading.Lock()  # one engine call at a time; the engine batches inside a call

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "spct"}]}

    @app.post("/v1/chat/completions")
    def chat(body: ChatRequest):
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
            return refusal(503, str(e))
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
