"""Benchmark loaders on small fixture files in each published shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spct.data import InputError
from spct.eval.benchmarks import BENCHMARKS, LoadOptions, get_benchmark, load_benchmark

FIX = Path(__file__).parent / "fixtures" / "eval"


def test_rewardbench_v1_subsets_and_sections():
    exs, issues = load_benchmark("rewardbench", str(FIX / "rewardbench_v1.jsonl"))
    assert not issues and len(exs) == 6
    assert exs[0].responses == ["Red is a primary colour.", "Green is the only primary colour."] and exs[0].best == [0]
    b = get_benchmark("rewardbench")
    assert [b.section_of(e.domain) for e in exs] == ["Chat", "Chat Hard", "Safety", "Reasoning", "Reasoning", "Reasoning"]
    # math-prm weighs as much as all code subsets together
    counts = {"math-prm": 1, "hep-python": 1, "hep-go": 1}
    assert b.subset_weight("math-prm", counts) == 2 and b.subset_weight("hep-go", counts) == 1


def test_rewardbench_v2_several_rejected():
    exs, issues = load_benchmark("rewardbench2", str(FIX / "rewardbench_v2.jsonl"))
    assert not issues
    assert len(exs[0].responses) == 4 and exs[0].best == [0] and exs[0].domain == "Factuality"
    assert exs[1].best == [0, 1]  # Ties: two right answers


def test_ppe_preference_skips_ties():
    exs, issues = load_benchmark("ppe-preference", str(FIX / "ppe_preference.jsonl"))
    assert [e.best for e in exs] == [[0], [1]]
    assert len(issues) == 1 and issues[0].line == 3


def test_ppe_correctness_best_of_k_and_cut():
    exs, issues = load_benchmark("ppe-correctness", str(FIX / "ppe_correctness.jsonl"))
    assert len(exs) == 1 and exs[0].best == [0, 3] and len(exs[0].responses) == 4
    assert len(issues) == 1  # every response right: nothing to pick
    cut, _ = load_benchmark("ppe-correctness", str(FIX / "ppe_correctness.jsonl"), options=LoadOptions(max_responses=2))
    ex = cut[0]
    assert len(ex.responses) == 2 and len(ex.best) == 1 and ex.responses[ex.best[0]] in ("42", "The answer is 42.")


def test_rmb_folder_pairwise_and_best_of_n():
    exs, issues = load_benchmark("rmb", str(FIX / "rmb"))
    assert not issues
    by_id = {e.id: e for e in exs}
    assert by_id["p-1"].domain == "Helpfulness/Brainstorming" and len(by_id["p-1"].responses) == 2
    assert len(by_id["b-1"].responses) == 3 and by_id["b-1"].best == [0]
    assert get_benchmark("rmb").section_of(by_id["b-1"].domain) == "Harmlessness"


def test_realmistake_labels():
    exs, _ = load_benchmark("realmistake", str(FIX / "realmistake.jsonl"))
    assert [e.ratings for e in exs] == [[1.0], [0.0]] and len(exs[0].responses) == 1
    assert get_benchmark("realmistake").metric == "roc_auc"


def test_judgebench_labels_and_categories():
    exs, _ = load_benchmark("judgebench", str(FIX / "judgebench.jsonl"))
    assert [(e.best, e.domain) for e in exs] == [([1], "knowledge"), ([0], "coding")]


def test_hh_rlhf_last_turn_is_judged():
    exs, issues = load_benchmark("hh-rlhf", str(FIX / "hh_rlhf.jsonl"))
    assert not issues and len(exs) == 3
    for e in exs:
        assert e.best == [0] and "Assistant:" not in e.responses[0]


def test_parquet_and_json_list(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (FIX / "judgebench.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "jb.parquet")
    (tmp_path / "jb.json").write_text(json.dumps(rows))
    for name in ("jb.parquet", "jb.json"):
        exs, _ = load_benchmark("judgebench", str(tmp_path / name))
        assert [e.best for e in exs] == [[1], [0]]


def test_bad_rows_name_file_line_and_field(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"question": "q", "response_A": "a", "response_B": "b", "label": "A>B"}\n'
                 '{"question": "q", "response_A": "a", "label": "A>B"}\n'
                 '{"question": "q", "response_A": "a", "response_B": "b", "label": "maybe"}\n'
                 'not json\n')
    exs, issues = load_benchmark("judgebench", str(f))
    assert len(exs) == 1
    text = [str(i) for i in issues]
    assert f"{f}:2 [response_B]" in text[0] and "missing" in text[0]
    assert ":3 [label]" in text[1] and ":4" in text[2]


def test_unknown_benchmark_and_unreadable_source(tmp_path):
    with pytest.raises(InputError, match="unknown benchmark"):
        get_benchmark("nope")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="expected a .json"):
        load_benchmark("judgebench", str(tmp_path / "x.csv"))


def test_every_benchmark_documents_its_columns():
    for b in BENCHMARKS.values():
        assert b.columns and b.metric in ("accuracy", "roc_auc")
