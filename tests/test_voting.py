"""Voting and the accuracy rule (ties are wrong for the judge; failures are counted, never zeros)."""

from __future__ import annotations

import pytest

from spct.data import Judgment
from spct.voting import is_correct, strict_best, vote


def j(scores, meta=None, sample=0):
    return Judgment("q", sample, list(range(len(scores or [0, 0]))), None, None, scores, "t",
                    None if scores else "no_box: x", meta)


def test_strict_best():
    assert strict_best([3, 7, 5]) == 1
    assert strict_best([7, 7, 5]) is None
    assert strict_best([]) is None


@pytest.mark.parametrize(
    ("scores", "best", "ratings", "expected"),
    [
        ([8, 3], [0], None, True),
        ([3, 8], [0], None, False),
        ([8, 8], [0], None, False),  # a tie is wrong
        ([8, 8, 2], [0, 1], None, False),  # still a tie for first
        ([2, 9, 4], [0, 1], None, True),  # any labelled best may win
        (None, [0], None, False),  # a failed judgment is wrong
        ([8, 3], None, None, None),  # unlabelled
        ([7], None, [7], True),  # one response: the score must equal the rating
        ([6], None, [7], False),
        ([3, 9], None, [1.0, 5.0], True),  # ratings only: the highest rated is best
    ],
)
def test_accuracy_rule(scores, best, ratings, expected):
    assert is_correct(scores, best, ratings) is expected


def test_vote_sums_valid_samples_and_counts_failures():
    r = vote("q", [j([8, 3]), j(None), j([6, 7])], 2, best=[0])
    assert (r.rewards, r.k, r.used, r.failed, r.best, r.correct) == ([14, 10], 3, 2, 1, 0, True)


def test_vote_ties_and_total_failure():
    tie = vote("q", [j([8, 3]), j([3, 8])], 2, best=[0])
    assert tie.rewards == [11, 11] and tie.best is None and tie.correct is False
    dead = vote("q", [j(None), j(None)], 2, best=[0])
    assert (dead.rewards, dead.used, dead.failed, dead.best, dead.correct) == (None, 0, 2, None, False)
    assert vote("q", [j(None)], 2).correct is None


def test_single_response_votes_on_the_mean():
    r = vote("q", [j([7]), j([8]), j([7])], 1, ratings=[7])
    assert r.rewards == [22] and r.best == 0 and r.correct is True


def test_meta_guided_voting_keeps_the_top_k_meta():
    js = [j([2, 9], meta=0.1), j([9, 2], meta=0.9), j([8, 3], meta=0.8), j(None)]
    r = vote("q", js, 2, best=[0], k_meta=2)
    assert (r.rewards, r.used, r.failed, r.correct) == ([17, 5], 2, 1, True)
    with pytest.raises(ValueError):
        vote("q", [j([2, 9])], 2, k_meta=1)
