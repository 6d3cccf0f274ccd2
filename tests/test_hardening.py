"""Second hardening round (issue 22): poison lines, Example validation, outputs, memory bounds, options,
the server's connection deadline, API keys, the RL client, failing rollouts, marker look-alikes.

Every case here once crashed, misled or silently judged the wrong thing; all run on FakeBackend, no model."""

from __future__ import annotations

import gzip
import json
import math
import tracemalloc
from pathlib import Path

import pytest

from spct.backends.fake import FakeBackend
from spct.cli import main
from spct.data import MAX_LINE_BYTES, Example, InputError, JsonlAppender, read_examples
from spct.judge import GenerativeRewardModel, JudgeConfig


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own usage errors
        return int(e.code)


GOOD = '{"id": "ok", "query": "q", "responses": ["a", "b"], "best": [0]}'
HUGE = "9" * 5000  # past Python's 4300-digit int-string limit

# -- 5. poison lines: huge integers and lone surrogates --------------------------------------------------

POISON = [
    (f'{{"id": "big", "query": "q", "responses": ["a"], "ratings": [{HUGE}]}}', "ratings[0]", "integer of 5000 digits"),
    (f'{{"id": "deep", "query": "q", "responses": ["a"], "extra": {{"x": [1, -{HUGE}]}}}}', "extra.x[1]", "5000 digits"),
    (HUGE, None, "integer of 5000 digits"),
    ('{"id": "s\\ud83d", "query": "q", "responses": ["a"]}', "id", "lone surrogate \\ud83d"),
    ('{"id": "sq", "query": "q \\udc00", "responses": ["a"]}', "query", "lone surrogate \\udc00"),
    ('{"id": "sr", "query": "q", "responses": ["a", "\\ud83d!"]}', "responses[1]", "lone surrogate"),
    ('{"id": "sk", "query": "q", "responses": ["a"], "x\\ud83d": 1}', None, "a key: lone surrogate"),
    ('{"prompt": "p", "chosen": "\\ud800", "rejected": "b"}', "chosen", "lone surrogate"),
]


def poison_file(tmp_path: Path) -> Path:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([line for line, _, _ in POISON] + [GOOD]) + "\n")
    return src


def test_huge_integers_and_lone_surrogates_are_named_issues(tmp_path):
    src = poison_file(tmp_path)
    examples, issues = read_examples(src)
    assert [ex.id for ex in examples] == ["ok"]
    assert [(i.line, i.field) for i in issues] == [(n, field) for n, (_, field, _) in enumerate(POISON, start=1)]
    for issue, (_, _, words) in zip(issues, POISON, strict=True):
        assert words in issue.message and str(issue).isascii()  # printable on any terminal


def test_poison_lines_through_judge_and_meta_data_and_the_run_goes_on(tmp_path, capsys):
    src = poison_file(tmp_path)
    assert run_cli(["judge", str(src), "-o", str(tmp_path / "j.jsonl"), "--engine", "fake", "--no-progress"]) == 0
    assert [r["id"] for r in rows(tmp_path / "j.jsonl")] == ["ok"]
    assert run_cli(["meta-data", str(src), "-o", str(tmp_path / "m.jsonl"), "--engine", "fake", "--k", "2"]) == 0
    assert len(rows(tmp_path / "m.jsonl")) == 2
    err = capsys.readouterr().err
    assert f"{src}:1 [ratings[0]]: an integer of 5000 digits" in err and f"{src}:4 [id]: lone surrogate" in err
    assert "Traceback" not in err


def test_poison_lines_through_eval_and_rft(tmp_path, capsys):
    src = poison_file(tmp_path)
    assert run_cli(["eval", "--benchmark", "spct", "--data", str(src), "-o", str(tmp_path / "ev"), "--engine", "fake",
                    "--k", "1"]) == 0
    assert [r["id"] for r in rows(tmp_path / "ev" / "samples.jsonl")] == ["ok"]
    assert run_cli(["rft", str(src), "-o", str(tmp_path / "rft"), "--engine", "fake", "--k", "2"]) == 0
    err = capsys.readouterr().err
    assert "[responses[1]]: lone surrogate" in err and "Traceback" not in err


