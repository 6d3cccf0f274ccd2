"""Reports people can read: results.json, a Markdown report, PNG plots, and a side-by-side compare.

Plots use matplotlib's Agg backend (no display needed): per-section (or per-subset) bars with
95% CI whiskers for the largest k, and a scaling curve (score against k) when several k were
run. `compare` reads several run folders and puts their overall scores, CIs, tie and parse
failure rates in one table and one bar plot.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..data import InputError, write_text

log = logging.getLogger(__name__)


def _pyplot():
    """matplotlib.pyplot on the Agg backend, imported only when a plot is drawn (it is the `eval` extra)."""
    try:
        import matplotlib
    except ImportError as e:
        raise InputError("plots need matplotlib: pip install 'spct[eval]'") from e
    matplotlib.use("Agg")  # the backend must be chosen before pyplot is imported
    import matplotlib.pyplot as plt

    return plt


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(ci: list[float] | None) -> str:
    return "-" if not ci else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _groups(m: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Sections when they group several subsets, else the subsets."""
    secs = m.get("sections") or {}
    if secs and set(secs) != set(m["subsets"]):
        return "section", secs
    return "subset", m["subsets"]


def render_markdown(results: dict[str, Any]) -> str:
    ks = list(results["by_k"])
    top = results["by_k"][ks[-1]]
    lines = [
        f"# {results['benchmark']} — {results['method']} ({results['model']})",
        "",
        f"- data: `{results['data']}`; items scored: {results['items']}" + (f" ({results['missing']} not yet scored)" if results.get("missing") else ""),
        f"- metric: {top['metric']} (a tie for first counts as wrong)" if top["metric"] != "roc_auc" else "- metric: ROC-AUC",
        f"- judgments generated: {results['judgments']}; parse failures: {_pct(results['parse_failure_rate'])}%; "
        f"score line forced: {_pct(results['forced_rate'])}%",
        "",
        "## Overall (95% bootstrap CI)",
        "",
        "| k | score | CI | tie rate | no reward |",
        "| --- | --- | --- | --- | --- |",
    ]
    for k in ks:
        m = results["by_k"][k]
        lines.append(f"| {k} | {_pct(m['overall'])} | {_ci(m['ci'])} | {_pct(m['tie_rate'])} | {_pct(m['no_reward_rate'])} |")
    if top["sections"] and set(top["sections"]) != set(top["subsets"]):
        lines += ["", f"## Sections (k={ks[-1]})", "", "| section | n | score | CI |", "| --- | --- | --- | --- |"]
        for name, s in top["sections"].items():
            lines.append(f"| {name} | {s['n']} | {_pct(s['score'])} | {_ci(s['ci'])} |")
    lines += ["", f"## Subsets (k={ks[-1]})", "", "| subset | n | score | CI | tie rate |", "| --- | --- | --- | --- | --- |"]
    for name, s in top["subsets"].items():
        lines.append(f"| {name} | {s['n']} | {_pct(s['score'])} | {_ci(s['ci'])} | {_pct(s.get('tie_rate'))} |")
    return "\n".join(lines) + "\n"


