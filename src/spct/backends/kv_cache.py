"""How much memory vLLM's CPU worker may take for its KV cache.

Left to itself, vLLM's CPU build (0.32) sizes the cache from the machine's *total* memory:
`gpu_memory_utilization` (0.9) of it, less what the worker already holds. On a 24 GiB machine
the worker took 19.9 GiB that way and was OOM-killed beside another job. So spct sizes the
cache itself, from what the engine can use and what the machine can spare now:

- wanted: every sequence the scheduler may hold at once at full length
  (max_num_seqs x max_model_len tokens x the model's KV bytes per token);
- ceiling: SHARE of the memory available now, after the model's weights and RESERVE for the
  engine's processes (the client, the engine core and the worker each hold torch and vLLM).
  "Available" is the least of the machine's MemAvailable, a cgroup's room, and the room on the
  NUMA node of the first CPU this process may run on: vLLM's worker checks the cache against
  that node alone and refuses to start when it is short (seen on a 24 GiB machine whose node 0
  holds 11 GiB);
- floor: one max_model_len sequence plus vLLM's null block, below which vLLM refuses to start.

The size is max(floor, min(wanted, ceiling)). A cache below `wanted` is no error: vLLM then
schedules fewer sequences at once. Everything here is plain arithmetic on numbers the caller
reads (model config, meminfo, cgroup), so it is tested without vLLM.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import BackendError

GiB = 1 << 30
SHARE = 0.5  # of the memory left after weights and RESERVE: the rest stays for other processes
RESERVE = 3 * GiB  # the engine's processes besides weights and cache: client, engine core, worker each load torch
CPU_BLOCK_TOKENS = 32  # spct's KV block on CPU (vLLM's own default is 128: backends/vllm.py says why)
VLLM_CPU_MAX_NUM_SEQS = 256  # vLLM's default max_num_seqs for the offline LLM on CPU (0.32)
ENV_VAR = "VLLM_CPU_KVCACHE_SPACE"  # vLLM's own CPU override, in whole GiB; it beats kv_cache_memory_bytes

_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2,
                "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1, "fp8_ds_mla": 1}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def dtype_bytes(dtype: Any) -> int:
    """Bytes per element of a vLLM dtype ('float32', torch.bfloat16, ...).

    'auto' is 2: on CPU vLLM runs 16-bit models as stored and casts float32 ones down to bf16.
    An unknown spelling counts 4, so the estimate errs towards a larger floor, not a smaller one.
    """
    name = str(dtype).removeprefix("torch.")
    return 2 if name == "auto" else _DTYPE_BYTES.get(name, 4)


def kv_bytes_per_token(config: Any, element_bytes: int) -> int:
    """KV-cache bytes one token takes over all layers, from a transformers config.

    Standard attention keeps a key and a value per KV head: 2 x layers x kv heads x head dim.
    Multi-head latent attention (DeepSeek-V2/V3, `kv_lora_rank` in the config) keeps one
    compressed latent plus the rotary key part per layer instead.
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = text.num_hidden_layers
    if getattr(text, "kv_lora_rank", None):
        return layers * (text.kv_lora_rank + text.qk_rope_head_dim) * element_bytes
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return 2 * layers * kv_heads * head_dim * element_bytes


def stored_dtype(config: Any) -> str | None:
    """The dtype the weights were saved in (`dtype`, or `torch_dtype` in older configs)."""
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return None if value is None else str(value).removeprefix("torch.")


def local_model_folder(path: str) -> Path | None:
    """The folder holding a model's files: `path` itself, or a hub id's cached snapshot (None if not downloaded)."""
    if Path(path).is_dir():
        return Path(path)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(path, local_files_only=True))
    except OSError:  # LocalEntryNotFoundError: vLLM will download the weights itself
        return None


def weight_file_bytes(folder: Path, gguf_file: str | None = None) -> int:
    """Bytes of the weight files vLLM will load from `folder` (0 when there are none yet).

    vLLM reads safetensors when a folder has them and .bin/.pt files only otherwise; a GGUF
    model is the one named file.
    """
    if gguf_file:
        return (folder / gguf_file).stat().st_size
    files = [f for f in folder.iterdir() if f.suffix in _WEIGHT_SUFFIXES and f.is_file()]
    safetensors = [f for f in files if f.suffix == ".safetensors"]
    return sum(f.stat().st_size for f in (safetensors or files))


def weights_in_memory(file_bytes: int, stored: str | None, run_dtype: Any, quantized: bool) -> int:
    """Memory the weights take once loaded: the files, rescaled when vLLM casts them.

    A float32 checkpoint run in bf16 takes half its file size; a bf16 one run in float32
    twice. Quantized files (GGUF) stay as they are.
    """
    if quantized or stored is None:
        return file_bytes
    return file_bytes * dtype_bytes(run_dtype) // dtype_bytes(stored)


def available_memory(meminfo_available: int, cgroup_max: str | None, cgroup_current: str | None) -> int:
    """Memory a new process can take: MemAvailable, capped by a cgroup v2 limit when one is set.

    In a container MemAvailable describes the host; `memory.max` - `memory.current` is what
    this cgroup may still allocate before its own OOM killer runs.
    """
    if cgroup_max is None or cgroup_current is None or cgroup_max.strip() == "max":
        return meminfo_available
    return max(0, min(meminfo_available, int(cgroup_max) - int(cgroup_current)))


