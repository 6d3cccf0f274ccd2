"""Judging a whole file: append each example's Reward as it is finished, resume after a crash.

The output is one JSON line per example (the Reward, with its judgments nested). Examples whose
id is already in the output are skipped, so a rerun after a crash or Ctrl-C picks up exactly
where the last one stopped. A backend failure on one batch is reported and the batch left
undone (not written as failed), so rerunning the command retries it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .backends.base import BackendError
from .data import Example, JsonlAppender, Reward
from .judge import GenerativeRewardModel

log = logging.getLogger(__name__)


@dataclass
class JobSummary:
    total: int = 0
    skipped_done: int = 0  # already in the output from an earlier run
    written: int = 0
    backend_failed: list[str] = field(default_factory=list)  # ids left undone
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
                rewards = list(grm.judge_iter(chunk, k, batch_size=len(chunk)))
            except BackendError as e:
                log.error("backend failed on %d example(s) (%s); rerun to retry them", len(chunk), e)
                summary.backend_failed += [ex.id for ex in chunk]
                bar.update(len(chunk))
                continue
            for r in rewards:
                out.write(r.to_dict())
                summary.add(r)
                summary.written += 1
            bar.update(len(chunk))
        bar.close()
    return summary
