"""Issue 22, input files (items 5-8), the paths the first round left: eval's .json files, the commands
besides judge and eval that met an example too large for the model, resumes that held every row, and
scale's resample counts. All on FakeBackend, no model."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path

import pytest
from _cli import rows, run_cli

from spct.backends.fake import FakeBackend
from spct.data import Example, InputError, JsonlAppender, read_examples
from spct.judge import JudgeConfig
from spct.settings import MAX_RETRIES, from_env

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


# -- 6. an example too large for the model is a skipped line in every command that judges -------------

MANY = 3000  # responses: their markers alone outgrow an 8k context, however the texts are cut
TOO_LARGE = "[responses]: too large for the model's 8192-token context"


@pytest.fixture
def too_large_file(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr("spct.cli.common.load_backend", lambda *a, **kw: FakeBackend(context_length=8192))
    ok = {"query": "q", "responses": ["a longer answer", "short"], "best": [0]}
    big = {"id": "big", "query": "q", "responses": [f"answer {i}" for i in range(MANY)], "best": [0]}
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in [{"id": "ok1", **ok}, big, {"id": "ok2", **ok}]) + "\n")
    return src


def test_meta_data_skips_an_example_too_large_and_a_rerun_judges_nothing_twice(too_large_file, tmp_path, capsys):
    out = tmp_path / "meta.jsonl"
    argv = ["meta-data", str(too_large_file), "-o", str(out), "--engine", "fake", "--k", "2", "--max-new-tokens", "32"]
    for written in (4, 0):
        assert run_cli(argv) == 0
        err = capsys.readouterr().err
        assert f"warning: skipped {too_large_file}:2 {TOO_LARGE}" in err and "lower --max-new-tokens" not in err
        assert f"{written} judgments written" in err and "1 example(s) too large for the model's context skipped" in err
    assert sorted({r["key"].split("|")[0] for r in rows(out)}) == ["ok1", "ok2"]


def test_rft_skips_an_example_too_large(too_large_file, tmp_path, capsys):
    out = tmp_path / "rft"
    assert run_cli(["rft", str(too_large_file), "-o", str(out), "--engine", "fake", "--k", "2", "--max-new-tokens", "32",
                    "--no-progress"]) == 0
    assert [r["id"] for r in rows(out / "samples.jsonl")] == ["ok1", "ok2"]
    err = capsys.readouterr().err
    assert f"warning: skipped {too_large_file}:2 {TOO_LARGE}" in err and "Traceback" not in err
    assert json.loads((out / "stats.json").read_text())["examples"] == 2


def test_scale_skips_an_example_too_large(too_large_file, tmp_path, capsys):
    out = tmp_path / "scale"
    assert run_cli(["scale", str(too_large_file), "-o", str(out), "--engine", "fake", "--k", "1,2", "--max-new-tokens",
                    "32", "--bootstrap", "50", "--no-progress"]) == 0
    assert [r["id"] for r in rows(out / "samples.jsonl")] == ["ok1", "ok2"]
    assert json.loads((out / "scaling.json").read_text())["examples"] == 2
    assert f"warning: skipped {too_large_file}:2 {TOO_LARGE}" in capsys.readouterr().err


def test_probe_skips_an_example_too_large(too_large_file, tmp_path, capsys):
    out = tmp_path / "probe"
    assert run_cli(["probe", "--data", str(too_large_file), "-o", str(out), "--engine", "fake", "--max-new-tokens", "32",
                    "--prompts", "hardened"]) == 0
    assert {r["key"].split("|")[0] for r in rows(out / "samples.jsonl")} == {"ok1", "ok2"}
    assert json.loads((out / "results.json").read_text())["examples"] == 2
    assert f"warning: skipped {too_large_file}:2 {TOO_LARGE}" in capsys.readouterr().err


# -- 7. resuming holds keys, not rows; counts that size memory have limits ------------------------------


def examples_file(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "in.jsonl"
    with open(src, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"r{i}", "query": "q", "responses": ["a longer answer", "short"], "best": [0]}) + "\n")
    return src


def peak_while(argv: list[str]) -> int:
    tracemalloc.start()
    try:
        assert run_cli(argv) == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("command", ["meta-data", "rft", "eval"])
def test_a_resume_holds_what_it_needs_not_the_output(command, tmp_path):
    n = 200
    src = examples_file(tmp_path, n)
    out = tmp_path / "out"
    base = ["--engine", "fake", "--k", "1"]
    if command == "meta-data":
        path, argv = out, ["meta-data", str(src), "-o", str(out), *base]
        row = lambda i, text: {"key": f"r{i}|0|u", "label": 1, "judgment": {"text": text}}  # noqa: E731
    elif command == "rft":
        path, argv = out / "samples.jsonl", ["rft", str(src), "-o", str(out), *base, "--no-progress"]
        row = lambda i, text: {"id": f"r{i}", "drawn": [{"text": text}]}  # noqa: E731 (no status: no train rows)
    else:
        path = out / "samples.jsonl"
        argv = ["eval", "--benchmark", "spct", "--data", str(src), "-o", str(out), *base, "--no-progress"]
        assert run_cli(argv) == 0  # a real run first, for its config.json and row shape
        first = rows(path)[0]
        row = lambda i, text: {**first, "id": f"r{i}", "details": [{"text": text}]}  # noqa: E731
    path.parent.mkdir(parents=True, exist_ok=True)
    peaks = []
    for text in ("", "t" * 40_000):  # the same finished rows, without and with their bulk
        with open(path, "w") as fh:
            for i in range(n):
                fh.write(json.dumps(row(i, text)) + "\n")
        run_cli(argv)  # imports and caches outside the measurement
        peaks.append(peak_while(argv))
    bulk = n * 40_000
    assert peaks[1] - peaks[0] < bulk / 4, (peaks, bulk)  # the rows were read, not kept


@pytest.mark.parametrize(("flag", "value", "limit"), [("--bootstrap", "99999999999999", "1..100000"),
                                                      ("--subsets", "99999999999999", "1..4096")])
def test_scale_refuses_absurd_resample_counts(flag, value, limit, capsys):
    assert run_cli(["scale", "in.jsonl", "-o", "out", "--engine", "fake", flag, value]) == 2
    assert f"argument {flag}: must be in {limit}" in capsys.readouterr().err


# -- leftovers: compare on a results.json it cannot read, --retries without a bound --------------------------


@pytest.fixture(scope="module")
def results_json(tmp_path_factory) -> dict:
    """A real `spct eval` results.json (FakeBackend), to break one key at a time."""
    out = tmp_path_factory.mktemp("ev")
    src = examples_file(out, 3)
    assert run_cli(["eval", "--benchmark", "spct", "--data", str(src), "-o", str(out / "run"), "--engine", "fake",
                    "--k", "1", "--no-progress"]) == 0
    return json.loads((out / "run" / "results.json").read_text())


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


BROKEN_RESULTS = [
    (lambda r: _without(r, "by_k"), " [by_k]: missing"),
    (lambda r: {**r, "by_k": [1]}, " [by_k]: must be an object of results per k, got [1]"),
    (lambda r: {**r, "method": 7}, " [method]: must be a string, got 7"),
    (lambda r: {**r, "parse_failure_rate": "low"}, ' [parse_failure_rate]: must be a number or null, got "low"'),
    (lambda r: {**r, "by_k": {"one": r["by_k"]["1"]}}, " [by_k.one]: a key of by_k must be a k"),
    (lambda r: {**r, "by_k": {"1": _without(r["by_k"]["1"], "overall")}}, " [by_k.1.overall]: missing"),
    (lambda r: {**r, "by_k": {"1": {**r["by_k"]["1"], "ci": "wide"}}}, ' [by_k.1.ci]: must be null or a list of two numbers'),
    (lambda r: {**r, "by_k": {"1": {**r["by_k"]["1"], "n": True}}}, " [by_k.1.n]: must be a whole number, got true"),
    (lambda r: {**r, "by_k": {"1": 0.5}}, " [by_k.1]: expected a JSON object"),
    (lambda r: [r], ": expected a JSON object"),
]


@pytest.mark.parametrize(("breaks", "words"), BROKEN_RESULTS, ids=[w for _, w in BROKEN_RESULTS])
def test_compare_names_the_key_of_a_results_json_it_cannot_read(results_json, tmp_path, capsys, breaks, words):
    (tmp_path / "ev").mkdir()
    path = tmp_path / "ev" / "results.json"
    path.write_text(json.dumps(breaks(results_json)))
    assert run_cli(["compare", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert f"spct compare: error: {path}{words}" in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("text", "words"), [("{not json", ":1: malformed JSON: Expecting property name enclosed in double "
                                                           "quotes at column 2"),
                                             ('{"by_k": ' + HUGE + "}", ": cannot be read as JSON"),
                                             ("\xff", ": not valid UTF-8 (byte 0)")])
def test_compare_names_a_results_json_that_is_not_json(tmp_path, capsys, text, words):
    (tmp_path / "ev").mkdir()
    path = tmp_path / "ev" / "results.json"
    path.write_bytes(text.encode("latin-1"))
    assert run_cli(["compare", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert f"spct compare: error: {path}{words}" in err and "Traceback" not in err


def test_compare_reads_what_eval_wrote(results_json, tmp_path, capsys):
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "results.json").write_text(json.dumps(results_json))
    assert run_cli(["compare", str(tmp_path / "ev")]) == 0
    assert "| spct | grm |" in capsys.readouterr().out


def test_retries_have_an_upper_bound(tmp_path, capsys):
    # An engine that never writes a score line was asked again up to 10**20 times per judgment.
    src = examples_file(tmp_path, 1)
    assert run_cli(["judge", str(src), "-o", str(tmp_path / "out.jsonl"), "--engine", "fake", "--retries",
                    "100000000000000000000"]) == 2
    assert f"argument --retries: must be in 0..{MAX_RETRIES}, got 100000000000000000000" in capsys.readouterr().err
    with pytest.raises(InputError, match=f"retries must be in 0..{MAX_RETRIES}, got 17"):
        JudgeConfig(retries=17)
    with pytest.raises(ValueError, match="SPCT_RETRIES='17'"):
        from_env(JudgeConfig, environ={"SPCT_RETRIES": "17"})
    assert JudgeConfig(retries=MAX_RETRIES).retries == 16


# -- leftovers: a folder output that is a file or a device ---------------------------------------------------

FOLDER_COMMANDS = {
    "eval": ["eval", "--benchmark", "spct", "--data", "{src}", "-o", "{out}", "--engine", "fake", "--no-progress"],
    "rft": ["rft", "{src}", "-o", "{out}", "--engine", "fake", "--no-progress"],
    "scale": ["scale", "{src}", "-o", "{out}", "--engine", "fake", "--k", "1", "--no-progress"],
    "probe": ["probe", "--data", "{src}", "-o", "{out}", "--engine", "fake"],
    "data split": ["data", "split", "{src}", "-o", "{out}", "--heldout", "1"],
}


@pytest.mark.parametrize("command", FOLDER_COMMANDS)
def test_a_folder_output_that_is_a_file_or_a_device_says_a_folder_is_wanted(command, tmp_path, capsys):
    src = examples_file(tmp_path, 2)
    (tmp_path / "file").write_text("notes\n")
    for out, where in (("/dev/zero", ""), (str(tmp_path / "file"), ""),
                       (str(tmp_path / "file" / "run"), f" ({tmp_path / 'file'} is not a folder)")):
        argv = [a.format(src=src, out=out) for a in FOLDER_COMMANDS[command]]
        assert run_cli(argv) == 2
        err = capsys.readouterr().err
        assert f"error: {out}: the output must be a folder, or a path where one can be created{where}\n" in err, err
        assert "Errno" not in err
    assert (tmp_path / "file").read_text() == "notes\n"
    argv = [a.format(src=src, out=tmp_path / "new" / "run") for a in FOLDER_COMMANDS[command]]
    assert run_cli(argv) == 0 and (tmp_path / "new" / "run").is_dir()  # a path where one can be made still is


# -- leftovers: a lone surrogate in an existing output ------------------------------------------------------


def test_a_lone_surrogate_in_an_existing_output_is_named_by_line(tmp_path):
    # spct never writes one (it is not UTF-8): the row was made by hand, and kept it would crash a later write.
    out = tmp_path / "out.jsonl"
    for line, field in (('{"id": "a\\ud83d"}', "id"), ('{"id": "b", "judgment": {"text": ["x", "\\udc00"]}}', "judgment.text[1]"),
                        ('{"id": "b", "\\ud83d": 1}', None)):
        out.write_text(json.dumps({"id": "ok"}) + "\n" + line + "\n")
        where = f"{out}:2" + (f" [{field}]" if field else "")
        with pytest.raises(InputError, match=re.escape(where) + r": .*lone surrogate .*not a spct output"):
            JsonlAppender(out)
    out.write_text(json.dumps({"id": "a\U0001f600", "t": "\\ud83d as text"}) + "\n")  # a whole pair, an escaped backslash
    with JsonlAppender(out) as app:
        assert set(app.done) == {"a\U0001f600"}


def test_eval_does_not_resume_onto_a_row_with_a_lone_surrogate(tmp_path, capsys):
    src, out = examples_file(tmp_path, 2), tmp_path / "ev"
    argv = ["eval", "--benchmark", "spct", "--data", str(src), "-o", str(out), "--engine", "fake", "--no-progress"]
    assert run_cli(argv) == 0
    samples = out / "samples.jsonl"
    first, second = samples.read_text().splitlines()
    samples.write_text(first + "\n" + second.replace('"subset": "all"', '"subset": "all\\ud83d"') + "\n")
    assert run_cli(argv) == 2  # the row's subset reached report.md and crashed its write
    err = capsys.readouterr().err
    assert f"{samples}:2 [subset]: lone surrogate \\ud83d" in err and "Traceback" not in err


def test_a_domain_with_a_lone_surrogate_is_refused_by_the_python_api_as_by_the_reader(tmp_path):
    with pytest.raises(InputError, match=r"lone surrogate \\ud83d") as e:
        Example("e", "q", ["a", "b"], domain="math\ud83d")
    assert e.value.field == "domain"
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "e", "query": "q", "responses": ["a", "b"], "domain": "math\\ud83d"}\n')
    [issue] = read_examples(src)[1]
    assert (issue.field, issue.message) == ("domain", str(e.value))
    assert Example("e", "q", ["a", "b"], domain="math \U0001f600").domain == "math \U0001f600"  # a whole pair is fine


# -- leftovers: SFT rows whose completions --max-length cuts away ---------------------------------------------


def test_sft_refuses_before_training_when_max_length_cuts_every_completion(tmp_path, capsys):
    # TRL drops the rows left without a completion token; with none left its trainer stopped on `num_samples=0`.
    from _tiny import tiny_model_dir

    model = tiny_model_dir(tmp_path / "model")
    data = tmp_path / "rows.jsonl"
    row = {"prompt": [{"role": "user", "content": "a long question " * 20}],
           "completion": [{"role": "assistant", "content": "an answer"}]}
    data.write_text((json.dumps(row) + "\n") * 2)
    argv = ["sft", str(data), "-o", str(tmp_path / "out"), "--model", str(model), "--cpu", "--max-steps", "1",
            "--batch-size", "1", "--gradient-accumulation-steps", "1", "--max-length"]
    assert run_cli([*argv, "16"]) == 2
    err = capsys.readouterr().err
    assert ("spct sft: error: max_length=16 cuts away the completion of all 2 training row(s) (their prompts alone fill "
            "it), so there is nothing to train on: raise --max-length") in err and "Traceback" not in err
    assert not list((tmp_path / "out").glob("*.safetensors"))


def test_sft_rows_left_after_truncation():
    from spct.train.sft import check_rows_left

    check_rows_left(5, 1, 16)  # some rows keep a completion: they are trained on
    with pytest.raises(InputError, match="max_length=16 cuts away the completion of all 5") as e:
        check_rows_left(5, 0, 16)
    assert e.value.field == "max_length"
