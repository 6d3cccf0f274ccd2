"""Data contracts: accepted input shapes, per-line issues, and the resumable appender."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from spct.data import (
    Example,
    InputError,
    JsonlAppender,
    Judgment,
    Reward,
    example_from_dict,
    examples_from_hf,
    load_examples,
    read_examples,
)

SHARED_HH = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hh-rlhf-harmless" / "test.jsonl.gz"
HH_ALT = Path("/work/shared/data/hh-rlhf-harmless/test.jsonl.gz")


def test_native_shape_with_chat_query():
    ex = example_from_dict({"id": 7, "query": [{"role": "user", "content": "Hi"}], "responses": ["a", "b"], "best": 1,
                            "domain": "chat"}, "x")
    assert ex == Example("7", [{"role": "user", "content": "Hi"}], ["a", "b"], [1], None, "chat")


def test_pair_shape_and_trl_conversational_shapes():
    ex = example_from_dict({"prompt": "Q?", "chosen": "good", "rejected": "bad"}, "line3")
    assert (ex.id, ex.query, ex.responses, ex.best) == ("line3", "Q?", ["good", "bad"], [0])
    explicit = {"prompt": [{"role": "user", "content": "Q?"}],
                "chosen": [{"role": "assistant", "content": "good"}],
                "rejected": [{"role": "assistant", "content": "bad"}]}
    assert example_from_dict(explicit, "x").query == "Q?"
    implicit = {"chosen": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "good"}],
                "rejected": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "bad"}]}
    ex = example_from_dict(implicit, "x")
    assert (ex.query, ex.responses) == ("Q?", ["good", "bad"])


def test_hh_dialogue_pair_keeps_earlier_turns_as_context():
    chosen = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with that."
    rejected = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: How do I pick a lock?\n\nAssistant: Use a tension wrench."
    ex = example_from_dict({"chosen": chosen, "rejected": rejected}, "x")
    assert ex.query == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                        {"role": "user", "content": "How do I pick a lock?"}]
    assert ex.responses == ["I can't help with that.", "Use a tension wrench."] and ex.best == [0]


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"responses": ["a"]}, "query", "missing field 'query'"),
        ({"query": "q"}, "responses", "missing field 'responses'"),
        ({"query": "q", "responses": []}, "responses", "zero responses"),
        ({"query": "q", "responses": ["a", 3]}, "responses[1]", "must be a string"),
        ({"query": 5, "responses": ["a"]}, "query", "string or a list"),
        ({"query": [{"role": "user"}], "responses": ["a"]}, "query[0]", "role"),
        ({"query": "q", "responses": ["a", "b"], "best": [2]}, "best", "out of range"),
        ({"query": "q", "responses": ["a", "b"], "best": True}, "best", "indices"),
        ({"query": "q", "responses": ["a"], "ratings": [1, 2]}, "ratings", "one number per response"),
        ({"chosen": "no dialogue", "rejected": "x"}, "prompt", "missing field 'prompt'"),
        ({"prompt": "q", "chosen": "a", "rejected": 1}, "rejected", "must be a string"),
    ],
)
def test_bad_rows_name_the_field(row, field, words):
    with pytest.raises(InputError) as e:
        example_from_dict(row, "x")
    assert e.value.field == field
    assert words in str(e.value)


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_read_examples_reports_each_bad_line_and_keeps_the_rest(tmp_path):
    good = json.dumps({"id": "a", "query": "q", "responses": ["x", "y"]}).encode()
    path = write_lines(tmp_path / "in.jsonl", [
        b"\xef\xbb\xbf" + good,  # a byte-order mark on line 1 is fine
        b'{"id": "b", "query": "broken',
        b"",
        b'{"id": "c", "query": "caf\xe9", "responses": ["x"]}',
        b'{"id": "d", "query": "q", "responses": []}',
        json.dumps({"id": "a", "query": "again", "responses": ["z"]}).encode(),
        b"[1, 2]",
        json.dumps({"query": "no id", "responses": ["z"]}).encode(),
    ])
    examples, issues = read_examples(path)
    assert [e.id for e in examples] == ["a", "line8"]
    assert examples[0].source == f"{path}:1" and "source" not in examples[0].to_dict()
    got = [(i.line, i.field) for i in issues]
    assert got == [(2, None), (4, None), (5, "responses"), (6, "id"), (7, None)]
    text = [str(i) for i in issues]
    assert text[0].startswith(f"{path}:2: malformed JSON")
    assert "not valid UTF-8" in text[1] and "0xe9" in text[1]
    assert text[2].startswith(f"{path}:5 [responses]:")
    assert "duplicate id 'a'" in text[3]


def test_gzip_input_and_a_cut_off_gzip(tmp_path):
    rows = [json.dumps({"id": str(i), "query": "q", "responses": ["x" * 200]}) for i in range(200)]
    data = gzip.compress("\n".join(rows).encode() + b"\n")
    (tmp_path / "ok.jsonl.gz").write_bytes(data)
    assert len(read_examples(tmp_path / "ok.jsonl.gz")[0]) == 200
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    examples, issues = read_examples(tmp_path / "cut.jsonl.gz")
    assert issues and "cannot read further" in str(issues[-1])


def test_load_examples_never_mistakes_a_missing_file_for_a_hub_dataset(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_examples(str(tmp_path / "typo.jsonl"))


def test_hf_dataset_objects_are_converted():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a"}])
    examples, issues = examples_from_hf(ds)
    assert [e.responses for e in examples] == [["a", "b"]]
    assert issues[0].line == 1 and issues[0].field == "rejected"


def test_the_shared_hh_rlhf_file_converts():
    path = SHARED_HH if SHARED_HH.exists() else HH_ALT
    if not path.exists():
        pytest.skip("shared/data is not beside this checkout")
    examples, issues = read_examples(path)
    assert len(examples) + len(issues) == 2312 and len(examples) > 2300
    assert all(len(e.responses) == 2 and e.best == [0] for e in examples)
    # Multi-turn dialogues keep their earlier turns as chat context.
    assert sum(isinstance(e.query, list) for e in examples) > 100
    assert all(e.query for e in examples)


# -- output ------------------------------------------------------------------------------------------


def test_reward_round_trip():
    j = Judgment("q", 0, [1, 0], "p", "c", [4, 8], "text", None, 0.7, True, False)
    r = Reward("q", [4, 8], 1, 1, 0, 1, True, [j])
    assert Reward.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert "judgments" not in r.to_dict(with_judgments=False)


def test_appender_resumes_without_duplicates_and_cuts_a_partial_last_line(tmp_path):
    path = tmp_path / "out" / "rows.jsonl"
    with JsonlAppender(path) as out:
        out.write({"id": "a", "v": 1})
        out.write({"id": "b", "v": 2})
        out.write({"id": "a", "v": 3})  # already written: skipped
    with open(path, "a") as fh:
        fh.write('{"id": "c", "v"')  # a crash mid-write
    with JsonlAppender(path) as out:
        assert "a" in out and "b" in out and "c" not in out
        out.write({"id": "c", "v": 4})
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"id": "a", "v": 1}, {"id": "b", "v": 2}, {"id": "c", "v": 4}]


def test_appender_refuses_to_cut_finished_rows_after_a_broken_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(InputError, match=r"rows.jsonl:2"):
        JsonlAppender(path)
    assert path.read_text() == '{"id": "a"}\nnot json\n{"id": "b"}\n'
