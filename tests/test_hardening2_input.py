"""Issue 22, input files (items 5-8), the paths the first round left: eval's .json files, the commands
besides judge and eval that met an example too large for the model, resumes that held every row, and
scale's resample counts. All on FakeBackend, no model."""

from __future__ import annotations

import json

import pytest
from _cli import rows, run_cli

HUGE = "9" * 5000  # past Python's 4300-digit int-string limit
PAIR = '{{"id": "{id}", "prompt": "p", "chosen": "a longer answer", "rejected": "short"{extra}}}'

# -- 5. poison rows in a .json benchmark file ------------------------------------------------------------


def test_poison_rows_of_a_json_file_are_named_issues_and_eval_goes_on(tmp_path, capsys):
    src = tmp_path / "bench.json"
    src.write_text("[" + ", ".join([
        PAIR.format(id="big", extra=f', "x": [1, {HUGE}]'),
        PAIR.format(id="sur", extra=', "subset": "s\\ud83d"'),  # would reach samples.jsonl as the subset
        PAIR.format(id="nan", extra=', "x": NaN'),
        PAIR.format(id="ok", extra=""),
    ]) + "]")
    out = tmp_path / "ev"
    assert run_cli(["eval", "--benchmark", "spct", "--data", str(src), "-o", str(out), "--engine", "fake", "--k", "1",
                    "--no-progress"]) == 0
    assert [r["id"] for r in rows(out / "samples.jsonl")] == ["ok"]
    err = capsys.readouterr().err
    assert f"{src}:1 [x[1]]: an integer of 5000 digits" in err
    assert f"{src}:2 [subset]: lone surrogate \\ud83d" in err
    assert f"{src}:3 [x]: not a finite number (NaN)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("text", "words"), [(HUGE, "expected a JSON list"), ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply")])
def test_a_json_file_that_cannot_be_read_whole_is_one_clear_error(tmp_path, capsys, text, words):
    src = tmp_path / "bench.json"
    src.write_text(text)
    assert run_cli(["eval", "--benchmark", "spct", "--data", str(src), "-o", str(tmp_path / "ev"), "--engine", "fake"]) == 2
    err = capsys.readouterr().err
    assert f"{src}: {words}" in err and "Traceback" not in err


def test_a_poison_line_in_rft_mix_data_is_named(tmp_path, capsys):
    src, mix = tmp_path / "in.jsonl", tmp_path / "mix.jsonl"
    src.write_text(json.dumps({"id": "a", "query": "q", "responses": ["a longer one", "b"], "best": [0]}) + "\n")
    mix.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n" + f'{{"prompt": "p", "completion": "c", "n": {HUGE}}}\n')
    assert run_cli(["rft", str(src), "-o", str(tmp_path / "rft"), "--engine", "fake", "--mix", str(mix), "--no-progress"]) == 2
    assert f"{mix}:2 [n]: an integer of 5000 digits" in capsys.readouterr().err
