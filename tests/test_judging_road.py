"""The nine bugs and gaps that the bypasses around the judge hid (issue 11), each pinned by a test."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import spct.cli.common
from spct.backends.fake import FakeBackend
from spct.cli import build_parser, main
from spct.data import Example, InputError
from spct.eval.baselines import GRMMethod, VerdictMethod
from spct.eval.benchmarks import get_benchmark
from spct.eval.metrics import Item, auc_metrics
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.voting import is_correct

FIX = Path(__file__).parent / "fixtures" / "eval"
BOX = "Principles:\n- Correct (100%)\nAnalysis:\nok.\nScores: \\boxed{{{}}}"


def _shown(req) -> str:
    return req.messages[-1]["content"]


# 1. ROC-AUC on single responses ranks by the mean over valid samples, not the sum.
def test_single_response_reward_is_the_mean_over_valid_samples():
    seen: Counter = Counter()

    def script(req, s):
        if "GOOD" in _shown(req):  # one 8, then a failed parse
            seen["good"] += 1
            return BOX.format(8) if seen["good"] == 1 else "I cannot decide."
        return BOX.format(5)

    grm = GenerativeRewardModel(FakeBackend(script=script), JudgeConfig(constrain=False))
    good, bad = Example("g", "q", ["GOOD answer"], ratings=[1.0]), Example("b", "q", ["weak answer"], ratings=[0.0])
    scored = GRMMethod(grm).score([good, bad], [2])
    assert scored[0].rewards["2"] == [8.0] and scored[0].failed == 1  # the failure is counted apart
    assert scored[1].rewards["2"] == [5.0]
    items = [Item("all", s.rewards["2"], None, ex.ratings[0]) for ex, s in zip([good, bad], scored, strict=True)]
    assert auc_metrics(get_benchmark("realmistake"), items)["overall"] == 1.0  # the sum (8 < 10) gave 0.0


# 2. Multi-response items labelled only by ratings are scored by their top rating.
def test_eval_scores_ratings_only_items(tmp_path):
    data = tmp_path / "rated.jsonl"
    data.write_text("\n".join(json.dumps({"id": f"r{i}", "query": "q", "responses": ["a long and careful answer " * 2, "short"],
                                          "ratings": [4, 1]}) for i in range(3)) + "\n")
    out = tmp_path / "run"
    assert main(["eval", "--benchmark", "spct", "--data", str(data), "--engine", "fake", "-o", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["by_k"]["1"]["overall"] == 1.0  # the fake engine prefers the longer, higher-rated response


# 3. `--k 1 8`: k = 1 is a greedy judgment of its own, not sampled judgment 0.
def test_eval_k1_is_greedy_when_sampling_for_larger_k():
    backend = FakeBackend()
    ex = Example("e", "q", ["one answer", "another, longer answer"], best=[1])
    scored = GRMMethod(GenerativeRewardModel(backend, JudgeConfig(temperature=0.5))).score([ex], [1, 8])[0]
    temps = sorted({r.temperature for call in backend.calls for r in call})
    assert temps == [0.0, 0.5]
    assert [r.temperature for call in backend.calls for r in call].count(0.0) == 1
    assert sum(d.get("greedy", False) for d in scored.details) == 1 and scored.judgments == 9

    backend = FakeBackend()
    VerdictMethod(GenerativeRewardModel(backend, JudgeConfig(temperature=0.5)), pairwise=False).score([ex], [1, 4])
    assert [r.temperature for call in backend.calls for r in call].count(0.0) == 1


# 4. MetaRM@k in eval and in serving.
def test_eval_votes_over_the_meta_rm_top_judgments():
    # Samples alternate which response wins; the meta RM trusts only those where response 0 wins.
    def score(response: str, seed: int) -> int:
        return 9 if (seed % 2 == 0) == response.startswith("A") else 2

    def meta(example, judgments):
        return [1.0 if j.scores and j.scores[0] > j.scores[1] else 0.0 for j in judgments]

    ex = Example("m", "q", ["A answer", "B answer"], best=[0])
    plain = GRMMethod(GenerativeRewardModel(FakeBackend(score=score), JudgeConfig(k=4))).score([ex], [4])[0]
    guided = GRMMethod(GenerativeRewardModel(FakeBackend(score=score), JudgeConfig(k=4, k_meta=1), meta_scorer=meta)).score([ex], [4])[0]
    assert guided.rewards["4"][0] > guided.rewards["4"][1]
    assert sum(guided.rewards["4"]) < sum(plain.rewards["4"])  # one judgment voted, not four


def test_eval_and_serve_take_meta_rm(tmp_path, capsys):
    args = build_parser().parse_args(["serve", "--meta-rm", str(tmp_path), "--k", "4", "--k-meta", "2"])
    assert args.meta_rm == str(tmp_path) and args.k_meta == 2
    missing = str(tmp_path / "nope")
    assert main(["eval", "--benchmark", "judgebench", "--data", str(FIX / "judgebench.jsonl"), "--engine", "fake", "-o", str(tmp_path / "o"),
                 "--meta-rm", missing, "--k", "4"]) == 2
    assert "--meta-rm" in capsys.readouterr().err


# 5. `spct judge --adaptive`: rounds stop early; each line's k is the samples drawn.
@pytest.mark.parametrize("rule", ["exact", "bound"])
def test_judge_cli_adaptive(tmp_path, capsys, rule):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": "a", "query": "q", "responses": ["x" * 95, "y"], "best": [0]}) + "\n")
    assert main(["judge", str(src), "-o", str(out), "--engine", "fake", "--k", "8", "--adaptive", rule, "--no-progress"]) == 0
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    # A lead of 9 a sample: exact stops once 9m > 9(8 - m), at m = 5; bound stops sooner.
    assert (row["k"] == 5) if rule == "exact" else (2 <= row["k"] < 5)
    assert len(row["judgments"]) == row["k"] and row["correct"] is True
    assert f"drew {row['k']:.2f} of 8 samples" in capsys.readouterr().err


# 6. is pinned in tests/test_scaling.py::test_meta_data_cli_labels_and_resumes (hinted rows left out by default).


# 7. A single-response label on another scale is refused clearly, never compared by equality.
@pytest.mark.parametrize("rating", [0, 0.0, 4.5, 11])
def test_single_response_rating_off_the_score_scale_is_refused(tmp_path, capsys, rating):
    with pytest.raises(InputError, match="score scale"):
        is_correct([5], None, [rating])
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "s", "query": "q", "responses": ["r"], "ratings": [rating]}) + "\n")
    assert main(["judge", str(src), "-o", str(tmp_path / "o.jsonl"), "--engine", "fake", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "score scale" in err and "in.jsonl:1" in err
    assert is_correct([5], None, [5]) is True  # on the scale: compared as before


# 8. `spct compare` prints the paper's overall score when all four benchmarks are given.
def test_compare_prints_the_paper_overall(tmp_path, capsys):
    scores = {"rewardbench": 0.8, "ppe-preference": 0.6, "ppe-correctness": 0.5, "rmb": 0.7}
    dirs = []
    for bench, score in scores.items():
        d = tmp_path / bench
        d.mkdir()
        (d / "results.json").write_text(json.dumps({
            "benchmark": bench, "method": "grm", "model": "m", "parse_failure_rate": 0.0,
            "by_k": {"1": {"n": 10, "metric": "accuracy", "overall": score, "ci": [0.1, 0.9], "tie_rate": 0.0}}}))
        dirs.append(str(d))
    assert main(["compare", *dirs]) == 0
    out = capsys.readouterr().out
    assert "Overall (the paper's" in out and "| grm | m | 1 | 65.0 | 80.0 | 60.0 | 50.0 | 70.0 |" in out
    assert main(["compare", *dirs[:3]]) == 0
    assert "Overall" not in capsys.readouterr().out  # not all four: no overall


# 9. `spct probe` builds its backend like every other command: --base-url and --guided reach the engine.
def test_probe_honours_engine_options(tmp_path, monkeypatch):
    built = {}

    def fake_load(config, judgments=None):
        built.update(engine=config.resolved_engine, **config.engine_options())
        return FakeBackend()

    monkeypatch.setattr(spct.cli.common, "load_backend", fake_load)
    assert main(["probe", "-o", str(tmp_path / "p"), "--model", "openai:judge", "--base-url", "http://127.0.0.1:9/v1",
                 "--guided", "vllm", "--limit", "1", "--prompts", "hardened"]) == 0
    assert built == {"engine": "openai", "base_url": "http://127.0.0.1:9/v1", "concurrency": 8, "guided": "vllm"}


def test_library_errors_name_parameters_and_the_cli_translates():
    from spct.cli import flag_words

    assert flag_words("max_new_tokens=512 leaves too little; lower max_new_tokens") == \
        "--max-new-tokens=512 leaves too little; lower --max-new-tokens"
    assert flag_words("k must be >= 1") == "k must be >= 1"


def test_policies_plug_into_the_judge():
    from spct.policies import Adaptive, Greedy, StopRule

    ex = Example("e", "q", ["x" * 95, "y"], best=[0])
    backend = FakeBackend()
    [r] = GenerativeRewardModel(backend, JudgeConfig(temperature=0.7), policy=Greedy()).judge([ex], k=8)
    assert r.k == 1 and [q.temperature for call in backend.calls for q in call] == [0.0]
    [r] = GenerativeRewardModel(FakeBackend(), policy=Adaptive(StopRule("exact"), round_size=2)).judge([ex], k=8)
    assert r.k == 6  # rounds of two: 2, 4 (lead 36 = 9 * 4 remaining, not more), 6
