"""How well a model's score line alone picks the better response: a cheap check for choosing a variant.

For each labelled pair, the model reads the judging prompt and then `Scores: \\boxed{` at once
(no principles or analysis are generated), and the expected scores are read from its
probabilities of 1..10 (`Backend.continuation_logprobs`, the same readout as `--readout
expected`). `pair`: the pair shown in both orders, expected scores summed per response.
`pointwise`: each response judged alone (n = 1). Reports strict accuracy with a bootstrap CI and,
for `pair`, how often the first-shown response wins a single-order verdict.

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
from spct.score_scale import MAX_SCORE, MIN_SCORE, SCORE_PREFIX
from spct.voting import labelled_best

VALUES = list(range(MIN_SCORE, MAX_SCORE + 1))


def expected(backend, fmt: JudgingFormat, ex: Example, order: list[int]) -> list[float]:
    """Expected score per shown position, each later position given the earlier ones' most likely value."""
    shown: list[int] = []
    out = []
    n = len(order)
    for p in range(n):
        head = ", ".join(str(x) for x in shown) + (", " if p else "")
        cands = [f"{head}{v}{',' if p < n - 1 else '}'}" for v in VALUES]
        [lps] = backend.continuation_logprobs([ScoreQuery(fmt.messages(ex, order), SCORE_PREFIX, cands)])
        top = max(lps)
        w = [2.718281828 ** (x - top) for x in lps]
        out.append(sum(v * q for v, q in zip(VALUES, w, strict=True)) / sum(w))
        shown.append(VALUES[max(range(len(w)), key=w.__getitem__)])
    return out


def judge_pair(backend, fmt, ex: Example, mode: str) -> tuple[list[float], float | None]:
    """(reward per response, share of single-order verdicts won by the first-shown response)."""
    n = len(ex.responses)
    if mode == "pointwise":
        return [expected(backend, fmt, Example(ex.id, ex.query, [r]), [0])[0] for r in ex.responses], None
    rewards = [0.0] * n
    first_wins = 0
    orders = [list(range(n)), list(range(n))[::-1]]
    for order in orders:
        e = expected(backend, fmt, ex, order)
        first_wins += e[0] > max(e[1:])
        for pos, idx in enumerate(order):
            rewards[idx] += e[pos]
    return rewards, first_wins / len(orders)


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
