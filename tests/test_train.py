"""SPCT training: rejective sampling logic (fake backend), the RL rule reward, and one real
SFT + GRPO run on the embedded model whose saved output must load and judge."""

from __future__ import annotations

import json
import re

import pytest

from spct.backends.fake import FakeBackend, responses_in_prompt
from spct.data import Example, InputError
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.train.rft import RFTConfig, run_rft
from spct.train.rl import judgment_reward, rl_rows, rule_reward

_HINT = re.compile(r"Hint: the best response is Response (\d+)\.")


def hint_following_backend() -> FakeBackend:
    """Scores by length; a hinted prompt gets 9 for the named response and 2 for the others."""

    def script(req, _s):
        text = req.messages[-1]["content"]
        shown = responses_in_prompt(text)
        m = _HINT.search(text)
        if m:
            scores = [9 if p == int(m.group(1)) - 1 else 2 for p in range(len(shown))]
        else:
            scores = [max(1, min(10, len(r) // 5)) for r in shown]
        return "Principles:\n- Accuracy (100%)\nAnalysis:\nChecked.\nScores: \\boxed{" + ", ".join(map(str, scores)) + "}"

    return FakeBackend(script=script)


@pytest.fixture
def rft_examples() -> list[Example]:
    return [
        # The longer response is labelled best: every sample is right -> too easy.
        Example("easy", "q1", ["a long and correct answer", "short"], best=[0]),
        # The shorter one is best: unhinted samples are all wrong -> hinted sample, right.
        Example("hard", "q2", ["tiny", "a much longer but wrong answer"], best=[0]),
        # Equal lengths: every unhinted sample is a tie (wrong) -> hinted.
        Example("tie", "q3", ["aaaaaaaaaa", "bbbbbbbbbb"], best=[1]),
        # n = 1: length 20 -> score 4; rating 4 -> right every time -> too easy.
        Example("single-ok", "q4", ["x" * 20], ratings=[4]),
        # n = 1, rating 9: never right, and a hint cannot help with one response -> rejected.
        Example("single-bad", "q5", ["x" * 20], ratings=[9]),
    ]


def read_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rft_rejection_too_easy_and_hinted(tmp_path, rft_examples):
    backend = hint_following_backend()
    grm = GenerativeRewardModel(backend, JudgeConfig(max_new_tokens=32))
    stats = run_rft(grm, rft_examples, tmp_path, RFTConfig(n_samples=3), progress=False)

    outcomes = {r["id"]: r for r in read_rows(tmp_path / "samples.jsonl")}
    assert {k: v["status"] for k, v in outcomes.items()} == {
        "easy": "too_easy", "hard": "hinted", "tie": "hinted", "single-ok": "too_easy", "single-bad": "rejected"}
    assert stats.examples == 5 and stats.samples == 15
    assert stats.accepted == 6  # 3 for "easy" + 3 for "single-ok"
    assert stats.too_easy == 2 and stats.hinted_tried == 2 and stats.hinted_accepted == 2 and stats.no_right_sample == 1
    assert stats.acceptance_rate == pytest.approx(6 / 15)
    assert stats.too_easy_rate == pytest.approx(2 / 5)
    assert stats.hinted_share == 1.0

    rows = read_rows(tmp_path / "train.jsonl")
    # Each kept pair judgment trains twice: as sampled and with the responses swapped.
    assert [r["source"] for r in rows] == ["hinted"] * 4 and stats.mirrored_rows == 2
    assert [r["id"].endswith("~swapped") for r in rows] == [False, True, False, True]
    for r in rows:
        user = r["prompt"][-1]["content"]
        assert "Hint:" not in user  # trained on the unhinted prompt
        assert r["prompt"][0]["role"] == "system" and r["completion"][0]["role"] == "assistant"
        assert "\\boxed{9, 2}" in r["completion"][0]["content"] or "\\boxed{2, 9}" in r["completion"][0]["content"]
    # The completion's 9 sits on the labelled best response in the prompt's order, in both orders.
    hard = [r for r in rows if r["id"].startswith("hard#")]
    assert len(hard) == 2
    for r in hard:
        shown = responses_in_prompt(r["prompt"][-1]["content"])
        box = re.search(r"\\boxed\{(.*)\}", r["completion"][0]["content"]).group(1)
        assert shown[[int(x) for x in box.split(",")].index(9)] == "tiny"
    plain, swapped = (responses_in_prompt(r["prompt"][-1]["content"]) for r in hard)
    assert swapped == plain[::-1]

    # Resume: a rerun samples nothing and rebuilds the same dataset.
    before = len(backend.calls)
    again = run_rft(grm, rft_examples, tmp_path, RFTConfig(n_samples=3), progress=False)
    assert len(backend.calls) == before and again.to_dict() == stats.to_dict()


def test_rft_switches_and_right_samples_kept(tmp_path, rft_examples):
    grm = GenerativeRewardModel(hint_following_backend(), JudgeConfig(max_new_tokens=32))
    stats = run_rft(grm, rft_examples, tmp_path, RFTConfig(hinted=False, drop_too_easy=False), progress=False)
    assert stats.hinted_tried == 0 and stats.too_easy == 0 and stats.no_right_sample == 3
    rows = read_rows(tmp_path / "train.jsonl")
    assert sorted({r["id"].split("#")[0] for r in rows}) == ["easy", "single-ok"]
    assert len(rows) == 9 and all(r["source"] == "unhinted" for r in rows)  # 3 pairs + their swaps + 3 singles


def test_rft_mix_and_bad_input(tmp_path, rft_examples):
    mix = tmp_path / "mix.jsonl"
    mix.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n"
                   + json.dumps({"prompt": "2+2?", "completion": "4"}) + "\n")
    grm = GenerativeRewardModel(hint_following_backend(), JudgeConfig(max_new_tokens=32))
    stats = run_rft(grm, rft_examples, tmp_path / "out", mix=mix, progress=False)
    rows = read_rows(tmp_path / "out" / "train.jsonl")
    assert stats.mixed_rows == 2 and stats.train_rows == 6 and stats.hinted_share == 1.0
    assert rows[-1]["prompt"] == [{"role": "user", "content": "2+2?"}]
    assert rows[-1]["completion"] == [{"role": "assistant", "content": "4"}]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1 \[messages\]"):
        run_rft(grm, rft_examples, tmp_path / "out", mix=bad, progress=False)
    with pytest.raises(InputError, match="unlabelled: u1"):
        run_rft(grm, [Example("u1", "q", ["a", "b"])], tmp_path / "out2", progress=False)


@pytest.mark.parametrize("text,n,best,ratings,expected", [
    ("Analysis: ok\nScores: \\boxed{8, 3}", 2, [0], None, 1.0),
    ("Scores: \\boxed{3, 8}", 2, [0], None, -1.0),
    ("Scores: \\boxed{7, 7}", 2, [0], None, -1.0),  # a tie singles out no one
    ("Scores: \\boxed{8, 8, 2}", 3, [0, 1], None, -1.0),  # two labelled best tie for first: still a tie
    ("Scores: \\boxed{8, 3}", 3, [0], None, -1.0),  # wrong count
    ("Scores: \\boxed{8, 3, 1}", 2, [0], None, -1.0),  # wrong count
    ("I think response 1 is better.", 2, [0], None, -1.0),  # unparseable
    ("Scores: \\boxed{11, 3}", 2, [0], None, -1.0),  # out of range
    ("Response 2 says \\boxed{1, 9}. Scores: \\boxed{9, 1}", 2, [0], None, 1.0),  # the last box counts
    ("Scores: \\boxed{6}", 1, None, [6.0], 1.0),  # n = 1: equals the rating
    ("Scores: \\boxed{7}", 1, None, [6.0], -1.0),
    ("no box", 1, None, [6.0], -1.0),
])
def test_judgment_reward(text, n, best, ratings, expected):
    assert judgment_reward(text, n, best, ratings) == expected


def test_rule_reward_reads_trl_columns():
    completions = [[{"role": "assistant", "content": "Scores: \\boxed{2, 9}"}], "Scores: \\boxed{9, 2}", "Scores: \\boxed{5}"]
    out = rule_reward(prompts=[None] * 3, completions=completions, n=[2, 2, 1], best=[[1], [1], []], ratings=[[], [], [5.0]],
                      trainer_state=None)
    assert out == [1.0, -1.0, 1.0]


def test_rl_rows_map_labels_to_shown_positions():
    examples = [Example(f"e{i}", "q", [f"resp-{i}-{j}" for j in range(3)], best=[2]) for i in range(8)]
    examples.append(Example("r", "q", ["one", "two"], ratings=[3, 8]))
    rows = rl_rows(examples, seed=0)
    positions = set()
    for ex, row in zip(examples, rows, strict=True):
        shown = responses_in_prompt(row["prompt"][-1]["content"])
        assert row["n"] == len(ex.responses)
        if ex.best:
            assert shown[row["best"][0]] == ex.responses[2]
            positions.add(row["best"][0])
        else:
            assert [ex.ratings[ex.responses.index(s)] for s in shown] == row["ratings"]
    assert len(positions) > 1  # responses really are shuffled
    with pytest.raises(InputError, match="needs a label"):
        rl_rows([Example("u", "q", ["a", "b"])])


@pytest.mark.slow
def test_sft_then_grpo_on_embedded_model_saves_a_judge(tmp_path, pair_examples):
    from spct.backends.transformers import TransformersBackend
    from spct.train.rl import RLSettings, train_rl
    from spct.train.sft import SFTSettings, train_sft

    grm = GenerativeRewardModel(hint_following_backend(), JudgeConfig(max_new_tokens=32))
    run_rft(grm, pair_examples, tmp_path / "rft", RFTConfig(drop_too_easy=False), progress=False)
    sft = train_sft("smollm2-135m", tmp_path / "rft", tmp_path / "sft", SFTSettings(), trl_overrides=dict(
        max_steps=2, per_device_train_batch_size=1, gradient_accumulation_steps=1, max_length=512, learning_rate=1e-5,
        use_cpu=True, logging_steps=1))
    assert sft["steps"] == 2 and sft["train_loss"] > 0
    rl = train_rl(str(tmp_path / "sft"), pair_examples[:1], tmp_path / "rl", RLSettings(), trl_overrides=dict(
        max_steps=1, gradient_accumulation_steps=1, max_completion_length=12, use_cpu=True, logging_steps=1))
    assert rl["steps"] == 1 and rl["mean_reward_first_log"] in (-1.0, -0.5, 0.0, 0.5, 1.0)

    judge = GenerativeRewardModel(TransformersBackend(str(tmp_path / "rl"), batch_size=2), JudgeConfig(max_new_tokens=16))
    rewards = judge.judge(pair_examples)
    assert [r.id for r in rewards] == ["p1", "p2"]
    assert all(r.rewards is not None and len(r.rewards) == 2 and r.judgments[0].ok for r in rewards)


def test_cli_rft_with_fake_engine(tmp_path, capsys):
    from spct.cli import main

    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"id": "a", "query": "q", "responses": ["a long right answer", "no"], "best": [0]}) + "\n"
                    + json.dumps({"id": "b", "query": "q", "responses": ["ok", "a long wrong answer"], "best": [0]}) + "\n")
    assert main(["rft", str(data), "-o", str(tmp_path / "rft"), "--engine", "fake", "--no-progress"]) == 0
    stats = json.loads((tmp_path / "rft" / "stats.json").read_text())
    # The fake engine prefers length: "a" is too easy; "b" is never right, and the fake ignores hints.
    assert stats["examples"] == 2 and stats["too_easy"] == 1 and stats["hinted_tried"] == 1 and stats["train_rows"] == 0
    assert main(["rft", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "x"), "--engine", "fake"]) == 2
    assert "spct rft: error:" in capsys.readouterr().err  # one line, no traceback


