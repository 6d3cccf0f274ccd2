"""spct data verifiable: build preference sets whose labels come from checking answers."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from ..data import JsonlAppender
from ..eval.verifiable import SOURCES, build
from .common import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="build datasets (verifiable preference sets)")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    v = data_sub.add_parser("verifiable", help="pairs / best-of-N sets labelled by answer checkers",
                            description="Build items with one right and R-1 plausibly wrong responses. gsm_symbolic: "
                                        "reasoning-gym's generator, wrong solutions carry one realistic mistake and are "
                                        "kept only if reasoning-gym's checker rejects them. humaneval: canonical solution "
                                        "vs mutants that fail HumanEval's tests (run in a subprocess with a timeout). "
                                        "Appends to FILE and resumes (ids already there are skipped).")
    v.add_argument("--source", required=True, choices=SOURCES)
    v.add_argument("-n", type=positive_int, required=True, help="number of items")
    v.add_argument("-o", "--output", required=True, metavar="FILE", help="output JSONL")
    v.add_argument("--responses", type=positive_int, default=2, help="responses per item: 2 = pairs, more = best-of-N (default: 2)")
    v.add_argument("--seed", type=int, default=0, help="generator and shuffle seed (default: 0)")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kinds: Counter[str] = Counter()
    written = total = 0
    with JsonlAppender(args.output) as out:
        for item in build(args.source, args.n, args.responses, args.seed):
            kinds.update(c["kind"] for c in item["checks"] if c["kind"] != "right")
            if item["id"] not in out:
                written += 1
            out.write(item)
            total += 1
    print(f"{written} item(s) written to {args.output} ({total - written} already there); "
          f"wrong responses by kind: {dict(kinds)}", file=sys.stderr)
    if total < args.n:
        print(f"warning: only {total} of {args.n} items could be built from {args.source}", file=sys.stderr)
    return 0
