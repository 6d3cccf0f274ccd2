"""Sizing vLLM's KV cache on CPU (issue 21): plain arithmetic, no vLLM needed."""

from __future__ import annotations

import argparse
import logging
from types import SimpleNamespace

import pytest

from spct.backends.base import BackendError
from spct.backends.kv_cache import (
    CPU_BLOCK_TOKENS,
    ENV_VAR,
    GiB,
    KVCachePlan,
    available_memory,
    choose_kv_cache,
    dtype_bytes,
    first_cpu_node,
    kv_bytes_per_token,
    node_available_memory,
    plan_kv_cache,
    stored_dtype,
    weight_file_bytes,
    weights_in_memory,
)

# SmolLM2-135M's attention: 30 layers, 9 query heads sharing 3 KV heads of 64 dimensions.
SMOLLM2 = SimpleNamespace(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                          hidden_size=576, dtype="float32")


def test_kv_bytes_per_token_counts_a_key_and_a_value_per_kv_head_and_layer():
    assert kv_bytes_per_token(SMOLLM2, 4) == 2 * 30 * 3 * 64 * 4 == 46080
    # Older configs: no head_dim (hidden / heads) and no num_key_value_heads (one KV head per head).
    plain = SimpleNamespace(num_hidden_layers=2, num_attention_heads=4, hidden_size=256, head_dim=None)
    assert kv_bytes_per_token(plain, 2) == 2 * 2 * 4 * 64 * 2


def test_kv_bytes_per_token_of_latent_attention_and_of_a_nested_text_config():
    # DeepSeek-V2-Lite (DeepSeek-GRM-16B's base): one 512-wide latent plus a 64-wide rotary key per layer.
    mla = SimpleNamespace(num_hidden_layers=27, kv_lora_rank=512, qk_rope_head_dim=64, num_attention_heads=16)
    assert kv_bytes_per_token(mla, 2) == 27 * 576 * 2
    wrapper = SimpleNamespace(get_text_config=lambda: SMOLLM2)  # multimodal configs keep the LM in text_config
    assert kv_bytes_per_token(wrapper, 2) == kv_bytes_per_token(SMOLLM2, 2)


def test_dtype_bytes_reads_vllm_and_torch_spellings():
    torch = pytest.importorskip("torch")
    assert dtype_bytes("float32") == dtype_bytes(torch.float32) == 4
    assert dtype_bytes("bfloat16") == dtype_bytes(torch.float16) == 2
    assert dtype_bytes("auto") == 2  # vLLM on CPU: 16-bit as stored, float32 cast down
    assert dtype_bytes("fp8_e5m2") == 1
    assert dtype_bytes("something-new") == 4  # unknown: the larger guess
    assert stored_dtype(SMOLLM2) == "float32"
    assert stored_dtype(SimpleNamespace(torch_dtype=torch.bfloat16)) == "bfloat16"
    assert stored_dtype(SimpleNamespace()) is None


