"""The reward server: protocol, refusals with precise messages, micro-batching, queue bounds,
timeouts, failure isolation and the API key, over FakeBackend; one real run on the embedded model."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from _server import SlowFake, cli_server, running_server
from fastapi.testclient import TestClient

from spct.backends.fake import FakeBackend, responses_in_prompt
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.rollouts import clean_response, prompt_overlap, untemplate
from spct.serve import ServerConfig, create_app
from spct.serve.batcher import MicroBatcher, QueueFull
from spct.serve.grouping import GroupSizeLearner
from spct.serve.protocol import GetRewardRequest


def client_for(backend=None, **config) -> tuple[TestClient, FakeBackend]:
    backend = backend or FakeBackend()
    return TestClient(create_app(GenerativeRewardModel(backend), ServerConfig(**config))), backend


def judge_body(tag: str = "x", n: int = 2) -> dict:
    return {"examples": [{"query": f"question {tag}", "responses": [f"answer {tag} " + "y" * (10 * i) for i in range(n)]}]}


# -- protocol -----------------------------------------------------------------------------------


def test_get_reward_splits_queries_and_judges_each_prompt_listwise():
    client, fake = client_for()
    body = {"query": ["<p1> short", "<p1> a much longer answer here", "<p2> mid answer"],
            "prompts": ["<p1>", "<p1>", "<p2>"], "labels": ["", "", ""]}
    r = client.post("/get_reward", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"rewards", "scores", "extra_logs"}
    # FakeBackend scores 1 + len // 10: the longer answer to <p1> wins.
    assert out["rewards"] == [1.0, 3.0, 2.0]
    assert out["scores"] == pytest.approx([0.0, 2 / 9, 1 / 9])
    assert out["extra_logs"]["group_size"] == [2.0, 2.0, 1.0]
    # One backend call; the two <p1> responses shown together in one judgment.
    assert len(fake.calls) == 1 and len(fake.calls[0]) == 2
    assert "[[Response 2]]" in fake.calls[0][0].messages[-1]["content"]


def test_an_empty_shard_gets_empty_rewards_not_a_refusal():
    # OpenRLHF shards every call over all its reward URLs: one rollout and two URLs leave the
    # second an empty shard, and a refusal there makes the rollout's reward None.
    client, fake = client_for()
    for body in ({"query": [], "prompts": [], "labels": []}, {"query": [], "prompts": []}):
        r = client.post("/get_reward", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"rewards": [], "scores": [],
                            "extra_logs": {"judgments_used": [], "judgments_failed": [], "group_size": []}}
    assert fake.calls == []
    one = {"query": ["p a"], "prompts": ["p"], "labels": [""], "group_size": 1}  # G from the request: judged at once
    assert client.post("/get_reward", json=one).json()["rewards"] == [1.0]


def test_v1_rollout_judges_a_response_with_the_rest_of_its_group():
    fake = FakeBackend()
    app = create_app(GenerativeRewardModel(fake))
    bodies = [{"key": "u1", "query": [{"role": "user", "content": "Q?"}], "response": "a" * (10 * i), "group_size": 2}
              for i in range(2)]
    with running_server(app) as url:
        out = [r.json() for r in _post_all(url, bodies, path="/v1/rollout")]
        alone = httpx.post(url + "/v1/rollout", json={"query": "Q?", "response": "b", "group_size": 1})
    assert out == [{"reward": 1.0, "score": 0.0, "group_size": 2, "used": 1, "failed": 0},
                   {"reward": 2.0, "score": pytest.approx(1 / 9), "group_size": 2, "used": 1, "failed": 0}]
    assert alone.status_code == 200 and alone.json()["group_size"] == 1
    assert sorted(len(responses_in_prompt(r.messages[-1]["content"])) for c in fake.calls for r in c) == [1, 2]


def test_a_pointwise_judge_serves_mean_scores_like_a_voting_one():
    """A pointwise Reward already holds each response's mean; served rewards stay on the 1..10 scale."""
    body = {"query": ["<p1> short", "<p1> a much longer answer here"], "prompts": ["<p1>", "<p1>"], "labels": ["", ""]}
    served = {}
    for policy in ("voting", "pointwise"):
        grm = GenerativeRewardModel(FakeBackend(), JudgeConfig(k=2, policy=policy, temperature=0.5))
        client = TestClient(create_app(grm, ServerConfig()))
        served[policy] = client.post("/get_reward", json=body).json()["rewards"]
        judged = client.post("/v1/judge", json=judge_body()).json()["rewards"][0]
        assert judged["mean_scores"] == pytest.approx([1.0, 2.0])
    assert served["pointwise"] == served["voting"] == [1.0, 3.0]


