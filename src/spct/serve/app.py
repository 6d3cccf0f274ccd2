"""The reward server: a FastAPI app over one GenerativeRewardModel.

`create_app(grm, ...)` takes any GRM (tests pass one over FakeBackend). Endpoints:
- POST /get_reward: OpenRLHF's remote reward model protocol. Queries that share a prompt are
  judged together, listwise, in one judgment per sample.
- POST /v1/judge: examples in, voted rewards (and optionally the judgments) out.
- GET /health, GET /metrics (JSON: requests by status, queue depth, latency, parse failures).

Every refusal is explicit: 400/422 name the field, 401 a missing key, 413 an oversized body,
503 a full queue (with Retry-After), 504 a timeout, 502/500 a failed backend with its reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import Counter, deque
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data import Example, Reward
from ..judge import GenerativeRewardModel
from ..score_scale import normalise
from .batcher import JudgeFailed, MicroBatcher, QueueFull
from .protocol import (
    GetRewardRequest,
    GetRewardResponse,
    JudgeRequest,
    JudgeResponse,
    JudgmentOut,
    RewardOut,
)


@dataclass
class ServerConfig:
    max_queue: int = 256  # waiting requests before 503
    max_batch_examples: int = 32  # examples per generation batch
    batch_wait_s: float = 0.01  # how long a batch waits for more requests
    timeout_s: float = 300.0  # per request, queueing included
    max_body_bytes: int = 4 * 1024 * 1024
    max_k: int = 16
    api_key: str | None = None


def _error(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _where(loc: tuple) -> str:
    parts = [str(x) for x in loc if x != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def _example_id(query, responses: list[str]) -> str:
    # Content-derived, so an example gets the same shuffles and seeds whatever batch it lands in.
    return "h" + hashlib.sha256(json.dumps([query, responses]).encode()).hexdigest()[:16]


def create_app(grm: GenerativeRewardModel, config: ServerConfig | None = None) -> FastAPI:
    cfg = config or ServerConfig()
    batcher = MicroBatcher(grm, max_queue=cfg.max_queue, max_batch_examples=cfg.max_batch_examples,
                           batch_wait_s=cfg.batch_wait_s)
    statuses: Counter = Counter()
    latencies: deque = deque(maxlen=2000)
    started = time.time()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await batcher.close()

    app = FastAPI(title="spct reward server", version="1", lifespan=lifespan)
    app.state.batcher = batcher

    @app.middleware("http")
    async def guard(request: Request, call_next):
        t0 = time.perf_counter()
        if cfg.api_key and request.url.path != "/health":
            given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), cfg.api_key.encode()):
                response = _error(401, "missing or wrong API key (send 'Authorization: Bearer KEY' or 'X-API-Key: KEY')")
                statuses[401] += 1
                return response
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > cfg.max_body_bytes):
            statuses[413] += 1
            return _error(413, f"request body of {length} bytes exceeds the limit of {cfg.max_body_bytes} bytes")
        response = await call_next(request)
        statuses[response.status_code] += 1
        if request.url.path in ("/get_reward", "/v1/judge"):
            latencies.append(time.perf_counter() - t0)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            e = errors[0]
            return _error(400, f"body is not valid JSON ({e.get('ctx', {}).get('error', 'decode error')} at position {e['loc'][-1]})")
        problems = [f"{_where(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in errors]
        return _error(422, "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else ""))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    async def judge(examples: list[Example], k: int) -> list[Reward] | JSONResponse:
        try:
            return await batcher.submit(examples, k, cfg.timeout_s)
        except QueueFull as e:
            return _error(503, str(e), headers={"Retry-After": str(e.retry_after_s)})
        except asyncio.TimeoutError:
            return _error(504, f"judging did not finish within {cfg.timeout_s:g} s")
        except JudgeFailed as e:
            return _error(e.status, str(e))

    @app.post("/v1/judge", response_model=JudgeResponse)
    async def v1_judge(body: JudgeRequest):
        k = body.k or grm.config.k
        if k > cfg.max_k:
            return _error(422, f"k: {k} exceeds this server's limit of {cfg.max_k}")
        examples = [
            Example(e.id or _example_id(e.query if isinstance(e.query, str) else [m.model_dump() for m in e.query], e.responses),
                    e.query if isinstance(e.query, str) else [m.model_dump() for m in e.query],
                    list(e.responses), e.best or None, e.ratings, e.domain)
            for e in body.examples
        ]
        result = await judge(examples, k)
        if isinstance(result, JSONResponse):
            return result
        return JudgeResponse(rewards=[_reward_out(r, body.include_judgments) for r in result])

    @app.post("/get_reward", response_model=GetRewardResponse)
    async def get_reward(body: GetRewardRequest):
        try:
            pairs = body.split()
        except ValueError as e:
            return _error(422, str(e))
        # Queries of one prompt are judged together (listwise), in first-seen order.
        groups: dict[str, list[int]] = {}
        for i, (prompt, _) in enumerate(pairs):
            groups.setdefault(prompt, []).append(i)
        examples = [Example(_example_id(p, [pairs[i][1] for i in idx]), p, [pairs[i][1] for i in idx]) for p, idx in groups.items()]
        result = await judge(examples, grm.config.k)
        if isinstance(result, JSONResponse):
            return result
        rewards = [0.0] * len(pairs)
        used = [0.0] * len(pairs)
        failed = [0.0] * len(pairs)
        group_size = [0.0] * len(pairs)
        bad = []
        for (_, idx), r in zip(groups.items(), result, strict=True):
            for pos, i in enumerate(idx):
                if r.rewards is None:
                    bad.append(i)
                    continue
                rewards[i] = r.rewards[pos] / r.used
                used[i], failed[i], group_size[i] = r.used, r.failed, len(idx)
        if bad:
            return _error(502, f"no valid judgment for query {bad}: every sampled judgment failed to parse")
        return GetRewardResponse(
            rewards=rewards,
            scores=[normalise(x) for x in rewards],
            extra_logs={"judgments_used": used, "judgments_failed": failed, "group_size": group_size},
        )

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": getattr(grm.backend, "model_name", grm.backend.name), "k": grm.config.k,
                "queue_depth": batcher.depth}

    @app.get("/metrics")
    async def metrics():
        lat = sorted(latencies)
        s = batcher.stats

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 4) if lat else None

        return {
            "uptime_s": round(time.time() - started, 1),
            "requests": {str(k): v for k, v in sorted(statuses.items())},
            "queue_depth": batcher.depth,
            "latency_s": {"p50": pct(0.5), "p99": pct(0.99), "window": len(lat)},
            "batches": s.batches,
            "mean_batch_requests": round(s.batched_requests / s.batches, 2) if s.batches else None,
            "mean_batch_examples": round(s.batched_examples / s.batches, 2) if s.batches else None,
            "requests_rerun_alone": s.rerun_alone,
            "judgments": s.judgments,
            "parse_failures": s.parse_failures,
        }

    return app


def _reward_out(r: Reward, with_judgments: bool) -> RewardOut:
    return RewardOut(
        id=r.id, rewards=r.rewards, mean_scores=[x / r.used for x in r.rewards] if r.rewards else None,
        k=r.k, used=r.used, failed=r.failed, best=r.best, correct=r.correct,
        judgments=[JudgmentOut(sample=j.sample, order=j.order, principles=j.principles, critique=j.critique, scores=j.scores,
                               error=j.error, forced=j.forced, text=j.text) for j in r.judgments] if with_judgments else None,
    )
