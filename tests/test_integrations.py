"""TRL, OpenRLHF and verl adapters: in-process on FakeBackend, and TRL/OpenRLHF against a real server."""

from __future__ import annotations

import asyncio

import pytest
import torch
from _server import running_server

from spct.backends.fake import FakeBackend, responses_in_prompt
from spct.integrations import RewardClient, RewardError, verl
from spct.integrations import openrlhf as orl
from spct.integrations.trl import AsyncGRMRewardFunc, GRMRewardFunc
from spct.judge import GenerativeRewardModel
from spct.serve import create_app

PROMPTS = ["Say hi."] * 3 + ["Say bye."] * 3
COMPLETIONS = ["hi", "hello there, friend!", "hey you", "bye", "goodbye, see you soon!", "ciao"]
# FakeBackend scores 1 + len // 10
EXPECTED = [1.0, 3.0, 1.0, 1.0, 3.0, 1.0]


def test_trl_reward_judges_each_prompts_generations_together():
    fake = FakeBackend()
    reward = GRMRewardFunc(GenerativeRewardModel(fake), num_generations=3)
    assert reward(prompts=PROMPTS, completions=COMPLETIONS, trainer_state=None) == EXPECTED
    [call] = fake.calls
    assert [len(responses_in_prompt(r.messages[-1]["content"])) for r in call] == [3, 3]


def test_trl_reward_conversational_and_async():
    fake = FakeBackend()
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    completions = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]
    reward = AsyncGRMRewardFunc(GenerativeRewardModel(fake), num_generations=3)
    assert asyncio.run(reward(prompts=prompts, completions=completions)) == EXPECTED
    # num_generations cuts runs of one prompt into groups of that size.
    assert GRMRewardFunc(GenerativeRewardModel(FakeBackend()), num_generations=2)(["p"] * 4, ["a", "b", "c", "d"]) == [1.0] * 4


def test_trl_reward_is_none_where_judging_failed():
    reward = GRMRewardFunc(GenerativeRewardModel(FakeBackend(script=lambda req, s: "no scores")))
    assert reward(["p", "p"], ["a", "b"]) == [None, None]


def test_trl_reward_loads_in_grpo_trainer_shape():
    from trl.trainer.utils import get_callable_name, is_async_callable

    assert is_async_callable(AsyncGRMRewardFunc(GenerativeRewardModel(FakeBackend())))
    assert not is_async_callable(GRMRewardFunc(GenerativeRewardModel(FakeBackend())))
    assert get_callable_name(GRMRewardFunc(GenerativeRewardModel(FakeBackend()))) == "spct_grm"


def test_openrlhf_reward_func_in_process():
    client = RewardClient(GenerativeRewardModel(FakeBackend()))
    queries = [p + " " + c for p, c in zip(PROMPTS, COMPLETIONS, strict=True)]
    out = orl.rewards_for(client, queries, PROMPTS, [""] * 6)
    assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].tolist() == EXPECTED
    assert out["scores"].tolist() == pytest.approx([(x - 1) / 9 for x in EXPECTED])
    with pytest.raises(ValueError, match=r"query\[0\] does not contain prompts\[0\]"):
        orl.rewards_for(client, ["x"], ["y"], None)


def test_verl_compute_score_single_and_batch(monkeypatch):
    fake = FakeBackend()
    monkeypatch.setattr(verl, "_clients", {(): RewardClient(GenerativeRewardModel(fake))})
    assert verl.compute_score("hh", "a helpful answer", None, {"question": "Q?"}) == {"score": 2.0}
    out = verl.compute_score_batch(["d"] * 6, COMPLETIONS, [None] * 6, [{"question": p} for p in PROMPTS])
    assert [o["score"] for o in out] == EXPECTED
    with pytest.raises(RewardError, match=r"extra_info has no 'question'"):
        verl.compute_score("hh", "answer", None, {})


def test_adapters_against_a_running_server():
    fake = FakeBackend()
    with running_server(create_app(GenerativeRewardModel(fake))) as url:
        assert GRMRewardFunc(url=url, num_generations=3)(PROMPTS, COMPLETIONS) == EXPECTED
        assert asyncio.run(AsyncGRMRewardFunc(url=url, num_generations=3)(PROMPTS, COMPLETIONS)) == EXPECTED
        queries = [p + " " + c for p, c in zip(PROMPTS, COMPLETIONS, strict=True)]
        assert orl.rewards_for(RewardClient(url=url), queries, PROMPTS)["rewards"].tolist() == EXPECTED
        with pytest.raises(RewardError, match="answered 422"):
            RewardClient(url=url, k=999).judge_groups([("q", ["a"])])
    assert len(fake.calls) == 3


def test_client_refuses_ambiguous_configuration():
    with pytest.raises(ValueError, match="exactly one of grm"):
        RewardClient()
