"""Adaptive voting, vote confidence, meta-guided selection and the scale / meta-data CLIs (fake backend)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spct.backends.fake import FakeBackend
from spct.cli import main
from spct.data import Example, Judgment
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.meta_rm import meta_row, pointwise_meta_rows, read_meta_rows, split_by_example
from spct.policies import StopRule, adaptive_vote, exact_stop, samples_needed
from spct.scaling import evaluate_scaling
from spct.voting import vote, vote_confidence


def judgment(sample: int, scores: list[int] | None, meta: float | None = None) -> Judgment:
    n = len(scores) if scores else 2
    return Judgment("x", sample, list(range(n)), "p", "c", scores, "text", None if scores else "unparsed", meta)


@st.composite
def score_tables(draw):
    n = draw(st.integers(2, 4))
    k = draw(st.integers(1, 10))
    row = st.one_of(st.none(), st.lists(st.integers(1, 10), min_size=n, max_size=n))
    # Narrow score ranges make ties and near-ties common, which is where a wrong rule would slip.
    narrow = st.lists(st.integers(4, 6), min_size=n, max_size=n)
    rows = draw(st.lists(st.one_of(row, narrow), min_size=k, max_size=k))
    return n, k, rows


@settings(max_examples=600, deadline=None)
@given(score_tables(), st.integers(1, 3))
def test_exact_adaptive_gives_the_winner_of_full_voting(table, round_size):
    n, k, rows = table
    js = [judgment(s, r) for s, r in enumerate(rows)]
    ex = Example("x", "q", [f"r{i}" for i in range(n)], best=[0])
    full = vote("x", js, n, best=[0])
    early = adaptive_vote(ex, js, k, StopRule("exact"), round_size)
    assert early.best == full.best  # None (a tie, or every sample failed) included
    assert early.correct == full.correct
    assert 1 <= early.k <= k


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=2, max_size=4), st.integers(1, 8))
def test_exact_stop_never_fires_on_a_tie(totals, remaining):
    totals = sorted(totals, reverse=True)
    totals[1] = totals[0]
    assert not exact_stop(totals, remaining)
    assert exact_stop(totals, 0)


def test_exact_stop_threshold_is_nine_points_a_remaining_sample():
    assert not exact_stop([28, 10], 2)  # lead 18 = 9 x 2: the rival could still tie
    assert exact_stop([29, 10], 2)
    rows = [[10, 1], [10, 1], [10, 1]] + [[1, 10]] * 5
    js = [judgment(s, r) for s, r in enumerate(rows)]
    # A 27-point lead after 3 samples is not safe with 5 left (45 could be made up): no early stop.
    assert samples_needed(js, 2, 8, StopRule("exact")) == 8
    clear = [judgment(s, [10, 1]) for s in range(8)]
    assert samples_needed(clear, 2, 8, StopRule("exact")) == 5  # lead 45 > 9 x 3 remaining
    assert samples_needed(clear, 2, 8, StopRule("bound")) == 2  # the looser rule stops at its minimum


def test_bound_rule_saves_samples_on_consistent_leads_but_not_on_noise():
    steady = [judgment(s, [7, 5]) for s in range(8)]
    assert samples_needed(steady, 2, 8, StopRule("exact")) == 7  # lead 14 > 9 x 1 remaining
    assert samples_needed(steady, 2, 8, StopRule("bound")) == 2
    noisy = [judgment(s, r) for s, r in enumerate([[9, 2], [2, 9], [9, 2], [2, 9], [9, 2], [2, 9], [9, 2], [2, 9]])]
    assert samples_needed(noisy, 2, 8, StopRule("bound")) == 8
    with pytest.raises(ValueError):
        StopRule("loose")


def test_adaptive_model_samples_in_rounds_at_temperature_and_stops_early():
    # Long response 0 always wins 10 vs 1 under the fake length rule.
    ex = Example("e", "q?", ["x" * 200, "y"], best=[0])
    backend = FakeBackend()
    model = GenerativeRewardModel(backend, JudgeConfig(k=8, adaptive="exact", round_size=1))
    [r] = model.judge([ex])
    assert r.k == 5 and len(r.judgments) == 5 and r.best == 0 and r.correct
    assert [j.sample for j in r.judgments] == list(range(5))
    assert all(req.temperature == 0.5 for call in backend.calls for req in call)
    [full] = GenerativeRewardModel(FakeBackend(), JudgeConfig(k=8)).judge([ex])
    assert full.k == 8 and full.best == r.best


def test_vote_carries_margin_and_confidence():
    r = vote("x", [judgment(0, [9, 3]), judgment(1, [7, 5]), judgment(2, None)], 2, best=[0])
    assert r.rewards == [16, 8] and r.margin == 8 and r.confidence == pytest.approx(8 / 18)
    tie = vote("x", [judgment(0, [6, 6])], 2, best=[0])
    assert tie.best is None and tie.margin == 0 and tie.confidence == 0
    assert vote_confidence([[10, 1, 1]], 3) == (9.0, 1.0)
    single = vote("x", [judgment(0, [4]), judgment(1, [7])], 1, ratings=[5])
    assert single.margin is None and single.confidence == pytest.approx(1 - 3 / 9)
    failed = vote("x", [judgment(0, None)], 2, best=[0])
    assert failed.rewards is None and failed.margin is None and failed.confidence is None
    assert json.loads(json.dumps(r.to_dict()))["confidence"] == pytest.approx(8 / 18)


def test_meta_guided_voting_keeps_the_top_k_meta():
    ex = Example("e", "q?", ["short", "a much longer response"], best=[0])
    # The fake prefers the longer response 1; the meta scorer trusts only samples 2 and 3.
    def meta(example, judgments):
        return [0.9 if j.sample in (2, 3) else 0.1 for j in judgments]

    def backend_score(text, seed):
        return 9 if (len(text) > 10) == (seed % 2 == 0) else 2

    grm = GenerativeRewardModel(FakeBackend(score=backend_score), JudgeConfig(k=4, k_meta=2), meta_scorer=meta)
    [r] = grm.judge([ex])
    assert r.used == 2 and r.k == 4
    kept = sorted(r.judgments, key=lambda j: -j.meta)[:2]
    assert {j.sample for j in kept} == {2, 3}
    assert r.rewards == [sum(j.scores[i] for j in kept) for i in range(2)]
    assert all(j.meta is not None for j in r.judgments)
    # Default k_meta is k/2.
    grm.config.k_meta = None
    assert grm.judge([ex])[0].used == 2


def test_evaluate_scaling_on_replayed_samples():
    ex = Example("e", "q?", ["x" * 200, "y"], best=[0])
    grm = GenerativeRewardModel(FakeBackend(), JudgeConfig())
    rows = [{"id": "e", "example": ex.to_dict(), "greedy": grm.sample([ex], 1)[0][0].to_dict(),
             "samples": [j.to_dict() for j in grm.sample([ex], 4)[0]]}]
    res = evaluate_scaling(rows, [1, 2, 4], meta_scorer=lambda e, js: [0.5] * len(js), subsets=4, n_boot=100)
    assert set(res["accuracy"]) == {"greedy", "voting", "meta", "adaptive", "adaptive-bound"}
    assert all(p["accuracy"] == 1.0 for points in res["accuracy"].values() for p in points)
    assert res["adaptive"]["exact"][2]["mean_samples"] == 3  # every sample is 10 vs 1: lead 27 > 9 x 1 remaining
    assert res["adaptive"]["bound"][2]["mean_samples"] == 2
    assert all(p["agrees_with_voting"] == 1.0 for p in res["adaptive"]["exact"])


def test_scale_cli_end_to_end_and_resume(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"id": f"q{i}", "query": "q?", "responses": ["a" * (5 + 20 * i), "b" * 30],
                                         "best": [i % 2]}) for i in range(4)) + "\n")
    out = tmp_path / "scale"
    args = ["scale", str(src), "--engine", "fake", "-o", str(out), "--k", "1,2,4", "--no-progress", "--bootstrap", "100"]
    assert main(args) == 0
    res = json.loads((out / "scaling.json").read_text())
    assert res["examples"] == 4 and res["ks"] == [1, 2, 4]
    assert (out / "scaling.png").stat().st_size > 1000
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(len(json.loads(line)["samples"]) == 4 for line in lines)
    assert main(args) == 0  # resume: nothing re-sampled, nothing duplicated
    assert (out / "samples.jsonl").read_text().splitlines() == lines
    assert main(args[:-4] + ["1,8", "--no-progress"]) == 2  # more samples than stored: clear error
    assert "fewer than k=8" in capsys.readouterr().err


def test_scale_cli_follows_a_pointwise_policy(tmp_path, capsys):
    """A pointwise judge's curve: k judgments of each response alone, voted by mean score; no adaptive rows."""
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"id": f"q{i}", "query": "q?", "responses": ["a" * (5 + 20 * i), "b" * 30],
                                         "best": [i % 2]}) for i in range(4)) + "\n")
    out = tmp_path / "scale"
    args = ["scale", str(src), "--engine", "fake", "-o", str(out), "--k", "1,2", "--no-progress", "--bootstrap", "100",
            "--policy", "pointwise"]
    assert main(args) == 0
    res = json.loads((out / "scaling.json").read_text())
    assert res["policy"] == "pointwise" and res["adaptive"] == {} and set(res["accuracy"]) == {"greedy", "voting"}
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all(len(r["greedy"]) == 2 and len(r["samples"]) == 4 and {j["id"] for j in r["samples"]} == {f"{r['id']}/0", f"{r['id']}/1"}
               for r in rows)
    assert all(len(j["scores"]) == 1 for r in rows for j in r["samples"])  # each response judged alone
    # The fake scores by length, so the longer response wins in every example; half of them are labelled so.
    assert [p["accuracy"] for p in res["accuracy"]["voting"]] == [0.5, 0.5]
    assert (out / "scaling.png").stat().st_size > 1000


