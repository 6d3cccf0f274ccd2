"""Re-label stored pointwise meta-RM rows (`spct meta-data` output) under the anchored readout, sampling nothing.

A pointwise meta row's label depends on the readout: a judgment is right when its score is on the
right side of the rival response's mean (`spct.meta_rm.pointwise_meta_rows`). Rows sampled under
`--readout expected` already hold each judgment's reading at its own score line; the anchored
readout averages that with one reading straight after the prompt, which is shared by the k
judgments of a response. So only that reading is computed here (one per response, not one per
judgment), and the rows are labelled again, which gives what `spct meta-data --readout anchored`
would write for the same samples at a fraction of the cost.

    python bench/meta_reread.py runs/vp/meta/meta_rows.jsonl --data runs/vp/validation_mix.jsonl \
        -o runs/va/meta/meta_rows.jsonl --model spct-grm-135m
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from spct.backends import EngineConfig, load_backend
from spct.backends.base import ScoreQuery
from spct.data import Judgment, iter_jsonl, read_examples
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.meta_rm import pointwise_meta_rows
from spct.policies import single
from spct.score_line import SCORE_PREFIX, expected_score, score_candidates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", help="meta rows of a pointwise judge read with --readout expected")
    p.add_argument("--data", required=True, help="the labelled examples the rows were sampled from")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--model", default="spct-grm-135m")
    p.add_argument("--batch-size", type=int, default=16, help="readings per engine call")
    args = p.parse_args()

    examples = {ex.id: ex for ex in read_examples(args.data)[0]}
    by_pair: dict[str, list[Judgment]] = defaultdict(list)
    for _, row in iter_jsonl(args.rows):
        j = Judgment(**row["judgment"])
        if row["hinted"] or j.expected is None and j.ok:
            raise SystemExit(f"{args.rows}: row {row['key']} is hinted or was not read with --readout expected")
        by_pair[j.id.rsplit("/", 1)[0]].append(j)

    grm = GenerativeRewardModel(load_backend(EngineConfig(args.model, "transformers")), JudgeConfig(policy="pointwise"))
    cands = score_candidates(1)
    todo = [(pair, i) for pair in by_pair for i in range(len(examples[pair].responses))]
    straight: dict[tuple[str, int], float] = {}
    for b in tqdm(range(0, len(todo), args.batch_size), desc="straight readings", unit="batch"):
        chunk = todo[b : b + args.batch_size]
        queries = []
        for pair, i in chunk:
            ex, _ = grm.fit_to_context(single(examples[pair], i))
            queries.append(ScoreQuery(grm.format.sample_messages(ex, [0], None, 0), SCORE_PREFIX, cands))
        for key, read in zip(chunk, grm.backend.continuation_logprobs(queries), strict=True):
            straight[key] = expected_score(read)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    right = total = 0
    with out.open("w") as f:
        for pair, js in by_pair.items():
            for j in js:
                if j.expected is not None:
                    i = int(j.id.rsplit("/", 1)[1])
                    j.expected = [round((j.expected[0] + straight[pair, i]) / 2, 4)]
            for row in pointwise_meta_rows(examples[pair], js):
                f.write(json.dumps(row) + "\n")
                right += row["label"]
                total += 1
    print(f"{total} rows re-read under the anchored readout to {out}; {right / total:.1%} labelled right")


if __name__ == "__main__":
    main()
