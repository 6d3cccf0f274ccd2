"""Reliability figures for `spct serve`, on loopback only, with bounded loops.

Scenarios (each on a fresh server in this process, uvicorn in a thread, 127.0.0.1):
- load:      N concurrent requests (half /v1/judge, half /get_reward) with room in the queue;
- overload:  the same N with a small queue: every request is answered or refused with 503;
- malformed: 50 malformed requests of 5 kinds interleaved with valid ones;
- failure:   a backend that raises on poisoned requests, mid-batch.
Each answered request is checked against the reward its own content must get, so a lost,
swapped or duplicated answer is counted. These use FakeBackend with a simulated engine cost
(`--batch-ms` per generation call plus `--item-ms` per judgment), so they measure the server,
not a model. `--real N` adds N concurrent /get_reward requests on the embedded model.

    python bench/load_server.py [--requests 200] [--real 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import threading
import time
from contextlib import contextmanager

import httpx
import uvicorn

from spct.backends.fake import FakeBackend
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.serve import ServerConfig, create_app


class CostlyFake(FakeBackend):
    """FakeBackend that takes batch_s per call plus item_s per request, like a batched engine."""

    def __init__(self, batch_s: float, item_s: float, **kw):
        super().__init__(**kw)
        self.batch_s, self.item_s = batch_s, item_s

    def generate(self, requests):
        time.sleep(self.batch_s + self.item_s * len(requests))
        return super().generate(requests)


@contextmanager
def serve(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", backlog=4096))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def fake_score(response: str) -> int:  # FakeBackend's default rule
    return max(1, min(10, 1 + len(response) // 10))


def valid_request(i: int) -> tuple[str, dict, object]:
    """Request i and the answer it must get; response lengths make every request's rewards distinct enough to check."""
    a, b = "x" * (i % 7) * 10, "y" * ((i // 7) % 7) * 10
    if i % 2 == 0:
        body = {"examples": [{"id": f"req{i}", "query": f"question {i}", "responses": [f"r{a}", f"s{b}"]}]}
        return "/v1/judge", body, (f"req{i}", [fake_score(f"r{a}"), fake_score(f"s{b}")])
    prompt = f"<prompt {i}>"
    body = {"query": [f"{prompt} r{a}", f"{prompt} s{b}"], "prompts": [prompt, prompt]}
    return "/get_reward", body, [float(fake_score(f"r{a}")), float(fake_score(f"s{b}"))]


def check(path: str, response: httpx.Response, expected) -> bool:
    body = response.json()
    if path == "/v1/judge":
        [r] = body["rewards"]
        return (r["id"], r["rewards"]) == expected
    return body["rewards"] == expected


async def fire(url: str, requests: list[tuple[str, bytes | dict]], timeout: float = 120) -> list[tuple[httpx.Response | Exception, float]]:
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=len(requests))
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        async def one(path, body):
            t0 = time.perf_counter()
            try:
                if isinstance(body, bytes):
                    r = await client.post(url + path, content=body, headers={"content-type": "application/json"})
                else:
                    r = await client.post(url + path, json=body)
            except Exception as e:  # noqa: BLE001 - a transport failure is a lost request, counted
                return e, time.perf_counter() - t0
            return r, time.perf_counter() - t0

        return await asyncio.gather(*(one(p, b) for p, b in requests))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3) if values else float("nan")


def concurrent_valid(n: int, config: ServerConfig, backend: FakeBackend) -> dict:
    app = create_app(GenerativeRewardModel(backend), config)
    reqs = [valid_request(i) for i in range(n)]
    with serve(app) as url:
        t0 = time.perf_counter()
        results = asyncio.run(fire(url, [(p, b) for p, b, _ in reqs]))
        wall = time.perf_counter() - t0
        metrics = httpx.get(url + "/metrics/json").json()
    ok = refused = wrong = lost = other = 0
    lat = []
    for (path, _, expected), (r, dt) in zip(reqs, results, strict=True):
        if isinstance(r, Exception):
            lost += 1
        elif r.status_code == 200:
            ok += 1
            lat.append(dt)
            wrong += not check(path, r, expected)
        elif r.status_code == 503 and "retry-after" in r.headers:
            refused += 1
        else:
            other += 1
    judged = sum(len(c) for c in backend.calls)
    return {"requests": n, "ok": ok, "refused_503": refused, "wrong_answer": wrong, "lost": lost, "other_status": other,
            "examples_judged_by_backend": judged, "backend_calls": len(backend.calls),
            "mean_requests_per_batch": metrics["mean_batch_requests"], "p50_s": pct(lat, 0.5), "p99_s": pct(lat, 0.99),
            "wall_s": round(wall, 2)}


MALFORMED_KINDS = {
    "bad JSON": ("/get_reward", b'{"query": ["a b"], "prompts": ["a"'),
    "wrong types": ("/v1/judge", b'{"examples": [{"query": "q", "responses": ["a", 7]}]}'),
    "no examples": ("/v1/judge", b'{"examples": []}'),  # (empty /get_reward lists are a valid empty shard)
    "huge body": ("/v1/judge", json.dumps({"examples": [{"query": "q", "responses": ["z" * (5 * 1024 * 1024)]}]}).encode()),
    "wrong label count": ("/get_reward", b'{"query": ["a b", "a c"], "prompts": ["a", "a"], "labels": ["x"]}'),
}


