"""Training and reading the verdict itself: verdict rows, the verdict-weighted SFT loss, the
expected-score readout and the both-orders policy (fake engine for control flow, the embedded
model for the real readout and a real weighted SFT step)."""

from __future__ import annotations

import json

import pytest

from spct.backends.base import BackendError
from spct.backends.fake import FakeBackend, responses_in_prompt
from spct.data import Example, InputError, Judgment
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.score_line import SCORE_PREFIX
from spct.train.verdict import HIGH_SCORE, LOW_SCORE, verdict_rows, write_verdict_rows
from spct.voting import vote


def test_verdict_rows_both_orders_and_targets():
    ex = Example("e", "q", ["good", "bad"], best=[0], source="f.jsonl:3")
    rows = list(verdict_rows([ex]))
    assert [r["id"] for r in rows] == ["e~verdict", "e~verdict~swapped"]
    assert rows[0]["completion"][0]["content"] == f"{SCORE_PREFIX}{HIGH_SCORE}, {LOW_SCORE}}}"
    assert rows[1]["completion"][0]["content"] == f"{SCORE_PREFIX}{LOW_SCORE}, {HIGH_SCORE}}}"
    # the swapped row shows the bad response first
    body = rows[1]["prompt"][-1]["content"]
    assert body.index("[[Response 1]]\nbad") < body.index("[[Response 2]]\ngood")
    single = list(verdict_rows([Example("s", "q", ["only"], ratings=[6])]))
    assert len(single) == 1 and single[0]["completion"][0]["content"] == f"{SCORE_PREFIX}6}}"


def test_verdict_rows_pointwise_and_length_cap(tmp_path):
    ex = Example("e", "q", ["good", "bad"], best=[1])
    rows = list(verdict_rows([ex], pointwise=True))
    assert [r["completion"][0]["content"] for r in rows] == [f"{SCORE_PREFIX}{LOW_SCORE}}}", f"{SCORE_PREFIX}{HIGH_SCORE}}}"]
    assert all(responses_in_prompt(r["prompt"][-1]["content"]) == [resp] for r, resp in zip(rows, ex.responses, strict=True))
    counts = write_verdict_rows([ex, Example("long", "q" * 100, ["a", "b"], best=[0])], tmp_path / "rows.jsonl", max_chars=50)
    assert counts == {"examples": 2, "kept_examples": 1, "skipped_too_long": 1, "rows": 2}


@pytest.mark.parametrize("ex,field", [
    (Example("u", "q", ["a", "b"], source="train.jsonl:7"), "best"),
    (Example("s", "q", ["a"], source="train.jsonl:8"), "ratings"),
    (Example("all", "q", ["a", "b"], best=[0, 1], source="train.jsonl:9"), "best"),
])
def test_verdict_rows_refuse_examples_without_a_usable_label(ex, field):
    with pytest.raises(InputError, match=rf"{ex.source} \[{field}\]") as e:
        list(verdict_rows([ex]))
    assert e.value.field == field


def test_cli_data_verdict(tmp_path, capsys):
    from spct.cli import main

    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"id": "a", "query": "q", "responses": ["x", "y"], "best": [1]}) + "\n{not json\n"
                    + json.dumps({"id": "b", "query": "q", "responses": ["x", "y"]}) + "\n")
    assert main(["data", "verdict", str(data), "-o", str(tmp_path / "rows.jsonl")]) == 2  # b has no label
    err = capsys.readouterr().err
    assert f"{data}:2" in err and f"{data}:3 [best]" in err and "Traceback" not in err
    data.write_text(json.dumps({"id": "a", "query": "q", "responses": ["x", "y"], "best": [1]}) + "\n")
    assert main(["data", "verdict", str(data), "-o", str(tmp_path / "rows.jsonl")]) == 0
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 2


