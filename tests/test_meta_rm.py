"""The meta RM on the real embedded encoder, and adaptive / meta-guided judging with the real generator."""

from __future__ import annotations

import json

import pytest

from spct.backends.fake import FakeBackend
from spct.cli import main
from spct.data import Example
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.meta_rm import METRICS_FILE, MetaRM, meta_features, meta_row, split_by_example


def _labelled_judgments(n_examples: int = 12) -> list[dict]:
    """Fake judgments of real-looking pairs: the fake prefers the longer response, so about half are right."""
    examples = [Example(f"e{i}", f"Question {i}?", ["a detailed helpful answer " * (1 + i % 3), "short"], best=[i % 2])
                for i in range(n_examples)]
    grm = GenerativeRewardModel(FakeBackend(), JudgeConfig())
    return [meta_row(ex, j) for ex, js in zip(examples, grm.sample(examples, 2), strict=True) for j in js]


def test_split_holds_out_whole_examples():
    rows = [(Example(**r["example"]), None, r["label"]) for r in _labelled_judgments()]
    train, held = split_by_example(rows, 0.25, seed=0)
    assert {ex.id for ex, _, _ in train}.isdisjoint({ex.id for ex, _, _ in held})
    assert len({ex.id for ex, _, _ in held}) == 3


def test_features_show_responses_in_the_judgments_order():
    ex = Example("e", "Why?", ["first answer", "second answer"], best=[0])
    [[j]] = GenerativeRewardModel(FakeBackend(), JudgeConfig(seed=3)).sample([ex], 1)
    head, body = meta_features(ex, j)
    assert head.startswith("Scores as shown: ")
    shown_first = ex.responses[j.order[0]]
    assert body.index(shown_first) < body.index(ex.responses[j.order[1]])


@pytest.mark.slow
def test_train_meta_rm_on_the_embedded_encoder_and_load_it_back(tmp_path):
    data = tmp_path / "meta.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _labelled_judgments()))
    out = tmp_path / "meta_rm"
    assert main(["train-meta", str(data), "-o", str(out), "--max-steps", "3", "--batch-size", "8",
                 "--max-length", "128", "--eval-fraction", "0.25"]) == 0
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["steps"] == 3 and metrics["held_out"]["n"] == 6
    assert 0 <= metrics["held_out"]["accuracy"] <= 1

    meta = MetaRM(out)
    assert meta.max_length == 128
    ex = Example("q", "Is the sky blue?", ["Yes, on a clear day it is.", "No."], best=[0])
    judgments = GenerativeRewardModel(FakeBackend(), JudgeConfig()).sample([ex], 3)[0]
    scores = meta.score(ex, judgments)
    assert len(scores) == 3 and all(0 < s < 1 for s in scores)
    assert meta.score(ex, judgments) == pytest.approx(scores)  # deterministic once loaded

    # Meta-guided voting with the real generator and the trained meta RM, through the CLI.
    src = tmp_path / "pairs.jsonl"
    src.write_text(json.dumps(ex.to_dict()) + "\n")
    judged = tmp_path / "judged.jsonl"
    assert main(["judge", str(src), "-o", str(judged), "--k", "2", "--max-new-tokens", "16", "--meta-rm", str(out),
                 "--k-meta", "1", "--policy", "voting", "--no-progress"]) == 0
    [reward] = [json.loads(line) for line in judged.read_text().splitlines()]
    assert reward["k"] == 2 and reward["used"] <= 1
    assert all(j["meta"] is not None for j in reward["judgments"])
    assert main(["judge", str(src), "-o", str(judged), "--meta-rm", str(tmp_path / "nowhere")]) == 2


@pytest.mark.slow
def test_adaptive_judging_with_the_embedded_generator(embedded_backend, pair_examples):
    model = GenerativeRewardModel(embedded_backend, JudgeConfig(max_new_tokens=16, adaptive="exact", round_size=1))
    rewards = model.judge(pair_examples[:1], k=2)
    [r] = rewards
    assert 1 <= r.k <= 2 and len(r.judgments) == r.k
    assert all(j.ok for j in r.judgments)  # the constrained score line always parses
    assert r.confidence is not None and 0 <= r.confidence <= 1
