"""A model folder's spct_judging.json: the policy and readout it was trained to be read with, unless flags say otherwise."""

from __future__ import annotations

import argparse
import json

import pytest

from spct.backends.models import ModelNotFound, recommended_judging
from spct.cli.common import add_judge_args, judge_config
from spct.data import InputError
from spct.judge import JudgeConfig


def _args(argv: list[str], model: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_judge_args(p)
    p.add_argument("--adaptive", default=None)
    return argparse.Namespace(**vars(p.parse_args(argv)), model=model)


def test_a_folder_recommends_its_reading_and_flags_override_it(tmp_path, capsys):
    (tmp_path / "spct_judging.json").write_text(json.dumps({"policy": "pointwise", "readout": "expected", "k": 9}))
    assert recommended_judging(str(tmp_path)) == {"policy": "pointwise", "readout": "expected"}  # only these two
    config = judge_config(_args([], str(tmp_path)))
    assert (config.policy, config.readout, config.k) == ("pointwise", "expected", 1)
    assert "--policy pointwise, --readout expected" in capsys.readouterr().err
    config = judge_config(_args(["--policy", "both-orders"], str(tmp_path)))
    assert (config.policy, config.readout) == ("both-orders", "expected")
    config = judge_config(_args(["--adaptive", "exact", "--k", "4"], str(tmp_path)))  # adaptive voting stays voting
    assert (config.policy, config.readout) == ("voting", "expected")


def test_a_model_without_the_file_keeps_the_papers_defaults(tmp_path, capsys):
    config = judge_config(_args([], str(tmp_path)))
    assert (config.policy, config.readout) == ("voting", "sampled")
    assert recommended_judging("some-org/some-hub-model") == {}
    assert capsys.readouterr().err == ""


def test_a_broken_file_is_a_clear_error(tmp_path):
    (tmp_path / "spct_judging.json").write_text("{not json")
    with pytest.raises(ModelNotFound, match="spct_judging.json: not readable"):
        recommended_judging(str(tmp_path))


def test_the_library_reads_the_same_file(tmp_path):
    (tmp_path / "spct_judging.json").write_text(json.dumps({"policy": "pointwise", "readout": "expected"}))
    config = JudgeConfig.for_model(str(tmp_path), k=2)
    assert (config.policy, config.readout, config.k) == ("pointwise", "expected", 2)
    assert JudgeConfig.for_model(str(tmp_path), readout="sampled").readout == "sampled"  # a setting given wins
    assert JudgeConfig.for_model("some-org/some-hub-model") == JudgeConfig()


def test_the_fake_engine_loads_no_model_so_takes_no_recommendation(tmp_path, capsys):
    (tmp_path / "spct_judging.json").write_text(json.dumps({"policy": "pointwise", "readout": "expected"}))
    args = _args([], str(tmp_path))
    args.engine = "fake"
    assert (judge_config(args).policy, judge_config(args).readout) == ("voting", "sampled")
    assert capsys.readouterr().err == ""


def test_an_engine_without_logprobs_reads_the_written_scores_when_only_recommended(tmp_path, monkeypatch, capsys):
    from spct.backends.fake import FakeBackend
    from spct.cli.common import add_model_args, build_grm

    (tmp_path / "spct_judging.json").write_text(json.dumps({"policy": "pointwise", "readout": "expected"}))
    monkeypatch.setattr("spct.cli.common.load_backend", lambda *a, **kw: FakeBackend())  # gives no logprobs
    p = argparse.ArgumentParser()
    add_model_args(p)
    add_judge_args(p)
    grm = build_grm(p.parse_args(["--model", str(tmp_path), "--engine", "llamacpp"]))
    assert (grm.config.policy, grm.config.readout) == ("pointwise", "sampled")
    assert "gives no log-probabilities" in capsys.readouterr().err
    with pytest.raises(InputError, match="cannot read the model's probabilities"):  # asked for: refused, not swapped
        build_grm(p.parse_args(["--model", str(tmp_path), "--engine", "llamacpp", "--readout", "expected"]))


def test_the_in_process_reward_client_reads_the_model_as_trained(tmp_path, monkeypatch):
    from spct.backends.fake import FakeBackend
    from spct.integrations.client import RewardClient

    (tmp_path / "spct_judging.json").write_text(json.dumps({"policy": "pointwise", "readout": "expected"}))
    monkeypatch.setattr("spct.backends.load_backend", lambda *a, **kw: FakeBackend())  # gives no logprobs
    monkeypatch.delenv("SPCT_REWARD_URL", raising=False)
    client = RewardClient.from_env(model=str(tmp_path), engine="transformers")
    assert (client.grm.config.policy, client.grm.config.readout) == ("pointwise", "sampled")
    assert client.judge_groups([("q", ["a much longer answer", "short"])]) == [[3.0, 1.0]]  # mean scores, 1..10


@pytest.mark.slow
def test_the_merged_embedded_judge_carries_its_reading():
    """A server of the merged folder (vLLM names the model by its path) tells its clients how to read it."""
    from spct.backends.models import resolve_model

    path, _ = resolve_model("spct-grm-135m")
    assert recommended_judging(path) == recommended_judging("spct-grm-135m") == {"policy": "pointwise", "readout": "anchored"}
