"""spct probe -o OUTDIR: position, verbosity, planted-score and injection probes, hardened vs naive prompt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ..data import InputError, check_output_dir, load_examples
from ..defaults import PROBE_MAX_NEW_TOKENS
from ..judge import JudgeConfig
from ..probes import ATTACKS, PROMPTS, ProbeConfig, conditions_for, run_probes
from ..settings import add_dataclass_args
from . import flag_words
from .common import add_model_args, build_grm, positive_int, report_issues
from .demo import demo_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="measure position/verbosity bias and resistance to planted scores and prompt injection",
                       description="Judge each labelled example in both orders (a pointwise judge: each response alone), clean and under four attacks on a "
                                   "non-best response (fluff padding, a planted score box, an injected instruction, "
                                   "planted chat-template role/control tokens), "
                                   "with spct's hardened prompt, a naive one, and the hardened one with score boxes in judged text defused. Writes OUTDIR/samples.jsonl "
                                   "(resumable), OUTDIR/results.json and OUTDIR/probes.png.")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--data", default=None,
                   help="labelled examples (JSONL/.gz/HF dataset; default: the 8 shipped HH-RLHF pairs)")
    p.add_argument("--split", default="test", help="split, when --data is a HF dataset (default: test)")
    p.add_argument("--limit", type=positive_int, default=None, help="probe only the first N usable examples")
    p.add_argument("--prompts", default=",".join(PROMPTS), help=f"prompt variants (default: {','.join(PROMPTS)})")
    # policy/readout: None until judge_config knows the model, which may recommend its own.
    add_dataclass_args(p, JudgeConfig, ("max_new_tokens", "policy", "readout"),
                       defaults={"max_new_tokens": PROBE_MAX_NEW_TOKENS, "policy": None, "readout": None})
    p.add_argument("--batch-size", type=positive_int, default=4, help="examples per generation batch (default: 4)")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.output)
    prompts = tuple(x.strip() for x in args.prompts.split(",") if x.strip())
    unknown = [x for x in prompts if x not in PROMPTS]
    if unknown or not prompts:
        raise InputError(f"--prompts: unknown variant(s) {unknown}; choose from {', '.join(PROMPTS)}")
    examples, issues = load_examples(args.data or str(demo_file()), args.split)
    report_issues(issues)
    examples = [ex for ex in examples if ex.best and len(ex.responses) >= 2][: args.limit]
    if not examples:
        raise InputError("no usable examples: probes need >= 2 responses and a 'best' label")
    # Both orders, or each of the two responses alone (pointwise): two judgments per condition either way.
    grm = build_grm(args, k=1, judgments=len(examples) * 2 * sum(len(conditions_for(p)) for p in prompts))
    config = ProbeConfig(prompts=prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    with tqdm(total=len(examples), desc="probing", unit="ex") as bar:
        summary = run_probes(grm, examples, args.output, config, progress=bar.update)
    report_issues([flag_words(issue) for issue in summary["too_large"]])
    for prompt, stats in summary["prompts"].items():
        pos = stats["position"]
        position = ("" if pos["order_flip_rate"] is None else  # pointwise: no order to probe
                    f", best-first {pos['accuracy_best_first']} vs best-last {pos['accuracy_best_last']}, first-position "
                    f"score gain {pos['first_position_score_gain']}, order flips {pos['order_flip_rate']}")
        print(f"[{prompt}] clean accuracy {pos['clean_accuracy']}{position}; parse failures "
              f"{stats['parse_failures']}/{stats['judgments']}", file=sys.stderr)
        for attack in ATTACKS:
            if attack not in stats:
                continue
            a = stats[attack]
            print(f"[{prompt}] {attack}: score gain {a['score_gain']}, margin gain {a['margin_gain']}, "
                  f"flip rate {a['flip_rate']}, accuracy {a['accuracy']} (n={a['n']})", file=sys.stderr)
    png, results = Path(args.output) / "probes.png", Path(args.output) / "results.json"
    drawn = " and probes.png" if png.exists() and png.stat().st_mtime >= results.stat().st_mtime else ""
    print(f"wrote {args.output}/results.json{drawn}", file=sys.stderr)
    return 0
