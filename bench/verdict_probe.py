"""How well a model's score line alone picks the better response: a cheap check for choosing a variant.

For each labelled pair, the model reads the judging prompt and then `Scores: \\boxed{` at once
(no principles or analysis are generated), and the expected scores are read from its
probabilities of 1..10 (`Backend.continuation_logprobs`, the same readout as `--readout
expected`). `pair`: the pair shown in both orders, expected scores summed per response.
`pointwise`: each response judged alone (n = 1). In `pair` mode only the first score is read
(one forward pass per order): verdict rows put the winner's 8 or the loser's 3 there, so its
expected value is the verdict, and a response's reward is its expected score when shown first.
Reports strict accuracy with a bootstrap CI and, for `pair`, how often the first-shown response
wins a single-order verdict (its expected first score above the middle of the scale).

    python bench/verdict_probe.py --model runs/v/pilot_pair --mode pair \\
        --data runs/grm/data/hh/validation.jsonl runs/grm/data/gsm/validation.jsonl --name hh gsm
"""

from __future__ import annotations

import argparse
import json
import random
import time

from spct.backends import load_backend
from spct.backends.base import ScoreQuery
from spct.data import Example, read_examples
from spct.format import JudgingFormat
from spct.score_line import MAX_SCORE, MIN_SCORE, SCORE_PREFIX, expected_score
from spct.voting import labelled_best

VALUES = list(range(MIN_SCORE, MAX_SCORE + 1))


def first_expected(backend, fmt: JudgingFormat, ex: Example, order: list[int]) -> float:
    """Expected value of the first score right after `Scores: \\boxed{`."""
    sep = "," if len(order) > 1 else "}"
    [lps] = backend.continuation_logprobs([ScoreQuery(fmt.messages(ex, order), SCORE_PREFIX, [f"{v}{sep}" for v in VALUES])])
    return expected_score(lps)


def judge_pair(backend, fmt, ex: Example, mode: str) -> tuple[list[float], float | None]:
    """(reward per response, share of single-order verdicts won by the first-shown response)."""
    if mode == "pointwise":
        return [first_expected(backend, fmt, Example(ex.id, ex.query, [r]), [0]) for r in ex.responses], None
    e01, e10 = first_expected(backend, fmt, ex, [0, 1]), first_expected(backend, fmt, ex, [1, 0])
    middle = (MIN_SCORE + MAX_SCORE) / 2
    return [e01, e10], ((e01 > middle) + (e10 > middle)) / 2


def ci95(hits: list[int], draws: int = 2000) -> list[float]:
    rng = random.Random(0)
    means = sorted(sum(rng.choice(hits) for _ in hits) / len(hits) for _ in range(draws))
    return [round(means[int(0.025 * draws)], 4), round(means[int(0.975 * draws)], 4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--mode", choices=["pair", "pointwise"], default="pair")
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--name", nargs="+", required=True)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    backend = load_backend(args.model)
    fmt = JudgingFormat()
    for path, name in zip(args.data, args.name, strict=True):
        examples = [ex for ex in read_examples(path)[0] if len(ex.responses) == 2 and ex.labelled][: args.limit]
        t0 = time.perf_counter()
        hits, firsts = [], []
        for ex in examples:
            rewards, first = judge_pair(backend, fmt, ex, args.mode)
            top = max(rewards)
            winner = rewards.index(top) if rewards.count(top) == 1 else None
            hits.append(int(winner is not None and winner in labelled_best(ex.best, ex.ratings)))
            if first is not None:
                firsts.append(first)
        print(name, json.dumps({"model": args.model, "mode": args.mode, "items": len(hits),
                                "strict_accuracy": round(sum(hits) / len(hits), 4), "ci95": ci95(hits),
                                "first_shown_win_rate": round(sum(firsts) / len(firsts), 4) if firsts else None,
                                "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