def test_verdict_weights_on_the_real_tokenizer():
    import torch
    from transformers import AutoTokenizer

    from spct.backends.models import resolve_model
    from spct.train.sft import verdict_weights

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m")[0])

    def row(prompt: str, completion: str):
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        c = tok(completion, add_special_tokens=False)["input_ids"]
        return p + c, [-100] * len(p) + c, len(p)

    rft_ids, rft_labels, rft_start = row("<|im_start|>assistant\n", "Principles:\n- x\nScores: \\boxed{10, 3}<|im_end|>")
    ver_ids, ver_labels, ver_start = row("<|im_start|>assistant\n", "Scores: \\boxed{3, 8}<|im_end|>")
    width = max(len(rft_ids), len(ver_ids))
    pad = tok.pad_token_id or 0
    ids = torch.tensor([x + [pad] * (width - len(x)) for x in (rft_ids, ver_ids)])
    labels = torch.tensor([x + [-100] * (width - len(x)) for x in (rft_labels, ver_labels)])
    w, first = verdict_weights(ids, labels, SCORE_PREFIX, tok.decode, 5.0)

    def weighted(b: int, value: float) -> str:  # the text of the completion tokens predicted with this weight
        return tok.decode([ids[b, t + 1].item() for t in range(width - 1) if w[b, t] == value and labels[b, t + 1] != -100])

    assert weighted(0, 5.0) == "10, 3}"
    assert weighted(0, 1.0) == "Principles:\n- x\nScores: \\boxed{<|im_end|>"
    assert weighted(1, 5.0) == "3, 8}" and weighted(1, 0.0) == "Scores: \\boxed{"
    assert weighted(1, 1.0) == "<|im_end|>"
    assert [tok.decode([ids[b, t + 1].item()]) for b, t in first.nonzero().tolist()] == ["1", "3"]
    # a row cut by max_length right after its box (no score value left) keeps plain weights
    k = next(t for t in range(len(ver_ids)) if tok.decode(ver_ids[: t + 1]).endswith("boxed{"))
    w_cut, first_cut = verdict_weights(torch.tensor([ver_ids[: k + 1]]), torch.tensor([ver_labels[: k + 1]]), SCORE_PREFIX,
                                       tok.decode, 5.0)
    assert not first_cut.any() and set(w_cut[0, ver_start - 1 :].tolist()) == {1.0}


def test_both_orders_policy_balances_positions():
    def script(req, _s):
        n = len(responses_in_prompt(req.messages[-1]["content"]))
        return "Principles:\n- x (100%)\nAnalysis:\nfirst wins\nScores: \\boxed{" + ", ".join(["9"] + ["2"] * (n - 1)) + "}"

    grm = GenerativeRewardModel(FakeBackend(script=script), JudgeConfig(k=1, policy="both-orders"))
    [r] = grm.judge([Example("e", "q", ["a", "b"], best=[0])])
    assert [j.order for j in r.judgments] == [[0, 1], [1, 0]]
    assert r.k == 2 and r.rewards == [11, 11] and r.best is None  # a positional judge ties: no free win
    grm4 = GenerativeRewardModel(FakeBackend(), JudgeConfig(k=3, policy="both-orders", temperature=0.5))
    [r4] = grm4.judge([Example("e", "q", ["a long answer", "no"], best=[0])])
    assert [j.order for j in r4.judgments] == [[0, 1], [1, 0], [0, 1], [1, 0]] and r4.correct


def test_pointwise_policy_judges_each_response_alone():
    backend = FakeBackend()  # longer is better
    grm = GenerativeRewardModel(backend, JudgeConfig(k=2, policy="pointwise", temperature=0.5))
    [r] = grm.judge([Example("e", "q", ["a much longer answer", "short"], best=[0])])
    assert all(len(responses_in_prompt(req.messages[-1]["content"])) == 1 for call in backend.calls for req in call)
    assert sorted(j.id for j in r.judgments) == ["e/0", "e/0", "e/1", "e/1"]
    assert r.k == 4 and r.used == 4 and r.rewards == [3.0, 1.0] and r.best == 0 and r.correct and r.margin == 2.0
    assert r.aggregate == "mean" and r.mean_scores == [3.0, 1.0]  # already means: not divided by `used` again
    assert grm.aggregate(Example("e", "q", ["a much longer answer", "short"], best=[0]), r.judgments).rewards == r.rewards
    [alone] = grm.judge([Example("s", "q", ["x" * 20], ratings=[3])])
    assert alone.rewards == [6] and alone.correct is True  # one response: summed and checked like voting@k


