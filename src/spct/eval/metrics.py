"""Benchmark metrics: strict accuracy (a tie is wrong), best-of-N accuracy, ROC-AUC, with CIs.

Accuracy follows the paper's rule: an item is right iff a labelled best response gets a reward
strictly above every other response; a tie for first is wrong and is also counted on its own
(the tie rate), and so is an item whose every judgment failed to parse. With more than two
responses the same rule is best-of-N accuracy (all N judged at once, argmax). Single-response
sets are scored by ROC-AUC of the reward against the binary label.

Sections combine their subsets with the benchmark's weights, and the overall score is either
pooled or the mean of the sections (see benchmarks.Benchmark). Confidence intervals are
percentile bootstraps that resample items within each subset (so every section keeps its
items), 95% by default, seeded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..voting import strict_best
from .benchmarks import Benchmark

N_BOOTSTRAP = 1000


def outcome(rewards: Sequence[float] | None, best: Sequence[int] | None) -> str:
    """'correct', 'wrong', 'tie' (tie for first: wrong too) or 'failed' (no reward at all)."""
    if rewards is None:
        return "failed"
    winner = strict_best(rewards)
    if winner is None:
        return "tie"
    return "correct" if winner in (best or []) else "wrong"


def roc_auc(scores: Sequence[float], labels: Sequence[float]) -> float | None:
    """Probability that a positive item outscores a negative one (ties count half); None with one class."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=float) > 0.5
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


@dataclass
class Item:
    """One benchmark item as the metrics see it."""

    subset: str
    rewards: list[float] | None
    best: list[int] | None = None
    label: float | None = None  # single-response sets: 1 = good response


def _ci(samples: np.ndarray, level: float) -> list[float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return [round(float(lo), 4), round(float(hi), 4)]


def _combine(bench: Benchmark, per_subset: dict[str, Any], counts: dict[str, int]) -> tuple[dict[str, Any], Any]:
    """Subset scores (floats or bootstrap arrays) -> section scores and the overall score."""
    by_section: dict[str, list[str]] = defaultdict(list)
    for s in per_subset:
        by_section[bench.section_of(s)].append(s)
    sections = {}
    for sec, subsets in sorted(by_section.items()):
        weights = [bench.subset_weight(s, counts) for s in subsets]
        sections[sec] = sum(w * per_subset[s] for w, s in zip(weights, subsets, strict=True)) / sum(weights)
    if bench.overall == "mean_of_sections":
        overall = sum(sections.values()) / len(sections)
    else:
        total = sum(counts[s] for s in per_subset)
        overall = sum(counts[s] * per_subset[s] for s in per_subset) / total
    return sections, overall


def accuracy_metrics(bench: Benchmark, items: list[Item], *, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Strict accuracy overall / per section / per subset, tie and failure rates, bootstrap CIs."""
    if not items:
        raise ValueError("no items to score")
    rng = np.random.default_rng(seed)
    results: dict[str, list[str]] = defaultdict(list)
    for it in items:
        results[it.subset].append(outcome(it.rewards, it.best))
    counts = {s: len(r) for s, r in results.items()}
    acc = {s: sum(o == "correct" for o in r) / len(r) for s, r in results.items()}
    boot = {s: rng.binomial(counts[s], acc[s], size=N_BOOTSTRAP) / counts[s] for s in results}
    sections, overall = _combine(bench, acc, counts)
    boot_sections, boot_overall = _combine(bench, boot, counts)
    all_outcomes = [o for r in results.values() for o in r]
    max_n = max((len(it.rewards) for it in items if it.rewards is not None), default=2)
    return {
        "metric": "best-of-N accuracy" if max_n > 2 else "accuracy",
        "n": len(items),
        "overall": round(overall, 4),
        "ci": _ci(boot_overall, level),
        "tie_rate": round(all_outcomes.count("tie") / len(all_outcomes), 4),
        "no_reward_rate": round(all_outcomes.count("failed") / len(all_outcomes), 4),
        "sections": {s: {"score": round(v, 4), "ci": _ci(boot_sections[s], level),
                         "n": sum(counts[x] for x in counts if bench.section_of(x) == s)} for s, v in sections.items()},
        "subsets": {s: {"score": round(acc[s], 4), "ci": _ci(boot[s], level), "n": counts[s],
                        "tie_rate": round(results[s].count("tie") / counts[s], 4)} for s in sorted(results)},
    }


def _auc_with_ci(scores: list[float], labels: list[float], rng: np.random.Generator, level: float) -> tuple[float | None, list[float] | None]:
    auc = roc_auc(scores, labels)
    if auc is None:
        return None, None
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float) > 0.5
    pos, neg = s[y], s[~y]
    boots = []
    for _ in range(N_BOOTSTRAP):  # resample positives and negatives apart so both classes stay
        p = rng.choice(pos, len(pos))
        n = rng.choice(neg, len(neg))
        boots.append(((p[:, None] > n[None, :]).sum() + 0.5 * (p[:, None] == n[None, :]).sum()) / (len(p) * len(n)))
    return auc, _ci(np.asarray(boots), level)


def auc_metrics(bench: Benchmark, items: list[Item], *, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """ROC-AUC of the reward against the label, overall and per subset; failed items are left out and counted."""
    rng = np.random.default_rng(seed)
    scored = [it for it in items if it.rewards is not None and it.label is not None]
    overall, ci = _auc_with_ci([it.rewards[0] for it in scored], [it.label for it in scored], rng, level)  # type: ignore[index, misc]
    subsets = {}
    for s in sorted({it.subset for it in scored}):
        group = [it for it in scored if it.subset == s]
        auc, sci = _auc_with_ci([it.rewards[0] for it in group], [it.label for it in group], rng, level)  # type: ignore[index, misc]
        subsets[s] = {"score": None if auc is None else round(auc, 4), "ci": sci, "n": len(group)}
    return {
        "metric": "roc_auc",
        "n": len(items),
        "overall": None if overall is None else round(overall, 4),
        "ci": ci,
        "tie_rate": None,
        "no_reward_rate": round(1 - len(scored) / len(items), 4) if items else 0.0,
        "sections": {},
        "subsets": subsets,
    }


def score(bench: Benchmark, items: list[Item], **kw: Any) -> dict[str, Any]:
    return auc_metrics(bench, items, **kw) if bench.metric == "roc_auc" else accuracy_metrics(bench, items, **kw)
