"""verl's own judge serving: spct's reward function and manager judging through verl's reward router.

verl (checked: 0.9.1) serves the judge itself when `reward.reward_model.enable=True` and passes
every reward function `reward_router_address` (host:port of an OpenAI-compatible proxy) and
`reward_model_tokenizer`. Here spct's OpenAI-compatible chat server (serve/chat_api.py) over the fake engine
stands in for that router, and the function is loaded and called the way verl does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from _server import SlowFake, running_server
from fastapi import FastAPI

from spct.backends.base import BackendError
from spct.backends.fake import FakeBackend, responses_in_prompt
from spct.data import InputError
from spct.integrations import RewardError, verl
from spct.integrations.served_judge import served_judge_client, served_model
from spct.serve import create_chat_app

SERVED_NAME = "/models/judge-under-test"  # verl serves the judge under its local path
SHORT, LONG = "ok", "Water boils at 100 degrees Celsius at sea level (1 atm)."  # fake scores: 1 + len // 10


@pytest.fixture(autouse=True)
def _fresh_clients(monkeypatch):
    monkeypatch.setattr(verl, "_clients", {})


def _router(backend: FakeBackend):
    """A stand-in for verl's reward router: an OpenAI-compatible server, addressed as host:port."""
    return running_server(create_chat_app(backend, SERVED_NAME))


