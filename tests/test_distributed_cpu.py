"""`spct sft` and `spct rl` under `accelerate launch` with 2 CPU processes (gloo) on a tiny model: the
distributed path the multi-GPU recipes in docs/training.md rely on, run for real in about a minute.

Each process trains its share of the batch; only the main one writes the output folder and the
summary line, which must hold what a one-process run writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny import tiny_model_dir

from spct.cli import main

ROOT = Path(__file__).resolve().parent.parent
CPU_CONFIG = ROOT / "configs" / "accelerate" / "cpu-2proc.yaml"

needs_gloo = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is unavailable")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny model, 4 labelled pairs, and SFT rows from them (`spct rft` with the fake engine)."""
    pytest.importorskip("trl")
    root = tmp_path_factory.mktemp("tiny")
    tiny_model_dir(root / "model")
    pairs = [{"id": f"p{i}", "query": f"Question {i}?", "responses": ["a long and careful right answer", "no"],
              "best": [0]} for i in range(4)]
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    assert main(["rft", str(root / "pairs.jsonl"), "-o", str(root / "rft"), "--engine", "fake", "--keep-too-easy",
                 "--no-progress"]) == 0
    return root


def launch(*args: str) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file cpu-2proc.yaml -m spct ARGS` on this checkout's sources."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_CONFIG),
                           "-m", "spct", *args], capture_output=True, text=True, env=env, timeout=600)


def summaries(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith('{"')]


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


#: What a one-process run of each writes (a LoRA run saves the merged model and the adapter, no trainer state).
PLAIN = {"config.json", "generation_config.json", "model.safetensors", "log_history.json", "training_args.bin",
         "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
LORA = (PLAIN - {"training_args.bin"}) | {"adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                                          "adapter/README.md"}


def test_cpu_config_starts_two_processes():
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(CPU_CONFIG))
    # MULTI_GPU is accelerate's torchrun launcher; MULTI_CPU would start one process without mpirun
    assert cfg.distributed_type == "MULTI_GPU" and cfg.num_processes == 2 and cfg.num_machines == 1
    assert cfg.mixed_precision == "no"


def test_launch_whose_processes_cannot_join_is_refused(tiny, tmp_path, monkeypatch, capsys):
    # A process of a 2-process launch that is not given --cpu: with no device to join on, it would train
    # alone and write the same folder as the other. Refused before the model loads.
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["sft", str(tiny / "rft"), "-o", str(tmp_path / "sft"), "--model", str(tiny / "model")]) == 2
    err = capsys.readouterr().err
    assert "launched as 2 processes" in err and "--cpu" in err and "Traceback" not in err
    assert not (tmp_path / "sft").exists()


@pytest.mark.slow
@needs_gloo
def test_sft_lora_on_two_cpu_processes(tiny, tmp_path):
    out = tmp_path / "sft"
    proc = launch("sft", str(tiny / "rft"), "-o", str(out), "--model", str(tiny / "model"), "--cpu", "--lora",
                  "--lora-r", "4", "--max-steps", "2", "--batch-size", "1", "--grad-accum", "1", "--max-length", "1024",
                  "--logging-steps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [summary] = summaries(proc.stderr)  # printed by the main process only
    assert summary["processes"] == 2 and summary["steps"] == 2
    assert files(out) == LORA
    # each optimizer step saw one row per process
    assert [h["epoch"] * summary["rows"] for h in json.loads((out / "log_history.json").read_text())
            if "loss" in h] == pytest.approx([2, 4])


@pytest.mark.slow
@needs_gloo
def test_rl_on_two_cpu_processes(tiny, tmp_path):
    out = tmp_path / "rl"
    proc = launch("rl", str(tiny / "pairs.jsonl"), "-o", str(out), "--model", str(tiny / "model"), "--cpu",
                  "--max-steps", "2", "--grad-accum", "1", "--max-completion-length", "8", "--logging-steps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [summary] = summaries(proc.stderr)
    assert summary["processes"] == 2 and summary["steps"] == 2
    assert files(out) == PLAIN
    # one prompt (a group of 4 completions) per process per step: the 4 prompts are one epoch
    assert json.loads((out / "log_history.json").read_text())[-1]["epoch"] == pytest.approx(1.0)
