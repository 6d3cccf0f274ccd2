"""The settings spine: one dataclass read from flags and the environment alike."""

from __future__ import annotations

import argparse

import pytest

from spct.backends import EngineConfig
from spct.backends.fake import FakeBackend
from spct.defaults import SERVE_MAX_NEW_TOKENS
from spct.integrations.client import RewardClient
from spct.judge import JudgeConfig
from spct.policies import is_greedy
from spct.settings import add_dataclass_args, from_env, from_namespace


def test_flags_come_from_the_fields_and_read_back():
    p = argparse.ArgumentParser()
    add_dataclass_args(p, JudgeConfig, ("k", "temperature", "constrain", "format_demo", "policy"), defaults={"k": 3})
    assert from_namespace(JudgeConfig, p.parse_args([])) == JudgeConfig(k=3)
    args = p.parse_args(["--k", "2", "--temperature", "0.7", "--no-constrain", "--format-demo", "--policy", "pointwise"])
    assert from_namespace(JudgeConfig, args) == JudgeConfig(k=2, temperature=0.7, constrain=False, format_demo=True,
                                                            policy="pointwise")
    with pytest.raises(SystemExit):
        p.parse_args(["--k", "0"])  # the field's own check


def test_environment_fills_the_same_fields_checked_like_the_flags():
    env = {"SPCT_K": "4", "SPCT_CONSTRAIN": "no", "SPCT_ENGINE": "fake", "SPCT_GEN_BATCH_SIZE": "2"}
    assert from_env(JudgeConfig, {"retries": 1}, environ=env) == JudgeConfig(k=4, constrain=False, retries=1)
    assert from_env(EngineConfig, environ=env, model="m") == EngineConfig("m", "fake", gen_batch_size=2)
    with pytest.raises(ValueError, match="SPCT_K='0'"):
        from_env(JudgeConfig, environ={"SPCT_K": "0"})
    with pytest.raises(TypeError, match="no field"):
        from_env(JudgeConfig, environ={}, model="m")


def test_reward_client_from_env_builds_through_the_engine_config(monkeypatch):
    monkeypatch.setenv("SPCT_ENGINE", "fake")
    monkeypatch.setenv("SPCT_K", "2")
    monkeypatch.delenv("SPCT_REWARD_URL", raising=False)
    client = RewardClient.from_env(max_new_tokens="64")
    assert isinstance(client.grm.backend, FakeBackend) and client.k == 2
    assert (client.grm.config.max_new_tokens, client.grm.config.retries) == (64, 1)
    assert RewardClient.from_env().grm.config.max_new_tokens == SERVE_MAX_NEW_TOKENS


def test_engine_options_go_to_the_engine_that_runs_the_model():
    assert EngineConfig("openai:x", base_url="http://h/v1").engine_options() == {
        "base_url": "http://h/v1", "concurrency": 8, "guided": "none"}
    assert EngineConfig("m", "llamacpp", n_threads=2).engine_options() == {"n_threads": 2}


def test_one_judgment_per_order_shown_is_greedy():
    assert is_greedy(1) and not is_greedy(2)
    assert is_greedy(2, "both") and not is_greedy(4, "both")
