"""Is the preference in the judge's hidden state where it reads its score? A linear probe.

The Bradley-Terry head on the SmolLM2-135M backbone gets 0.643 on held-out HH; the judge trained
with the same loss on its own score readout gets 0.545. Two explanations call for different next
steps: the features at the readout position do not hold what the BT head learnt (the body must
change: more layers, more data), or they hold it and the readout through the digit rows of the
output head does not reach it (the reading must change). This script tells them apart.

Each labelled pair's responses are judged alone with the pointwise judging prompt up to
`Scores: \\boxed{` (the position `--readout expected` reads; texts longer than --max-length are
cut as in `spct train-verdict`). One forward pass per response gives
- the final hidden state there (576 numbers for SmolLM2-135M), stored per file in OUT/NAME.npz;
- the score line alone: the expected first digit 1..9 under the model's probabilities, the
  quantity `spct train-verdict` trains.
Then a logistic regression on the difference of the two responses' hidden states (scikit-learn,
standardised, C chosen on the second file) is fitted on the first file and scored on the rest.

    python bench/verdict_features.py --model spct-grm-135m --out runs/vf/shipped \\
        --data runs/grm/data/hh/train.jsonl runs/grm/data/hh/validation.jsonl runs/grm/data/hh/heldout.jsonl \\
        --name train validation heldout
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np


def ci95(hits: list[int], draws: int = 2000) -> list[float]:
    rng = random.Random(0)
    means = sorted(sum(rng.choice(hits) for _ in hits) / len(hits) for _ in range(draws))
    return [round(means[int(0.025 * draws)], 4), round(means[int(0.975 * draws)], 4)]


def extract(model: str, path: str, out: Path, max_length: int, batch_size: int) -> None:
    """OUT.npz with h (pairs, 2, hidden), expected (pairs, 2) and best (pairs,): response 0 or 1."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spct.backends.models import resolve_model
    from spct.data import Example, read_examples
    from spct.train.verdict_pref import DIGITS, PromptEncoder

    examples = [ex for ex in read_examples(path)[0] if len(ex.responses) == 2 and ex.best and len(ex.best) == 1]
    base, _ = resolve_model(model)
    tok = AutoTokenizer.from_pretrained(base)
    lm = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    encode = PromptEncoder(tok, max_length)
    digit_w = lm.get_output_embeddings().weight[tok.convert_tokens_to_ids(DIGITS)]
    values = torch.arange(1, 10, dtype=torch.float32)
    rows, keep = [], []
    for i, ex in enumerate(examples):
        ids = [encode(Example(f"{ex.id}/{j}", ex.query, [r])) for j, r in enumerate(ex.responses)]
        if None in ids:
            continue
        keep.append(i)
        rows += [(len(keep) - 1, j, x) for j, x in enumerate(ids)]
    hidden = np.zeros((len(keep), 2, lm.config.hidden_size), np.float32)
    expected = np.zeros((len(keep), 2), np.float32)
    order = sorted(range(len(rows)), key=lambda r: len(rows[r][2]))  # similar lengths share a batch
    start = time.time()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            batch = [rows[r] for r in order[b:b + batch_size]]
            width = max(len(x) for _, _, x in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id or 0)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for n, (_, _, x) in enumerate(batch):
                ids[n, :len(x)], mask[n, :len(x)] = torch.tensor(x), 1
            h = lm.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
            last = h[torch.arange(len(batch)), mask.sum(-1) - 1]
            e = (last @ digit_w.T).softmax(-1) @ values
            for n, (p, j, _) in enumerate(batch):
                hidden[p, j], expected[p, j] = last[n].numpy(), float(e[n])
            done = b + len(batch)
            if done % (batch_size * 25) < batch_size:
                print(f"  {path}: {done}/{len(rows)} responses, {time.time() - start:.0f} s", flush=True)
    best = np.array([examples[i].best[0] for i in keep], np.int64)
    np.savez(out, h=hidden, expected=expected, best=best, skipped=len(examples) - len(keep))


def fit_and_score(files: dict[str, Path]) -> dict[str, dict]:
    """Probe on the first file, C chosen on the second; accuracy of the probe and of the score line on each."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    data = {name: np.load(p) for name, p in files.items()}
    names = list(data)

    def diffs(d) -> tuple[np.ndarray, np.ndarray]:
        # x = h(response 0) - h(response 1), y = 1 when response 0 is the labelled best
        return d["h"][:, 0] - d["h"][:, 1], (d["best"] == 0).astype(int)

    x_train, y_train = diffs(data[names[0]])
    x_train, y_train = np.concatenate([x_train, -x_train]), np.concatenate([y_train, 1 - y_train])  # both orders
    scaler = StandardScaler().fit(x_train)
    x_val, y_val = diffs(data[names[1]])
    best_c, best_acc = None, -1.0
    for c in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x_train), y_train)
        acc = float((clf.predict(scaler.transform(x_val)) == y_val).mean())
        if acc > best_acc:
            best_c, best_acc = c, acc
    clf = LogisticRegression(C=best_c, max_iter=2000).fit(scaler.transform(x_train), y_train)
    report = {}
    for name, d in data.items():
        x, y = diffs(d)
        probe = (clf.predict(scaler.transform(x)) == y).astype(int).tolist()
        e = d["expected"]
        line = [int(e[i, d["best"][i]] > e[i, 1 - d["best"][i]]) for i in range(len(e))]
        report[name] = {"pairs": len(y), "skipped_too_long": int(d["skipped"]),
                        "probe_accuracy": round(float(np.mean(probe)), 4), "probe_ci95": ci95(probe),
                        "score_line_accuracy": round(float(np.mean(line)), 4), "score_line_ci95": ci95(line),
                        "probe_C": best_c}
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="embedded name, folder or hub id")
    ap.add_argument("--data", nargs="+", required=True, help="fit on the first file, choose C on the second")
    ap.add_argument("--name", nargs="+", required=True)
    ap.add_argument("--out", required=True, help="folder for the features (rerun: files already there are reused)")
    ap.add_argument("--max-length", type=int, default=640)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    if len(args.data) != len(args.name) or len(args.data) < 2:
        ap.error("give at least two --data files and one --name each")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for path, name in zip(args.data, args.name, strict=True):
        files[name] = out / f"{name}.npz"
        if not files[name].exists():
            t0, load0 = time.time(), os.getloadavg()[0]
            extract(args.model, path, files[name], args.max_length, args.batch_size)
            print(json.dumps({"features": name, "seconds": round(time.time() - t0, 1), "load_avg_start": round(load0, 2),
                              "load_avg_end": round(os.getloadavg()[0], 2)}), flush=True)
    for name, row in fit_and_score(files).items():
        print(json.dumps({"model": args.model, "set": name, **row}))


if __name__ == "__main__":
    main()