@pytest.mark.parametrize("name,stage,machines", [
    ("zero2", 2, 1), ("zero3", 3, 1), ("zero2-multinode", 2, 2), ("zero3-multinode", 3, 4)])
def test_accelerate_configs_load(name, stage, machines):
    from pathlib import Path

    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(Path(__file__).parent.parent / "configs" / "accelerate" / f"{name}.yaml"))
    assert cfg.distributed_type == "DEEPSPEED" and cfg.deepspeed_config["zero_stage"] == stage
    assert cfg.num_machines == machines and cfg.num_processes == 8 * machines and cfg.mixed_precision == "bf16"


@pytest.mark.slow
def test_lora_sft_saves_merged_model(tmp_path, pair_examples):
    from spct.backends.transformers import TransformersBackend
    from spct.train.sft import SFTSettings, train_sft

    grm = GenerativeRewardModel(hint_following_backend(), JudgeConfig(max_new_tokens=32))
    run_rft(grm, pair_examples, tmp_path / "rft", RFTConfig(drop_too_easy=False), progress=False)
    out = tmp_path / "lora"
    m = train_sft("smollm2-135m", tmp_path / "rft", out, SFTSettings(lora=True, lora_r=4), trl_overrides=dict(
        max_steps=1, per_device_train_batch_size=1, gradient_accumulation_steps=1, max_length=512, use_cpu=True,
        logging_steps=1))
    assert m["steps"] == 1
    assert (out / "config.json").exists() and not (out / "adapter_config.json").exists()  # merged, a plain model
    backend = TransformersBackend(str(out), batch_size=2)
    assert not any("lora" in name for name, _ in backend.model.named_parameters())
