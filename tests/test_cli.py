"""The `spct judge` command on bad input, resume and Ctrl-C (fake engine: no model needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from spct.backends.fake import FakeBackend
from spct.cli import main

GOOD = [{"id": "a", "query": "What is 2+2?", "responses": ["4", "Five, I think."], "best": [0]},
        {"id": "f", "prompt": "Say hi.", "chosen": "Hi!", "rejected": "Go away."}]


def write_input(path, huge: bool = False):
    lines = [json.dumps(GOOD[0]).encode(),
             b'{"id": "b", "query": "broken',
             json.dumps({"id": "c", "responses": ["x"]}).encode(),
             b'{"id": "e", "query": "caf\xe9", "responses": ["x"]}',
             json.dumps({"id": "d", "query": "q", "responses": []}).encode(),
             json.dumps({"id": "a", "query": "dup", "responses": ["x", "y"]}).encode(),
             json.dumps(GOOD[1]).encode()]
    if huge:
        lines.append(json.dumps({"id": "h", "query": "Summarise.", "responses": ["word " * 20_000, "ok"]}).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bad_lines_are_named_and_skipped_the_rest_is_judged(tmp_path, capsys):
    src, out = write_input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    assert main(["judge", str(src), "-o", str(out), "--engine", "fake", "--k", "2", "--no-progress"]) == 0
    err = capsys.readouterr().err
    for expected in (f"{src}:2: malformed JSON", f"{src}:3 [query]: missing field 'query'",
                     f"{src}:4: not valid UTF-8", f"{src}:5 [responses]:", f"{src}:6 [id]: duplicate id 'a'"):
        assert expected in err
    assert "Traceback" not in err
    assert "2 judged, 0 already done, 5 bad line(s) skipped" in err
    assert [r["id"] for r in rows(out)] == ["a", "f"] and all(r["k"] == 2 for r in rows(out))
    # A rerun resumes: nothing judged twice.
    assert main(["judge", str(src), "-o", str(out), "--engine", "fake", "--k", "2", "--no-progress"]) == 0
    assert "0 judged, 2 already done" in capsys.readouterr().err
    assert len(rows(out)) == 2


def test_a_huge_response_is_truncated_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("spct.cli.common.load_backend", lambda *a, **kw: FakeBackend(context_length=4096))
    src, out = write_input(tmp_path / "in.jsonl", huge=True), tmp_path / "out.jsonl"
    with caplog.at_level("WARNING"):
        assert main(["judge", str(src), "-o", str(out), "--no-progress", "--max-new-tokens", "512", "--policy", "voting"]) == 0
    assert f"{src}:8 [responses[0]]: cut from 100000 to" in caplog.text
    [huge] = [r for r in rows(out) if r["id"] == "h"]
    assert huge["used"] == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["judge", "{tmp}/missing.jsonl", "-o", "{tmp}/o.jsonl"], "missing.jsonl: no such file"),
        (["judge", "{tmp}/allbad.jsonl", "-o", "{tmp}/o.jsonl"], "no usable examples (1 bad line(s))"),
        (["judge", "{tmp}/in.jsonl", "-o", "{tmp}"], "is a folder"),
        (["judge", "{tmp}/in.jsonl", "-o", "{tmp}/in.jsonl"], "must not be the input"),
        (["judge", "{tmp}/in.jsonl", "-o", "{tmp}/o.jsonl", "--k", "0"], "argument --k: must be >= 1"),
    ],
)
def test_fatal_input_exits_nonzero_with_one_clear_line(tmp_path, capsys, argv, message):
    write_input(tmp_path / "in.jsonl")
    (tmp_path / "allbad.jsonl").write_text("{nope\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--engine", "fake", "--no-progress"]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        rc = e.code
    assert rc == 2
    assert message in capsys.readouterr().err


def test_ctrl_c_prints_how_to_resume(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("spct.cli.judge.judge_file", interrupted)
    src = write_input(tmp_path / "in.jsonl")
    assert main(["judge", str(src), "-o", str(tmp_path / "o.jsonl"), "--engine", "fake"]) == 130
    assert "interrupted; finished work is saved, rerun the same command to resume" in capsys.readouterr().err


def test_console_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "spct", "judge", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--k", "--model", "--max-new-tokens", "--no-constrain", "--retries", "--seed", "--temperature"):
        assert option in out


def test_demo_prints_the_table_and_rates(capsys):
    assert main(["demo", "--engine", "fake", "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "hh-harmless" in out and "accuracy vs human label" in out and "a tie counts as wrong" in out
    assert "parse failures: 0/16" in out and "unconstrained parse rate" in out
    assert out.count("accuracy vs human label") == 2  # the trained judge and its base, side by side
    assert "spct-grm-135m" in out and "smollm2-135m" in out


@pytest.mark.parametrize(("model", "message"), [("{tmp}/missing.gguf", "no such GGUF file"),
                                                 ("{tmp}", "not a model folder (no config.json)")])
def test_a_model_that_is_not_there_is_one_clear_line(tmp_path, capsys, model, message):
    src = write_input(tmp_path / "in.jsonl")
    argv = ["judge", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", model.replace("{tmp}", str(tmp_path))]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
