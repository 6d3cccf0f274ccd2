"""spct demo: judge 8 real HH-RLHF pairs shipped with spct with the trained judge and its base, side by side."""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..backends.models import BASE_MODEL
from ..data import read_examples
from ..defaults import DEMO_MAX_NEW_TOKENS
from ..jobs import JobSummary, judge_file
from .common import add_judge_args, add_model_args, build_grm


def demo_file() -> Path:
    return Path(str(resources.files("spct") / "assets" / "hh_rlhf_demo.jsonl"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="judge 8 shipped HH-RLHF pairs with the trained judge and its base, side by side",
                       description="Judge 8 real HH-RLHF harmless pairs (MIT, see spct/assets/NOTICE; all in spct's "
                                   "held-out split) offline with the judge (--model, default: the shipped SPCT-trained "
                                   "spct-grm-135m) and with its untrained base (--base, default: smollm2-135m), and "
                                   "print the principles, scores, voted rewards and agreement with the human label.")
    p.add_argument("-o", "--output", default=None,
                   help="keep the judgments in this JSONL (the base's go to OUTPUT.base.jsonl; default: temporary files)")
    p.add_argument("--base", default=BASE_MODEL,
                   help=f"untrained model shown beside the judge (default: {BASE_MODEL}); 'none' shows the judge alone")
    add_model_args(p)
    add_judge_args(p, k=2, max_new_tokens=DEMO_MAX_NEW_TOKENS)
    p.set_defaults(func=run)


def _short(text: str | None, width: int = 70) -> str:
    text = " ".join((text or "-").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _judge(args: argparse.Namespace, model: str, examples, out: str, console: Console) -> tuple[JobSummary, float]:
    t0 = time.perf_counter()
    grm = build_grm(argparse.Namespace(**{**vars(args), "model": model}))
    console.print(f"[cyan]{model}[/] loaded in {time.perf_counter() - t0:.1f} s")
    t1 = time.perf_counter()
    return judge_file(grm, examples, out, k=args.k), time.perf_counter() - t1


def _cell(r) -> str:
    first = r.judgments[0] if r.judgments else None
    scores = "  ".join(str(j.scores) + ("" if j.forced else "*") if j.ok else "failed" for j in r.judgments)
    agree = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[r.correct]
    return f"{_short(first.principles if first else None)}\n{scores} -> {r.rewards} {agree}"


def run(args: argparse.Namespace) -> int:
    console = Console()
    examples, _ = read_examples(demo_file())
    models = [args.model] + ([args.base] if args.base not in ("none", args.model) else [])
    console.print(f"[bold]spct demo[/]: {len(examples)} HH-RLHF harmless pairs, k={args.k}, "
                  f"max {args.max_new_tokens} new tokens, score line {'constrained' if args.constrain else 'free'}")
    summaries: dict[str, JobSummary] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, model in enumerate(models):
            out = (args.output if i == 0 else f"{args.output}.base.jsonl") if args.output else str(Path(tmp) / f"{i}.jsonl")
            summaries[model], elapsed = _judge(args, model, examples, out, console)
            console.print(f"[cyan]{model}[/] judged {len(examples)} pairs in {elapsed:.1f} s")

    table = Table(title="Judgments (response 1 = human-preferred; * = the model wrote its own score line)",
                  show_lines=True)
    table.add_column("id", overflow="fold")
    for model in models:
        table.add_column(f"{model}: principles / scores per sample -> voted, agrees", overflow="fold")
    rows = [{r.id: r for r in summaries[m].rewards} for m in models]
    for ex in examples:
        table.add_row(ex.id, *(_cell(by_id[ex.id]) if ex.id in by_id else "-" for by_id in rows))
    console.print(table)
    for model in models:
        s = summaries[model]
        acc = f"{s.accuracy:.2f} ({s.correct}/{s.labelled}, a tie counts as wrong)" if s.accuracy is not None else "-"
        console.print(f"[cyan]{model}[/]: accuracy vs human label {acc}")
        console.print(f"  parse failures: {s.failed_judgments}/{s.judgments}; "
                      f"unconstrained parse rate (own score line): {s.unconstrained_parse_rate:.0%}")
    console.print("8 pairs say little: held-out figures with confidence intervals are in docs/model-card.md.")
    return 0
