"""spct eval / compare end to end: resume, refusal of mixed settings, reports; real runs on the embedded models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from spct.backends.models import embedded_encoder_dir
from spct.cli import main
from spct.cli.demo import demo_file
from spct.data import Example
from spct.eval.baselines import TokenProbMethod, VerdictMethod, parse_verdict
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.verifiable import build

FIX = Path(__file__).parent / "fixtures" / "eval"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_fake_writes_everything_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["eval", "--benchmark", "rewardbench", "--data", str(FIX / "rewardbench_v1.jsonl"), "--engine", "fake",
            "--k", "1", "2", "-o", str(out), "--no-progress"]
    assert main(args + ["--limit", "3"]) == 0
    assert len(_rows(out / "samples.jsonl")) == 3
    assert main(args) == 0  # resumes: only the 3 missing items are scored
    rows = _rows(out / "samples.jsonl")
    assert len(rows) == 6 and len({r["id"] for r in rows}) == 6
    results = json.loads((out / "results.json").read_text())
    assert set(results["by_k"]) == {"1", "2"} and results["items"] == 6
    assert set(results["by_k"]["2"]["sections"]) == {"Chat", "Chat Hard", "Safety", "Reasoning"}
    for f in ("report.md", "sections.png", "scaling.png", "config.json"):
        assert (out / f).stat().st_size > 0
    assert "tie rate" in (out / "report.md").read_text()


def test_eval_without_matplotlib_keeps_its_results_and_exits_0(tmp_path, monkeypatch, caplog):
    """The plots are the `eval` extra: a long run is not failed for them (vLLM's venv once lacked it)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "run"
    args = ["eval", "--benchmark", "judgebench", "--data", str(FIX / "judgebench.jsonl"), "--engine", "fake",
            "-o", str(out), "--no-progress"]
    assert main(args) == 0
    assert (out / "results.json").exists() and (out / "report.md").exists()
    assert not list(out.glob("*.png"))
    assert "plots not drawn: plots need matplotlib: pip install 'spct[eval]'" in caplog.text


def test_eval_refuses_other_settings_in_same_folder(tmp_path, capsys):
    out = str(tmp_path / "run")
    base = ["eval", "--benchmark", "judgebench", "--data", str(FIX / "judgebench.jsonl"), "--engine", "fake", "-o", out,
            "--no-progress"]
    assert main(base) == 0
    assert main(base + ["--k", "4"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(base + ["--policy", "both-orders"]) == 2  # a policy's rows would mix with another's
    assert "policy='voting'" in capsys.readouterr().err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["engine"], config["policy"], config["readout"]) == ("fake", "voting", "sampled")


def test_eval_records_the_engine_that_ran_and_resumes_folders_without_a_policy(tmp_path):
    out = tmp_path / "run"
    base = ["eval", "--benchmark", "judgebench", "--data", str(FIX / "judgebench.jsonl"), "--engine", "fake", "-o",
            str(out), "--no-progress"]
    assert main(base) == 0
    config = json.loads((out / "config.json").read_text())
    for key in ("policy", "readout"):  # as written before these were recorded
        del config[key]
    (out / "config.json").write_text(json.dumps(config))
    assert main(base) == 0


def test_compare_table_and_plot(tmp_path, capsys):
    for m in ("grm", "grm-no-principles"):
        assert main(["eval", "--benchmark", "judgebench", "--data", str(FIX / "judgebench.jsonl"), "--engine", "fake",
                     "--method", m, "-o", str(tmp_path / m), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "grm"), str(tmp_path / "grm-no-principles"), "--plot", str(tmp_path / "c.png")]) == 0
    table = capsys.readouterr().out
    assert "| judgebench | grm |" in table and "grm-no-principles" in table
    assert (tmp_path / "c.png").stat().st_size > 0


def test_compare_names_a_folder_without_results(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_verdict_parsing_and_single_response_refusal():
    assert parse_verdict("because ... Verdict: \\boxed{2}", 2) == 1
    with pytest.raises(ValueError, match="out_of_range"):
        parse_verdict("\\boxed{3}", 2)
    from spct.backends.fake import FakeBackend
    from spct.data import InputError

    with pytest.raises(InputError, match="at least two"):
        VerdictMethod(GenerativeRewardModel(FakeBackend()), pairwise=False).score([Example("a", "q", ["r"])], [1])


@pytest.mark.slow
def test_eval_real_grm_on_hh_pairs(tmp_path):
    """A real `spct eval` run with the embedded SmolLM2 on 3 HH-RLHF pairs."""
    out = tmp_path / "hh"
    assert main(["eval", "--benchmark", "hh-rlhf", "--data", str(demo_file()), "--limit", "3", "--max-new-tokens", "16",
                 "-o", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["items"] == 3 and results["judgments"] == 6  # the shipped judge is read pointwise: one per response
    assert json.loads((out / "config.json").read_text())["policy"] == "pointwise"
    m = results["by_k"]["1"]
    assert 0.0 <= m["overall"] <= 1.0 and m["ci"][0] <= m["overall"] <= m["ci"][1]
    for r in _rows(out / "samples.jsonl"):
        j = r["details"][0]
        assert j["text"] and (j["scores"] is None or all(1 <= s <= 10 for s in j["scores"]))


@pytest.mark.slow
def test_token_prob_and_llm_judge_on_embedded_model(embedded_backend):
    ex = Example("v", "What is 6*7?", ["6*7 = 42\n#### 42", "6*7 = 48\n#### 48"], [0])
    scored = TokenProbMethod(embedded_backend).score([ex], [1])[0]
    probs = scored.details[0]["probs"]
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
    assert all(1.0 <= r <= 10.0 for r in scored.rewards["1"])
    verdict = VerdictMethod(GenerativeRewardModel(embedded_backend, JudgeConfig(max_new_tokens=8)), pairwise=False).score([ex], [1])[0]
    assert verdict.failed == 0 and sum(verdict.rewards["1"]) == 1.0  # the constrained verdict always parses


@pytest.mark.slow
@pytest.mark.parametrize("base", [None, "smollm2-135m"], ids=["minilm", "smollm2"])
def test_train_scalar_then_eval(tmp_path, base):
    """The default encoder, and the judge's own backbone by its embedded name (the model card's BT baseline)."""
    data = tmp_path / "gsm.jsonl"
    with data.open("w") as fh:
        for item in build("gsm_symbolic", 6, 2, seed=5):
            fh.write(json.dumps(item) + "\n")
    rm = tmp_path / "rm"
    assert main(["train-scalar", "--data", str(data), "--max-steps", "2" if base is None else "1", "--batch-size", "2",
                 "--max-length", "64" if base is None else "48", "-o", str(rm), *(["--base", base] if base else [])]) == 0
    assert (rm / "config.json").exists()
    assert json.loads((rm / "spct_scalar_rm.json").read_text())["base"] == (base or str(embedded_encoder_dir()))
    out = tmp_path / "ev"
    assert main(["eval", "--benchmark", "spct", "--data", str(data), "--method", "scalar", "--model", str(rm),
                 "-o", str(out), "--no-progress"]) == 0
    rows = _rows(out / "samples.jsonl")
    assert len(rows) == 6 and all(len(r["rewards"]["1"]) == 2 for r in rows)
