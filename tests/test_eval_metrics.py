"""Metrics with hand-checked values: strict accuracy with ties, best-of-N, ROC-AUC, sections, CIs."""

from __future__ import annotations

import numpy as np
import pytest

from spct.eval.benchmarks import get_benchmark
from spct.eval.metrics import (
    Item,
    _auc_u,
    accuracy_metrics,
    auc_metrics,
    outcome,
    roc_auc,
)
from spct.intervals import bootstrap_ci


def test_outcome_tie_is_wrong_and_counted():
    assert outcome([7, 3], [0]) == "correct"
    assert outcome([3, 7], [0]) == "wrong"
    assert outcome([5, 5], [0]) == "tie"
    assert outcome(None, [0]) == "failed"
    assert outcome([9, 2, 9], [0]) == "tie"  # best-of-N: a tie for first picks no one
    assert outcome([2, 9, 1], [1, 2]) == "correct"


def test_accuracy_counts_ties_as_wrong():
    bench = get_benchmark("hh-rlhf")
    items = [Item("a", [8, 2], [0]), Item("a", [5, 5], [0]), Item("a", [1, 9], [0]), Item("a", None, [0])]
    m = accuracy_metrics(bench, items)
    assert m["overall"] == 0.25 and m["tie_rate"] == 0.25 and m["no_reward_rate"] == 0.25
    assert m["metric"] == "accuracy"
    lo, hi = m["ci"]
    assert 0 <= lo <= 0.25 <= hi <= 1


def test_best_of_n_metric_name():
    m = accuracy_metrics(get_benchmark("rewardbench2"), [Item("Math", [3, 9, 1, 2], [1]), Item("Math", [9, 9, 1, 2], [0])])
    assert m["metric"] == "best-of-N accuracy" and m["overall"] == 0.5


def test_rewardbench_section_weighting_by_hand():
    bench = get_benchmark("rewardbench")
    right, wrong = [9, 1], [1, 9]
    items = (
        [Item("alpacaeval-easy", right, [0])] * 3 + [Item("mt-bench-easy", wrong, [0])]  # Chat: 3/4
        + [Item("math-prm", right, [0])]  # math: 1/1, weight = code items (4)
        + [Item("hep-python", wrong, [0])] * 2 + [Item("hep-go", right, [0])] * 2  # code: 2/4
    )
    m = accuracy_metrics(bench, items)
    assert m["sections"]["Chat"]["score"] == 0.75
    assert m["sections"]["Reasoning"]["score"] == pytest.approx((4 * 1.0 + 2 * 0.0 + 2 * 1.0) / 8)
    assert m["overall"] == pytest.approx((0.75 + 0.75) / 2)  # mean of sections
    assert m["subsets"]["hep-python"]["score"] == 0.0


def test_pooled_overall_and_seeded_ci():
    bench = get_benchmark("hh-rlhf")
    items = [Item("x", [9, 1], [0])] * 25 + [Item("x", [1, 9], [0])] * 5 + [Item("y", [1, 9], [0])] * 5 + [Item("y", [9, 1], [0])] * 5
    a, b = accuracy_metrics(bench, items, seed=3), accuracy_metrics(bench, items, seed=3)
    assert a["overall"] == 0.75 and a["ci"] == b["ci"]
    assert a["ci"][0] < 0.75 < a["ci"][1]
    assert a["subsets"]["y"]["score"] == 0.5 and a["subsets"]["x"]["n"] == 30


def test_roc_auc_by_hand():
    # positives 0.9, 0.4; negatives 0.4, 0.1: pairs (0.9>0.4), (0.9>0.1), (0.4=0.4 half), (0.4>0.1) = 3.5/4
    assert roc_auc([0.9, 0.4, 0.4, 0.1], [1, 1, 0, 0]) == 0.875
    assert roc_auc([1, 2], [1, 1]) is None
    assert roc_auc([1, 2, 3], [0, 0, 1]) == 1.0


def test_auc_metrics_leave_out_failures():
    bench = get_benchmark("realmistake")
    items = [Item("t", [8.0], label=1.0), Item("t", [3.0], label=0.0), Item("t", [5.0], label=1.0),
             Item("t", [5.0], label=0.0), Item("t", None, label=1.0)]
    m = auc_metrics(bench, items)
    assert m["overall"] == pytest.approx(3.5 / 4) and m["no_reward_rate"] == 0.2
    assert m["ci"][0] <= m["overall"] <= m["ci"][1]


# -- the libraries against the hand-written code they replaced (copies kept here only) ---------


def _old_roc_auc(scores, labels):
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float) > 0.5
    pos, neg = s[y], s[~y]
    return ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))


def _old_mean_ci(values, n_boot=2000, seed=0):
    arr = np.asarray(values, dtype=float)
    means = arr[np.random.default_rng(seed).integers(0, len(arr), size=(n_boot, len(arr)))].mean(axis=1)
    return np.percentile(means, [2.5, 97.5])


def _fixed_items():
    rng = np.random.default_rng(7)
    subsets = ["alpacaeval-easy", "mt-bench-easy", "math-prm", "hep-python", "hep-go", "refusals-dangerous"]
    acc = [Item(subsets[i % 6], rng.integers(1, 11, 2).tolist(), [0]) for i in range(120)]
    auc = [Item("ab"[i % 2], [float(rng.integers(1, 11))], label=float(rng.random() < 0.4)) for i in range(90)]
    return acc, auc, rng.random(60).round(2)


def test_sklearn_roc_auc_equals_the_pairwise_count_and_the_bootstraps_u():
    rng = np.random.default_rng(1)
    for _ in range(20):
        scores, labels = rng.integers(1, 11, 40).astype(float), rng.random(40) < 0.4
        assert roc_auc(scores, labels) == pytest.approx(_old_roc_auc(scores, labels))
        assert _auc_u(scores[labels], scores[~labels]) == pytest.approx(_old_roc_auc(scores, labels))


def test_scipy_bootstrap_agrees_with_the_old_intervals():
    """Before the change (binomial resampling, 1000 draws; own loops, 2000 draws) on the same data:
    the intervals move by sampling noise only."""
    acc_items, auc_items, values = _fixed_items()
    acc = accuracy_metrics(get_benchmark("rewardbench"), acc_items)
    assert acc["overall"] == 0.4875
    assert acc["ci"] == pytest.approx([0.3957, 0.5875], abs=0.03)
    assert acc["sections"]["Chat"]["ci"] == pytest.approx([0.45, 0.75], abs=0.05)
    assert acc["subsets"]["hep-go"]["ci"] == pytest.approx([0.4, 0.8], abs=0.05)
    auc = auc_metrics(get_benchmark("realmistake"), auc_items)
    assert auc["overall"] == 0.5068 and auc["subsets"]["b"]["score"] == 0.6387
    assert auc["ci"] == pytest.approx([0.3789, 0.6337], abs=0.03)
    assert auc["subsets"]["a"]["ci"] == pytest.approx([0.2122, 0.6023], abs=0.04)
    assert bootstrap_ci([values], np.mean) == pytest.approx(_old_mean_ci(values), abs=0.01)


def test_bootstrap_of_a_one_item_subset_is_its_value():
    m = accuracy_metrics(get_benchmark("hh-rlhf"), [Item("x", [9, 1], [0]), Item("y", [1, 9], [0]), Item("y", [9, 1], [0])])
    assert m["subsets"]["x"]["ci"] == [1.0, 1.0]
    assert bootstrap_ci([[1.0] * 30 + [0.0] * 10], np.mean, seed=4) == pytest.approx([0.6, 0.875], abs=0.03)
