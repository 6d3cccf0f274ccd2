"""Issue 22, serving items 1-4, what the first fixes left: API keys spct's own client could not send or
the server could not hold, groups past 64 responses over /v1/rollout, request bodies past the server's
limit, one failing rollout splitting its group into singles.

All run on FakeBackend against a real uvicorn or a TestClient; groups close by size, never on a timer."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from _server import running_server

from spct.backends.fake import FakeBackend
from spct.integrations.client import RewardClient, RewardError
from spct.judge import GenerativeRewardModel
from spct.serve import ServerConfig, create_app

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
