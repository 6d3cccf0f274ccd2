"""One evaluation run: score a benchmark with one method, append as it goes, then report.

Output folder:
- `config.json`   what was run (a rerun with other settings into the same folder is refused);
- `samples.jsonl` one line per item: subset, labels, rewards per k, the raw judgments
                  (appended and fsynced per batch: a crash loses no finished item, a rerun
                  scores only what is missing);
- `results.json`  the aggregate (per k: overall, CI, tie and no-reward rates, sections, subsets);
- `report.md` and PNG plots (see report.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from ..backends.base import BackendError
from ..data import Example, InputError, JsonlAppender, write_text
from ..jobs import judge_fitting
from ..voting import labelled_best
from .baselines import Scored
from .benchmarks import Benchmark
from .metrics import Item, score

log = logging.getLogger(__name__)

# Settings that change the numbers: a folder holds one combination of them.
RUN_KEYS = ("benchmark", "method", "model", "ks", "max_new_tokens", "temperature", "seed", "constrain", "max_responses",
            "meta_rm", "k_meta", "policy", "readout")
# Keys a run folder written before they were recorded lacks: it ran with these values.
UNRECORDED = {"policy": "voting", "readout": "sampled"}


# What `aggregate` reads of a samples.jsonl row (the rest, every raw judgment, stays on disk).
AGGREGATED = ("subset", "rewards", "best", "label", "judgments", "failed", "forced")


class Method(Protocol):
    def score(self, examples: list[Example], ks: Sequence[int]) -> list[Scored]: ...


def _check_config(outdir: Path, config: dict[str, Any]) -> None:
    path = outdir / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = [k for k in RUN_KEYS if old.get(k, UNRECORDED.get(k)) != config.get(k)]
        if diff:
            raise InputError(f"{outdir} holds a run with other settings ({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); "
                             "use another -o folder")
    outdir.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(config, indent=2))


def run_eval(bench: Benchmark, examples: list[Example], method: Method, outdir: str | Path, config: dict[str, Any],
             *, batch_size: int = 8, progress: bool = True) -> dict[str, Any]:
    """Score what is missing from samples.jsonl, then write results.json, report.md and plots."""
    outdir = Path(outdir)
    ks = sorted(set(config["ks"]))
    _check_config(outdir, config)
    backend_failed, too_large = 0, []
    with JsonlAppender(outdir / "samples.jsonl", fields=AGGREGATED) as out:  # a resume holds no judgment texts
        # Similar lengths batch together: far less padding, the same results.
        todo = sorted((ex for ex in examples if ex.id not in out), key=_length)
        bar = tqdm(total=len(examples), initial=len(examples) - len(todo), desc=f"eval {config['method']}", unit="item",
                   disable=not progress)
        for b in range(0, len(todo), batch_size):
            chunk = todo[b : b + batch_size]
            try:
                scored, oversized = judge_fitting(lambda exs: method.score(exs, ks), chunk)
            except BackendError as e:
                log.error("backend failed on %d item(s) (%s); rerun to retry them", len(chunk), e)
                backend_failed += len(chunk)
                bar.update(len(chunk))
                continue
            too_large += oversized
            for ex, s in scored:
                out.write({"id": ex.id, "subset": ex.domain or "all", "section": bench.section_of(ex.domain or "all"),
                           "n": len(ex.responses), "best": labelled_best(ex.best, ex.ratings) or None, "label": ex.ratings[0] if ex.ratings and len(ex.ratings) == 1 else None,
                           **asdict(s)})
            bar.update(len(chunk))
        bar.close()
        rows = [out.done[ex.id] for ex in examples if ex.id in out.done]
    if not rows and too_large:
        more = f" (and {len(too_large) - 1} more)" if len(too_large) > 1 else ""
        raise InputError(f"nothing was scored: every item is too large for the model's context; {too_large[0]}{more}")
    results = aggregate(bench, rows, config)
    results["missing"] = len(examples) - len(rows)
    results["backend_failed"] = backend_failed
    results["too_large"] = too_large  # items past the model's context: reported and skipped, `file:line [field]: why`
    from .report import write_report

    write_report(outdir, results)
    return results


def _length(ex: Example) -> int:
    query = ex.query if isinstance(ex.query, str) else "".join(m["content"] for m in ex.query)
    return len(query) + sum(map(len, ex.responses))


def aggregate(bench: Benchmark, rows: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """results.json content from samples.jsonl rows."""
    if not rows:
        raise InputError("nothing was scored (every batch failed); see the errors above and rerun")
    judgments = sum(r["judgments"] for r in rows)
    failed = sum(r["failed"] for r in rows)
    by_k = {}
    for k in sorted(set(config["ks"])):
        items = [Item(r["subset"], r["rewards"][str(k)], r["best"], r["label"]) for r in rows]
        by_k[str(k)] = score(bench, items)
    return {
        **{key: config.get(key) for key in ("benchmark", "data", "method", "model")},
        "config": config,
        "items": len(rows),
        "judgments": judgments,
        "parse_failure_rate": round(failed / judgments, 4) if judgments else None,
        "forced_rate": round(sum(r["forced"] for r in rows) / judgments, 4) if judgments else None,
        "by_k": by_k,
    }
