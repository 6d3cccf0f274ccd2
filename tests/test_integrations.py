"""TRL, OpenRLHF and verl adapters: in-process on FakeBackend, and TRL/OpenRLHF against a real server."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
import torch
from _server import running_server

from spct.backends.fake import FakeBackend, responses_in_prompt
from spct.integrations import RewardClient, RewardError, verl
from spct.integrations import openrlhf as orl
from spct.integrations.client import GroupGatherer, ServerGrouper
from spct.integrations.trl import AsyncGRMRewardFunc, GRMRewardFunc
from spct.judge import GenerativeRewardModel
from spct.serve import ServerConfig, create_app

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


def test_trl_reward_warns_once_when_a_group_arrives_split(monkeypatch, caplog):
    from spct.integrations import trl as trl_adapter

    monkeypatch.setattr(trl_adapter, "_warned_split", False)
    reward = GRMRewardFunc(GenerativeRewardModel(FakeBackend()), num_generations=4)
    # This process's slice holds the last 2 generations of one prompt and the first 2 of the next.
    assert reward(["a", "a", "b", "b"], ["x", "y", "z", "w"]) == [1.0] * 4
    reward(["a", "a", "b", "b"], ["x", "y", "z", "w"])
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "reached this process in part" in caplog.records[0].message


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
    empty = orl.rewards_for(client, [], [], [])  # an empty shard (several reward URLs)
    assert empty["rewards"].tolist() == [] and empty["scores"].tolist() == [] and empty["extra_logs"]["group_size"].tolist() == []


def test_verl_compute_score_single_and_batch(monkeypatch):
    fake = FakeBackend()
    monkeypatch.setattr(verl, "_clients", {(): RewardClient(GenerativeRewardModel(fake))})
    assert verl.compute_score("hh", "a helpful answer", None, {"question": "Q?"}) == {"score": 2.0, "spct_failed": 0}
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


# -- thread-safe lazy set-up -------------------------------------------------------------------


def _count_builds(monkeypatch) -> list[int]:
    """RewardClient.from_env made slow and counted: a racing lazy init would build several."""
    built: list[int] = []

    def slow_from_env(**options):
        built.append(1)
        time.sleep(0.2)
        return RewardClient(GenerativeRewardModel(FakeBackend()))

    monkeypatch.setattr(RewardClient, "from_env", staticmethod(slow_from_env))
    return built


def _fire(n: int, call) -> list:
    barrier = threading.Barrier(n)

    def go(_):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def test_concurrent_first_calls_build_one_client_in_every_adapter(monkeypatch):
    from spct.integrations import trl as trl_adapter

    built = _count_builds(monkeypatch)
    monkeypatch.setattr(orl, "_client", None)
    out = _fire(8, lambda: orl.reward_func(["Say hi. hello"], ["Say hi."], [""]))
    assert len(built) == 1 and all(o["rewards"].tolist() == [1.0] for o in out)

    built.clear()
    monkeypatch.setattr(verl, "_clients", {})
    out = _fire(8, lambda: verl.compute_score("d", "hello", None, {"question": "Say hi."}, k=1))
    assert len(built) == 1 and out == [{"score": 1.0, "spct_failed": 0}] * 8

    built.clear()
    monkeypatch.setattr(trl_adapter, "_default", None)
    out = _fire(8, lambda: trl_adapter.reward_func(["p"], ["hello"]))
    assert len(built) == 1 and out == [[1.0]] * 8


# -- regrouping single responses (verl's reward loop) -----------------------------------------


def test_group_gatherer_judges_a_full_group_once_and_a_partial_one_after_the_window():
    fake = FakeBackend()
    gatherer = GroupGatherer(RewardClient(GenerativeRewardModel(fake)), group_size=3, window_s=0.2)

    async def run():
        full = [gatherer.score("u1", "Say hi.", c) for c in COMPLETIONS[:3]]
        partial = [gatherer.score("u2", "Say bye.", c) for c in COMPLETIONS[3:5]]
        return await asyncio.gather(*full, *partial)

    t0 = time.perf_counter()
    out = asyncio.run(run())
    assert out == [(1.0, 3), (3.0, 3), (1.0, 3), (1.0, 2), (3.0, 2)]
    assert time.perf_counter() - t0 >= 0.2  # the partial group waited for its window
    sizes = sorted(len(responses_in_prompt(r.messages[-1]["content"])) for call in fake.calls for r in call)
    assert sizes == [2, 3]


class _Tok:
    """A character tokenizer: id = code point."""

    @staticmethod
    def decode(ids, skip_special_tokens=False) -> str:
        return "".join(chr(int(i)) for i in ids)


def _sample(prompt: str, response: str, uid: str, width: int = 40, **non_tensor) -> SimpleNamespace:
    """One verl sample: left-padded prompt ids, right-padded response ids, their attention mask."""
    p = [0] * (width - len(prompt)) + [ord(c) for c in prompt]
    r = [ord(c) for c in response] + [0] * (width - len(response))
    mask = [0] * (width - len(prompt)) + [1] * (len(prompt) + len(response)) + [0] * (width - len(response))
    batch = {"prompts": torch.tensor(p), "responses": torch.tensor(r), "attention_mask": torch.tensor(mask)}
    return SimpleNamespace(batch=batch, non_tensor_batch={"uid": uid, **non_tensor})


def test_listwise_scorer_reads_verl_samples_and_judges_each_uid_together():
    fake = FakeBackend()
    scorer = verl.ListwiseScorer(_Tok(), GroupGatherer(RewardClient(GenerativeRewardModel(fake)), group_size=3))
    chat = "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n"
    items = [_sample(chat, c, "u1") for c in COMPLETIONS[:2]]
    items.append(_sample("ignored", COMPLETIONS[2], "u1", raw_prompt=[{"role": "user", "content": "Say hi."}]))

    async def run():
        return await asyncio.gather(*(scorer.score(i) for i in items))

    out = asyncio.run(run())
    assert [o["reward_score"] for o in out] == EXPECTED[:3]
    assert all(o["reward_extra_info"] == {"spct_group_size": 3, "spct_failed": 0} for o in out)
    [[req]] = fake.calls
    assert "<|im_start|>" not in req.messages[-1]["content"] and "Say hi." in req.messages[-1]["content"]


def test_a_verl_group_spread_over_reward_workers_is_judged_whole_by_the_server():
    # verl's reward workers (reward.num_workers, 8 by default) each score their share of the
    # samples on an event loop of their own; posting to one server keeps each uid's group whole.
    fake = FakeBackend()
    samples = [_sample(f"Q{u}?", "a" * (10 * i), f"u{u}") for u in range(2) for i in range(4)]
    with running_server(create_app(GenerativeRewardModel(fake), ServerConfig(group_window_s=30.0))) as url:
        def worker(share: list) -> list[dict]:
            scorer = verl.ListwiseScorer(_Tok(), ServerGrouper(RewardClient(url=url), group_size=4))

            async def run():
                return await asyncio.gather(*(scorer.score(s) for s in share))

            return asyncio.run(run())

        with ThreadPoolExecutor(4) as pool:  # worker w holds one sample of each group
            out = [o for part in pool.map(worker, [samples[w::4] for w in range(4)]) for o in part]
    assert [o["reward_extra_info"]["spct_group_size"] for o in out] == [4] * 8
    assert sorted(o["reward_score"] for o in out) == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]
    assert sorted(len(responses_in_prompt(r.messages[-1]["content"])) for call in fake.calls for r in call) == [4, 4]
    with pytest.raises(ValueError, match="needs a client with a url"):
        ServerGrouper(RewardClient(GenerativeRewardModel(fake)), group_size=4)


def test_verl_loads_spct_through_its_own_loader():
    pytest.importorskip("verl.experimental.reward_loop.reward_manager")
    from omegaconf import OmegaConf
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager

    fake = FakeBackend()
    with running_server(create_app(GenerativeRewardModel(fake))) as url:
        config = OmegaConf.create({
            "actor_rollout_ref": {"rollout": {"n": 3}},
            "reward": {
                "custom_reward_function": {"path": "pkg://spct.integrations.verl", "name": "compute_score_async",
                                           "reward_kwargs": {"url": url}},
                "reward_manager": {"source": "importlib", "name": "SPCTListwiseRewardManager",
                                   "module": {"path": "pkg://spct.integrations.verl", "name": "SPCTListwiseRewardManager"}},
            },
        })
        fn = get_custom_reward_fn(config)
        assert asyncio.run(fn(data_source="d", solution_str="a helpful answer", ground_truth=None,
                              extra_info={"question": "Q?"})) == {"score": 2.0, "spct_failed": 0}
        manager = load_reward_manager(config, _Tok())
        assert get_reward_manager_cls("spct_listwise") is type(manager)
        samples = [_sample("Say hi.", c, "u1") for c in COMPLETIONS[:3]]

        async def run():
            return await asyncio.gather(*(manager.scorer.score(s) for s in samples))

        assert [o["reward_score"] for o in asyncio.run(run())] == EXPECTED[:3]
