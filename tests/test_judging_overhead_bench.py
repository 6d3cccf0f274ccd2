"""bench/judging_overhead.py replays exactly what spct sent: same prompt ids, same token counts (tiny random model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from _tiny import tiny_engine

from spct.data import read_examples
from spct.judge import GenerativeRewardModel, JudgeConfig

BENCH = Path(__file__).resolve().parents[1] / "bench" / "judging_overhead.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("judging_overhead", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_raw_generate_replays_spcts_prompts_and_token_counts():
    bench = load_bench()
    engine = tiny_engine(context=8192, batch_size=2)
    examples, _ = read_examples(bench.DEMO)
    examples = examples[:3]
    grm = GenerativeRewardModel(engine, JudgeConfig(k=1, max_new_tokens=8))
    rows = bench.record_free_phase(engine, lambda: grm.judge(examples, batch_size=3))
    assert "generate_free" not in vars(engine)  # the recording hook is gone
    assert len(rows) == len(examples) and all(n > 0 for _, n, _ in rows)
    tokens, texts = bench.raw_transformers(engine, rows)()
    assert tokens >= sum(n for _, n, _ in rows)
    assert all(raw.startswith(text) for raw, (_, _, text) in zip(texts, rows, strict=True))
