"""Training curves of an SPCT run: SFT loss per step, GRPO mean reward and zero-spread groups per step.

    python bench/plot_training.py runs/grm -o bench/training_curves.png

Reads RUN/sft*/log_history.json (SFT rounds, laid end to end) and RUN/rl/log_history.json (written by `spct sft` / `spct rl`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # SFT rounds (sft, sft2, ...) continue one another: their steps are laid end to end.
    sft: list[dict] = []
    for d in sorted(Path(args.run).glob("sft*"), key=lambda d: (len(d.name), d.name)):
        rows = [h for h in load(d / "log_history.json") if "loss" in h]
        offset = sft[-1]["step"] if sft else 0
        sft += [{**h, "step": h["step"] + offset} for h in rows]
    rl = [h for h in load(Path(args.run) / "rl" / "log_history.json") if "reward" in h]
    panels = 1 + (2 if rl else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    ax = axes[0][0]
    ax.plot([h["step"] for h in sft], [h["loss"] for h in sft], marker=".", lw=1)
    ax.set(title="SFT on RFT rows (LoRA)", xlabel="optimizer step", ylabel="completion loss")
    if rl:
        steps = [h["step"] for h in rl]
        axes[0][1].plot(steps, [h["reward"] for h in rl], marker=".", lw=1)
        axes[0][1].set(title="GRPO: mean rule reward (+1/-1)", xlabel="step", ylabel="mean reward", ylim=(-1.05, 1.05))
        key = next((k for k in ("frac_reward_zero_std", "reward_zero_std_frac") if k in rl[0]), None)
        if key:
            axes[0][2].plot(steps, [h[key] for h in rl], marker=".", lw=1)
        axes[0][2].set(title="GRPO: groups with zero reward spread", xlabel="step", ylabel="share", ylim=(-0.05, 1.05))
    for row in axes:
        for a in row:
            a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
