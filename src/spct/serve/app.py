"""The reward server: a FastAPI app over one GenerativeRewardModel.

`create_app(grm, ...)` takes any GRM (tests pass one over FakeBackend). Endpoints:
- POST /get_reward: OpenRLHF's remote reward model protocol. Responses to one prompt are judged
  together, listwise, whether they come in one request or in many concurrent ones (the
  batcher regroups them; `extra_logs.group_size` says how many responses each judgment saw).
  Empty lists are answered with empty lists (OpenRLHF's empty shards).
- POST /v1/judge: examples in, voted rewards (and optionally the judgments) out.
- POST /v1/rollout: one response with its group's key (and G), judged with the rest of its
  group as /get_reward does; for clients whose groups are spread over workers (verl).
- GET /health; GET /metrics (Prometheus text format: requests by status, queue depth, latency,
  batches, rollout group sizes, parse failures) and GET /metrics/json (the same as JSON).
  With an API key set, /health stays open but tells an unauthenticated caller only the status.

Every refusal is explicit: 400/422 name the field, 401 a missing key, 413 an oversized body,
400 a Host header outside `allowed_hosts` (`spct serve` sets it when bound to loopback, against
DNS rebinding) -- those checks are `guard.py`'s, shared with the chat server -- and 503 a full
queue (with Retry-After, only with `when_full="reject"`; by default a request waits for room),
504 a timeout, 502/500 a failed backend with its reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..data import Example, Reward
from ..judge import GenerativeRewardModel
from ..rollouts import untemplate
from ..score_line import normalise
from .batcher import JudgeFailed, MicroBatcher, QueueFull, example_id
from .guard import authorized, install_guard, refusal
from .metrics import ServerMetrics
from .protocol import (
    MAX_RESPONSES,
    GetRewardRequest,
    GetRewardResponse,
    JudgeRequest,
    JudgeResponse,
    JudgmentOut,
    RewardOut,
    RolloutRequest,
    RolloutResponse,
)

T = TypeVar("T")
JUDGING_PATHS = ("/get_reward", "/v1/judge", "/v1/rollout")  # whose latency /metrics reports


@dataclass
class ServerConfig:
    # Waiting requests; beyond, see when_full. OpenRLHF sends rollout batch size x n requests at
    # once (its default batch is 1024 prompts): room for n = 16.
    max_queue: int = 16384
    max_batch_examples: int = 32  # examples per generation batch
    batch_wait_s: float = 0.01  # how long a batch waits for more requests
    # A group of single rollouts (/get_reward, /v1/rollout) is judged when it holds G responses,
    # or this long after its first response arrived: long enough for rollouts spread over tens of
    # seconds, and leaving most of timeout_s (below OpenRLHF's 180 s) for judging.
    group_window_s: float = 60.0
    group_size: int | None = None  # G, responses per prompt; None: from the request, else learned
    max_group_size: int = 64  # responses per judgment of such a group at most (at most protocol.MAX_RESPONSES)
    when_full: str = "wait"  # a request past max_queue waits for room ("wait") or gets 503 ("reject")
    timeout_s: float = 150.0  # per request, queueing included (below OpenRLHF's 180 s client timeout)
    max_body_bytes: int = 4 * 1024 * 1024
    max_k: int = 16
    api_key: str | None = None
    # Host names (any port) a request's Host header may carry; None accepts any.
    allowed_hosts: list[str] | None = None
    request_deadline_s: float = 10.0  # for a request to arrive whole (headers and body); see connection.py

    def uvicorn_options(self) -> dict[str, Any]:
        """What to pass to uvicorn besides the app, host and port."""
        from .connection import uvicorn_options

        return uvicorn_options(self.request_deadline_s, self.max_queue)


def create_app(grm: GenerativeRewardModel, config: ServerConfig | None = None) -> FastAPI:
    cfg = config or ServerConfig()
    if not 1 <= cfg.max_group_size <= MAX_RESPONSES:
        raise ValueError(f"max_group_size must be in 1..{MAX_RESPONSES}, got {cfg.max_group_size}")
    batcher = MicroBatcher(grm, max_queue=cfg.max_queue, max_batch_examples=cfg.max_batch_examples,
                           batch_wait_s=cfg.batch_wait_s, group_window_s=cfg.group_window_s, group_size=cfg.group_size,
                           max_group_size=cfg.max_group_size, when_full=cfg.when_full)
    metrics = ServerMetrics(batcher, cfg.group_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await batcher.close()

    app = FastAPI(title="spct reward server", version="1", lifespan=lifespan)
    app.state.batcher = batcher

    def observe(path: str, status: int, seconds: float | None) -> None:
        metrics.observe(path, status, seconds if path in JUDGING_PATHS else None)  # latency: judging only

    install_guard(app, cfg.api_key, cfg.allowed_hosts, cfg.max_body_bytes, observe)

    async def judged(work: Awaitable[T]) -> T | JSONResponse:
        """The batcher's answer, or the refusal it ended in."""
        try:
            return await work
        except QueueFull as e:
            return refusal(503, str(e), headers={"Retry-After": str(e.retry_after_s)})
        except asyncio.TimeoutError:
            return refusal(504, f"judging did not finish within {cfg.timeout_s:g} s")
        except JudgeFailed as e:
            return refusal(e.status, str(e))

    @app.post("/v1/judge", response_model=JudgeResponse)
    async def v1_judge(body: JudgeRequest):
        k = body.k or grm.config.k
        if k > cfg.max_k:
            return refusal(422, f"k: {k} exceeds this server's limit of {cfg.max_k}")
        examples = [
            Example(e.id or example_id(e.query if isinstance(e.query, str) else [m.model_dump() for m in e.query], e.responses),
                    e.query if isinstance(e.query, str) else [m.model_dump() for m in e.query],
                    list(e.responses), e.best or None, e.ratings, e.domain)
            for e in body.examples
        ]
        result = await judged(batcher.submit(examples, k, cfg.timeout_s))
        if isinstance(result, JSONResponse):
            return result
        return JudgeResponse(rewards=[_reward_out(r, body.include_judgments) for r in result])

    @app.post("/get_reward", response_model=GetRewardResponse)
    async def get_reward(body: GetRewardRequest):
        try:
            pairs = body.split()
        except ValueError as e:
            return refusal(422, str(e))
        # Each response joins the other responses to its prompt (this request's and concurrent
        # ones') in one listwise judgment; the prompt's chat markup is read back into turns.
        rollouts = [(p, untemplate(p), r) for p, r in pairs]
        result = await judged(batcher.submit_rollouts(rollouts, grm.config.k, cfg.timeout_s, body.group_size))
        if isinstance(result, JSONResponse):
            return result
        rewards = [0.0] * len(pairs)
        used = [0.0] * len(pairs)
        failed = [0.0] * len(pairs)
        group_size = [0.0] * len(pairs)
        bad = []
        for i, (r, pos) in enumerate(result):
            if r.rewards is None:
                bad.append(i)
                continue
            rewards[i] = r.mean_scores[pos]  # type: ignore[index]
            used[i], failed[i], group_size[i] = r.used, r.failed, len(r.rewards)
        if bad:
            return refusal(502, f"no valid judgment for query {bad}: every sampled judgment failed to parse")
        return GetRewardResponse(
            rewards=rewards,
            scores=[normalise(x) for x in rewards],
            extra_logs={"judgments_used": used, "judgments_failed": failed, "group_size": group_size},
        )

    @app.post("/v1/rollout", response_model=RolloutResponse)
    async def v1_rollout(body: RolloutRequest):
        k = body.k or grm.config.k
        if k > cfg.max_k:
            return refusal(422, f"k: {k} exceeds this server's limit of {cfg.max_k}")
        query = body.query if isinstance(body.query, str) else [m.model_dump() for m in body.query]
        # Tuple keys never meet /get_reward's prompt strings: the two endpoints' groups stay apart.
        key = ("key", body.key) if body.key is not None else ("query", json.dumps(query))
        result = await judged(batcher.submit_rollouts([(key, query, body.response)], k, cfg.timeout_s, body.group_size))
        if isinstance(result, JSONResponse):
            return result
        [(r, pos)] = result
        if r.rewards is None:
            return refusal(502, "no valid judgment: every sampled judgment failed to parse")
        reward = r.mean_scores[pos]  # type: ignore[index]
        return RolloutResponse(reward=reward, score=normalise(reward), group_size=len(r.rewards), used=r.used, failed=r.failed)

    @app.get("/health")
    async def health(request: Request):
        if not authorized(request, cfg.api_key):  # liveness for anyone; what is served, only for key holders
            return {"status": "ok"}
        return {"status": "ok", "model": getattr(grm.backend, "model_name", grm.backend.name), "k": grm.config.k,
                "queue_depth": batcher.depth}

    @app.get("/metrics")
    async def prometheus_metrics():
        return Response(metrics.prometheus(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics/json")
    async def json_metrics():
        return metrics.json()

    return app


def _reward_out(r: Reward, with_judgments: bool) -> RewardOut:
    return RewardOut(
        id=r.id, rewards=r.rewards, mean_scores=r.mean_scores,
        k=r.k, used=r.used, failed=r.failed, best=r.best, correct=r.correct,
        judgments=[JudgmentOut(sample=j.sample, order=j.order, principles=j.principles, critique=j.critique, scores=j.scores,
                               error=j.error, forced=j.forced, text=j.text) for j in r.judgments] if with_judgments else None,
    )