def test_the_issue_machine_gets_a_bounded_cache_not_nine_tenths_of_its_memory():
    """24 GiB machine, 17.5 GiB available: vLLM alone took 19.9 GiB; the plan keeps half the spare free."""
    plan = plan_kv_cache(bytes_per_token=46080, max_model_len=4096, max_num_seqs=256,
                         available=int(17.5 * GiB), weights=GiB // 2)
    assert plan.bytes == int(0.5 * (17.5 - 0.5 - 3) * GiB) == 7 * GiB
    assert "50% of the 14.00 GiB spare" in plan.reason and "fewer sequences" in plan.reason


def test_a_batch_that_fits_gets_exactly_what_it_needs():
    plan = plan_kv_cache(bytes_per_token=46080, max_model_len=1024, max_num_seqs=8,
                         available=64 * GiB, weights=GiB)
    assert plan.bytes == 46080 * 8 * 1024
    assert plan.reason.startswith("the whole batch, 8 x 1024 tokens at 45.0 KiB a token")


def test_with_too_little_memory_the_floor_is_one_full_length_sequence():
    plan = plan_kv_cache(bytes_per_token=46080, max_model_len=4096, max_num_seqs=256,
                         available=3 * GiB, weights=GiB)
    assert plan.bytes == 46080 * (4096 + 2 * CPU_BLOCK_TOKENS)
    assert plan.reason.startswith("floor: one 4096-token sequence") and "lower max_model_len" in plan.reason
    wider = plan_kv_cache(bytes_per_token=46080, max_model_len=4000, max_num_seqs=256, available=3 * GiB,
                          weights=GiB, block_tokens=128)  # a block size set by hand: 4000 tokens fill 32 blocks
    assert wider.bytes == 46080 * (32 + 2) * 128


def test_the_share_and_reserve_are_parameters():
    plan = plan_kv_cache(bytes_per_token=1024, max_model_len=2048, max_num_seqs=10_000,
                         available=10 * GiB, weights=0, share=0.25, reserve=2 * GiB)
    assert plan.bytes == 2 * GiB


def test_available_memory_honours_a_cgroup_limit():
    assert available_memory(8 * GiB, None, None) == 8 * GiB  # no cgroup v2 files
    assert available_memory(8 * GiB, "max\n", "123\n") == 8 * GiB  # no limit set
    assert available_memory(8 * GiB, f"{6 * GiB}\n", f"{2 * GiB}\n") == 4 * GiB
    assert available_memory(8 * GiB, f"{2 * GiB}\n", f"{3 * GiB}\n") == 0  # over its limit already


NODE0 = """Node 0 MemTotal:       11757340 kB
Node 0 MemFree:         7256600 kB
Node 0 MemUsed:         4500740 kB
Node 0 Active(file):     100000 kB
Node 0 Inactive(file):  1000000 kB
Node 0 SReclaimable:      50000 kB
"""


def test_the_numa_node_room_is_counted_as_vllm_counts_it():
    """vLLM's CPU worker refuses a cache larger than its node's free + file + reclaimable memory (machine: node 0
    held 11 of 24 GiB, and a cache sized from MemAvailable did not start)."""
    assert node_available_memory(NODE0) == (7256600 + 100000 + 1000000 + 50000) * 1024
    assert node_available_memory("") == 0


def test_the_first_cpus_node_is_read_from_its_sysfs_entry():
    listing = {"/sys/devices/system/cpu/cpu0": ["cache", "node1", "topology"], "/sys/devices/system/cpu/cpu3": ["cache"]}
    assert first_cpu_node(0, lambda path: listing.get(path, [])) == 1
    assert first_cpu_node(3, lambda path: listing.get(path, [])) is None  # no NUMA entry: the machine's figure stands


def test_weight_files_count_what_vllm_loads(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "pytorch_model.bin").write_bytes(b"x" * 70)  # ignored next to safetensors
    (tmp_path / "config.json").write_text("{}")
    assert weight_file_bytes(tmp_path) == 100
    (tmp_path / "model.safetensors").unlink()
    assert weight_file_bytes(tmp_path) == 70
    (tmp_path / "m.Q4_1.gguf").write_bytes(b"x" * 30)
    assert weight_file_bytes(tmp_path, "m.Q4_1.gguf") == 30
    (tmp_path / "not-downloaded").mkdir()
    assert weight_file_bytes(tmp_path / "not-downloaded") == 0


def test_weights_in_memory_follow_the_dtype_vllm_runs():
    assert weights_in_memory(400, "float32", "bfloat16", quantized=False) == 200
    assert weights_in_memory(400, "float32", "auto", quantized=False) == 200
    assert weights_in_memory(200, "bfloat16", "float32", quantized=False) == 400
    assert weights_in_memory(200, "bfloat16", "float32", quantized=True) == 200  # GGUF stays quantized
    assert weights_in_memory(200, None, "float32", quantized=False) == 200


def _choose(**kw):
    calls = []

    def plan() -> KVCachePlan:
        calls.append(1)
        return KVCachePlan(6 * GiB, "why")

    options = {"kv_cache_gib": None, "engine_args": {}, "environ": {}, "is_cpu": True, "supports_bytes_arg": True,
               "workers": 1, "plan": plan, **kw}
    return choose_kv_cache(**options), len(calls)


def test_choose_kv_cache_on_cpu_uses_the_plan_split_over_workers():
    assert _choose() == (({"kv_cache_memory_bytes": 6 * GiB}, "6.00 GiB: why"), 1)
    assert _choose(workers=2)[0][0] == {"kv_cache_memory_bytes": 3 * GiB}


def test_explicit_sizes_win_and_skip_the_plan():
    assert _choose(kv_cache_gib=1.5) == (({"kv_cache_memory_bytes": int(1.5 * GiB)}, "1.5 GiB, set by kv_cache_gib"), 0)
    assert _choose(kv_cache_gib=2, is_cpu=False)[0][0] == {"kv_cache_memory_bytes": 2 * GiB}
    assert _choose(engine_args={"kv_cache_memory_bytes": GiB}) == (({}, "1.00 GiB, set by kv_cache_memory_bytes"), 0)
    # A user's VLLM_CPU_KVCACHE_SPACE: vLLM applies it itself; spct adds nothing.
    assert _choose(environ={ENV_VAR: "3"}) == (({}, f"3 GiB, set by {ENV_VAR}"), 0)


def test_conflicts_and_old_vllm_are_reported():
    with pytest.raises(BackendError, match="both size the KV cache"):
        _choose(kv_cache_gib=2, environ={ENV_VAR: "3"})
    with pytest.raises(BackendError, match="no kv_cache_memory_bytes"):
        _choose(kv_cache_gib=2, supports_bytes_arg=False)
    assert _choose(supports_bytes_arg=False) == (({}, f"left to vLLM: this version has no kv_cache_memory_bytes "
                                                      f"({ENV_VAR} sets it)"), 0)


def test_on_gpus_vllm_keeps_sizing_the_cache():
    assert _choose(is_cpu=False) == (({}, None), 0)
    assert _choose(is_cpu=False, environ={ENV_VAR: "3"}) == (({}, None), 0)  # a CPU-only variable


def test_cli_hands_the_kv_cache_and_eager_options_to_the_vllm_engine():
    from spct.backends import EngineConfig
    from spct.cli.common import add_model_args
    from spct.settings import from_namespace

    def engine_options(args: argparse.Namespace) -> dict:
        return from_namespace(EngineConfig, args).engine_options()

    p = argparse.ArgumentParser()
    add_model_args(p)
    args = p.parse_args(["--engine", "vllm", "--kv-cache-gib", "2.5", "--enforce-eager"])
    assert engine_options(args) == {"tensor_parallel_size": 1, "data_parallel_size": 1,
                                    "kv_cache_gib": 2.5, "enforce_eager": True, "dtype": None}
    defaults = engine_options(p.parse_args(["--engine", "vllm"]))
    assert defaults["kv_cache_gib"] is None and defaults["enforce_eager"] is False
    with pytest.raises(SystemExit):
        p.parse_args(["--engine", "vllm", "--kv-cache-gib", "0"])


def test_the_vllm_engine_hands_the_chosen_size_to_vllm(monkeypatch, caplog):
    """The wiring, with vLLM's CPU build installed but no engine started (vllm.LLM is replaced)."""
    vllm = pytest.importorskip("vllm", reason="vLLM is not installed (scripts/setup_vllm_cpu.sh)")
    from vllm.platforms import current_platform

    from spct.backends import EngineConfig, load_backend
    from spct.backends.kv_cache import read_available_memory

    if not current_platform.is_cpu():
        pytest.skip("auto-sizing is for vLLM's CPU build")
    engine_args = {}
    monkeypatch.setattr(vllm, "LLM", lambda **kw: engine_args.update(kw))
    monkeypatch.delenv(ENV_VAR, raising=False)
    with caplog.at_level(logging.INFO, "spct.backends.vllm"):
        load_backend(EngineConfig("smollm2-135m", "vllm", enforce_eager=True), max_model_len=2048)
    assert 0 < engine_args["kv_cache_memory_bytes"] <= 0.5 * read_available_memory()
    assert engine_args["enforce_eager"] is True
    assert engine_args["block_size"] == CPU_BLOCK_TOKENS == 32  # the prefix cache reuses whole blocks (backends/vllm.py)
    assert "vLLM KV cache: " in caplog.text
    load_backend(EngineConfig("smollm2-135m", "vllm", kv_cache_gib=1.25))
    assert engine_args["kv_cache_memory_bytes"] == int(1.25 * GiB)
    load_backend(EngineConfig("smollm2-135m", "vllm", kv_cache_gib=1.25), block_size=128)
    assert engine_args["block_size"] == 128  # a block size asked for is kept

