"""Verdict preference training (`spct train-verdict`): pairs, prompt cutting, the score readout, a real run."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from spct.backends.models import resolve_model
from spct.cli import main
from spct.data import Example, InputError, Judgment
from spct.policies import single
from spct.score_line import SCORE_PREFIX
from spct.train.verdict_pref import (
    PromptEncoder,
    _encode_pairs,
    _own_line_pairs,
    freeze_below,
    pointwise_pairs,
    read_own_lines,
    score_readout_model,
)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model("spct-grm-135m")[0])


def test_pointwise_pairs_put_every_best_against_every_other():
    exs = [Example("a", "q", ["x", "y", "z"], best=[1]), Example("b", "q", ["only"], ratings=[5]),
           Example("c", "q", ["u", "v"])]
    pairs = pointwise_pairs(exs)
    assert [(c.id, r.id) for c, r in pairs] == [("a/1", "a/0"), ("a/1", "a/2")]
    assert all(len(c.responses) == len(r.responses) == 1 for c, r in pairs)


def test_prompt_ends_at_the_score_box_and_long_texts_are_cut(tokenizer):
    encode = PromptEncoder(tokenizer, max_length=320)
    box = tokenizer(SCORE_PREFIX, add_special_tokens=False)["input_ids"]
    short = encode(Example("s", "What is 2+2?", ["4"]))
    assert short[-len(box):] == box and len(short) < 320

    long_response = "START " + "word " * 2000
    ids = encode(Example("r", "Say something.", [long_response]))
    text = tokenizer.decode(ids)
    assert len(ids) <= 320 and ids[-len(box):] == box
    assert "START" in text and "Say something." in text  # the response keeps its start, the query stays whole

    turns = [{"role": "user", "content": "old question " * 300}, {"role": "assistant", "content": "old answer"},
             {"role": "user", "content": "LAST QUESTION"}]
    ids = encode(Example("t", turns, ["fine"]))
    text = tokenizer.decode(ids)
    assert len(ids) <= 320 and "LAST QUESTION" in text and "old answer" not in text  # oldest exchange dropped


def _own_row(ex: Example, i: int, sample: int, text: str, scores: list[int] | None = None) -> str:
    alone = single(ex, i)
    j = Judgment(alone.id, sample, [0], "- p", "c", scores, text)
    return json.dumps({"key": f"{ex.id}|{i}|{sample}|u", "example": alone.to_dict(), "judgment": j.to_dict(),
                       "label": 1, "hinted": False}) + "\n"


def test_own_lines_are_cut_at_their_score_box_and_paired_by_sample(tmp_path):
    ex = Example("a", "q", ["good", "bad"], best=[0])
    judged = "Principles:\n- p\nAnalysis:\nfine.\nScores: \\boxed{"
    path = tmp_path / "own.jsonl"
    path.write_text(_own_row(ex, 0, 0, judged + "8}", [8]) + _own_row(ex, 1, 0, judged + "3}", [3])
                    + _own_row(ex, 0, 1, judged + "7}", [7])  # sample 1 of response 1 is missing
                    + _own_row(ex, 1, 2, "no score line", None)  # failed: no own line to read
                    + "{not json\n")
    own, issues = read_own_lines(path)
    assert [str(i).split(":")[:2] for i in issues] == [[str(path), "5"]]
    assert own == {"a/0": ("good", {0: (judged, "8}"), 1: (judged, "7}")}), "a/1": ("bad", {0: (judged, "3}")})}
    own_pairs = _own_line_pairs(pointwise_pairs([ex]), own, "d.jsonl")
    assert [(c.id, r.id, ch, rh) for c, r, ch, rh in own_pairs] == [("a/0", "a/1", (judged, "8}"), (judged, "3}"))]  # sample 0 only

    other = Example("a", "q", ["good", "something else"], best=[0])
    with pytest.raises(InputError, match="judged another response than d.jsonl holds"):
        _own_line_pairs(pointwise_pairs([other]), own, "d.jsonl")
    with pytest.raises(InputError, match="no own-line judgment belongs to a pair of d.jsonl"):
        _own_line_pairs(pointwise_pairs([Example("b", "q", ["x", "y"], best=[1])]), own, "d.jsonl")

    pair_rows = tmp_path / "pairwise.jsonl"
    j = Judgment("a", 0, [0, 1], "- p", "c", [8, 3], judged + "8, 3}")
    pair_rows.write_text(json.dumps({"example": ex.to_dict(), "judgment": j.to_dict(), "label": 1}) + "\n")
    with pytest.raises(InputError, match="judges 2 responses; own-line rows need one response a judgment"):
        read_own_lines(pair_rows)


def test_prompt_can_end_at_the_judges_own_score_box(tokenizer):
    encode = PromptEncoder(tokenizer, max_length=320)
    head = "Principles:\n- Correct (100%)\nAnalysis:\nIt is right.\nScores: \\boxed{"
    ex = Example("s", "What is 2+2?", ["4 " * 1000])
    ids = encode(ex, head)
    text = tokenizer.decode(ids)
    assert len(ids) <= 320 and text.endswith(head) and "What is 2+2?" in text  # the response is cut, not the head
    assert encode(ex, head * 40) is None  # a head longer than the budget does not fit at all


def test_readout_is_the_expected_digit_score_at_the_last_real_token():
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2))
    digits = list(range(10, 19))
    model = score_readout_model(lm, digits).eval()
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with torch.no_grad():
        got = model(input_ids=ids, attention_mask=mask).logits[:, 0]
        for row, last in ((0, 3), (1, 1)):
            probs = lm(input_ids=ids[row : row + 1, : last + 1]).logits[0, -1, digits].softmax(-1)
            assert got[row].item() == pytest.approx((probs * torch.arange(1, 10)).sum().item() - 5, abs=1e-5)
    assert all(-4 <= v <= 4 for v in got.tolist())


def test_held_text_is_the_own_judgment_and_its_end(tokenizer):
    encode = PromptEncoder(tokenizer, max_length=320)
    good, bad = Example("a/0", "What is 2+2?", ["4"]), Example("a/1", "What is 2+2?", ["5"])
    head = "Principles:\n- Correct (100%)\nAnalysis:\nIt is right.\nScores: \\boxed{"
    (own,), _ = _encode_pairs(encode, [(good, bad, (head, "8}"), (head, "3}"))], hold_text=True)
    ids, read_at = own["chosen_ids"], own["chosen_read_at"]
    assert tokenizer.decode(ids[own["chosen_text_from"]:]) == head + "8}" + tokenizer.eos_token  # the judgment, not the prompt
    assert tokenizer.decode(ids[: read_at + 1]).endswith(head) and tokenizer.decode(ids[read_at + 1]) == "8"
    (plain,), _ = _encode_pairs(encode, [(good, bad, (head, "8}"), (head, "3}"))], hold_text=False)
    assert plain["chosen_ids"] == ids[: read_at + 1] and plain["chosen_read_at"] == read_at  # read at the box, as before
    (straight,), _ = _encode_pairs(encode, [(good, bad, (SCORE_PREFIX, ""), (SCORE_PREFIX, ""))], hold_text=False)
    assert straight["chosen_text_from"] == len(straight["chosen_ids"])  # a bare score box is not text to hold

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2))
    model = score_readout_model(lm, list(range(10, 19))).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, read_at=torch.tensor([1, 2]), text_from=torch.tensor([1, 3]))
        logits = lm(input_ids=ids[:1]).logits[0]
        # Row 1 holds its tokens 1..4 but for token 2, the score read at token 1; row 2 has no text.
        want = torch.nn.functional.cross_entropy(logits[[0, 2, 3]], ids[0, [1, 3, 4]])
        assert out.loss.item() == pytest.approx(want.item(), abs=1e-5)
        probs = logits[1, list(range(10, 19))].softmax(-1)
        assert out.logits[0, 0].item() == pytest.approx((probs * torch.arange(1, 10)).sum().item() - 5, abs=1e-5)
        read_last = torch.tensor([4, 2])
        assert model(input_ids=ids, attention_mask=mask, read_at=read_last, text_from=torch.tensor([5, 3])).loss.item() == 0.0
        assert model(input_ids=ids, attention_mask=mask).loss is None


def test_only_the_top_blocks_train():
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                      num_attention_heads=4, num_key_value_heads=2))
    freeze_below(lm, 1)
    trainable = {n.split(".")[2] if n.startswith("model.layers") else n for n, p in lm.named_parameters() if p.requires_grad}
    assert trainable == {"3", "model.norm.weight"}


def test_cli_refuses_data_without_labelled_pairs(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "x", "query": "q", "responses": ["a"], "ratings": [5]}) + "\n")
    assert main(["train-verdict", str(data), "-o", str(tmp_path / "out")]) == 2
    assert f"{data}: no labelled pairs" in capsys.readouterr().err


def test_cli_refuses_a_text_weight_without_own_judgments(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "x", "query": "q", "responses": ["a", "b"], "best": [0]}) + "\n")
    assert main(["train-verdict", str(data), "-o", str(tmp_path / "out"), "--text-weight", "1"]) == 2
    assert "--text-weight holds the text of the judge's own judgments: give them with --own-lines" in capsys.readouterr().err


@pytest.mark.slow
def test_train_verdict_on_the_embedded_model_resumes_and_judges(tmp_path, pair_examples):
    from spct.backends import load_backend
    from spct.judge import GenerativeRewardModel, JudgeConfig

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(ex.to_dict()) + "\n" for ex in pair_examples))
    out = tmp_path / "tv"
    args = ["train-verdict", str(data), "-o", str(out), "--batch-size", "2", "--save-steps", "1",
            "--max-length", "320", "--train-top-layers", "2", "--adapter-rank", "4"]
    assert main([*args, "--max-steps", "1"]) == 0
    assert main([*args, "--max-steps", "2"]) == 0  # resumes from checkpoint-1
    summary = json.loads((out / "spct_verdict_pref.json").read_text())
    assert summary["steps"] == 2 and summary["pairs"] == len(pair_examples)
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert summary["adapter"]["layers"] == 14 and (out / "adapter" / "adapter_model.safetensors").exists()  # 2 blocks x 7

    assert json.loads((out / "spct_judging.json").read_text()) == {"policy": "pointwise", "readout": "anchored"}
    grm = GenerativeRewardModel(load_backend(str(out)), JudgeConfig(max_new_tokens=24, policy="pointwise",
                                                                    readout="expected"))
    for r in grm.judge(pair_examples[:2]):
        assert len(r.rewards) == 2 and all(1.0 <= x <= 10.0 for x in r.rewards) and r.rewards[0] != r.rewards[1]


@pytest.mark.slow
def test_train_verdict_at_the_judges_own_lines_on_the_embedded_model(tmp_path, pair_examples):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(ex.to_dict()) + "\n" for ex in pair_examples))
    own = tmp_path / "own.jsonl"
    assert main(["meta-data", str(data), "-o", str(own), "--policy", "pointwise", "--readout", "sampled", "--k", "2",
                 "--max-new-tokens", "24"]) == 0  # the judge's own judgments; the score line forced where needed
    out = tmp_path / "tv"
    assert main(["train-verdict", str(data), "-o", str(out), "--own-lines", str(own), "--batch-size", "3",
                 "--max-length", "384", "--train-top-layers", "1", "--max-steps", "2", "--logging-steps", "1",
                 "--text-weight", "1"]) == 0
    summary = json.loads((out / "spct_verdict_pref.json").read_text())
    assert summary["pairs"] == 2 and summary["own_line_pairs"] == 4  # 2 pairs x 2 samples judged for both responses
    logged = [row for row in json.loads((out / "log_history.json").read_text()) if "loss" in row]
    assert len(logged) == 2 and all(0 < row["text_loss"] < 10 for row in logged)  # each batch of 3 holds an own-line pair


def test_extracted_adapter_reproduces_a_fully_tuned_model(tmp_path):
    from peft import PeftModel

    from spct.train.adapters import extract_adapter

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    base = LlamaForCausalLM(config)
    base.save_pretrained(tmp_path / "base")
    tuned = LlamaForCausalLM.from_pretrained(tmp_path / "base")
    with torch.no_grad():  # a rank-3 change of each linear of block 1, and new norm scales
        block = tuned.model.layers[1]
        for lin in (block.self_attn.q_proj, block.self_attn.v_proj, block.mlp.up_proj, block.mlp.down_proj):
            lin.weight += 0.1 * torch.randn(lin.weight.shape[0], 3) @ torch.randn(3, lin.weight.shape[1])
        block.input_layernorm.weight.mul_(1.5)
        tuned.model.norm.weight.add_(0.3)
    tuned.save_pretrained(tmp_path / "tuned")
    # Folding the norm makes q/k/v changes of full rank, so rank 32 (the width) is exact; rank 3 is not.
    exact = extract_adapter(tmp_path / "base", tmp_path / "tuned", tmp_path / "a32", rank=32, dtype=torch.float32)
    cut = extract_adapter(tmp_path / "base", tmp_path / "tuned", tmp_path / "a3", rank=3, dtype=torch.float32)
    assert exact["max_rel_error"] < 1e-4 and cut["max_rel_error"] > 0.01
    merged = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(tmp_path / "base"), tmp_path / "a32").merge_and_unload()
    ids = torch.tensor([[1, 5, 9, 2, 7]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, tuned(ids).logits, atol=1e-4)
