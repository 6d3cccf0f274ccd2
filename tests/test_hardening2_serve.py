"""Issue 22, serving items 1-4, what the first fixes left: API keys spct's own client could not send or
the server could not hold, groups past 64 responses over /v1/rollout, request bodies past the server's
limit, one failing rollout splitting its group into singles.

All run on FakeBackend against a real uvicorn or a TestClient; groups close by size, never on a timer."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from _server import running_server

from spct.backends.fake import FakeBackend
from spct.integrations.client import RewardClient, RewardError
from spct.judge import GenerativeRewardModel
from spct.serve import ServerConfig, create_app, create_chat_app

JUDGE_BODY = {"examples": [{"query": "q", "responses": ["a"]}]}

# -- 3. API keys: what spct's client sends, and keys that are not UTF-8 -------------------------------------


def test_the_reward_client_sends_a_non_ascii_key():
    # The server has accepted such keys since the first fix; httpx refuses a str header that is not ASCII.
    with running_server(create_app(GenerativeRewardModel(FakeBackend()), ServerConfig(api_key="s3cret-é"))) as url:
        assert RewardClient(url=url, api_key="s3cret-é").judge_groups([("q", ["a", "bb"])]) == [[1.0, 1.0]]
        with pytest.raises(RewardError, match="401"):
            RewardClient(url=url, api_key="s3cret-e").judge_groups([("q", ["a"])])


def test_a_key_that_is_not_utf8_is_the_bytes_typed():
    # `--api-key $'s3cret-\xe9'` in a latin-1 terminal: Python keeps the byte as a surrogate escape.
    # A real server: the TestClient re-encodes header values as UTF-8 on their way in.
    key = b"s3cret-\xe9".decode("utf-8", "surrogateescape")
    with running_server(create_app(GenerativeRewardModel(FakeBackend()), ServerConfig(api_key=key))) as url:
        for headers, status in (({"X-API-Key": b"s3cret-\xe9"}, 200), ({"Authorization": b"Bearer s3cret-\xe9"}, 200),
                                ({"X-API-Key": "s3cret-é".encode()}, 401), ({}, 401)):
            assert httpx.post(url + "/v1/judge", json=JUDGE_BODY, headers=headers).status_code == status, headers
        assert RewardClient(url=url, api_key=key).judge_groups([("q", ["a"])]) == [[1.0]]  # the client sends it as typed


# -- 4. the RL client: bodies past the server's limit, clear errors ------------------------------------------


def test_the_client_keeps_each_request_under_the_servers_body_limit():
    # A verl batch of long responses: 6.4 MB of JSON, past `spct serve`'s default 4 MiB (a 413 before).
    fake = FakeBackend()
    groups = [(f"question {i}", [f"{j} " + "x" * 20_000 for j in range(8)]) for i in range(40)]
    with running_server(create_app(GenerativeRewardModel(fake))) as url:
        scores = RewardClient(url=url).judge_groups(groups)
        assert asyncio.run(RewardClient(url=url).ajudge_groups(groups)) == scores
    assert scores == [[10.0] * 8] * 40  # FakeBackend: 1 + len // 10, at most 10
    # Each example is ~160 kB: two fit in 400 kB; one past the limit goes alone, for the server to refuse by name.
    parts = RewardClient(url="http://unused", max_body_bytes=400_000)._payloads(groups)
    assert [len(examples) for examples, _ in parts] == [2] * 20 and all(len(body) <= 400_000 for _, body in parts)
    assert [ex for examples, _ in parts for ex in examples] == [{"query": q, "responses": rs} for q, rs in groups]
    assert [len(examples) for examples, _ in RewardClient(url="http://unused", max_body_bytes=1000)._payloads(groups)] == [1] * 40


def test_compute_score_batch_without_extra_infos_is_a_clear_error():
    from spct.integrations import verl

    with pytest.raises(RewardError, match="no extra_infos: the judge needs each response's question"):
        verl.compute_score_batch(["d"], ["a"], [None], None)


# -- 4. groups past the 64 responses of one judgment: near-equal parts, each judged once whole ----------------
# The window is long: a part left waiting for its deadline shows as "deadline" (and a slow test), never as a race.

WINDOW_S = 20.0


def _rollouts_for(url: str, n: int, group_size: int) -> list[tuple[float, int]]:
    """n rollouts of one verl group (uid "u"), each posted by itself as verl's reward workers do."""
    from spct.integrations.client import ServerGrouper

    async def run() -> list[tuple[float, int]]:
        grouper = ServerGrouper(RewardClient(url=url), group_size)
        return await asyncio.gather(*(grouper.score("u", "Q?", f"answer {i}") for i in range(n)))

    return asyncio.run(run())


def test_a_verl_group_past_64_is_judged_in_two_whole_halves():
    # verl with rollout.n = 100 against a server: every sample was a 422 (group_size at most 64).
    with running_server(create_app(GenerativeRewardModel(FakeBackend()), ServerConfig(group_window_s=WINDOW_S))) as url:
        results = _rollouts_for(url, 100, 100)
        metrics = httpx.get(url + "/metrics/json").json()
    assert [size for _, size in results] == [50] * 100
    assert metrics["rollout_group_sizes"] == {"50": 2} and metrics["rollout_groups_closed"] == {"full": 2}


