"""Judging a whole file: append each example's Reward as it is finished, resume after a crash.

The output is one JSON line per example (the Reward, with its judgments nested). Examples whose
id is already in the output are skipped, so a rerun after a crash or Ctrl-C picks up exactly
where the last one stopped. A backend failure on one batch is reported and the batch left
undone (not written as failed), so rerunning the command retries it. An example too large for
the model's context is a bad input line: it is reported (`file:line [field]: why`) and skipped,
and the run goes on; a rerun reports it again and judges nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from .backends.base import BackendError
from .data import Example, JsonlAppender, Reward
from .judge import ContextOverflow, GenerativeRewardModel

log = logging.getLogger(__name__)

T = TypeVar("T")


def judge_fitting(judge: Callable[[list[Example]], list[T]], chunk: list[Example]) -> tuple[list[tuple[Example, T]], list[str]]:
    """`judge(chunk)` paired with its examples, less those too large for the model's context, and one issue per such example.

    An oversized example raises before anything is generated, so a chunk that holds one is
    judged again an example at a time: the others are judged as usual, the oversized ones are
    returned as `file:line [field]: why`.
    """
    try:
        return list(zip(chunk, judge(chunk), strict=True)), []
    except ContextOverflow as e:
        if len(chunk) == 1:
            return [], [str(e)]  # `file:line [field]: why`
    done: list[tuple[Example, T]] = []
    issues: list[str] = []
    for ex in chunk:
        ok, bad = judge_fitting(judge, [ex])
        done += ok
        issues += bad
    return done, issues


@dataclass
class JobSummary:
    total: int = 0
    skipped_done: int = 0  # already in the output from an earlier run
    written: int = 0
    backend_failed: list[str] = field(default_factory=list)  # ids left undone
    too_large: list[str] = field(default_factory=list)  # `file:line [field]: why` of examples past the model's context
    judgments: int = 0
    failed_judgments: int = 0
    forced_judgments: int = 0
    labelled: int = 0
    correct: int = 0
    rewards: list[Reward] = field(default_factory=list)

    @property
    def parse_failure_rate(self) -> float:
        return self.failed_judgments / self.judgments if self.judgments else 0.0

    @property
    def unconstrained_parse_rate(self) -> float:
        """Share of judgments whose own text parsed, before any forced score line."""
        return (self.judgments - self.failed_judgments - self.forced_judgments) / self.judgments if self.judgments else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def add(self, r: Reward) -> None:
        self.rewards.append(r)
        self.judgments += len(r.judgments)
        self.failed_judgments += sum(not j.ok for j in r.judgments)
        self.forced_judgments += sum(j.ok and j.forced for j in r.judgments)
        if r.correct is not None:
            self.labelled += 1
            self.correct += int(r.correct)


def judge_file(
    grm: GenerativeRewardModel,
    examples: list[Example],
    out_path: str | Path,
    *,
    k: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> JobSummary:
    """Judge the examples not yet in `out_path`, appending each Reward as its batch finishes.

    Examples too large for the model's context are skipped and listed in `too_large`; examples
    of a batch the backend failed on are listed in `backend_failed`.
    """
    summary = JobSummary(total=len(examples))
    with JsonlAppender(out_path, fields=("k",)) as out:  # only k is read back: a resume holds no rows
        todo = [ex for ex in examples if ex.id not in out]
        summary.skipped_done = len(examples) - len(todo)
        want_k = k or grm.config.k
        other_k = sum(out.done[ex.id].get("k", want_k) != want_k for ex in examples if ex.id in out)
        if other_k:
            log.warning("%d finished row(s) in %s were judged with another k; they are kept as they are "
                        "(write to a new output file to judge them again with k=%d)", other_k, out_path, want_k)
        bar = tqdm(total=len(examples), initial=summary.skipped_done, desc="judging", unit="ex", disable=not progress)
        for b in range(0, len(todo), batch_size):
            chunk = todo[b : b + batch_size]
            try:
                judged, too_large = judge_fitting(lambda exs: list(grm.judge_iter(exs, k, batch_size=len(exs))), chunk)
            except BackendError as e:
                log.error("backend failed on %d example(s) (%s); rerun to retry them", len(chunk), e)
                summary.backend_failed += [ex.id for ex in chunk]
                bar.update(len(chunk))
                continue
            summary.too_large += too_large
            for _, r in judged:
                out.write(r.to_dict())
                summary.add(r)
                summary.written += 1
            bar.update(len(chunk))
        bar.close()
    return summary