def _load_like_verl(name: str, reward_kwargs: dict) -> Any:
    """verl 0.9.1's get_custom_reward_fn: load the file as a fresh module (load_extern_object), take
    `name`, and merge reward_kwargs over each call's kwargs (_call_with_kwargs_async)."""
    path = Path(verl.__file__)
    spec = importlib.util.spec_from_file_location(f"custom_module_{hash(os.path.abspath(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    raw = getattr(module, name)
    assert inspect.iscoroutinefunction(raw)  # so verl's manager awaits it on its loop

    async def fn(**kwargs: Any) -> Any:
        return await raw(**{**kwargs, **reward_kwargs})

    return fn


async def _as_naive_manager(fn: Any, address: str, answers: list[str], tokenizer: Any = None) -> list[dict]:
    """NaiveRewardManager.run_single's call, one task per sample as verl's reward loop runs them."""
    async def one(answer: str) -> dict:
        extra_info = {"question": "At what temperature does water boil at sea level?", "num_turns": None,
                      "rollout_reward_scores": {}}
        result = await fn(data_source="boiling", solution_str=answer, ground_truth=None, extra_info=extra_info,
                          reward_router_address=address, reward_model_tokenizer=tokenizer)
        return {"reward_score": result["score"], "reward_extra_info": dict(result)}

    out = await asyncio.gather(*(one(a) for a in answers))
    keys = list(out[0]["reward_extra_info"])  # RewardLoopManager takes the first sample's keys for all
    assert all(list(o["reward_extra_info"]) == keys for o in out)
    return out


def test_the_reward_function_judges_through_verls_router_and_goes_the_right_way():
    fake = FakeBackend()
    with _router(fake) as url:
        fn = _load_like_verl("compute_score_async", {"k": 3})
        out = asyncio.run(_as_naive_manager(fn, url.removeprefix("http://"), [SHORT, LONG]))
    assert [o["reward_score"] for o in out] == [1.0, 6.0]
    assert all(o["reward_extra_info"]["spct_failed"] == 0 for o in out)
    requests = [r for call in fake.calls for r in call]
    assert len(requests) == 6  # k = 3 sampled judgments per response, voted
    assert {r.temperature for r in requests} == {0.5}
    prompt = requests[0].messages[-1]["content"]
    assert "water boil" in prompt and len(responses_in_prompt(prompt)) == 1  # judged alone: verl gives no group


def test_the_router_is_asked_what_it_serves(monkeypatch):
    with _router(FakeBackend()) as url:
        served = served_model(f"{url}/v1")
        assert (served.name, served.context_length, served.engine) == (SERVED_NAME, None, "spct")
        backend = served_judge_client(f"{url}/v1").grm.backend
        assert (backend.model, backend.guided) == (SERVED_NAME, "none")
    vllm = FastAPI()  # vLLM's and SGLang's model cards name the engine and the context length
    vllm.get("/v1/models")(lambda: {"data": [{"id": "/m/grm", "owned_by": "vllm", "max_model_len": 4096}]})
    with running_server(vllm) as url:
        backend = served_judge_client(f"{url}/v1", k=4).grm.backend
        assert (backend.model, backend.context_length, backend.guided) == ("/m/grm", 4096, "vllm")
        assert served_judge_client(f"{url}/v1", guided="none").grm.backend.guided == "none"
    with pytest.raises(RewardError, match="cannot read the served judge's name.*pass the model name"):
        served_model(f"{url}/v1", timeout_s=1)  # the server is gone


def test_a_served_judge_is_read_as_its_folder_says(tmp_path, caplog):
    """vLLM names a model by its path: a folder here with spct_judging.json sets the policy; this engine reads no
    log-probabilities, so the recommended expected readout becomes the written integer, and an explicit one is refused."""
    folder = tmp_path / "grm"
    folder.mkdir()
    (folder / "spct_judging.json").write_text('{"policy": "pointwise", "readout": "expected"}')
    vllm = FastAPI()
    vllm.get("/v1/models")(lambda: {"data": [{"id": str(folder), "owned_by": "vllm", "max_model_len": 4096}]})
    with running_server(vllm) as url, caplog.at_level("INFO"):
        config = served_judge_client(f"{url}/v1").grm.config
        assert (config.policy, config.readout) == ("pointwise", "sampled")
        assert "pointwise" in caplog.text
        assert served_judge_client(f"{url}/v1", policy="voting").grm.config.policy == "voting"
        with pytest.raises(InputError, match="cannot read the model.s probabilities"):
            served_judge_client(f"{url}/v1", readout="expected")


def test_an_unparseable_judgment_is_a_reward_verl_can_carry_or_an_error_if_asked():
    fake = FakeBackend(script=lambda req, s: "I will not score these.")
    with _router(fake) as url:
        address = url.removeprefix("http://")
        out = asyncio.run(_as_naive_manager(_load_like_verl("compute_score_async", {}), address, [SHORT, LONG]))
        assert [o["reward_extra_info"] for o in out] == [{"score": 1.0, "spct_failed": 1}] * 2
        zero = _load_like_verl("compute_score_async", {"failure_score": 0})
        assert asyncio.run(_as_naive_manager(zero, address, [LONG]))[0]["reward_score"] == 0.0
        strict = _load_like_verl("compute_score_async", {"failure_score": None})
        with pytest.raises(RewardError, match="every sampled judgment failed to parse"):
            asyncio.run(_as_naive_manager(strict, address, [LONG]))


def test_a_judge_that_does_not_answer_in_time_is_a_clear_error():
    with _router(SlowFake(delay=2.0)) as url:
        fn = _load_like_verl("compute_score_async", {"timeout_s": 0.3, "max_retries": 0})
        with pytest.raises(BackendError, match=r"no answer within the 0.3 s timeout, 1 attempt.*raise timeout_s"):
            asyncio.run(_as_naive_manager(fn, url.removeprefix("http://"), [LONG]))


def _byte_tokenizer() -> Any:
    """A byte-level HF tokenizer (one token per byte), built here: no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    vocab["<eos>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def test_long_responses_are_cut_to_the_judges_context_with_its_own_tokenizer():
    fake = FakeBackend()
    with _router(fake) as url:
        fn = _load_like_verl("compute_score_async", {"context_length": 4000, "max_new_tokens": 256})
        [out] = asyncio.run(_as_naive_manager(fn, url.removeprefix("http://"), ["word " * 4000], _byte_tokenizer()))
    assert out["reward_extra_info"]["spct_failed"] == 0
    [[request]] = fake.calls
    prompt = "".join(m["content"] for m in request.messages)
    assert "cut to fit the model's context" in prompt and len(prompt.encode()) <= 4000 - 256


def _sample(prompt: str, response: str, uid: str) -> SimpleNamespace:
    """One verl sample (DataProto item): left-padded prompt, right-padded response, character ids."""
    width = 80
    p = [0] * (width - len(prompt)) + [ord(c) for c in prompt]
    r = [ord(c) for c in response] + [0] * (width - len(response))
    mask = [0] * (width - len(prompt)) + [1] * (len(prompt) + len(response)) + [0] * (width - len(response))
    batch = {"prompts": torch.tensor(p), "responses": torch.tensor(r), "attention_mask": torch.tensor(mask)}
    return SimpleNamespace(batch=batch, non_tensor_batch={"uid": uid,
                                                          "raw_prompt": [{"role": "user", "content": prompt}]})


class _CharTokenizer:
    @staticmethod
    def decode(ids: Any, skip_special_tokens: bool = False) -> str:
        return "".join(chr(int(i)) for i in ids if int(i))


def test_the_listwise_manager_judges_each_group_together_through_verls_router():
    fake = FakeBackend()
    answers = [SHORT, LONG, "About 100 C."]
    with _router(fake) as url:
        # What SPCTListwiseRewardManager builds from reward_kwargs and what verl hands it.
        options = {"reward_router_address": url.removeprefix("http://"), "reward_model_tokenizer": None}
        scorer = verl.ListwiseScorer.for_verl(_CharTokenizer(), options, group_size=3)

        async def run() -> list[dict]:
            return await asyncio.gather(*(scorer.score(_sample("Boiling point of water?", a, "u1")) for a in answers))

        out = asyncio.run(run())
    assert [o["reward_score"] for o in out] == [1.0, 6.0, 2.0]
    assert [o["reward_extra_info"] for o in out] == [{"spct_group_size": 3, "spct_failed": 0}] * 3
    [[request]] = fake.calls  # one judgment of the whole group
    assert sorted(responses_in_prompt(request.messages[-1]["content"])) == sorted(answers)


@pytest.mark.parametrize("manager", ["naive", "SPCTListwiseRewardManager"])
def test_verls_reward_loop_worker_judges_through_the_router(tmp_path, manager):
    """verl's own RewardLoopWorker (the class, without its Ray actor), as verl builds it with its
    judge enabled: it loads spct's function (and manager) and hands them the router and tokenizer."""
    pytest.importorskip("verl.experimental.reward_loop.reward_loop")
    import numpy as np
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    tokenizer = _byte_tokenizer()
    tokenizer.save_pretrained(tmp_path)  # the policy's and the judge's tokenizer, loaded by verl
    spct = "pkg://spct.integrations.verl"
    managers = {"naive": {"source": "register", "name": "naive", "module": {"path": None, "name": "unused"}},
                "SPCTListwiseRewardManager": {"source": "importlib", "name": manager,
                                              "module": {"path": spct, "name": manager}}}
    config = OmegaConf.create({
        "actor_rollout_ref": {"model": {"path": str(tmp_path), "tokenizer_path": None}, "rollout": {"n": 2}},
        "reward": {"custom_reward_function": {"path": spct, "name": "compute_score_async", "reward_kwargs": {"k": 2}},
                   "reward_manager": managers[manager],
                   "reward_model": {"enable": True, "model_path": str(tmp_path)}},
    })
    width, prompt = 64, tokenizer("Boiling point?")["input_ids"]
    rows = [(prompt, tokenizer(a)["input_ids"]) for a in (SHORT, LONG)]
    data = DataProto.from_dict(
        tensors={"prompts": torch.tensor([[0] * (width - len(p)) + p for p, _ in rows]),
                 "responses": torch.tensor([r + [0] * (width - len(r)) for _, r in rows]),
                 "attention_mask": torch.tensor([[0] * (width - len(p)) + [1] * (len(p) + len(r)) + [0] * (width - len(r))
                                                 for p, r in rows])},
        non_tensors={"uid": np.array(["u1", "u1"], dtype=object), "data_source": np.array(["boiling"] * 2, dtype=object),
                     "reward_model": np.array([{"ground_truth": None}] * 2, dtype=object),
                     "extra_info": np.array([{"question": "At what temperature does water boil?"}] * 2, dtype=object)})
    fake = FakeBackend()
    with _router(fake) as url:
        worker = RewardLoopWorker(config, reward_router_address=url.removeprefix("http://"))
        out = worker.loop.run_until_complete(worker.compute_score_batch(data))
    assert [o["reward_score"] for o in out] == [1.0, 6.0]
    prompts = [r.messages[-1]["content"] for call in fake.calls for r in call]
    per_judgment = 1 if manager == "naive" else 2  # naive: each response alone; spct's manager: the uid's group
    assert len(prompts) == 2 * 2 // per_judgment and {len(responses_in_prompt(p)) for p in prompts} == {per_judgment}
