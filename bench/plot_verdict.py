"""Training curves of a `spct train-verdict` run: Bradley-Terry loss and pair accuracy per logged step.

    python bench/plot_verdict.py runs/vp/bt15 -o bench/verdict_curves.png

Reads RUN/log_history.json (written at the end of a run), else the newest RUN/checkpoint-*/trainer_state.json
(a run still going). Each logged point is the mean over its `--logging-steps` batches; the thick
line is a rolling mean over `--window` points. Pair accuracy in epoch 1 is measured on pairs the
model has not trained on yet; from epoch 2 on they have been seen once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def history(run: Path) -> list[dict]:
    if (run / "log_history.json").is_file():
        rows = json.loads((run / "log_history.json").read_text())
    else:
        states = sorted(run.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
        if not states:
            raise SystemExit(f"{run}: no log_history.json and no checkpoint with a trainer_state.json")
        rows = json.loads(states[-1].read_text())["log_history"]
    return [h for h in rows if "loss" in h and "accuracy" in h]


def rolling(values: list[float], window: int) -> list[float]:
    return [sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
            for i in range(len(values))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--window", type=int, default=10, help="logged points per rolling mean")
    args = p.parse_args()
    rows = history(Path(args.run))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in rows]
    epochs = sorted({int(float(h["epoch"]) - 1e-9) for h in rows})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title, chance in ((axes[0], "loss", "Bradley-Terry loss", 0.6931),
                                   (axes[1], "accuracy", "pair accuracy (batch)", 0.5)):
        values = [float(h[key]) for h in rows]
        ax.plot(steps, values, lw=0.6, alpha=0.4)
        ax.plot(steps, rolling(values, args.window), lw=2, label=f"rolling mean of {args.window}")
        ax.axhline(chance, color="grey", ls="--", lw=1, label="a coin" if key == "accuracy" else "ln 2 (a coin)")
        for e in epochs[1:]:  # where each later epoch starts
            first = next(h["step"] for h in rows if float(h["epoch"]) > e)
            ax.axvline(first, color="black", lw=0.8, alpha=0.5)
        ax.set(title=title, xlabel="optimizer step (8 pairs)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"spct train-verdict: {Path(args.run).name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output} ({len(rows)} logged points, {len(epochs)} epoch(s))")


if __name__ == "__main__":
    main()