def test_data_split_names_a_poison_line_instead_of_a_traceback(tmp_path, capsys):
    for n, (line, field, words) in enumerate(POISON[:4]):
        src = tmp_path / f"in{n}.jsonl"
        src.write_text(GOOD + "\n" + line + "\n")
        assert run_cli(["data", "split", str(src), "-o", str(tmp_path / f"split{n}"), "--heldout", "1"]) == 2
        err = capsys.readouterr().err
        assert f"{src}:2" + (f" [{field}]" if field else "") in err and words in err and "Traceback" not in err


def test_a_huge_integer_in_an_existing_output_is_named_not_a_traceback(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"id": "a", "k": 1}) + "\n" + f'{{"id": "b", "k": {HUGE}}}\n' + json.dumps({"id": "c"}) + "\n")
    with pytest.raises(InputError, match=r"out.jsonl:2: not a JSON line"):
        JsonlAppender(out)
    cut = tmp_path / "cut.jsonl"
    cut.write_text(json.dumps({"id": "a"}) + "\n" + f'{{"id": "b", "k": {HUGE}')  # a partial last line: dropped
    with JsonlAppender(cut) as app:
        assert set(app.done) == {"a"}


# -- 9. the Python API validates Examples as the file reader does --------------------------------------


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    (dict(responses="abc"), "responses", "'responses' must be a non-empty list of strings"),
    (dict(responses=[]), "responses", "non-empty list"),
    (dict(responses=["a", 3]), "responses[1]", "must be a string"),
    (dict(best=[7]), "best", "'best' index 7 out of range for 2 responses"),
    (dict(best=0), "best", "'best' must be a list of response indices"),
    (dict(best=[True]), "best", "list of response indices"),
    (dict(ratings=[math.nan, 1]), "ratings[0]", "not a finite number (NaN)"),
    (dict(ratings=[1]), "ratings", "one number per response (2)"),
    (dict(ratings=["1", 2]), "ratings", "must be numbers"),
    (dict(query=None), "query", "'query' must be a string or a list of messages"),
    (dict(query=[{"role": "user"}]), "query[0]", "string 'role' and 'content'"),
    (dict(query=[]), "query", "non-empty list"),
    (dict(id=7), "id", "'id' must be a string, got number"),
    (dict(id=None), "id", "got null"),
    (dict(domain=["x"]), "domain", "'domain' must be a string"),
    (dict(responses=["a", "\ud83d"]), "responses[1]", "lone surrogate"),
])
def test_odd_examples_are_refused_at_construction(kwargs, field, words):
    args = {"id": "e", "query": "q", "responses": ["a", "b"], **kwargs}
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")) as e:
        Example(**args)
    assert e.value.field == field


def test_the_reader_gives_the_same_message_as_the_python_api(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "e", "query": "q", "responses": "abc"}\n{"id": "f", "query": "q", "responses": ["a", "b"], "best": [7]}\n')
    _, issues = read_examples(src)
    for issue, kwargs in zip(issues, [dict(responses="abc"), dict(best=[7])], strict=True):
        with pytest.raises(InputError) as e:
            Example(**{"id": "e", "query": "q", "responses": ["a", "b"], **kwargs})
        assert (issue.field, issue.message) == (e.value.field, str(e.value))


@pytest.mark.parametrize("k", [-1, -5])
def test_a_negative_k_is_an_error_not_an_empty_reward(k):
    grm = GenerativeRewardModel(FakeBackend())
    with pytest.raises(ValueError, match="k must be"):
        grm.judge([Example("e", "q", ["a", "b"], best=[0])], k=k)
    with pytest.raises(ValueError, match="k must be"):
        GenerativeRewardModel(FakeBackend(), JudgeConfig(k=k)).judge([Example("e", "q", ["a", "b"])])


def test_valid_examples_still_judge_as_before():
    [r] = GenerativeRewardModel(FakeBackend()).judge([Example("e", "q", ["a", "b"], best=[0], ratings=[2, 1.5], domain="d")])
    assert r.correct is not None and len(r.rewards) == 2


# -- 10. outputs and ids -------------------------------------------------------------------------------


