"""`--engine auto`: the decision (every branch), its break-even arithmetic, and its wiring from the CLI, without vLLM."""

from __future__ import annotations

import json
import logging

import pytest

import spct.backends.auto as auto
import spct.backends.transformers as transformers_engine
import spct.backends.vllm as vllm_engine
from spct.backends import EngineConfig, load_backend
from spct.backends.auto import CPU_BREAK_EVEN, GPU_BREAK_EVEN, choose_engine, resolve_engine
from spct.backends.fake import FakeBackend
from spct.cli import build_parser, main
from spct.settings import from_namespace


def choose(model: str = "smollm2-135m", vllm: bool = True, llamacpp: bool = False, gpu: bool = False,
           judgments: int | None = None) -> str:
    return choose_engine(model, vllm=vllm, llamacpp=llamacpp, gpu=gpu, judgments=judgments).engine


def test_the_break_even_follows_from_the_measured_figures():
    t_t, s, r = auto.CPU_TRANSFORMERS_S_PER_JUDGMENT, auto.VLLM_STARTUP_S, auto.VLLM_SPEEDUP
    assert CPU_BREAK_EVEN == 40 and GPU_BREAK_EVEN == 2229
    for n, vllm_wins in ((CPU_BREAK_EVEN - 1, False), (CPU_BREAK_EVEN, True)):
        assert (n * t_t > s + n * t_t / r) is vllm_wins
    assert auto.break_even(1.0, startup_s=10.0, speedup=2.0) == 21  # n > 10 / 0.5


@pytest.mark.parametrize(("kwargs", "engine"), [
    ({"model": "/m/judge.gguf", "llamacpp": True}, "llamacpp"),
    ({"model": "/m/JUDGE.GGUF", "llamacpp": True, "gpu": True, "judgments": 10**6}, "llamacpp"),
    ({"model": "/m/judge.gguf", "llamacpp": False, "judgments": 10**6}, "transformers"),
    ({"vllm": False, "gpu": True, "judgments": 10**6}, "transformers"),
    ({"judgments": None, "gpu": True}, "vllm"),
    ({"judgments": None, "gpu": False}, "transformers"),
    ({"judgments": CPU_BREAK_EVEN - 1}, "transformers"),
    ({"judgments": CPU_BREAK_EVEN}, "vllm"),
    ({"judgments": CPU_BREAK_EVEN, "gpu": True}, "transformers"),
    ({"judgments": GPU_BREAK_EVEN, "gpu": True}, "vllm"),
])
def test_every_branch_of_the_decision(kwargs, engine):
    assert choose(**kwargs) == engine


def test_the_reason_names_the_job_size_and_the_threshold():
    reason = choose_engine("m", vllm=True, llamacpp=False, gpu=False, judgments=12).reason
    assert "12 judgments" in reason and str(CPU_BREAK_EVEN) in reason and "CPU" in reason


@pytest.fixture
def no_vllm(monkeypatch):
    monkeypatch.setattr(auto, "find_spec", lambda name: None)


def test_only_auto_is_resolved(monkeypatch):
    monkeypatch.setattr(auto, "find_spec", lambda name: pytest.fail("looked for an engine without --engine auto"))
    config = EngineConfig("m", "vllm")
    assert resolve_engine(config, 10) is config
    served = EngineConfig("openai:judge", "auto")
    assert resolve_engine(served).resolved_engine == "openai"


def test_auto_resolves_to_transformers_without_vllm_and_says_why(no_vllm, caplog):
    with caplog.at_level(logging.INFO, logger="spct.backends.auto"):
        config = resolve_engine(EngineConfig("smollm2-135m", "auto", gen_batch_size=3), judgments=10**6)
    assert config.engine == "transformers" and config.engine_options()["batch_size"] == 3
    assert caplog.messages == ["--engine auto: transformers (vLLM is not installed)"]


def test_device_cpu_rules_out_the_gpu():
    assert auto._gpu_present("cpu") is False


def test_load_backend_resolves_auto_with_the_size_unknown(monkeypatch, no_vllm):
    monkeypatch.setattr(transformers_engine, "TransformersBackend", lambda model, **options: FakeBackend())
    assert isinstance(load_backend(EngineConfig("smollm2-135m", "auto")), FakeBackend)


def test_engine_auto_parses_and_resolves_to_transformers_here(no_vllm):
    args = build_parser().parse_args(["judge", "in.jsonl", "-o", "out.jsonl", "--engine", "auto"])
    assert args.engine == "auto"
    assert resolve_engine(from_namespace(EngineConfig, args), judgments=10**6).engine == "transformers"


def write_pairs(path, n: int):
    path.write_text("".join(json.dumps({"id": f"q{i}", "query": "2+2?", "responses": ["4", "5"], "best": [0]}) + "\n"
                            for i in range(n)))
    return path


@pytest.mark.parametrize(("pairs", "engine"), [(3, "transformers"), (CPU_BREAK_EVEN // 2, "vllm")])
def test_spct_judge_sizes_the_job_for_auto(tmp_path, monkeypatch, caplog, pairs, engine):
    """`spct judge --k 2` on N pairs asks for 2N judgments: vLLM (when installed) from the CPU break-even on."""
    built = []
    monkeypatch.setattr(auto, "find_spec", lambda name: object() if name == "vllm" else None)
    monkeypatch.setattr(auto, "_gpu_present", lambda device: False)
    monkeypatch.setattr(transformers_engine, "TransformersBackend", lambda model, **o: built.append("transformers") or FakeBackend())
    monkeypatch.setattr(vllm_engine, "VLLMBackend", lambda model, **o: built.append("vllm") or FakeBackend())
    src = write_pairs(tmp_path / "in.jsonl", pairs)
    assert main(["judge", str(src), "-o", str(tmp_path / "out.jsonl"), "--engine", "auto", "--k", "2", "--no-progress"]) == 0
    assert built == [engine]
    assert f"--engine auto: {engine} ({2 * pairs} judgments" in caplog.text
