"""What spct's judging layer costs: its judging call against the raw engine call on the same token ids (issue 21.5).

    nice -n 5 .venv/bin/python bench/judging_overhead.py --n 8 --max-new-tokens 64 --batch-size 8 --repeats 3
    nice -n 5 /work/venv-vllm/bin/python bench/judging_overhead.py --engine vllm ...   # vLLM's CPU build

N HH-RLHF pairs, one greedy judgment each at a fixed token budget:

- spct: `GenerativeRewardModel.judge` (prompt rendering, the engine's batching, parsing, the
  forced score line where the model did not write one);
- raw: the engine's own call on exactly the token ids spct's engine encoded. transformers:
  `model.generate` on the same batches (the engine's rule: prompts by length, `--batch-size` a
  batch), each batch run for as many steps as spct's free phase ran in it; vLLM: one
  `LLM.generate` with each prompt made to produce as many tokens as it did under spct.
  `min_new_tokens` / `min_tokens` keep an end-of-sequence token from stopping it sooner.

So raw does the free phase's token work and nothing else: spct/raw is what rendering, parsing,
batching logic and the forced score lines add (`--no-constrain` leaves the forced lines out).
The ids and counts are recorded on one untimed spct run; then spct and raw take turns `--repeats`
times after an untimed warm-up of each. `replayed_same_text` counts the prompts whose raw output
begins with spct's free text: the check that raw replayed what spct sent. The load average is
read before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEMO = Path(__file__).resolve().parents[1] / "src" / "spct" / "assets" / "hh_rlhf_demo.jsonl"


def record_free_phase(backend: Any, judge: Callable[[], Any]) -> list[tuple[list[int], int, str]]:
    """Run `judge` once and return, per request its engine saw, (prompt ids, free-phase new tokens, free text).

    Read inside `generate_free`, before `Backend.generate` appends forced score lines to the same
    Generation objects.
    """
    seen: list[tuple[list[int], int, str]] = []
    original = backend.generate_free

    def recording(requests: list) -> list:
        out = original(requests)
        for req, gens in zip(requests, out, strict=True):
            if req.n != 1:
                raise SystemExit("this bench compares greedy single judgments (n = 1)")
            seen.append((backend.encode_chat(req.messages), gens[0].new_tokens, gens[0].text))
        return out

    backend.generate_free = recording
    try:
        judge()
    finally:
        del backend.generate_free  # the class's method again
    return seen


def raw_transformers(backend: Any, rows: list[tuple[list[int], int, str]]) -> Callable[[], tuple[int, list[str]]]:
    """`model.generate` on spct's prompt ids and batches; returns (tokens generated, text per prompt in `rows` order)."""
    import torch

    order = sorted(range(len(rows)), key=lambda i: (len(rows[i][0]), i))
    batches = [order[b : b + backend.batch_size] for b in range(0, len(order), backend.batch_size)]
    tok = backend.tokenizer

    @torch.inference_mode()
    def run() -> tuple[int, list[str]]:
        texts, tokens = [""] * len(rows), 0
        for batch in batches:
            steps = max(rows[i][1] for i in batch)
            enc = tok.pad({"input_ids": [rows[i][0] for i in batch]}, return_tensors="pt").to(backend.device)
            out = backend.model.generate(**enc, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                                         temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
            new = out[:, enc["input_ids"].shape[1] :]
            tokens += new.numel()
            for i, row in zip(batch, new, strict=True):
                texts[i] = tok.decode(row, skip_special_tokens=True)
        return tokens, texts

    return run


def raw_vllm(backend: Any, rows: list[tuple[list[int], int, str]]) -> Callable[[], tuple[int, list[str]]]:
    """One `LLM.generate` on spct's prompt ids, each held to the tokens it produced under spct."""
    from vllm import SamplingParams

    if backend.llm is None:
        raise SystemExit("run the vLLM variant with one replica (data_parallel_size 1)")
    prompts = [{"prompt_token_ids": ids} for ids, _, _ in rows]
    params = [SamplingParams(temperature=0.0, max_tokens=max(n, 1), min_tokens=max(n, 1)) for _, n, _ in rows]

    def run() -> tuple[int, list[str]]:
        outs = backend.llm.generate(prompts, params, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outs), [o.outputs[0].text for o in outs]

    return run


def vllm_device() -> str:
    from vllm.platforms import current_platform

    return current_platform.device_type


def timed(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=("transformers", "vllm"), default="transformers")
    ap.add_argument("--model", default="spct-grm-135m", help="embedded judge (default), a model folder or a hub id")
    ap.add_argument("--data", default=str(DEMO), help="pairs (JSONL or .jsonl.gz); default: the 8 shipped HH-RLHF pairs")
    ap.add_argument("--n", type=int, default=8, help="pairs, one greedy judgment each (default: 8)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8, help="sequences per generate call, spct's and raw's")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds, spct and raw taking turns")
    ap.add_argument("--no-constrain", dest="constrain", action="store_false", help="no forced score line")
    ap.add_argument("--device", default=None, help="transformers: cpu or cuda")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()

    t0 = time.perf_counter()
    import torch

    from spct.backends import EngineConfig, load_backend
    from spct.data import read_examples
    from spct.judge import GenerativeRewardModel, JudgeConfig

    examples, _ = read_examples(args.data)
    examples = examples[: args.n]
    if len({ex.id for ex in examples}) < args.n:
        raise SystemExit(f"{args.data} holds {len(examples)} pairs, fewer than --n {args.n}")
    config = EngineConfig(args.model, args.engine, device=args.device, gen_batch_size=args.batch_size, dtype=args.dtype)
    backend = load_backend(config, **({"max_model_len": 4096} if args.engine == "vllm" else {}))
    grm = GenerativeRewardModel(backend, JudgeConfig(k=1, max_new_tokens=args.max_new_tokens, constrain=args.constrain,
                                                     retries=0))

    def spct() -> list:
        return grm.judge(examples, batch_size=len(examples))  # one engine call: the engine batches as it does

    rows = record_free_phase(backend, spct)
    raw = (raw_vllm if args.engine == "vllm" else raw_transformers)(backend, rows)
    on_gpu = args.engine == "transformers" and str(backend.device).startswith("cuda")
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)

    raw()  # warm-up (spct's was the recording run)
    load_before = os.getloadavg()[0]
    spct_rounds, raw_rounds = [], []
    for _ in range(args.repeats):
        t, rewards = timed(spct, sync)
        spct_rounds.append(t)
        t, (raw_tokens, raw_texts) = timed(raw, sync)
        raw_rounds.append(t)
    judgments = [j for r in rewards for j in r.judgments]
    spct_s, raw_s = statistics.median(spct_rounds), statistics.median(raw_rounds)
    result = {
        "bench": "judging_overhead", "engine": args.engine, "model": args.model,
        "device": str(backend.device) if args.engine == "transformers" else vllm_device(), "torch_threads": torch.get_num_threads(),
        "pairs": len(examples), "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
        "repeats": args.repeats, "constrain": args.constrain,
        "spct_s": round(spct_s, 3), "raw_s": round(raw_s, 3), "spct_over_raw": round(spct_s / raw_s, 3),
        "spct_rounds_s": [round(t, 3) for t in spct_rounds], "raw_rounds_s": [round(t, 3) for t in raw_rounds],
        # raw_tokens: transformers runs every row of a batch for the batch's steps, as spct's engine does
        "free_tokens": sum(n for _, n, _ in rows), "raw_tokens": raw_tokens,
        "forced": sum(j.forced for j in judgments), "parsed": sum(j.ok for j in judgments),
        "replayed_same_text": sum(t.startswith(text) for t, (_, _, text) in zip(raw_texts, rows, strict=True)),
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        "total_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    main()
