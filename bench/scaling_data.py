"""Write the two HH-RLHF harmless slices the scaling benchmark uses (disjoint, short pairs).

Both slices take the first pairs whose two dialogues together are under MAX_CHARS characters
(default 1200, to keep CPU runs short; 0 takes every pair): the meta RM's training slice from
lines 1000 on, the evaluation slice from lines 0..999. Ids are `hh<line index>` so the two
slices can never be confused.
Usage: python bench/scaling_data.py OUTDIR [N_META] [N_EVAL] [MAX_CHARS]
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

# ../shared/data next to the checkout, as DESIGN §4 places it
SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless" / "test.jsonl.gz"


def main() -> None:
    out = Path(sys.argv[1])
    n_meta = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    n_eval = int(sys.argv[3]) if len(sys.argv) > 3 else 24
    max_chars = int(sys.argv[4]) if len(sys.argv) > 4 else 1200
    with gzip.open(SOURCE, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    short = [i for i, r in enumerate(rows) if not max_chars or len(r["chosen"]) + len(r["rejected"]) < max_chars]
    out.mkdir(parents=True, exist_ok=True)
    for name, picked in (("meta_train.jsonl", [i for i in short if i >= 1000][:n_meta]),
                         ("eval.jsonl", [i for i in short if i < 1000][:n_eval])):
        with open(out / name, "w", encoding="utf-8") as fh:
            for i in picked:
                fh.write(json.dumps({"id": f"hh{i}", **rows[i]}, ensure_ascii=False) + "\n")
        print(f"{out / name}: {len(picked)} pairs")


if __name__ == "__main__":
    main()