def malformed() -> dict:
    backend = CostlyFake(0.0, 0.0)
    app = create_app(GenerativeRewardModel(backend), ServerConfig())
    bad = [kind for kind in MALFORMED_KINDS for _ in range(10)]
    with serve(app) as url:
        results = []
        for i, kind in enumerate(bad):  # interleaved with valid requests, one after another
            results.append((kind, *asyncio.run(fire(url, [MALFORMED_KINDS[kind]]))[0]))
            path, body, expected = valid_request(i)
            [(r, _)] = asyncio.run(fire(url, [(path, body)]))
            assert r.status_code == 200 and check(path, r, expected), r.text
        after = [asyncio.run(fire(url, [(p, b)]))[0][0].status_code for p, b, _ in map(valid_request, range(5))]
    by_kind = {}
    for kind, r, _ in results:
        entry = by_kind.setdefault(kind, {"statuses": set(), "message": None})
        entry["statuses"].add(r.status_code)
        entry["message"] = r.json()["error"][:120]
    return {"malformed": len(bad), "all_4xx_with_message": all(400 <= r.status_code < 500 and r.json().get("error")
                                                                for _, r, _ in results),
            # Only the 50 interleaved and 5 final valid requests may reach the backend.
            "malformed_that_reached_backend": sum(len(c) for c in backend.calls) - len(bad) - 5,
            "valid_after": after, "by_kind": {k: {"statuses": sorted(v["statuses"]), "message": v["message"]}
                                              for k, v in by_kind.items()}}


def failure(n: int = 20, poisoned: tuple[int, ...] = (3, 9, 15)) -> dict:
    backend = CostlyFake(0.05, 0.002, fail=lambda req: "POISON" in req.messages[-1]["content"])
    app = create_app(GenerativeRewardModel(backend), ServerConfig(batch_wait_s=0.2))
    reqs = []
    for i in range(n):
        path, body, expected = valid_request(2 * i)  # /v1/judge requests
        if i in poisoned:
            body["examples"][0]["query"] += " POISON"
        reqs.append((path, body, expected))
    with serve(app) as url:
        results = asyncio.run(fire(url, [(p, b) for p, b, _ in reqs]))
        metrics = httpx.get(url + "/metrics/json").json()
    out = {"requests": n, "poisoned": len(poisoned), "poisoned_5xx_with_reason": 0, "others_ok_and_right": 0,
           "largest_backend_batch": max(len(c) for c in backend.calls), "requests_rerun_alone": metrics["requests_rerun_alone"]}
    for i, ((path, _, expected), (r, _)) in enumerate(zip(reqs, results, strict=True)):
        if i in poisoned:
            if r.status_code >= 500 and "scripted failure" in r.json()["error"]:
                out["poisoned_5xx_with_reason"] += 1
                out["example_error"] = f"{r.status_code} {r.json()['error']}"
        elif r.status_code == 200 and check(path, r, expected):
            out["others_ok_and_right"] += 1
    return out


def real(n: int, max_new_tokens: int) -> dict:
    from spct.backends.transformers import TransformersBackend

    grm = GenerativeRewardModel(TransformersBackend("smollm2-135m", batch_size=16), JudgeConfig(k=1, max_new_tokens=max_new_tokens))
    app = create_app(grm, ServerConfig(batch_wait_s=0.5, timeout_s=1800))
    reqs = []
    for i in range(n):
        prompt = f"User: Give me one tip number {i} for sleeping better.\nAssistant:"
        reqs.append(("/get_reward", {"query": [f"{prompt} Keep a regular bedtime.", f"{prompt} Drink coffee at night."],
                                     "prompts": [prompt, prompt]}))
    with serve(app) as url:
        t0 = time.perf_counter()
        results = asyncio.run(fire(url, reqs, timeout=1800))
        wall = time.perf_counter() - t0
        metrics = httpx.get(url + "/metrics/json").json()
    lat = [dt for r, dt in results if not isinstance(r, Exception) and r.status_code == 200]
    rewards = [r.json()["rewards"] for r, _ in results if not isinstance(r, Exception) and r.status_code == 200]
    return {"requests": n, "ok": len(lat), "backend_batches": metrics["batches"], "judgments": metrics["judgments"],
            "parse_failures": metrics["parse_failures"], "p50_s": pct(lat, 0.5), "p99_s": pct(lat, 0.99),
            "wall_s": round(wall, 1), "max_new_tokens": max_new_tokens,
            "mean_reward_good_vs_bad": [round(statistics.mean(x[0] for x in rewards), 2),
                                        round(statistics.mean(x[1] for x in rewards), 2)] if rewards else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--batch-ms", type=float, default=50.0, help="simulated engine cost per generation call")
    ap.add_argument("--item-ms", type=float, default=2.0, help="simulated engine cost per judgment")
    ap.add_argument("--small-queue", type=int, default=32, help="max_queue of the overload scenario")
    ap.add_argument("--real", type=int, default=0, help="also send this many concurrent requests to the embedded model")
    ap.add_argument("--real-max-new-tokens", type=int, default=16)
    ap.add_argument("--json", default=None, help="write all figures to this file")
    args = ap.parse_args()
    cost = (args.batch_ms / 1000, args.item_ms / 1000)
    figures = {
        "load": concurrent_valid(args.requests, ServerConfig(max_queue=args.requests + 56), CostlyFake(*cost)),
        "overload": concurrent_valid(args.requests, ServerConfig(max_queue=args.small_queue, max_batch_examples=16), CostlyFake(*cost)),
        "malformed": malformed(),
        "failure": failure(),
    }
    if args.real:
        figures["real"] = real(args.real, args.real_max_new_tokens)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