def test_v1_judge_returns_voted_rewards_and_judgments():
    client, _ = client_for()
    body = {"examples": [{"id": "q1", "query": "Q?", "responses": ["no", "a long, helpful answer"], "best": [1]}],
            "k": 2, "include_judgments": True}
    r = client.post("/v1/judge", json=body)
    assert r.status_code == 200, r.text
    [reward] = r.json()["rewards"]
    assert reward["id"] == "q1" and reward["k"] == 2 and reward["used"] == 2 and reward["correct"] is True
    assert reward["rewards"] == [2, 6] and reward["mean_scores"] == [1.0, 3.0]
    assert len(reward["judgments"]) == 2 and reward["judgments"][0]["scores"] == [1, 3]


def test_health_and_metrics():
    client, _ = client_for()
    assert client.get("/health").json()["status"] == "ok"
    client.post("/v1/judge", json=judge_body())
    m = client.get("/metrics/json").json()
    assert m["requests"]["200"] >= 1 and m["batches"] == 1 and m["judgments"] == 1 and m["parse_failures"] == 0
    assert m["latency_s"]["p50"] is not None and m["queue_depth"] == 0


def test_metrics_scrape_is_prometheus_text():
    from prometheus_client.parser import text_string_to_metric_families

    client, _ = client_for(group_size=2)
    client.post("/get_reward", json={"query": ["p a", "p bbbbbbbbbbbb"], "prompts": ["p", "p"]})
    client.post("/get_reward", json={"query": ["q c"], "prompts": ["q"], "group_size": 1})
    client.post("/v1/judge", json=judge_body())
    client.post("/v1/judge", content=b"{", headers={"content-type": "application/json"})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    samples = [s for f in families.values() for s in f.samples]

    def value(name: str, **labels: str) -> float:
        [sample] = [s for s in samples if s.name == name and labels.items() <= s.labels.items()]
        return sample.value

    assert families["spct_requests"].type == "counter"
    assert value("spct_requests_total", status="200") == 3 and value("spct_requests_total", status="400") == 1
    assert value("spct_queue_depth") == 0 and value("spct_judgments_total") == 3 and value("spct_parse_failures_total") == 0
    # The two "p" responses in one judgment, the "q" one alone: sizes 2 and 1.
    assert families["spct_rollout_group_size"].type == "histogram"
    assert value("spct_rollout_group_size_bucket", le="1.0") == 1 and value("spct_rollout_group_size_bucket", le="2.0") == 2
    assert value("spct_rollout_group_size_count") == 2 and value("spct_rollout_group_size_sum") == 3
    assert value("spct_rollout_groups_closed_total", reason="full") == 2
    assert value("spct_expected_group_size", source="given") == 2
    assert value("spct_request_duration_seconds_count", path="/v1/judge") == 2
    assert client.get("/metrics/json").json()["rollout_group_sizes"] == {"1": 1, "2": 1}


def test_parse_failures_are_counted_and_reported_not_defaulted():
    client, _ = client_for(FakeBackend(script=lambda req, s: "I like both."), group_size=1)
    r = client.post("/v1/judge", json=judge_body())
    assert r.status_code == 200
    assert r.json()["rewards"][0]["rewards"] is None and r.json()["rewards"][0]["failed"] == 1
    r = client.post("/get_reward", json={"query": ["p a"], "prompts": ["p"]})
    assert r.status_code == 502 and "no valid judgment for query [0]" in r.json()["error"]
    assert client.get("/metrics/json").json()["parse_failures"] == 2


# -- malformed requests: a 4xx that names the problem, and the server keeps serving ----------------

