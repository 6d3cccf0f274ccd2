"""TRL's SFTConfig / GRPOConfig fields reach the trainers from the command line (no training here)."""

from __future__ import annotations

import argparse

import pytest
from trl import GRPOConfig, SFTConfig

from spct.cli import build_parser
from spct.cli.trl_args import trl_overrides
from spct.data import InputError
from spct.train.rl import RLSettings, grpo_config
from spct.train.sft import SFTSettings, sft_config


def test_trl_fields_from_yaml_and_flags_are_typed_and_win(tmp_path):
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text("lr_scheduler_type: cosine\nbeta: 0.01\n")
    args = build_parser().parse_args(["rl", "data.jsonl", "-o", "out", "--config", str(cfg),
                                      "--trl", "loss_type=dr_grpo", "--trl", "warmup_steps=0.1", "--trl", "beta=0.02"])
    overrides = trl_overrides(args, GRPOConfig)
    assert overrides == {"lr_scheduler_type": "cosine", "beta": 0.02, "loss_type": "dr_grpo", "warmup_steps": 0.1}
    config = grpo_config(RLSettings(use_cpu=True, use_vllm=False), tmp_path / "o", trl_overrides=overrides)
    assert config.loss_type == "dr_grpo" and config.beta == 0.02 and config.num_generations == 4  # spct's own stays


def test_sft_passthrough_and_unknown_fields():
    args = build_parser().parse_args(["sft", "rft_dir", "-o", "out", "--trl", "packing=true", "--trl", "max_grad_norm=0.5"])
    overrides = trl_overrides(args, SFTConfig)
    assert overrides == {"packing": True, "max_grad_norm": 0.5}
    assert sft_config(SFTSettings(use_cpu=True), "o", trl_overrides=overrides).packing is True
    with pytest.raises(InputError, match="unknown TRL SFTConfig field.*no_such"):
        trl_overrides(argparse.Namespace(config=None, trl=["no_such=1"]), SFTConfig)
    with pytest.raises(InputError, match="FIELD=VALUE"):
        trl_overrides(argparse.Namespace(config=None, trl=["packing"]), SFTConfig)
