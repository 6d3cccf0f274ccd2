"""The transformers engine prefills a prompt once for all the samples that show it, and changes no output by it."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from _tiny import tiny_engine

from spct.backends.base import GenerationRequest, ScoreConstraint
from spct.backends.transformers import TransformersBackend
from spct.data import read_examples
from spct.judge import GenerativeRewardModel, JudgeConfig

HH = Path(__file__).parent.parent / "src" / "spct" / "assets" / "hh_rlhf_demo.jsonl"
PAIR = ScoreConstraint(2)


def _requests(temperature: float) -> list[GenerationRequest]:
    """Two prompts of different lengths, three samples of each, interleaved as a voting request sends them."""
    prompts = ["judge this short one", "judge this rather longer one, with more to read"]
    return [GenerationRequest([{"role": "user", "content": prompts[s % 2]}], n=1, temperature=temperature,
                              max_new_tokens=6, seed=11 * s, constraint=PAIR) for s in range(6)]


def _spied(engine):
    """The engine, recording each shared prefill's (distinct prompts, rows) and each `generate` call's batch size."""
    prefills: list[tuple[int, int]] = []
    generates: list[int] = []
    prefill, generate = engine._shared_prefill, engine.model.generate
    engine._shared_prefill = lambda ids, mask, first, where: prefills.append((len(first), len(where))) or prefill(
        ids, mask, first, where)
    engine.model.generate = lambda **kw: generates.append(kw["input_ids"].shape[0]) or generate(**kw)
    return engine, prefills, generates


def _texts(gens) -> list[str]:
    return [g.text for row in gens for g in row]


def test_greedy_output_is_the_same_with_and_without_sharing_and_the_forced_lines_are_one_batch():
    plain = tiny_engine(batch_size=8)
    plain.share_prefill = False
    expected = plain.generate(_requests(0.0))
    engine, prefills, generates = _spied(tiny_engine(batch_size=8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shared = engine.generate(_requests(0.0))
    assert _texts(shared) == _texts(expected)
    assert [g.new_tokens for row in shared for g in row] == [g.new_tokens for row in expected for g in row]
    assert all(g.forced for row in shared for g in row)  # a random model never writes its own score line
    assert prefills == [(2, 6)]  # six samples, two distinct prompts read once each
    assert generates == [6, 6]  # the free batch, then all six forced lines in one call
    assert not [w for w in caught if "past_key_values" in str(w.message)]


def test_sampled_output_keeps_its_shape_and_is_reproducible():
    plain = tiny_engine(batch_size=8)
    plain.share_prefill = False
    expected = plain.generate(_requests(0.7))
    engine, prefills, _ = _spied(tiny_engine(batch_size=8))
    shared, again = engine.generate(_requests(0.7)), engine.generate(_requests(0.7))
    assert [len(row) for row in shared] == [len(row) for row in expected] == [1] * 6
    assert all(g.text.endswith("}") and g.forced for row in shared for g in row)
    assert _texts(shared) == _texts(again) and prefills == [(2, 6), (2, 6)]


def test_batches_keep_samples_of_one_prompt_together():
    engine = tiny_engine(batch_size=4)
    rows = [(r, engine.encode_chat(r.messages)) for r in _requests(0.7)]
    assert engine._batches(rows) == [[0, 2, 4, 1], [3, 5]]  # the shorter prompt first, its samples side by side


def _judgments(sharing: bool, **sample) -> tuple[list[tuple[str, list[int] | None]], list[tuple[int, int]]]:
    """Four judgments of each of two HH pairs, and the shared prefills that made them."""
    engine, prefills, _ = _spied(tiny_engine(context=4096, batch_size=8))
    engine.share_prefill = sharing
    judge = GenerativeRewardModel(engine, JudgeConfig(max_new_tokens=8))
    examples = read_examples(HH)[0][:2]
    return [(j.text, j.scores) for per_example in judge.sample(examples, 4, **sample) for j in per_example], prefills


@pytest.mark.parametrize("sample", [{"greedy": True, "orders": "both"}, {"greedy": False}], ids=["greedy", "sampled"])
def test_judgments_through_the_judge(sample):
    shared, prefills = _judgments(True, **sample)
    assert len(shared) == 8 and all(scores is not None for _, scores in shared)
    assert sum(rows for _, rows in prefills) == 8 and sum(distinct for distinct, _ in prefills) <= 4  # 2 pairs x 2 orders
    if sample["greedy"]:
        plain, none = _judgments(False, **sample)
        assert shared == plain and not none


@pytest.mark.slow
def test_embedded_model_judges_the_same_with_and_without_sharing():
    # CPU float32: on a GPU in bf16 a different batch shape may pick different kernels, so equal
    # greedy text is not promised there (the same holds for any change of batch composition).
    engine = TransformersBackend("smollm2-135m", device="cpu", batch_size=8)
    examples = read_examples(HH)[0][:4]

    def judged(sharing: bool, **sample) -> list[tuple[str, list[int] | None, bool]]:
        engine.share_prefill = sharing
        judge = GenerativeRewardModel(engine, JudgeConfig(max_new_tokens=64))
        return [(j.text, j.scores, j.forced) for per_example in judge.sample(examples, 4, **sample) for j in per_example]

    greedy = judged(True, greedy=True, orders="both")
    assert greedy == judged(False, greedy=True, orders="both")
    sampled, plain = judged(True, greedy=False), judged(False, greedy=False)
    assert len(sampled) == len(plain) == 16 and all(scores is not None for _, scores, _ in sampled)