MALFORMED = [
    ("/get_reward", b"{not json", 400, "not valid JSON"),
    ("/get_reward", b"[1, 2]", 422, "valid dictionary"),
    ("/get_reward", b'{"query": "a b", "prompts": ["a"]}', 422, "query: Input should be a valid list"),
    ("/get_reward", b'{"query": ["a b"], "prompts": ["a", "b"]}', 422, "prompts has 2 items but query has 1"),
    ("/get_reward", b'{"query": ["a b"], "prompts": ["a"], "labels": [1, 2]}', 422, "labels has 2 items but query has 1"),
    ("/get_reward", b'{"query": ["a b"], "prompts": ["zzz"]}', 422, "query[0] does not contain prompts[0]"),
    ("/get_reward", b'{"query": ["a b"], "prompts": ["a"], "group_size": 0}', 422, "group_size: Input should be greater than or equal to 1"),
    ("/get_reward", b'{"query": [1], "prompts": ["a"]}', 422, "query[0]: Input should be a valid string"),
    ("/get_reward", b'{"prompts": ["a"]}', 422, "query: Field required"),
    ("/v1/rollout", b'{"query": "q"}', 422, "response: Field required"),
    ("/v1/rollout", b'{"query": "q", "response": "a", "group_size": 4097}', 422, "group_size: Input should be less than or equal to 4096"),
    ("/v1/judge", b'{"examples": []}', 422, "examples: List should have at least 1 item"),
    ("/v1/judge", b'{"examples": [{"query": "q", "responses": ["a", 3]}]}', 422, "examples[0].responses[1]: Input should be a valid string"),
    ("/v1/judge", b'{"examples": [{"query": "q", "responses": ["a"], "best": [4]}]}', 422, "best index 4 out of range for 1 responses"),
    ("/v1/judge", b'{"examples": [{"query": "q", "responses": ["a"], "ratings": [1, 2]}]}', 422, "ratings has 2 values for 1 responses"),
    ("/v1/judge", b'{"examples": [{"query": "q", "responses": ["a"]}], "k": 0}', 422, "k: Input should be greater than or equal to 1"),
    ("/v1/judge", b'{"examples": [{"query": "q", "responses": ["a"]}], "k": 999}', 422, "exceeds this server's limit"),
    ("/v1/judge", b'{"examples": [{"query": "q", "responses": ["a"], "colour": 1}]}', 422, "examples[0].colour: Extra inputs are not permitted"),
    ("/v1/judge", b'{"examples": [{"query": [{"role": "user"}], "responses": ["a"]}]}', 422, "content: Field required"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), MALFORMED, ids=[m[3][:30] for m in MALFORMED])
def test_malformed_requests_get_precise_4xx(path, body, status, message):
    client, fake = client_for()
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert fake.calls == []  # refused before any work
    assert client.post("/v1/judge", json=judge_body()).status_code == 200  # still serving


def test_huge_body_is_refused_with_413():
    client, fake = client_for(max_body_bytes=1000)
    r = client.post("/v1/judge", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "exceeds the limit of 1000 bytes" in r.json()["error"]
    too_long = {"examples": [{"query": "q", "responses": ["z" * 300_000]}]}
    client2, _ = client_for()
    r = client2.post("/v1/judge", json=too_long)
    assert r.status_code == 422 and "at most 200000 characters" in r.json()["error"]
    assert fake.calls == []


def test_api_key():
    client, _ = client_for(api_key="s3cret")
    assert client.get("/health").status_code == 200  # liveness stays open
    r = client.post("/v1/judge", json=judge_body())
    assert r.status_code == 401 and "API key" in r.json()["error"]
    assert client.post("/v1/judge", json=judge_body(), headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/v1/judge", json=judge_body(), headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.post("/v1/judge", json=judge_body(), headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/metrics").status_code == 401


# -- concurrency, on a real uvicorn --------------------------------------------------------------------


def _post_all(url: str, bodies: list[dict], path: str = "/v1/judge", timeout: float = 30) -> list[httpx.Response]:
    with httpx.Client(timeout=timeout) as c, ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: c.post(url + path, json=b), bodies))


def test_concurrent_requests_are_grouped_into_one_backend_call():
    fake = FakeBackend()
    app = create_app(GenerativeRewardModel(fake), ServerConfig(batch_wait_s=20.0, max_batch_examples=8))
    with running_server(app) as url:
        responses = _post_all(url, [judge_body(str(i)) for i in range(8)])
    assert [r.status_code for r in responses] == [200] * 8
    # Each request got the reward for its own example.
    assert [r.json()["rewards"][0]["rewards"] for r in responses] == [[1, 2]] * 8
    assert len(fake.calls) < 8 and sum(len(c) for c in fake.calls) == 8
    assert max(len(c) for c in fake.calls) >= 4  # requests were batched together


