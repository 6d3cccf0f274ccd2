"""spct data verifiable: build preference sets whose labels come from checking answers."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from ..data import InputError, JsonlAppender, check_output_dir
from ..splits import read_rows, split_rows, write_split
from ..verifiable import SOURCES, build
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

    s = data_sub.add_parser("split", help="deterministic held-out / validation / train split by content hash",
                            description="Split a JSONL(.gz) file by SHA-256 of each row's content (the same on every "
                                        "machine): the smallest hashes are held out, the next form a validation slice, "
                                        "the rest is training data. Writes heldout.jsonl, validation.jsonl, train.jsonl "
                                        "and split.json into DIR.")
    s.add_argument("input", help="JSONL or JSONL.gz file")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    s.add_argument("--heldout", type=int, required=True, help="rows held out")
    s.add_argument("--validation", type=int, default=0, help="rows in the validation slice (default: 0)")
    s.add_argument("--id-prefix", default="row", help="id of a row without one: PREFIX + its 0-based index (default: row)")
    s.add_argument("--pin", default=None, metavar="FILE", help="JSONL whose ids are always held out (e.g. the demo pairs)")
    s.set_defaults(func=run_split)

    d = data_sub.add_parser("verdict", help="verdict rows: the right score line of every labelled example, in both orders",
                            description="Write TRL prompt/completion rows whose completion is the right score line "
                                        "(best response 8, others 3; a single response its rating) for every labelled "
                                        "example, each pair in both response orders. Train on them beside RFT rows: "
                                        "`spct sft RFT_DIR ROWS.jsonl --verdict-weight W`. Bad lines are reported and skipped; "
                                        "an example without a label stops the run with its file:line.")
    d.add_argument("inputs", nargs="+", metavar="FILE", help="labelled JSONL(.gz) files (best or ratings)")
    d.add_argument("-o", "--output", required=True, metavar="FILE", help="output JSONL of rows (overwritten)")
    d.add_argument("--max-chars", type=positive_int, default=None,
                   help="skip examples whose query and responses exceed this many characters (default: keep all)")
    d.add_argument("--pointwise", action="store_true",
                   help="one row per response, judged alone (n = 1): best 8, others 3 (default: pairs in both orders)")
    d.add_argument("--no-principles", dest="principles", action="store_false",
                   help="rows for the no-principles prompt variant")
    d.set_defaults(func=run_verdict)


def run_split(args: argparse.Namespace) -> int:
    check_output_dir(args.output)
    if args.heldout < 0 or args.validation < 0:
        raise InputError("--heldout and --validation must be >= 0")
    pinned = {r["id"] for r in read_rows(args.pin, "")} if args.pin else set()
    info = write_split(split_rows(read_rows(args.input, args.id_prefix), args.heldout, args.validation, pinned),
                       args.output, str(args.input))
    print(f"{args.output}: heldout {info['heldout']}, validation {info['validation']}, train {info['train']}",
          file=sys.stderr)
    return 0


def run_verdict(args: argparse.Namespace) -> int:
    from ..data import read_examples
    from ..train.verdict import write_verdict_rows

    examples = []
    for path in args.inputs:
        found, issues = read_examples(path)
        for issue in issues:
            print(f"skipped {issue}", file=sys.stderr)
        examples += found
    counts = write_verdict_rows(examples, args.output, args.principles, args.max_chars, args.pointwise)
    print(f"{args.output}: {counts['rows']} rows from {counts['kept_examples']} of {counts['examples']} examples "
          f"({counts['skipped_too_long']} longer than --max-chars)", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    kinds: Counter[str] = Counter()
    written = total = 0
    with JsonlAppender(args.output, fields=()) as out:  # a resume holds the ids, not the items
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