@pytest.mark.parametrize(("policy", "judgments", "greedy_rewards"),
                         [("voting", 1 + 4, [3.0, 1.0]), ("both-orders", 2 + 4, [6.0, 2.0]),
                          ("pointwise", 2 + 8, [3.0, 1.0])])
def test_eval_draws_what_the_policy_votes_over(policy, judgments, greedy_rewards):
    """`spct eval`'s GRM method samples through the judge's policy: one response per prompt when pointwise."""
    from spct.eval.baselines import GRMMethod

    backend = FakeBackend()  # longer is better
    grm = GenerativeRewardModel(backend, JudgeConfig(policy=policy, temperature=0.5))
    [scored] = GRMMethod(grm).score([Example("e", "q", ["a much longer answer", "short"], best=[0])], [1, 2, 4])
    assert scored.judgments == judgments and scored.failed == 0
    assert scored.rewards["1"] == greedy_rewards and scored.rewards["4"][0] > scored.rewards["4"][1]
    shown = {len(responses_in_prompt(req.messages[-1]["content"])) for call in backend.calls for req in call}
    assert shown == ({1} if policy == "pointwise" else {2})


def test_config_rejects_unknown_policy_and_readout():
    with pytest.raises(InputError, match="unknown policy"):
        JudgeConfig(policy="sideways")
    with pytest.raises(InputError, match="unknown readout"):
        JudgeConfig(readout="vibes")
    with pytest.raises(InputError, match="both-orders"):
        JudgeConfig(policy="both-orders", adaptive="exact")


def test_expected_readout_needs_an_engine_with_logprobs(tmp_path, capsys):
    from spct.cli import main

    with pytest.raises(InputError, match="fake engine cannot read the model's probabilities") as e:
        GenerativeRewardModel(FakeBackend(), JudgeConfig(readout="expected"))
    assert e.value.field == "readout"
    with pytest.raises(BackendError, match="cannot read"):
        FakeBackend().continuation_logprobs([])
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"id": "a", "query": "q", "responses": ["x", "y"], "best": [0]}) + "\n")
    assert main(["judge", str(data), "-o", str(tmp_path / "out.jsonl"), "--engine", "fake", "--readout", "expected"]) == 2
    err = capsys.readouterr().err
    assert "--readout sampled" in err and "Traceback" not in err


def test_vote_uses_expected_scores_without_ties():
    def j(scores, expected):
        return Judgment("e", 0, [0, 1], None, None, scores, "t", expected=expected)

    r = vote("e", [j([7, 7], [6.9, 7.2]), j([8, 8], [7.6, 7.5])], 2, best=[1])
    assert r.rewards == [14.5, 14.7] and r.best == 1 and r.correct and r.margin == pytest.approx(0.2)
    plain = vote("e", [j([7, 7], None)], 2, best=[1])
    assert plain.rewards == [7, 7] and plain.best is None


class _ReadingBackend(FakeBackend):
    """A fake engine that reads probabilities: 4 is likely after the analysis, 8 straight after the prompt."""

    reads_logprobs = True

    def __init__(self):
        super().__init__()
        self.prefixes: list[str] = []

    def continuation_logprobs(self, queries):
        out = []
        for q in queries:
            self.prefixes.append(q.prefill)
            likely = "8" if q.prefill == SCORE_PREFIX else "4"
            out.append([0.0 if c.rstrip(",}").split(", ")[-1] == likely else -30.0 for c in q.candidates])
        return out


@pytest.mark.parametrize("readout, expected", [("expected", 4.0), ("anchored", 6.0)])
def test_anchored_readout_averages_the_reading_before_and_after_the_analysis(readout, expected):
    backend = _ReadingBackend()
    grm = GenerativeRewardModel(backend, JudgeConfig(policy="pointwise", readout=readout))
    [r] = grm.judge([Example("e", "q", ["a much longer answer", "short"], best=[0])])
    assert [j.expected for j in r.judgments] == [[pytest.approx(expected)], [pytest.approx(expected)]]
    straight = [p for p in backend.prefixes if p == SCORE_PREFIX]
    assert len(straight) == (2 if readout == "anchored" else 0)  # one reading straight after the prompt a judgment
    assert all(p.endswith(SCORE_PREFIX) and len(p) > len(SCORE_PREFIX) for p in backend.prefixes if p != SCORE_PREFIX)