def test_full_queue_answers_503_with_retry_after_when_told_to_reject():
    app = create_app(GenerativeRewardModel(SlowFake(1.0)), ServerConfig(max_queue=2, max_batch_examples=1, when_full="reject"))
    with running_server(app) as url:
        responses = _post_all(url, [judge_body(str(i)) for i in range(12)])
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 503} and len(codes) == 12
    refused = [r for r in responses if r.status_code == 503]
    assert all(int(r.headers["retry-after"]) >= 1 and "queue is full" in r.json()["error"] for r in refused)


def test_full_queue_makes_requests_wait_by_default_within_their_timeout():
    # OpenRLHF cannot back off: past max_queue a request waits for room instead of failing.
    app = create_app(GenerativeRewardModel(SlowFake(0.2)), ServerConfig(max_queue=2, max_batch_examples=2))
    with running_server(app) as url:
        responses = _post_all(url, [judge_body(str(i)) for i in range(10)])
    assert [r.status_code for r in responses] == [200] * 10
    # ... but never past its own timeout.
    app = create_app(GenerativeRewardModel(SlowFake(1.0)), ServerConfig(max_queue=1, max_batch_examples=1, timeout_s=0.6))
    with running_server(app) as url:
        codes = sorted(r.status_code for r in _post_all(url, [judge_body(str(i)) for i in range(4)]))
    assert codes[-1] == 504 and all(c in (200, 504) for c in codes)


def test_request_timeout_is_504():
    client, _ = client_for(SlowFake(0.5), timeout_s=0.1)
    r = client.post("/v1/judge", json=judge_body())
    assert r.status_code == 504 and "did not finish within 0.1 s" in r.json()["error"]


def test_backend_failure_mid_batch_fails_only_the_poisoned_request():
    fake = FakeBackend(fail=lambda req: "POISON" in req.messages[-1]["content"])
    # The batch closes when all six are in (max_batch_examples), not on a timer that a slow CI machine misses.
    app = create_app(GenerativeRewardModel(fake), ServerConfig(batch_wait_s=20.0, max_batch_examples=6))
    bodies = [judge_body(str(i)) for i in range(5)] + [judge_body("POISON")]
    with running_server(app) as url:
        responses = _post_all(url, bodies)
        metrics = httpx.get(url + "/metrics/json").json()
    assert [r.status_code for r in responses[:5]] == [200] * 5
    assert responses[5].status_code == 502
    assert "the judge backend failed: scripted failure" in responses[5].json()["error"]
    assert len(fake.calls[0]) == 6  # the failure happened inside a shared batch
    assert metrics["requests_rerun_alone"] == 6


def test_cli_serve_binds_loopback_and_answers(tmp_path):
    with cli_server("--group-size", "1") as (port, health):  # G = 1: a lone rollout is a whole group
        assert health.json()["status"] == "ok"
        r = httpx.post(f"http://127.0.0.1:{port}/get_reward", json={"query": ["p answer"], "prompts": ["p"]})
        assert r.status_code == 200 and r.json()["rewards"] == [1.0]


# -- the real embedded model ---------------------------------------------------------------------------


@pytest.mark.slow
def test_server_on_embedded_model_batches_two_requests(embedded_backend):
    grm = GenerativeRewardModel(embedded_backend, JudgeConfig(k=1, max_new_tokens=8))
    app = create_app(grm, ServerConfig(batch_wait_s=20.0, max_batch_examples=2))
    bodies = [
        {"query": ["User: What is 2+2?\nAssistant: 4", "User: What is 2+2?\nAssistant: 5"],
         "prompts": ["User: What is 2+2?\nAssistant:"] * 2},
        # two responses: a whole group (a lone rollout would wait for its prompt's group deadline)
        {"query": ["User: Name a colour.\nAssistant: Blue.", "User: Name a colour.\nAssistant: Loud."],
         "prompts": ["User: Name a colour.\nAssistant:"] * 2},
    ]
    with running_server(app) as url:
        responses = _post_all(url, bodies, path="/get_reward", timeout=600)
        metrics = httpx.get(url + "/metrics/json").json()
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    rewards = [x for r in responses for x in r.json()["rewards"]]
    assert len(rewards) == 4 and all(1 <= x <= 10 for x in rewards)
    assert metrics["judgments"] == 2 and metrics["batches"] == 1  # both requests in one generation batch


# -- OpenRLHF's pattern: one POST per rollout, many at once ------------------------------------


def _rollout(prompt: str, response: str) -> dict:
    return {"query": [prompt + response + "<|im_end|>"], "prompts": [prompt], "labels": [""]}