def _bar_plot(path: Path, names: list[str], scores: list[float | None], cis: list[list[float] | None], title: str, ylabel: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.6))
    values = [100 * (s or 0.0) for s in scores]
    err = [[max(0.0, v - 100 * c[0]) if c else 0.0 for v, c in zip(values, cis, strict=True)],
           [max(0.0, 100 * c[1] - v) if c else 0.0 for v, c in zip(values, cis, strict=True)]]
    ax.bar(range(len(names)), values, yerr=err, capsize=4, color="#4C72B0")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(outdir: str | Path, results: dict[str, Any]) -> list[Path]:
    """results.json, report.md and the plots; returns the files written."""
    outdir = Path(outdir)
    write_text(outdir / "results.json", json.dumps(results, indent=2))
    write_text(outdir / "report.md", render_markdown(results))
    written = [outdir / "results.json", outdir / "report.md"]
    try:
        plt = _pyplot()  # after the results are safe on disk
    except InputError as e:  # a long run is not failed for its pictures (vLLM's venv may lack the extra)
        log.warning("%s: plots not drawn: %s", outdir, e)
        return written
    ks = list(results["by_k"])
    top = results["by_k"][ks[-1]]
    kind, groups = _groups(top)
    ylabel = "ROC-AUC (%)" if top["metric"] == "roc_auc" else "accuracy (%)"
    bars = outdir / f"{kind}s.png"
    _bar_plot(bars, list(groups), [g["score"] for g in groups.values()], [g["ci"] for g in groups.values()],
              f"{results['benchmark']} · {results['method']} · k={ks[-1]}", ylabel)
    written.append(bars)
    if len(ks) > 1:
        fig, ax = plt.subplots(figsize=(4.5, 3.4))
        xs = [int(k) for k in ks]
        ys = [100 * (results["by_k"][k]["overall"] or 0.0) for k in ks]
        lo = [100 * (results["by_k"][k]["ci"] or [0, 0])[0] for k in ks]
        hi = [100 * (results["by_k"][k]["ci"] or [0, 0])[1] for k in ks]
        ax.plot(xs, ys, marker="o", label=results["method"])
        ax.fill_between(xs, lo, hi, alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("k (judgments voted on)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{results['benchmark']}: scaling with k", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(outdir / "scaling.png", dpi=120)
        plt.close(fig)
        written.append(outdir / "scaling.png")
    return written


def load_results(outdir: str | Path) -> dict[str, Any]:
    path = Path(outdir) / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{outdir}: no results.json (not an `spct eval` output folder, or the run never finished a batch)")
    try:
        results = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: malformed JSON: {e.msg} at column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    except (ValueError, RecursionError) as e:  # an integer past Python's digit limit, or nesting too deep to read
        raise InputError(f"{path}: cannot be read as JSON ({type(e).__name__}: {str(e)[:100]})") from None
    _check_results(path, results)
    return results


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# What compare reads of results.json: key -> (check, what it must be). A file edited by hand, or from
# another tool, is refused naming the key, not met with a KeyError where the table is built.
_BY_K = {"by_k": (lambda v: isinstance(v, dict), "an object of results per k")}
_RUN_KEYS = {  # read for each k's row of the table
    "benchmark": (lambda v: isinstance(v, str), "a string"),
    "method": (lambda v: isinstance(v, str), "a string"),
    "model": (lambda v: True, "anything"),  # shown as text, whatever it is
    "parse_failure_rate": (lambda v: v is None or _is_number(v), "a number or null"),
}
_K_KEYS = {
    "n": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "metric": (lambda v: isinstance(v, str), "a string"),
    "overall": (lambda v: v is None or _is_number(v), "a number or null"),
    "ci": (lambda v: v is None or (isinstance(v, list) and len(v) == 2 and all(map(_is_number, v))),
           "null or a list of two numbers"),
    "tie_rate": (lambda v: v is None or _is_number(v), "a number or null"),
}


def _check_keys(path: Path, obj: Any, spec: dict[str, tuple[Any, str]], where: str) -> None:
    if not isinstance(obj, dict):
        raise InputError(f"{path}{f' [{where}]' if where else ''}: expected a JSON object; not an `spct eval` results.json")
    for key, (ok, what) in spec.items():
        name = f"{where}.{key}" if where else key
        if key not in obj:
            raise InputError(f"{path} [{name}]: missing; not an `spct eval` results.json", name)
        if not ok(obj[key]):
            raise InputError(f"{path} [{name}]: must be {what}, got {json.dumps(obj[key])[:60]}", name)


def _check_results(path: Path, results: Any) -> None:
    """InputError naming the file and key when `results` lacks what `compare` reads or holds it as another type."""
    _check_keys(path, results, _BY_K, "")
    if results["by_k"]:
        _check_keys(path, results, _RUN_KEYS, "")
    for k, m in results["by_k"].items():
        if not (k.isascii() and k.isdigit() and len(k) < 10):
            raise InputError(f"{path} [by_k.{k}]: a key of by_k must be a k (a whole number)", f"by_k.{k}")
        _check_keys(path, m, _K_KEYS, f"by_k.{k}")


def compare_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (run, k): the numbers a comparison table shows."""
    rows = []
    for r in runs:
        for k, m in r["by_k"].items():
            rows.append({"benchmark": r["benchmark"], "method": r["method"], "model": r["model"], "k": int(k),
                         "n": m["n"], "metric": m["metric"], "score": m["overall"], "ci": m["ci"],
                         "tie_rate": m["tie_rate"], "parse_failure_rate": r["parse_failure_rate"]})
    return rows


#: The paper's overall score is the mean of these four benchmarks' scores.
PAPER_OVERALL = ("rewardbench", "ppe-preference", "ppe-correctness", "rmb")


def paper_overall(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, model, k) that has all four of PAPER_OVERALL scored: the mean of their scores."""
    by_setting: dict[tuple, dict[str, float]] = {}
    for r in rows:
        if r["benchmark"] in PAPER_OVERALL and r["score"] is not None:
            by_setting.setdefault((r["method"], str(r["model"]), r["k"]), {})[r["benchmark"]] = r["score"]
    return [{"method": m, "model": model, "k": k, "score": round(sum(s.values()) / len(s), 4), "benchmarks": s}
            for (m, model, k), s in by_setting.items() if set(s) == set(PAPER_OVERALL)]


def compare_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| benchmark | method | model | k | n | metric | score | 95% CI | tie rate | parse failures |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['benchmark']} | {r['method']} | {Path(str(r['model'])).name} | {r['k']} | {r['n']} | {r['metric']} | "
                     f"{_pct(r['score'])} | {_ci(r['ci'])} | {_pct(r['tie_rate'])} | {_pct(r['parse_failure_rate'])} |")
    overall = paper_overall(rows)
    if overall:
        lines += ["", "Overall (the paper's: mean of RewardBench, PPE-Preference, PPE-Correctness and RMB)", "",
                  "| method | model | k | overall | " + " | ".join(PAPER_OVERALL) + " |",
                  "| --- | --- | --- | --- | " + " | ".join("---" for _ in PAPER_OVERALL) + " |"]
        for o in overall:
            lines.append(f"| {o['method']} | {Path(o['model']).name} | {o['k']} | {_pct(o['score'])} | "
                         + " | ".join(_pct(o["benchmarks"][b]) for b in PAPER_OVERALL) + " |")
    return "\n".join(lines) + "\n"


def compare_plot(rows: list[dict[str, Any]], path: str | Path) -> None:
    names = [f"{r['benchmark']}\n{r['method']}" + (f" k={r['k']}" if r["k"] > 1 else "") for r in rows]
    _bar_plot(Path(path), names, [r["score"] for r in rows], [r["ci"] for r in rows], "spct compare", "score (%)")
