"""Scaling curves: accuracy against the number of sampled judgments k, for each way of using them.

Sampling is the expensive part, so each example is judged once greedily and once with max k
samples (stored, resumable), and every smaller k is evaluated on random k-subsets of those
samples (the expected accuracy at k, averaged over `subsets` draws). Methods: greedy (one
temperature-0 judgment; the same at every k), voting@k, meta-guided voting@k (top k/2 by meta
score) and adaptive voting under the exact and the confidence-bound stop rules, which also
report how many of the k samples they drew. Accuracy uses the strict rule (a tie is wrong);
95% intervals come from a bootstrap over examples (`intervals.bootstrap_ci`).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .data import Example, InputError, JsonlAppender, Judgment
from .intervals import N_BOOTSTRAP, bootstrap_ci
from .jobs import judge_fitting
from .judge import GenerativeRewardModel, JudgeConfig, MetaScorer, policy_for
from .policies import StopRule, adaptive_vote

METHODS = ("greedy", "voting", "meta", "adaptive", "adaptive-bound")


def collect_samples(grm: GenerativeRewardModel, examples: list[Example], max_k: int, path: str | Path,
                    batch_size: int = 8, progress: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    """One greedy judgment and max_k sampled ones per example, appended to `path` as they finish.

    Returns the rows of the examples judged (now or by an earlier run), and `file:line [field]: why`
    for each example too large for the model's context: those are skipped, as `spct judge` skips them.
    """
    if max_k < 2:
        raise InputError("the largest k must be >= 2 (k = 1 is the greedy judgment, always included)")
    too_large: list[str] = []
    with JsonlAppender(path) as out:
        for row in out.done.values():
            if row.get("k", len(row.get("samples", []))) < max_k:
                raise InputError(f"{path}: holds {row.get('k', len(row.get('samples', [])))} samples per example, fewer "
                                 f"than k={max_k}; use a new output folder")
        todo = [ex for ex in examples if ex.id not in out]
        bar = tqdm(total=len(examples), initial=len(examples) - len(todo), desc="sampling", unit="ex", disable=not progress)

        def draw(exs: list[Example]) -> list[tuple[list[Judgment], list[Judgment]]]:
            # Through the judge's policy: a pointwise judge draws k judgments of each response alone.
            greedy = grm.policy.draw(grm.sample, exs, 1, greedy=True)
            return list(zip(greedy, grm.policy.draw(grm.sample, exs, max_k, greedy=False), strict=True))

        for b in range(0, len(todo), batch_size):
            chunk = todo[b : b + batch_size]
            judged, oversized = judge_fitting(draw, chunk)
            too_large += oversized
            for ex, (g, js) in judged:
                out.write({"id": ex.id, "example": ex.to_dict(), "policy": grm.config.policy, "k": max_k,
                           "greedy": [j.to_dict() for j in g], "samples": [j.to_dict() for j in js]})
            bar.update(len(chunk))
        bar.close()
        return [out.done[ex.id] for ex in examples if ex.id in out], too_large


def _rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def subset(samples: list[Judgment], k: int, rng: random.Random) -> list[Judgment]:
    """k random samples of each thing judged: the example, or (pointwise) each response alone (judgment ids)."""
    groups: dict[str, list[Judgment]] = {}
    for j in samples:
        groups.setdefault(j.id, []).append(j)
    return [j for g in groups.values() for j in rng.sample(g, k)]


def evaluate_scaling(
    rows: list[dict[str, Any]],
    ks: list[int],
    *,
    policy: str = "voting",
    meta_scorer: MetaScorer | None = None,
    subsets: int = 16,
    bound_rule: StopRule | None = None,
    round_size: int = 1,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Accuracy per method and k (with bootstrap CIs) and adaptive voting's sample use.

    Votes follow `policy` (a JudgeConfig policy); adaptive voting is a voting@k rule and is
    evaluated under the voting policy only.
    """
    exact, bound = StopRule("exact"), bound_rule or StopRule("bound")
    with_adaptive = policy == "voting"  # adaptive voting replays voting@k's samples
    plain = policy_for(JudgeConfig(policy=policy))
    guided = policy_for(JudgeConfig(policy=policy), meta_scorer) if meta_scorer is not None else None
    methods = [m for m in METHODS if (m != "meta" or guided is not None) and (with_adaptive or "adaptive" not in m)]
    # per_example[method][k] = one mean correctness per example
    per_example: dict[str, dict[int, list[float]]] = {m: {k: [] for k in ks} for m in methods}
    used: dict[str, dict[int, list[float]]] = {r: {k: [] for k in ks} for r in ("exact", "bound")}
    agree: dict[str, dict[int, list[float]]] = {r: {k: [] for k in ks} for r in ("exact", "bound")}
    failed = total = 0
    for row in rows:
        ex = Example(**row["example"])
        if not ex.labelled:
            continue
        stored = row["greedy"]  # a list since policies; one judgment in files written before
        greedy = [Judgment(**j) for j in (stored if isinstance(stored, list) else [stored])]
        samples = [Judgment(**j) for j in row["samples"]]
        failed += sum(not j.ok for j in [*greedy, *samples])
        total += len(greedy) + len(samples)
        if guided is not None:
            guided.rate(ex, samples)
        greedy_right = float(bool(plain.vote(ex, greedy).correct))
        drawn_k = min(Counter(j.id for j in samples).values())
        for k in ks:
            if k > drawn_k:
                raise InputError(f"example {ex.id}: k={k} but only {drawn_k} samples were drawn")
            rng = _rng(seed, ex.id, k)
            scores: dict[str, list[float]] = {m: [] for m in methods}
            drawn: dict[str, list[float]] = {"exact": [], "bound": []}
            same: dict[str, list[float]] = {"exact": [], "bound": []}
            for _ in range(subsets if k < drawn_k else max(1, subsets // 4)):
                picked = subset(samples, k, rng)  # a random subset, in a random drawing order
                full = plain.vote(ex, picked)
                scores["greedy"].append(greedy_right)
                scores["voting"].append(float(bool(full.correct)))
                if guided is not None:  # over the top k/2 by meta score
                    scores["meta"].append(float(bool(guided.vote(ex, picked).correct)))
                if not with_adaptive:
                    continue
                for name, rule, method in (("exact", exact, "adaptive"), ("bound", bound, "adaptive-bound")):
                    r = adaptive_vote(ex, picked, k, rule, round_size)
                    scores[method].append(float(bool(r.correct)))
                    drawn[name].append(r.k)
                    same[name].append(float(r.best == full.best))
            for m in methods:
                per_example[m][k].append(sum(scores[m]) / len(scores[m]))
            for name in ("exact", "bound") if with_adaptive else ():
                used[name][k].append(sum(drawn[name]) / len(drawn[name]))
                agree[name][k].append(sum(same[name]) / len(same[name]))
        if progress:
            progress(1)
    if not per_example["voting"][ks[0]]:
        raise InputError("no labelled examples to evaluate ('best' or 'ratings' is needed)")
    curves = {}
    for m in methods:
        curves[m] = []
        for k in ks:
            lo, hi = (float(x) for x in bootstrap_ci([per_example[m][k]], np.mean, seed=seed, n_resamples=n_boot))
            curves[m].append({"k": k, "accuracy": float(np.mean(per_example[m][k])), "ci95": [lo, hi]})
    adaptive = {
        name: [{"k": k, "mean_samples": float(np.mean(used[name][k])), "fraction_of_k": float(np.mean(used[name][k])) / k,
                "agrees_with_voting": float(np.mean(agree[name][k]))} for k in ks]
        for name in (("exact", "bound") if with_adaptive else ())
    }
    return {
        "examples": len(per_example["voting"][ks[0]]),
        "policy": policy,
        "ks": ks,
        "subsets_per_k": subsets,
        "bootstrap": n_boot,
        "round_size": round_size,
        "bound_rule": {"z": bound.z, "min_samples": bound.min_samples, "min_sd": bound.min_sd},
        "failed_judgments": failed,
        "judgments": total,
        "accuracy": curves,
        "adaptive": adaptive,
    }


LABELS = {"greedy": "greedy (k=1, temperature 0)", "voting": "voting@k", "meta": "meta-guided voting (top k/2)",
          "adaptive": "adaptive voting (exact)", "adaptive-bound": "adaptive voting (bound)"}


def plot_scaling(results: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Accuracy against k with 95% bands, and adaptive voting's samples drawn against k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = results["ks"]
    if results["adaptive"]:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    else:
        fig, ax = plt.subplots(figsize=(6.6, 4.2))
    for m, points in results["accuracy"].items():
        acc = [p["accuracy"] for p in points]
        lo = [p["ci95"][0] for p in points]
        hi = [p["ci95"][1] for p in points]
        style = {"linestyle": "--", "marker": None} if m == "greedy" else {"marker": "o"}
        (line,) = ax.plot(ks, acc, label=LABELS[m], **style)
        ax.fill_between(ks, lo, hi, color=line.get_color(), alpha=0.12)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (sampled judgments per response)" if results.get("policy") == "pointwise" else "k (sampled judgments)")
    ax.set_ylabel("accuracy (a tie is wrong)")
    ax.set_title(title or f"{results['examples']} examples, 95% bootstrap bands")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if results["adaptive"]:  # adaptive voting is evaluated under the voting policy only
        ax2.plot(ks, ks, color="grey", linestyle=":", label="k (full voting)")
        for name, points in results["adaptive"].items():
            ax2.plot(ks, [p["mean_samples"] for p in points], marker="o", label=f"adaptive ({name})")
        ax2.set_xscale("log", base=2)
        ax2.set_yscale("log", base=2)
        ax2.set_xticks(ks, [str(k) for k in ks])
        ax2.set_yticks(ks, [str(k) for k in ks])
        ax2.set_xlabel("k (budget)")
        ax2.set_ylabel("samples drawn (mean)")
        ax2.set_title("adaptive voting: samples drawn")
        ax2.legend(fontsize=8)
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
