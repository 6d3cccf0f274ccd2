"""Pick the probe set: the first N HH-RLHF pairs whose two transcripts are each at most MAX_CHARS
characters (short pairs keep a CPU probe run affordable; file order, no other choice). The source is
the raw test split (.jsonl.gz, rows numbered by line) or a split of it such as the held-out file
(rows keep their own `id`).

    python bench/probe_subset.py ../shared/data/hh-rlhf-harmless/test.jsonl.gz runs/probe_hh24.jsonl --n 24
    python bench/probe_subset.py runs/grm/data/hh/heldout.jsonl runs/probe_heldout16.jsonl --n 16
"""

from __future__ import annotations

import argparse
import gzip
import json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source")
    ap.add_argument("output")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--max-chars", type=int, default=500)
    args = ap.parse_args()
    picked = []
    opener = gzip.open if args.source.endswith(".gz") else open
    with opener(args.source, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            if len(row["chosen"]) <= args.max_chars and len(row["rejected"]) <= args.max_chars:
                picked.append({"id": f"hh-harmless-test-{i}", **row})  # a split's own id wins
            if len(picked) == args.n:
                break
    with open(args.output, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in picked)
    print(f"{len(picked)} pairs (last source row {i}) -> {args.output}")


if __name__ == "__main__":
    main()