def test_anchored_readout_reads_a_prompt_once_for_all_its_samples():
    backend = _ReadingBackend()
    grm = GenerativeRewardModel(backend, JudgeConfig(policy="pointwise", readout="anchored", k=3))
    [r] = grm.judge([Example("e", "q", ["a much longer answer", "short"], best=[0])])
    assert len(r.judgments) == 6 and all(j.expected == [pytest.approx(6.0)] for j in r.judgments)
    assert sum(p == SCORE_PREFIX for p in backend.prefixes) == 2  # one a response, not one a sample


def test_anchored_readout_needs_an_engine_with_logprobs():
    with pytest.raises(InputError, match="cannot read the model's probabilities"):
        GenerativeRewardModel(FakeBackend(), JudgeConfig(readout="anchored"))


@pytest.mark.slow
def test_expected_readout_on_the_embedded_model(embedded_backend, pair_examples):
    grm = GenerativeRewardModel(embedded_backend, JudgeConfig(max_new_tokens=24, readout="expected", policy="both-orders"))
    rewards = grm.judge(pair_examples)
    for r in rewards:
        assert len(r.judgments) == 2 and [j.order for j in r.judgments] == [[0, 1], [1, 0]]
        for jd in r.judgments:
            assert jd.ok and len(jd.expected) == 2 and all(1.0 <= x <= 10.0 for x in jd.expected)
        assert r.rewards == pytest.approx([sum(jd.expected[i] for jd in r.judgments) for i in range(2)], abs=1e-3)
    # the expected score follows the model's own probabilities: a value it wrote is likely under them
    jd = rewards[0].judgments[0]
    assert all(abs(e - s) < 5 for e, s in zip(jd.expected, jd.scores, strict=True))


@pytest.mark.slow
def test_anchored_readout_on_the_embedded_model(embedded_backend, pair_examples):
    """The mean of the reading after the judge's analysis and the one straight after the prompt."""
    from spct.backends.base import ScoreQuery
    from spct.score_line import expected_score

    ex = pair_examples[:1]
    after = GenerativeRewardModel(embedded_backend, JudgeConfig(max_new_tokens=24, readout="expected", policy="pointwise"))
    anchored = GenerativeRewardModel(embedded_backend, JudgeConfig(max_new_tokens=24, readout="anchored", policy="pointwise"))
    [ra], [rb] = after.judge(ex), anchored.judge(ex)
    cands = [f"{v}}}" for v in range(1, 11)]
    for i, (ja, jb) in enumerate(zip(ra.judgments, rb.judgments, strict=True)):
        assert ja.text == jb.text  # greedy: the same judgment, read two ways
        alone = Example(f"{ex[0].id}/{i}", ex[0].query, [ex[0].responses[i]])
        [lps] = embedded_backend.continuation_logprobs([ScoreQuery(after.format.messages(alone, [0]), SCORE_PREFIX, cands)])
        assert jb.expected[0] == pytest.approx((ja.expected[0] + expected_score(lps)) / 2, abs=2e-3)


@pytest.mark.slow
def test_verdict_weighted_sft_on_the_embedded_model(tmp_path, pair_examples):
    from spct.train.sft import SFTSettings, train_sft

    rows = tmp_path / "rows.jsonl"
    write_verdict_rows(pair_examples, rows)
    m = train_sft("smollm2-135m", [rows, rows], tmp_path / "sft", SFTSettings(
        lora=True, lora_r=4, lora_top_layers=2, verdict_weight=4.0), trl_overrides=dict(
        max_steps=2, per_device_train_batch_size=2, gradient_accumulation_steps=1, max_length=512, learning_rate=1e-4,
        use_cpu=True, logging_steps=1))
    assert m["steps"] == 2 and m["rows"] == 8 and m["train_loss"] > 0
    logs = json.loads((tmp_path / "sft" / "log_history.json").read_text())
    assert all("verdict_accuracy" in x and "verdict_loss" in x for x in logs if "loss" in x)
    adapter = json.loads((tmp_path / "sft" / "adapter" / "adapter_config.json").read_text())
    assert adapter["layers_to_transform"] == [28, 29]
