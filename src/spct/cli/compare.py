"""spct compare OUTDIR...: several `spct eval` runs side by side in one table and one plot."""

from __future__ import annotations

import argparse

from ..data import write_text
from ..eval.report import compare_markdown, compare_plot, compare_rows, load_results


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="put several `spct eval` runs side by side (table + plot)",
                       description="Read results.json from each OUTDIR and print one Markdown table (score, 95% CI, "
                                   "tie rate, parse failures per run and k), plus the paper's overall score (mean of RewardBench, "
                                   "PPE-Preference, PPE-Correctness and RMB) for each method, model and k that has all four; "
                                   "optionally save a bar plot.")
    p.add_argument("outdirs", nargs="+", metavar="OUTDIR", help="folders written by `spct eval`")
    p.add_argument("--plot", default=None, metavar="PNG", help="save a bar plot with CI whiskers here")
    p.add_argument("--markdown", default=None, metavar="MD", help="also write the table to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = compare_rows([load_results(d) for d in args.outdirs])
    table = compare_markdown(rows)
    print(table, end="")
    if args.markdown:
        write_text(args.markdown, table)
    if args.plot:
        compare_plot(rows, args.plot)
    return 0
