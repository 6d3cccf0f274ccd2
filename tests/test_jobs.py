"""Judging a file: append as you go, resume after an interruption, never duplicate, never lose."""

from __future__ import annotations

import json

import pytest

from spct.backends.fake import FakeBackend
from spct.data import Example
from spct.jobs import judge_file
from spct.judge import GenerativeRewardModel, JudgeConfig

EXAMPLES = [Example(f"e{i}", f"q{i}", ["short", "a longer answer here"], best=[1]) for i in range(5)]


def ids(path):
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


class Interrupt(FakeBackend):
    """Ctrl-C arrives during the given generate call."""

    def __init__(self, at_call: int):
        super().__init__()
        self.at_call = at_call

    def generate(self, requests):
        if len(self.calls) == self.at_call:
            raise KeyboardInterrupt
        return super().generate(requests)


def test_resume_after_ctrl_c_and_a_partial_line(tmp_path):
    out = tmp_path / "judged.jsonl"
    with pytest.raises(KeyboardInterrupt):
        judge_file(GenerativeRewardModel(Interrupt(at_call=2), JudgeConfig(k=2)), EXAMPLES, out, batch_size=2, progress=False)
    assert ids(out) == ["e0", "e1", "e2", "e3"]
    with open(out, "a") as fh:  # and a crash mid-write on top
        fh.write('{"id": "e4", "rewards": [1')
    backend = FakeBackend()
    summary = judge_file(GenerativeRewardModel(backend, JudgeConfig(k=2)), EXAMPLES, out, batch_size=2, progress=False)
    assert (summary.skipped_done, summary.written) == (4, 1)
    assert ids(out) == ["e0", "e1", "e2", "e3", "e4"]
    assert len(backend.calls) == 1 and len(backend.calls[0]) == 2  # only e4's two samples were generated
    again = judge_file(GenerativeRewardModel(FakeBackend(), JudgeConfig(k=2)), EXAMPLES, out, progress=False)
    assert (again.skipped_done, again.written) == (5, 0) and len(ids(out)) == 5


def test_rows_judged_with_another_k_are_kept_with_a_warning(tmp_path, caplog):
    out = tmp_path / "judged.jsonl"
    judge_file(GenerativeRewardModel(FakeBackend(), JudgeConfig(k=1)), EXAMPLES[:2], out, progress=False)
    with caplog.at_level("WARNING"):
        s = judge_file(GenerativeRewardModel(FakeBackend(), JudgeConfig(k=3)), EXAMPLES[:3], out, progress=False)
    assert s.written == 1 and "2 finished row(s)" in caplog.text and "k=3" in caplog.text


def test_output_rows_have_the_reward_schema(tmp_path):
    out = tmp_path / "judged.jsonl"
    s = judge_file(GenerativeRewardModel(FakeBackend(), JudgeConfig(k=2)), EXAMPLES[:2], out, progress=False)
    row = json.loads(out.read_text().splitlines()[0])
    assert set(row) == {"id", "rewards", "k", "used", "failed", "best", "correct", "judgments", "margin", "confidence",
                        "aggregate"}
    assert row["aggregate"] == "sum"  # voting sums; a pointwise reward is already a mean
    assert set(row["judgments"][0]) == {"id", "sample", "order", "principles", "critique", "scores", "text", "error",
                                        "meta", "forced", "truncated", "expected"}
    assert (s.judgments, s.failed_judgments, s.labelled, s.correct, s.accuracy) == (4, 0, 2, 2, 1.0)
    assert s.unconstrained_parse_rate == 1.0


def test_a_backend_failure_leaves_the_batch_undone_for_a_rerun(tmp_path):
    out = tmp_path / "judged.jsonl"
    flaky = FakeBackend(fail=lambda req: "q1" in req.messages[-1]["content"])
    s = judge_file(GenerativeRewardModel(flaky, JudgeConfig()), EXAMPLES[:4], out, batch_size=2, progress=False)
    assert s.backend_failed == ["e0", "e1"] and ids(out) == ["e2", "e3"]
    s = judge_file(GenerativeRewardModel(FakeBackend(), JudgeConfig()), EXAMPLES[:4], out, batch_size=2, progress=False)
    assert s.written == 2 and sorted(ids(out)) == ["e0", "e1", "e2", "e3"]

