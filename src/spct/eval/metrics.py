"""Benchmark metrics: strict accuracy (a tie is wrong), best-of-N accuracy, ROC-AUC, with CIs.

Accuracy follows the paper's rule: an item is right iff a labelled best response gets a reward
strictly above every other response; a tie for first is wrong and is also counted on its own
(the tie rate), and so is an item whose every judgment failed to parse. With more than two
responses the same rule is best-of-N accuracy (all N judged at once, argmax). Single-response
sets are scored by ROC-AUC of the reward against the binary label.

Sections combine their subsets with the benchmark's weights, and the overall score is either
pooled or the mean of the sections (see benchmarks.Benchmark). Confidence intervals are
scipy's percentile bootstrap, resampling items within each subset (so every section keeps its
items), 95% by default, seeded (`spct.intervals.bootstrap_ci`, the one bootstrap spct reports with).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ..intervals import bootstrap_ci
from ..voting import strict_best
from .benchmarks import Benchmark


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
    from sklearn.metrics import roc_auc_score  # the `eval` extra

    y = np.asarray(labels, dtype=float) > 0.5
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


def _auc_u(pos: np.ndarray, neg: np.ndarray, axis: int = -1) -> np.ndarray:
    """ROC-AUC as the Mann-Whitney U over its maximum, vectorised over resamples (sklearn's scorer
    in a loop of 2000 resamples took 100 times longer); the same number as `roc_auc`."""
    return stats.mannwhitneyu(pos, neg, axis=axis).statistic / (pos.shape[axis] * neg.shape[axis])


@dataclass
class Item:
    """One benchmark item as the metrics see it."""

    subset: str
    rewards: list[float] | None
    best: list[int] | None = None
    label: float | None = None  # single-response sets: 1 = good response


def _ci(bounds: np.ndarray) -> list[float]:
    return [round(float(bounds[0]), 4), round(float(bounds[1]), 4)]


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
    results: dict[str, list[str]] = defaultdict(list)
    for it in items:
        results[it.subset].append(outcome(it.rewards, it.best))
    counts = {s: len(r) for s, r in results.items()}
    acc = {s: sum(o == "correct" for o in r) / len(r) for s, r in results.items()}
    sections, overall = _combine(bench, acc, counts)
    names = list(results)

    def every_score(*correct: np.ndarray, axis: int = -1) -> np.ndarray:
        per_subset = {s: c.mean(axis=axis) for s, c in zip(names, correct, strict=True)}
        by_section, total = _combine(bench, per_subset, counts)
        return np.stack([*per_subset.values(), *(by_section[s] for s in sections), total])

    bounds = bootstrap_ci([[o == "correct" for o in results[s]] for s in names], every_score, level=level, seed=seed)
    boot = dict(zip([*names, *(f"section:{s}" for s in sections), "overall"], bounds, strict=True))
    all_outcomes = [o for r in results.values() for o in r]
    max_n = max((len(it.rewards) for it in items if it.rewards is not None), default=2)
    return {
        "metric": "best-of-N accuracy" if max_n > 2 else "accuracy",
        "n": len(items),
        "overall": round(overall, 4),
        "ci": _ci(boot["overall"]),
        "tie_rate": round(all_outcomes.count("tie") / len(all_outcomes), 4),
        "no_reward_rate": round(all_outcomes.count("failed") / len(all_outcomes), 4),
        "sections": {s: {"score": round(v, 4), "ci": _ci(boot[f"section:{s}"]),
                         "n": sum(counts[x] for x in counts if bench.section_of(x) == s)} for s, v in sections.items()},
        "subsets": {s: {"score": round(acc[s], 4), "ci": _ci(boot[s]), "n": counts[s],
                        "tie_rate": round(results[s].count("tie") / counts[s], 4)} for s in sorted(results)},
    }


def _auc_with_ci(scores: list[float], labels: list[float], seed: int, level: float) -> tuple[float | None, list[float] | None]:
    auc = roc_auc(scores, labels)
    if auc is None:
        return None, None
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float) > 0.5
    # Positives and negatives are resampled apart, so both classes stay.
    return auc, _ci(bootstrap_ci([s[y], s[~y]], _auc_u, level=level, seed=seed))


def auc_metrics(bench: Benchmark, items: list[Item], *, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """ROC-AUC of the reward against the label, overall and per subset; failed items are left out and counted."""
    scored = [it for it in items if it.rewards is not None and it.label is not None]
    overall, ci = _auc_with_ci([it.rewards[0] for it in scored], [it.label for it in scored], seed, level)  # type: ignore[index, misc]
    subsets = {}
    for s in sorted({it.subset for it in scored}):
        group = [it for it in scored if it.subset == s]
        auc, sci = _auc_with_ci([it.rewards[0] for it in group], [it.label for it in group], seed, level)  # type: ignore[index, misc]
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