def node_available_memory(node_meminfo: str) -> int:
    """Room on one NUMA node from its `/sys/devices/system/node/nodeN/meminfo`, counted as vLLM's CPU worker
    counts it: free memory plus file pages and reclaimable slab."""
    kib = {}
    for line in node_meminfo.splitlines():
        parts = line.split()  # "Node 0 MemFree:   7256600 kB"
        if len(parts) >= 4:
            kib[parts[2].rstrip(":")] = int(parts[3])
    return 1024 * sum(kib.get(key, 0) for key in ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable"))


def first_cpu_node(first_cpu: int, read: Callable[[str], list[str]]) -> int | None:
    """The NUMA node of CPU `first_cpu` (its `nodeN` entry under /sys/devices/system/cpu/cpuK), None if not shown."""
    nodes = [name for name in read(f"/sys/devices/system/cpu/cpu{first_cpu}") if name.startswith("node")]
    return int(nodes[0].removeprefix("node")) if nodes and nodes[0].removeprefix("node").isdigit() else None


def read_available_memory() -> int:
    """`available_memory` of this machine, capped by the room on the NUMA node vLLM's worker will check."""
    import os

    import psutil  # a dependency of accelerate and of vLLM

    def read(path: str) -> str | None:
        try:
            return Path(path).read_text()
        except OSError:
            return None

    def listdir(path: str) -> list[str]:
        try:
            return os.listdir(path)
        except OSError:
            return []

    room = available_memory(psutil.virtual_memory().available, read("/sys/fs/cgroup/memory.max"),
                           read("/sys/fs/cgroup/memory.current"))
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    node = first_cpu_node(cpus[0], listdir) if cpus else None
    meminfo = read(f"/sys/devices/system/node/node{node}/meminfo") if node is not None else None
    return min(room, node_available_memory(meminfo)) if meminfo else room


@dataclass(frozen=True)
class KVCachePlan:
    """A KV-cache size in bytes and the one-line reason for it (what the engine logs)."""

    bytes: int
    reason: str


def _gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB"


def plan_kv_cache(*, bytes_per_token: int, max_model_len: int, max_num_seqs: int, available: int,
                  weights: int, share: float = SHARE, reserve: int = RESERVE,
                  block_tokens: int = CPU_BLOCK_TOKENS) -> KVCachePlan:
    """max(floor, min(wanted, ceiling)) as in the module docstring, with the reason spelled out.

    The floor adds two blocks of `block_tokens` to the sequence: vLLM's null block and rounding.
    """
    wanted = bytes_per_token * max_num_seqs * max_model_len
    floor_tokens = (math.ceil(max_model_len / block_tokens) + 2) * block_tokens
    floor = bytes_per_token * floor_tokens
    spare = max(0, available - weights - reserve)
    ceiling = int(share * spare)
    per_token = f"{bytes_per_token / 1024:.1f} KiB a token"
    if wanted <= ceiling:
        return KVCachePlan(wanted, f"the whole batch, {max_num_seqs} x {max_model_len} tokens at {per_token}, "
                                   f"fits in {share:.0%} of the {_gib(spare)} spare")
    left = (f"{share:.0%} of the {_gib(spare)} spare ({_gib(available)} available - {_gib(weights)} weights "
            f"- {_gib(reserve)} reserve)")
    if floor <= ceiling:
        return KVCachePlan(ceiling, f"{left}; {max_num_seqs} x {max_model_len} tokens at {per_token} would take "
                                    f"{_gib(wanted)}, so fewer sequences run at once")
    return KVCachePlan(floor, f"floor: one {max_model_len}-token sequence at {per_token}, more than {left}; "
                              "lower max_model_len if memory runs out")


def choose_kv_cache(*, kv_cache_gib: float | None, engine_args: Mapping[str, Any], environ: Mapping[str, str],
                    is_cpu: bool, supports_bytes_arg: bool, workers: int,
                    plan: Callable[[], KVCachePlan]) -> tuple[dict[str, Any], str | None]:
    """(keywords to add to vLLM's engine args, the line to log) for one engine.

    In order: spct's explicit `kv_cache_gib`, a `kv_cache_memory_bytes` the caller passed to
    vLLM, a user's VLLM_CPU_KVCACHE_SPACE (vLLM applies it itself), then on CPU `plan()` (called
    only then: it reads the weight files and the memory), split over `workers` (vLLM's size is per worker: tensor-parallel ranks and replicas each take it).
    On GPUs, with nothing set, vLLM's `gpu_memory_utilization` stays in charge (None: no line).
    """
    if kv_cache_gib is not None:
        if is_cpu and environ.get(ENV_VAR):
            raise BackendError(f"kv_cache_gib={kv_cache_gib:g} and {ENV_VAR}={environ[ENV_VAR]} both size the "
                             "KV cache and vLLM would take the variable: set one")
        if not supports_bytes_arg:
            raise BackendError(f"this vLLM has no kv_cache_memory_bytes: size the cache with {ENV_VAR} (GiB) instead")
        return {"kv_cache_memory_bytes": int(kv_cache_gib * GiB)}, f"{kv_cache_gib:g} GiB, set by kv_cache_gib"
    if engine_args.get("kv_cache_memory_bytes") is not None:
        return {}, f"{_gib(engine_args['kv_cache_memory_bytes'])}, set by kv_cache_memory_bytes"
    if not is_cpu:
        return {}, None
    if environ.get(ENV_VAR):
        return {}, f"{environ[ENV_VAR]} GiB, set by {ENV_VAR}"
    if not supports_bytes_arg:
        return {}, f"left to vLLM: this version has no kv_cache_memory_bytes ({ENV_VAR} sets it)"
    chosen = plan()
    return {"kv_cache_memory_bytes": chosen.bytes // workers}, f"{_gib(chosen.bytes)}: {chosen.reason}"