@pytest.mark.parametrize(("given", "parts"), [(65, {"32": 1, "33": 1}), (130, {"43": 2, "44": 1})])
def test_the_last_part_of_a_large_g_closes_whole_too(given, parts):
    # --group-size 65 judged 64, then left the 65th response waiting a whole window for 63 that never come.
    app = create_app(GenerativeRewardModel(FakeBackend()), ServerConfig(group_window_s=WINDOW_S, group_size=given))
    with running_server(app) as url:
        results = _rollouts_for(url, given, given)
        metrics = httpx.get(url + "/metrics/json").json()
    assert metrics["rollout_group_sizes"] == parts and metrics["rollout_groups_closed"] == {"full": sum(parts.values())}
    assert sorted(size for _, size in results) == sorted(int(n) for n, c in parts.items() for _ in range(c * int(n)))


def test_one_request_of_100_rollouts_to_one_prompt_is_answered_at_once():
    # A batching client's request: 64 judged, the other 36 held until the window passed.
    app = create_app(GenerativeRewardModel(FakeBackend()), ServerConfig(group_window_s=WINDOW_S))
    body = {"query": [f"Q: hi? A: answer {i}" for i in range(100)], "prompts": ["Q: hi? A:"] * 100}
    with running_server(app) as url:
        r = httpx.post(url + "/get_reward", json=body, timeout=60)
        metrics = httpx.get(url + "/metrics/json").json()
    assert r.status_code == 200 and r.json()["extra_logs"]["group_size"] == [50.0] * 100
    assert metrics["rollout_groups_closed"] == {"full": 2}


# -- 2. one failing rollout: the rest of its group is still judged listwise ---------------------------------


def test_the_rest_of_a_group_with_a_failing_rollout_is_judged_in_groups_not_alone():
    from concurrent.futures import ThreadPoolExecutor

    def script(req, s):
        if "BOOM" in req.messages[-1]["content"]:
            raise RuntimeError("the engine chokes on this response")
        n = req.messages[-1]["content"].count("[[Response ")
        return "Analysis: ok\nScores: \\boxed{" + ", ".join(["6"] * n) + "}"

    fake = FakeBackend(script=script)
    # The group closes when its 8th rollout arrives (max_group_size, G unknown): no timer.
    app = create_app(GenerativeRewardModel(fake), ServerConfig(group_window_s=WINDOW_S, max_group_size=8))
    with running_server(app) as url:
        def post(i: int) -> httpx.Response:
            response = "BOOM" if i == 3 else f"answer {i}"
            return httpx.post(url + "/get_reward", json={"query": [f"Q: hi? A: {response}"], "prompts": ["Q: hi? A:"]},
                              timeout=60)

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(post, range(8)))
    assert [r.status_code for r in replies] == [200] * 3 + [500] + [200] * 4, [r.text for r in replies]
    assert "chokes" in replies[3].json()["error"]
    assert all(r.json()["rewards"] == [6.0] for i, r in enumerate(replies) if i != 3)
    # Halves: the 4 without the failing one together, then 2, then 1 -- each rollout was judged alone before.
    sizes = sorted(r.json()["extra_logs"]["group_size"][0] for i, r in enumerate(replies) if i != 3)
    assert sizes == [1, 2, 2, 4, 4, 4, 4]
    assert len(fake.calls) == 7  # the group, then two halves at each of three levels (was 1 + 8)


# -- leftovers: booleans given for numbers ------------------------------------------------------------------

EXAMPLE = {"query": "q", "responses": ["a", "b"]}
BOOLEANS = [
    ("/v1/judge", {"examples": [EXAMPLE], "k": True}, "k"),
    ("/v1/judge", {"examples": [{**EXAMPLE, "best": [True]}]}, "examples[0].best[0]"),
    ("/v1/judge", {"examples": [{**EXAMPLE, "ratings": [True, 2]}]}, "examples[0].ratings[0]"),
    ("/v1/rollout", {"query": "q", "response": "a", "k": True}, "k"),
    ("/v1/rollout", {"query": "q", "response": "a", "group_size": True}, "group_size"),
    ("/get_reward", {"query": ["p a"], "prompts": ["p"], "group_size": True}, "group_size"),
]


@pytest.mark.parametrize(("path", "body", "field"), BOOLEANS, ids=[f"{p} {f}" for p, _, f in BOOLEANS])
def test_a_boolean_for_a_number_is_a_422_not_a_1(path, body, field):
    from fastapi.testclient import TestClient

    fake = FakeBackend()
    client = TestClient(create_app(GenerativeRewardModel(fake), ServerConfig(group_window_s=0.01)))
    r = client.post(path, json=body)
    assert r.status_code == 422 and f"{field}: must be a number, not a boolean" in r.json()["error"], r.text
    assert fake.calls == []
    numbers = json.loads(json.dumps(body).replace("true", "1"))
    assert client.post(path, json=numbers).status_code == 200  # the same request with a number is judged


@pytest.mark.parametrize("field", ["n", "max_tokens", "max_completion_tokens", "seed", "temperature"])
def test_the_chat_server_refuses_a_boolean_for_a_number(field):
    from fastapi.testclient import TestClient

    client = TestClient(create_chat_app(FakeBackend(), "fake"))
    body = {"messages": [{"role": "user", "content": "hi"}], field: True}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 422 and "must be a number, not a boolean" in r.text, r.text
    assert client.post("/v1/chat/completions", json={**body, field: 1}).status_code == 200
    constraint = {"count": True, "lo": 1, "hi": 10}
    assert client.post("/v1/chat/completions", json={**body, field: 1, "spct_score_constraint": constraint}).status_code == 422
