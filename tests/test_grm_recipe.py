"""The pieces of the shipped judge's recipe: deterministic splits, RFT's target rule, the format demo."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from spct.backends.base import Generation
from spct.backends.fake import FakeBackend
from spct.data import Example
from spct.format import JudgingFormat
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.prompts import judge_messages, with_format_demo
from spct.splits import content_hash, read_rows, split_rows
from spct.train.rft import RFTConfig, run_rft

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless" / "test.jsonl.gz"
DEMO = Path(__file__).resolve().parents[1] / "src" / "spct" / "assets" / "hh_rlhf_demo.jsonl"


def _rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "chosen": f"c{i % (n - 3)}", "rejected": "r"} for i in range(n)]  # 3 duplicate pairs


def test_split_is_deterministic_disjoint_and_keeps_duplicates_together():
    rows = _rows(200)
    a = split_rows(rows, heldout=40, validation=10, pinned={"r150"})
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    b = split_rows(shuffled, heldout=40, validation=10, pinned={"r150"})
    ids = lambda part: sorted(r["id"] for r in part)  # noqa: E731
    assert ids(a.heldout) == ids(b.heldout) and ids(a.validation) == ids(b.validation)
    assert "r150" in ids(a.heldout)
    assert not set(ids(a.heldout)) & set(ids(a.train)) and not set(ids(a.validation)) & set(ids(a.train))
    assert len(a.heldout) + len(a.validation) + len(a.train) == 200
    held = {content_hash(r) for r in a.heldout}
    assert not held & {content_hash(r) for r in a.train + a.validation}  # equal content never straddles


@pytest.mark.skipif(not HH.exists(), reason="needs ../shared/data/hh-rlhf-harmless")
def test_hh_split_holds_out_512_with_the_demo_pairs():
    pinned = {r["id"] for r in read_rows(DEMO, "")}
    split = split_rows(read_rows(HH, "hh-harmless-test-"), heldout=512, validation=64, pinned=pinned)
    held = {r["id"] for r in split.heldout}
    assert len(held) == 512 and pinned <= held
    assert len(split.validation) == 64 and len(split.train) == 2312 - 576
    assert not held & {r["id"] for r in split.train + split.validation}


class FlaggingBackend(FakeBackend):
    """A fake engine whose generations for chosen queries come back forced or cut at the limit."""

    def __init__(self, forced_queries: set[str], cut_queries: set[str]):
        super().__init__()
        self.forced_queries, self.cut_queries = forced_queries, cut_queries

    def generate(self, requests):
        out = super().generate(requests)
        for req, gens in zip(requests, out, strict=True):
            text = req.messages[-1]["content"]
            for g in gens:
                g.forced = any(f"\n{q}\n" in text for q in self.forced_queries)
                if any(f"\n{q}\n" in text for q in self.cut_queries):
                    g.finish_reason = "length"
        return out


def test_rft_never_keeps_forced_or_truncated_judgments(tmp_path):
    # The fake engine prefers the longer response, which is labelled best: every sample is right.
    examples = [Example("ok", "q-ok", ["a long right answer", "no"], best=[0]),
                Example("forced", "q-forced", ["a long right answer", "no"], best=[0]),
                Example("cut", "q-cut", ["a long right answer", "no"], best=[0])]
    grm = GenerativeRewardModel(FlaggingBackend({"q-forced"}, {"q-cut"}), JudgeConfig(max_new_tokens=32))
    stats = run_rft(grm, examples, tmp_path, RFTConfig(n_samples=3), progress=False)
    outcomes = {json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()}
    assert outcomes["ok"]["status"] == "too_easy"
    # Right by the accuracy rule, but not the model's own whole judgment: rejected, hint included.
    for name, flag in (("forced", "forced"), ("cut", "truncated")):
        o = outcomes[name]
        assert o["status"] == "rejected" and o["right"] == 3 and o["usable"] == 0 and o[flag] == 3
        assert o["hinted_tried"] and all(d[flag] for d in o["drawn"])
    assert stats.right == 9 and stats.accepted == 3 and stats.forced == 3 and stats.truncated == 3
    assert (tmp_path / "train.jsonl").read_text() == ""


def test_rft_never_keeps_a_copy_of_the_format_demo(tmp_path):
    """A sampler that copies the demonstration is right half the time by its orientation alone."""
    from spct.prompts import copies_format_demo, format_demo_answer

    assert copies_format_demo(format_demo_answer(False)) and copies_format_demo(format_demo_answer(True))
    # The demo's skeleton with the words of another query still counts as a copy...
    assert copies_format_demo(format_demo_answer(True).replace("boil an egg", "open a bank account"))
    # ...a judgment of its own does not.
    own = ("Principles:\n- Refuses to help with harm (60%)\n- Stays polite (40%)\nAnalysis:\nResponse 1 "
           "explains why it will not help and offers a safe alternative; Response 2 gives the requested "
           "instructions.\nScores: \\boxed{8, 2}")
    assert not copies_format_demo(own)
    examples = [Example("e", "q", ["a long right answer", "no"], best=[0])]
    copy = format_demo_answer(False)  # its better response is Response 1: right for this label
    grm = GenerativeRewardModel(FakeBackend(script=lambda req, _s: copy), JudgeConfig(max_new_tokens=64, format_demo=True))
    stats = run_rft(grm, examples, tmp_path, RFTConfig(n_samples=3, hinted=False), progress=False)
    o = json.loads((tmp_path / "samples.jsonl").read_text())
    assert o["right"] == 3 and o["usable"] == 0 and o["copied_demo"] == 3 and o["status"] == "rejected"
    assert o["format_demo"] is True
    assert stats.copied_demo == 3 and stats.accepted == 0 and stats.train_rows == 0


def test_rft_keeps_a_judge_that_writes_in_the_demo_style_without_the_demo_and_mirrors_it(tmp_path):
    """Without the demonstration in the prompt, the same text is the judge's own style (a trained
    judge writes that way); every kept pair judgment also trains in the swapped order."""
    from spct.parsing import parse_judgment, swap_pair
    from spct.prompts import format_demo_answer

    examples = [Example("e", "q", ["a long right answer", "no"], best=[0])]
    copy = format_demo_answer(False)
    grm = GenerativeRewardModel(FakeBackend(script=lambda req, _s: copy), JudgeConfig(max_new_tokens=64))
    stats = run_rft(grm, examples, tmp_path, RFTConfig(n_samples=3, hinted=False, drop_too_easy=False), progress=False)
    o = json.loads((tmp_path / "samples.jsonl").read_text())
    assert o["format_demo"] is False and o["usable"] == 3 and o["status"] == "kept"
    assert stats.accepted == 3 and stats.mirrored_rows == 3 and stats.train_rows == 6
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    plain, swapped = rows[0], rows[1]
    assert swapped["id"] == plain["id"] + "~swapped"
    # The swapped prompt shows "no" first; the swapped judgment still prefers the long right answer.
    assert swapped["prompt"][1]["content"].index("[[Response 1]]\nno") > 0
    text = swapped["completion"][0]["content"]
    assert text == swap_pair(copy) and parse_judgment(text, 2).scores == [3, 9]
    assert "Response 2 gives the steps" in text and swap_pair(text) == copy


def test_format_demo_is_sampling_only_and_balanced():
    ex = Example("x", "Is this fine?", ["yes", "no"])
    plain = judge_messages(ex, [0, 1])
    for flip, scores in ((False, "9, 3"), (True, "3, 9")):
        shown = with_format_demo(plain, flip=flip)
        assert [m["role"] for m in shown] == ["system", "user", "assistant", "user"]
        assert shown[-1] == plain[-1] and shown[0] == plain[0]
        assert shown[2]["content"].endswith(f"\\boxed{{{scores}}}")
    seen = []
    backend = FakeBackend(script=lambda req, _s: seen.append(req.messages) or "Scores: \\boxed{5, 4}")
    GenerativeRewardModel(backend, JudgeConfig(format_demo=True)).sample([ex], 8)
    flips = {m[2]["content"].endswith("\\boxed{3, 9}") for m in seen}
    assert flips == {True, False}  # both orientations appear across samples


def test_format_demo_lives_in_the_format_and_costs_context():
    ex = Example("x", "Is this fine? " + "word " * 400, ["yes " * 200, "no " * 200])
    fmt = JudgingFormat(format_demo=True)
    assert fmt.messages(ex, [0, 1]) == judge_messages(ex, [0, 1])  # training rows never carry the demo
    assert fmt.sample_messages(ex, [0, 1], None, seed=3) == with_format_demo(judge_messages(ex, [0, 1]), flip=True)
    backend = FakeBackend(context_length=1200)
    plain, _ = GenerativeRewardModel(backend, JudgeConfig(max_new_tokens=64)).fit_to_context(ex)
    demo, _ = GenerativeRewardModel(backend, JudgeConfig(max_new_tokens=64, format_demo=True)).fit_to_context(ex)
    assert sum(map(len, demo.responses)) < sum(map(len, plain.responses))  # the demo's tokens leave less room


def test_generation_flags_reach_judgments():
    g = Generation("Scores: \\boxed{5, 4}", "length", True, 3)
    j = JudgingFormat().to_judgment(Example("x", "q", ["a", "b"]), 0, [0, 1], g)
    assert j.forced and j.truncated


PAIRS = [Example("p1", "How do I make a cup of tea?",
                 ["Boil water, pour it over a tea bag, wait three minutes, then remove the bag.", "Tea is a drink."],
                 best=[0]),
         Example("p2", "What is 7 + 5?", ["12", "The answer is 75."], best=[0])]


@pytest.fixture(scope="module")
def shipped_backend():
    from spct.backends.models import DEFAULT_JUDGE
    from spct.backends.transformers import TransformersBackend

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # nothing may come from a hub
        yield TransformersBackend(DEFAULT_JUDGE)


@pytest.mark.slow
def test_shipped_judge_loads_offline_and_judges(shipped_backend):
    """The shipped adapter is small, merges over the embedded base into its own folder, and judges."""
    from spct.backends.models import DEFAULT_JUDGE, adapter_dir, resolve_model

    assert (adapter_dir(DEFAULT_JUDGE) / "adapter_model.safetensors").stat().st_size <= 45 * 1024 * 1024
    assert resolve_model(DEFAULT_JUDGE)[0] != resolve_model("smollm2-135m")[0]
    grm = GenerativeRewardModel(shipped_backend, JudgeConfig(k=1, max_new_tokens=128))
    for js in grm.sample(PAIRS, 1):
        assert js[0].ok and len(js[0].scores) == 2 and js[0].principles is not None


def test_shipped_judge_is_read_as_it_was_trained():
    """spct train-verdict trained its expected score on one response at a time, straight after the prompt: the CLI
    reads it there and at its own score line (anchored)."""
    from spct.backends.models import DEFAULT_JUDGE, recommended_judging

    assert recommended_judging(DEFAULT_JUDGE) == {"policy": "pointwise", "readout": "anchored"}


@pytest.mark.slow
def test_shipped_judge_writes_its_own_score_line_and_ranks_by_its_expected_score(shipped_backend):
    """Greedy, constraint off, read as trained: its own principles, analysis and score line, then the expected
    score, which never ties."""
    from spct.backends.models import DEFAULT_JUDGE

    config = JudgeConfig.for_model(DEFAULT_JUDGE, k=1, max_new_tokens=256, constrain=False)
    rewards = GenerativeRewardModel(shipped_backend, config).judge(PAIRS)
    for r in rewards:
        assert len(r.judgments) == 2  # one per response, each judged alone
        for j in r.judgments:
            assert j.ok and not j.forced and j.principles is not None, (j.error, j.text)
            assert j.expected is not None and 1 <= j.expected[0] <= 10
        assert r.best is not None  # no tie


def test_stacked_adapters_equal_the_sum_of_their_updates(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from spct.train.adapters import stack_adapters

    key = "base_model.model.model.layers.0.self_attn.q_proj"
    expected = torch.zeros(6, 5)
    folders = []
    for i, (r, alpha) in enumerate(((2, 4), (3, 3))):
        a, b = torch.randn(r, 5), torch.randn(6, r)
        expected += (alpha / r) * b @ a
        d = tmp_path / f"a{i}"
        d.mkdir()
        save_file({f"{key}.lora_A.weight": a, f"{key}.lora_B.weight": b}, str(d / "adapter_model.safetensors"))
        (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": r, "lora_alpha": alpha,
                                                           "target_modules": ["q_proj"]}))
        folders.append(d)
    out = stack_adapters(folders, tmp_path / "stacked")
    cfg = json.loads((out / "adapter_config.json").read_text())
    w = load_file(str(out / "adapter_model.safetensors"))
    assert cfg["r"] == 5 and cfg["lora_alpha"] == 5  # scaling 1
    assert torch.allclose(w[f"{key}.lora_B.weight"] @ w[f"{key}.lora_A.weight"], expected, atol=1e-5)
