"""spct demo: judge 8 real HH-RLHF pairs shipped with spct and show what the GRM wrote."""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..data import read_examples
from ..jobs import judge_file
from .common import add_judge_args, add_model_args, build_grm


def demo_file() -> Path:
    return Path(str(resources.files("spct") / "assets" / "hh_rlhf_demo.jsonl"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="judge 8 shipped HH-RLHF pairs with the embedded model and print a table",
                       description="Judge 8 real HH-RLHF harmless pairs (MIT, see spct/assets/NOTICE) offline and print "
                                   "the principles, scores, voted rewards and agreement with the human label.")
    p.add_argument("-o", "--output", default=None, help="keep the judgments in this JSONL (default: a temporary file)")
    add_model_args(p)
    add_judge_args(p, k=2, max_new_tokens=160)
    p.set_defaults(func=run)


def _short(text: str | None, width: int = 90) -> str:
    text = " ".join((text or "-").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def run(args: argparse.Namespace) -> int:
    console = Console()
    examples, _ = read_examples(demo_file())
    console.print(f"[bold]spct demo[/]: {len(examples)} HH-RLHF harmless pairs, model [cyan]{args.model}[/], k={args.k}, "
                  f"max {args.max_new_tokens} new tokens, score line {'constrained' if args.constrain else 'free'}")
    t0 = time.perf_counter()
    grm = build_grm(args)
    console.print(f"model loaded in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.output or str(Path(tmp) / "demo.jsonl")
        t1 = time.perf_counter()
        s = judge_file(grm, examples, out, k=args.k)
        elapsed = time.perf_counter() - t1

    table = Table(title="Judgments (response 1 = human-preferred)", show_lines=True)
    for col in ("id", "principles (first sample)", "scores per sample", "voted", "agrees"):
        table.add_column(col, overflow="fold")
    by_id = {ex.id: ex for ex in examples}
    for r in s.rewards:
        first = r.judgments[0] if r.judgments else None
        samples = "  ".join(str(j.scores) if j.ok else f"failed: {j.error}" for j in r.judgments)
        agree = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[r.correct]
        table.add_row(by_id[r.id].id, _short(first.principles if first else None), samples, str(r.rewards), agree)
    console.print(table)
    acc = f"{s.accuracy:.2f} ({s.correct}/{s.labelled}, a tie counts as wrong)" if s.accuracy is not None else "-"
    console.print(f"accuracy vs human label: {acc}")
    console.print(f"parse failures: {s.failed_judgments}/{s.judgments} ({s.parse_failure_rate:.0%}); "
                  f"unconstrained parse rate (the model's own score line): {s.unconstrained_parse_rate:.0%}")
    console.print(f"judged in {elapsed:.1f} s. The embedded 135M model is tiny and near chance as a judge; "
                  "SPCT training (spct rft / rl) is what improves it.")
    return 0
