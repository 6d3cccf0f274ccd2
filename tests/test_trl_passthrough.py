"""`spct sft` / `spct rl` flags are TRL's SFTConfig / GRPOConfig fields (no training here)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from trl import GRPOConfig, SFTConfig

from spct.cli import build_parser
from spct.cli.trl_args import trl_fields, trl_overrides
from spct.data import InputError
from spct.settings import from_namespace
from spct.train.rl import RLSettings, grpo_config
from spct.train.sft import SFTSettings, sft_config

COMMANDS = json.loads((Path(__file__).parent / "fixtures" / "trl_commands.json").read_text())
COMMANDS.pop("_about")


def config_of(argv: list[str]):
    """The TRL config and spct settings `spct sft` / `spct rl` would train with."""
    args = build_parser().parse_args(argv)
    if args.command == "sft":
        return args, sft_config(args.output, trl_fields(args, SFTConfig)), from_namespace(SFTSettings, args)
    s = from_namespace(RLSettings, args)
    return args, grpo_config(s, args.output, trl_fields(args, GRPOConfig)), s


@pytest.mark.parametrize("command", list(COMMANDS))
def test_documented_commands_train_as_before(command, tmp_path, monkeypatch):
    """The commands of the docs and bench scripts give the configs spct gave when it mirrored TRL's fields
    (tests/fixtures/trl_commands.json, made by the earlier code): every field TRL's default or as recorded."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grpo.yaml").write_text("loss_type: dr_grpo\n")
    args, config, settings = config_of(command.split())
    cls = SFTConfig if args.command == "sft" else GRPOConfig
    expected = {**cls(str(args.output), bf16=False).to_dict(), **COMMANDS[command]["trl"]}
    for key, value in config.to_dict().items():
        if key in ("output_dir", "logging_dir", "bf16") or (key == "use_vllm" and key not in COMMANDS[command]["trl"]):
            continue  # bf16 and the default use_vllm follow the machine (on a GPU unless --cpu)
        if key == "save_steps" and config.save_strategy == "no":
            continue  # no checkpoints: the earlier code wrote TRL's 500 here, now spct's 0 (both unused)
        assert value == expected[key], key
    spct = {**vars(settings), "model": args.model} | {k: getattr(args, k) for k in ("principles", "split", "limit")
                                                         if hasattr(args, k)}
    assert {k: spct[k] for k in COMMANDS[command]["spct"]} == COMMANDS[command]["spct"]


def test_every_trl_field_is_a_flag_with_spct_defaults():
    _, config, _ = config_of(["rl", "d.jsonl", "-o", "out", "--lr_scheduler_type", "cosine", "--warmup-steps", "0.1",
                              "--num-generations", "8", "--prompts-per-step", "2", "--cpu"])
    assert config.lr_scheduler_type == "cosine" and config.warmup_steps == 0.1  # TRL's own flags, either spelling
    assert config.per_device_train_batch_size == 16 and config.beta == 0.08 and config.use_cpu  # spct's rules
    assert config.use_vllm is False and config.bf16 is False and config.save_strategy == "no"
    _, config, _ = config_of(["rl", "d.jsonl", "-o", "out", "--per-device-train-batch-size", "4", "--save-steps", "5",
                              "--use-cpu", "--no-vllm"])
    assert config.per_device_train_batch_size == 4 and config.save_strategy == "steps" and config.save_steps == 5
    _, config, _ = config_of(["sft", "rft", "-o", "out", "--lr", "3e-4", "--gradient-checkpointing", "--cpu",
                              "--save-strategy", "epoch"])
    assert config.learning_rate == 3e-4 and config.gradient_checkpointing and config.save_strategy == "epoch"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sft", "rft", "-o", "out", "--lr-scheduler-type", "no-such-schedule"])


def test_python_api_takes_trl_fields_over_spct_defaults(tmp_path):
    config = sft_config(tmp_path, {"learning_rate": 1e-4, "use_cpu": True})
    assert config.learning_rate == 1e-4 and config.num_train_epochs == 2.0 and config.max_length == 4096
    config = grpo_config(RLSettings(prompts_per_step=3), tmp_path, {"use_cpu": True})
    assert config.per_device_train_batch_size == 12 and config.use_vllm is False and config.beta == 0.08


def test_help_lists_trl_fields_in_one_line_each(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rl", "--help"])
    text = capsys.readouterr().out
    assert "--lr, --learning-rate FLOAT" in text and "--vllm-tp, --vllm-tensor-parallel-size INT" in text
    assert "--learning_rate" not in text  # TRL's underscore spelling works, listed once as its dashed twin
    assert "--warmup-steps FLOAT" in text and "(default: 0.08)" in text


def test_trl_fields_from_yaml_and_flags_are_typed_and_win(tmp_path):
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text("lr_scheduler_type: cosine\nbeta: 0.01\n")
    args = build_parser().parse_args(["rl", "data.jsonl", "-o", "out", "--config", str(cfg), "--beta", "0.5",
                                      "--trl", "loss_type=dr_grpo", "--trl", "warmup_steps=0.1", "--trl", "beta=0.02"])
    overrides = trl_overrides(args, GRPOConfig)
    assert overrides == {"lr_scheduler_type": "cosine", "beta": 0.02, "loss_type": "dr_grpo", "warmup_steps": 0.1}
    config = grpo_config(RLSettings(), tmp_path / "o", {**trl_fields(args, GRPOConfig), "use_cpu": True})
    assert config.loss_type == "dr_grpo" and config.beta == 0.02 and config.num_generations == 4  # spct's own stays


def test_sft_passthrough_and_unknown_fields():
    args = build_parser().parse_args(["sft", "rft_dir", "-o", "out", "--trl", "packing=true", "--trl", "max_grad_norm=0.5"])
    overrides = trl_overrides(args, SFTConfig)
    assert overrides == {"packing": True, "max_grad_norm": 0.5}
    assert sft_config("o", {**trl_fields(args, SFTConfig), "use_cpu": True}).packing is True
    with pytest.raises(InputError, match="unknown TRL SFTConfig field.*no_such"):
        trl_overrides(argparse.Namespace(config=None, trl=["no_such=1"]), SFTConfig)
    with pytest.raises(InputError, match="FIELD=VALUE"):
        trl_overrides(argparse.Namespace(config=None, trl=["packing"]), SFTConfig)
