"""A model folder's spct_judging.json: the policy and readout it was trained to be read with, unless flags say otherwise."""

from __future__ import annotations

import argparse
import json

import pytest

from spct.backends.models import ModelNotFound, recommended_judging
from spct.cli.common import add_judge_args, judge_config


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