def test_meta_data_cli_labels_and_resumes(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "query": "q?", "responses": ["long " * 10, "short"], "best": [0]}) + "\n"
                   + json.dumps({"id": "b", "query": "q?", "responses": ["long " * 10, "short"], "best": [1]}) + "\n"
                   + json.dumps({"id": "c", "query": "unlabelled", "responses": ["x", "y"]}) + "\n")
    out = tmp_path / "meta.jsonl"
    args = ["meta-data", str(src), "-o", str(out), "--engine", "fake", "--k", "2", "--hinted"]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == ["a|0|h", "a|0|u", "a|1|u", "b|0|h", "b|0|u", "b|1|u"]
    assert {r["key"][0]: r["label"] for r in rows if not r["hinted"]} == {"a": 1, "b": 0}  # fake prefers the longer one
    assert main(args) == 0
    assert len(out.read_text().splitlines()) == 6
    parsed, issues = read_meta_rows(out)
    assert len(parsed) == 4 and not issues  # hinted judgments stay out of meta RM training by default
    assert len(read_meta_rows(out, include_hinted=True)[0]) == 6


def test_meta_data_for_a_pointwise_judge_labels_each_response_alone(tmp_path, capsys):
    """Under --policy pointwise each response is judged alone; a judgment is right when it sides with the label
    against the other response's mean score."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "query": "q?", "responses": ["long " * 10, "short"], "best": [0]}) + "\n"
                   + json.dumps({"id": "b", "query": "q?", "responses": ["long " * 10, "short"], "best": [1]}) + "\n")
    out = tmp_path / "meta.jsonl"
    args = ["meta-data", str(src), "-o", str(out), "--engine", "fake", "--k", "2", "--policy", "pointwise"]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == [f"{e}|{i}|{s}|u" for e in "ab" for i in (0, 1) for s in (0, 1)]
    assert all(len(r["example"]["responses"]) == 1 and r["example"]["id"] == r["key"][:3].replace("|", "/") for r in rows)
    assert {r["key"]: r["label"] for r in rows} == {**{f"a|{i}|{s}|u": 1 for i in (0, 1) for s in (0, 1)},
                                                   **{f"b|{i}|{s}|u": 0 for i in (0, 1) for s in (0, 1)}}  # fake: longer wins
    assert main(args) == 0 and len(out.read_text().splitlines()) == 8  # resume: nothing new
    parsed, issues = read_meta_rows(out)
    assert len(parsed) == 8 and not issues
    train, held = split_by_example(parsed, 0.5, seed=0)  # both responses of a pair on one side
    assert {ex.id for ex, _, _ in held} in ({"a/0", "a/1"}, {"b/0", "b/1"})
    assert main([*args, "--hinted"]) == 2 and "a pointwise judge is shown one" in capsys.readouterr().err


def test_pointwise_meta_labels_follow_the_other_responses_mean():
    ex = Example("e", "q", ["good", "bad"], best=[0])
    js = [Judgment(f"e/{i}", s, [0], None, None, [score], "t") for i, s, score in ((0, 0, 8), (0, 1, 4), (1, 0, 5), (1, 1, 7))]
    # means: good 6, bad 6 -> good's 8 beats 6 (right), 4 does not; bad's 5 is below 6 (right), 7 is not
    assert [r["label"] for r in pointwise_meta_rows(ex, js)] == [1, 0, 1, 0]


def test_meta_rows_reject_unlabelled_and_report_bad_lines(tmp_path):
    from spct.data import InputError

    with pytest.raises(InputError):
        meta_row(Example("u", "q", ["a", "b"]), judgment(0, [1, 2]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "x", "label": 1}\nnot json\n')
    rows, issues = read_meta_rows(bad)
    assert not rows and [i.line for i in issues] == [1, 2]


def test_judge_rejects_k_meta_without_a_meta_rm(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"query": "q?", "responses": ["a", "b"]}) + "\n")
    out = str(tmp_path / "out.jsonl")
    assert main(["judge", str(src), "-o", out, "--engine", "fake", "--k", "4", "--k-meta", "2"]) == 2
    assert "--k-meta needs --meta-rm" in capsys.readouterr().err
    assert main(["judge", str(src), "-o", out, "--engine", "fake", "--meta-rm", str(tmp_path / "none")]) == 2