def test_a_gz_output_is_refused_before_any_work(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(GOOD + "\n")
    assert run_cli(["judge", str(src), "-o", str(tmp_path / "out.jsonl.gz"), "--engine", "fake"]) == 2
    assert "gzip" in capsys.readouterr().err and not (tmp_path / "out.jsonl.gz").exists()
    with pytest.raises(InputError, match="gzip"):
        JsonlAppender(tmp_path / "x.jsonl.gz")


@pytest.mark.parametrize(("value", "words"), [("null", "got null"), ('["x"]', "got array"), ("true", "got boolean"),
                                              ('{"a": 1}', "got object")])
def test_non_string_ids_are_refused_numbers_are_converted(tmp_path, value, words):
    src = tmp_path / "in.jsonl"
    src.write_text(f'{{"id": {value}, "query": "q", "responses": ["a"]}}\n{{"id": 7, "query": "q", "responses": ["a"]}}\n')
    examples, issues = read_examples(src)
    assert [ex.id for ex in examples] == ["7"]
    assert [(i.line, i.field) for i in issues] == [(1, "id")] and words in issues[0].message


def test_train_meta_refuses_scores_off_the_scale(tmp_path):
    from spct.meta_rm import read_meta_rows

    ex = {"id": "e", "query": "q", "responses": ["a", "b"], "best": [0]}
    judgment = {"id": "e", "sample": 0, "order": [0, 1], "principles": None, "critique": None, "scores": [11, 0],
                "text": "t", "error": None}
    path = tmp_path / "meta.jsonl"
    path.write_text(json.dumps({"key": "k", "example": ex, "judgment": judgment, "label": 1}) + "\n")
    good, issues = read_meta_rows(path)
    assert not good and [(i.line, i.field) for i in issues] == [(1, "judgment.scores")]
    assert "1..10" in issues[0].message


def test_a_full_disk_names_the_output_file(tmp_path, monkeypatch, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(GOOD + "\n")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    assert run_cli(["judge", str(src), "-o", str(out), "--engine", "fake", "--no-progress"]) == 2
    assert f"cannot write {out}: No space left on device" in capsys.readouterr().err


# -- 7. memory anyone can exhaust ----------------------------------------------------------------------


@pytest.mark.parametrize("k", ["99999999999999999999", "100000"])
def test_an_absurd_k_is_refused_with_its_limit(k, capsys):
    assert run_cli(["judge", "in.jsonl", "-o", "out.jsonl", "--engine", "fake", "--k", k]) == 2
    assert "must be in 1..4096" in capsys.readouterr().err


def test_an_output_that_is_not_a_regular_file_is_refused(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(GOOD + "\n")
    assert run_cli(["judge", str(src), "-o", "/dev/zero", "--engine", "fake"]) == 2
    assert "/dev/zero: not a regular file" in capsys.readouterr().err
    with pytest.raises(InputError, match="not a regular file"):
        JsonlAppender("/dev/zero")


def test_an_oversized_line_is_reported_and_skipped_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr("spct.data.MAX_LINE_BYTES", 10_000)
    src = tmp_path / "bomb.jsonl.gz"
    big = b'{"id": "big", "query": "' + b"x" * 20_000_000 + b'", "responses": ["a"]}'
    with gzip.open(src, "wb") as fh:
        fh.write(GOOD.encode() + b"\n" + big + b"\n" + GOOD.replace("ok", "ok2").encode() + b"\n")
    tracemalloc.start()
    examples, issues = read_examples(src)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [ex.id for ex in examples] == ["ok", "ok2"]
    assert [(i.line, i.field) for i in issues] == [(2, None)] and "longer than the limit of 10000 bytes" in issues[0].message
    assert peak < 2_000_000  # the 20 MB line was never held whole
    assert MAX_LINE_BYTES >= 16 * 1024 * 1024  # the default leaves room for real examples


def test_resuming_onto_a_large_output_streams_it(tmp_path):
    from spct.jobs import judge_file

    out = tmp_path / "out.jsonl"
    row = {"id": "", "k": 1, "rewards": [5, 5], "judgments": [{"text": "t" * 2000}]}
    with open(out, "w") as fh:
        for i in range(4000):
            fh.write(json.dumps({**row, "id": f"r{i}"}) + "\n")
    size = out.stat().st_size
    examples = [Example(f"r{i}", "q", ["a", "b"]) for i in range(4000)]
    tracemalloc.start()
    s = judge_file(GenerativeRewardModel(FakeBackend()), examples, out, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (s.skipped_done, s.written) == (4000, 0)
    assert peak < size / 4, (peak, size)  # it held keys, not the file nor its rows