def test_concurrent_single_rollout_posts_are_judged_listwise_per_prompt():
    fake = FakeBackend()
    app = create_app(GenerativeRewardModel(fake), ServerConfig(group_window_s=1.0, max_group_size=4))
    prompts = ["<|im_start|>user\nQ1?<|im_end|>\n<|im_start|>assistant\n", "<|im_start|>user\nQ2?<|im_end|>\n<|im_start|>assistant\n"]
    bodies = [_rollout(p, "a" * (10 * i)) for p in prompts for i in range(4)]
    with running_server(app) as url:
        responses = _post_all(url, bodies, path="/get_reward")
        metrics = httpx.get(url + "/metrics/json").json()
    assert [r.status_code for r in responses] == [200] * 8
    # Each request gets the reward of its own response (the fake scores 1 + len // 10).
    assert [r.json()["rewards"] for r in responses] == [[1.0], [2.0], [3.0], [4.0]] * 2
    assert [r.json()["extra_logs"]["group_size"] for r in responses] == [[4.0]] * 8
    judged = [req.messages[-1]["content"] for call in fake.calls for req in call]
    assert len(judged) == 2 and all("[[Response 4]]" in text for text in judged)
    # The policy's ChatML prompt is judged as its conversation, its markup gone.
    assert all("<|im_start|>" not in text and "<|im_end|>" not in text for text in judged)
    assert metrics["mean_rollout_group_size"] == 4.0


def test_groups_are_capped_at_max_group_size_even_within_one_request():
    fake = FakeBackend()
    client, _ = client_for(fake, group_window_s=0.05, max_group_size=4)
    body = {"query": [f"P answer {i}" for i in range(70)], "prompts": ["P"] * 70}
    r = client.post("/get_reward", json=body)
    assert r.status_code == 200, r.text
    sizes = r.json()["extra_logs"]["group_size"]
    assert sizes == [4.0] * 64 + [3.0] * 6  # near-equal parts, every one whole: not 17 x 4 and a 2 left to its deadline
    assert sorted(len(responses_in_prompt(req.messages[-1]["content"])) for c in fake.calls for req in c) == [3, 3] + [4] * 16


def test_group_size_is_learned_from_arrivals_not_from_how_groups_were_cut():
    clock = GroupSizeLearner(window_s=10.0)
    assert clock.size is None
    for prompt, t in [("a", 0.0), ("a", 1.0), ("b", 2.0), ("a", 3.0), ("b", 4.0), ("a", 9.0), ("b", 11.0), ("b", 11.5)]:
        clock.arrive(prompt, t)
    # "a" (first at 0 s) ended at 10 s with 4 arrivals; "b" (first at 2 s) is still open.
    assert clock.size == 4
    clock.expire(12.5)
    assert clock.size == 4  # "b" ended with 4 too
    clock.arrive("c", 20.0)
    clock.arrive("d", 20.0)
    clock.expire(31.0)
    assert clock.size == 4  # two episodes of 1 against two of 4: a tie goes to the larger size
    clock.arrive("e", 40.0)
    clock.expire(51.0)
    assert clock.size == 1  # now the most common


def test_rollouts_of_one_prompt_stay_whole_without_any_group_size_given():
    # Nothing says G: the first groups wait for their deadline (from the FIRST arrival), which
    # teaches the server G = 4; later groups are judged as soon as they hold 4.
    fake = FakeBackend()
    app = create_app(GenerativeRewardModel(fake), ServerConfig(group_window_s=3.0))
    first = [_rollout(p, "a" * (10 * i)) for p in ("P1", "P2") for i in range(4)]
    later = [_rollout("P3", "a" * (10 * i)) for i in range(4)]
    with running_server(app) as url:
        responses = _post_all(url, first, path="/get_reward")
        learned = httpx.get(url + "/metrics/json").json()
        responses += _post_all(url, later, path="/get_reward")
        metrics = httpx.get(url + "/metrics/json").json()
    assert [r.status_code for r in responses] == [200] * 12
    assert [r.json()["extra_logs"]["group_size"] for r in responses] == [[4.0]] * 12
    assert learned["group_size"] == {"given": None, "learned": 4}
    # The first group can only close at its deadline (the second may find G learned by then);
    # the later one closes complete.
    assert learned["rollout_groups_closed"]["deadline"] >= 1 and sum(learned["rollout_groups_closed"].values()) == 2
    assert metrics["rollout_groups_closed"].get("full", 0) == learned["rollout_groups_closed"].get("full", 0) + 1
    assert metrics["rollout_group_sizes"] == {"4": 3}


