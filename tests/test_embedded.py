"""The judging core on the real embedded model (SmolLM2-135M, CPU): tiny settings, real behaviour."""

from __future__ import annotations

import json

import pytest

from spct.backends.base import GenerationRequest
from spct.backends.models import EMBEDDED, package_dir, resolve_model
from spct.backends.transformers import TransformersBackend
from spct.cli import main
from spct.data import Example
from spct.judge import GenerativeRewardModel, JudgeConfig

pytestmark = pytest.mark.slow

MIXED = [
    Example("two", "What is the capital of France?", ["Paris.", "Lyon."], best=[0]),
    Example("three", "Name a prime number.", ["4", "7", "9"], best=[1]),
    Example("one", "Say hello politely.", ["Hello, nice to meet you!"], ratings=[8]),
]


def test_spct_judge_end_to_end_writes_the_reward_schema(tmp_path, capsys):
    src, out = tmp_path / "pairs.jsonl", tmp_path / "judged.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in [
        {"id": "p1", "query": "What is 2 + 2?", "responses": ["4", "22"], "best": [0]},
        {"id": "p2", "prompt": "Give a synonym for 'big'.", "chosen": "Large.", "rejected": "Tiny."},
    ]) + "\n")
    argv = ["judge", str(src), "-o", str(out), "--k", "2", "--max-new-tokens", "16", "--no-progress"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p1", "p2"]
    for r in rows:  # the shipped judge is read as trained: each response alone, k = 2 each, by its expected score
        assert (r["k"], r["used"] + r["failed"], len(r["judgments"])) == (4, 4, 4)
        assert r["failed"] == 0  # the constrained score line always parses
        assert r["aggregate"] == "mean" and len(r["rewards"]) == 2 and all(1 <= v <= 10 for v in r["rewards"])
        assert r["best"] in (0, 1) and isinstance(r["correct"], bool)  # expected scores do not tie
        assert sorted(j["id"] for j in r["judgments"]) == [f"{r['id']}/0"] * 2 + [f"{r['id']}/1"] * 2
        for j in r["judgments"]:
            assert j["order"] == [0] and len(j["scores"]) == 1 and 1 <= j["expected"][0] <= 10
            assert j["text"].rstrip().endswith("}") and isinstance(j["forced"], bool)
    err = capsys.readouterr().err
    assert "2 judged" in err and "--policy pointwise, --readout anchored" in err
    assert main(argv) == 0 and len(out.read_text().splitlines()) == 2  # resumes, no duplicates


def test_constrained_score_line_always_parses_and_is_reproducible(embedded_backend):
    examples = MIXED[1:]  # three responses, and a single one
    grm = GenerativeRewardModel(embedded_backend, JudgeConfig(k=2, max_new_tokens=8, seed=5))
    rewards = grm.judge(examples)
    for ex, r in zip(examples, rewards, strict=True):
        assert r.failed == 0 and r.used == 2
        for j in r.judgments:
            assert j.ok and len(j.scores) == len(ex.responses) and all(1 <= s <= 10 for s in j.scores)
            assert j.text.rstrip().endswith("}")
    # Same inputs, settings and seed: the same judgments (sampled text depends on the batch, so same batch).
    again = GenerativeRewardModel(embedded_backend, JudgeConfig(k=2, max_new_tokens=8, seed=5)).judge(examples)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in rewards]


def test_unconstrained_failures_are_counted(embedded_backend):
    grm = GenerativeRewardModel(embedded_backend, JudgeConfig(k=2, max_new_tokens=8, constrain=False))
    [r] = grm.judge(MIXED[:1])
    assert r.used + r.failed == 2
    assert all(j.forced is False for j in r.judgments)
    assert all((j.scores is None) == (j.error is not None) for j in r.judgments)


def test_a_gguf_file_and_a_local_folder_load_as_models():
    module, gguf, pip_name = EMBEDDED["smollm2-135m"]
    folder, _ = resolve_model("smollm2-135m")  # the converted local HF folder
    req = GenerationRequest([{"role": "user", "content": "Say one word."}], max_new_tokens=4)
    texts = []
    for spec in (str(package_dir(module, pip_name) / gguf), folder):
        backend = TransformersBackend(spec)
        assert backend.context_length == 8192
        [[gen]] = backend.generate([req])
        texts.append(gen.text)
    assert texts[0] == texts[1] and texts[0].strip()  # same weights either way