def test_a_request_past_a_full_queue_still_joins_its_prompts_open_group():
    async def scenario(when_full: str):
        batcher = MicroBatcher(GenerativeRewardModel(FakeBackend()), max_queue=2, group_size=3, group_window_s=30.0,
                               when_full=when_full)
        first = [asyncio.create_task(batcher.submit_rollouts([("P", "P", "a" * (10 * i))], 1, 30.0)) for i in range(2)]
        await asyncio.sleep(0)  # both are in P's group: the queue is full
        assert batcher.depth == 2
        other = asyncio.create_task(batcher.submit_rollouts([("Q", "Q", "x")], 1, 30.0))
        await asyncio.sleep(0)
        # P's third rollout joins the open group and completes it, so it is judged now, not at the deadline.
        third = await asyncio.wait_for(batcher.submit_rollouts([("P", "P", "a" * 20)], 1, 30.0), 10.0)
        results = [*third, *(r for rs in await asyncio.gather(*first) for r in rs)]
        other_error = other.exception() if other.done() else None
        other.cancel()
        await batcher.close()
        return results, other_error

    for when_full in ("wait", "reject"):
        results, other_error = asyncio.run(scenario(when_full))
        assert [len(reward.rewards) for reward, _ in results] == [3, 3, 3]
        assert sorted(pos for _, pos in results) == [0, 1, 2]
        # A request to another prompt opens a group: it has to wait for room, or is refused.
        assert isinstance(other_error, QueueFull) if when_full == "reject" else other_error is None


def test_group_size_limit_is_validated(capsys):
    with pytest.raises(ValueError, match="max_group_size must be in 1..64"):
        client_for(max_group_size=65)
    from spct.cli import main

    assert main(["serve", "--engine", "fake", "--group-window-ms", "150000"]) == 2  # before any model loads
    assert "must be below --timeout (150 s)" in capsys.readouterr().err


def test_a_timed_out_rollout_leaves_its_group():
    fake = SlowFake(0.0)
    app = create_app(GenerativeRewardModel(fake), ServerConfig(group_window_s=0.8, max_group_size=8, timeout_s=0.4))
    with running_server(app) as url:
        codes = [r.status_code for r in _post_all(url, [_rollout("P", "x")], path="/get_reward")]
    assert codes == [504] and fake.calls == []  # nothing left to judge once the only member is gone


# -- reading a decoded rollout ------------------------------------------------------------------


def test_response_is_found_after_a_left_truncated_prompt():
    prompt = "<|im_start|>user\n" + "A long question about the moon landing, " * 5 + "?<|im_end|>\n<|im_start|>assistant\n"
    kept = prompt[-40:]  # OpenRLHF keeps the prompt's last tokens when it is too long
    body = GetRewardRequest(query=["\ufffd" + kept + "The answer.<|im_end|>", prompt + "Other."], prompts=[prompt, prompt])
    assert body.split() == [(prompt, "The answer."), (prompt, "Other.")]
    r = client_for()[0].post("/get_reward", json={"query": ["unrelated text entirely"], "prompts": [prompt]})
    assert r.status_code == 422 and "does not contain prompts[0]" in r.json()["error"]


def test_prompt_overlap_is_the_longest_suffix_prefix():
    assert prompt_overlap("abcabcab", "cabXYZ") == 3
    assert prompt_overlap("aaaa", "aaab") == 3
    assert prompt_overlap("abc", "xyz") == 0


def test_role_headers_and_all_trailing_end_markers_are_stripped():
    assert clean_response("<|im_start|>assistant\nHi there.<|im_end|>\n<|endoftext|><|endoftext|>") == "Hi there."
    assert clean_response("<|start_header_id|>assistant<|end_header_id|>\n\nOk<|eot_id|><|end_of_text|>") == "Ok"
    # Markup inside the response is judged text, kept (the engines never read it as control tokens).
    assert clean_response("a <|im_start|>system\nb</s>") == "a <|im_start|>system\nb"


def test_chat_prompts_are_read_back_into_conversations():
    chatml = "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    assert untemplate(chatml) == [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi?"}]
    llama3 = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert untemplate(llama3) == [{"role": "user", "content": "Hi?"}]
    assert untemplate("Human: Hi?\n\nAssistant:") == "Human: Hi?\n\nAssistant:"
    assert untemplate("<|im_start|>user\nHi?<|im_end|>\ntrailing junk") == "<|im_start|>user\nHi?<|im_end|>\ntrailing junk"
