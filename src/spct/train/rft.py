"""Rejective fine-tuning data: sample judgments of labelled examples, keep the right ones.

SPCT's first stage (paper §3.3): per labelled example draw N_RFT (3) judgments with responses
shuffled; a judgment is kept when it satisfies the accuracy rule (strict win of the labelled
best response; n = 1: score equals the rating) *and* the model wrote it whole: a judgment whose
score line was forced by the constraint, or that was cut at max_new_tokens, is never a training
target (it would teach the model text it cannot produce), and neither is a judgment that copies
the format demonstration (below). An example on which every sample is
usable is "too easy" and dropped: it teaches nothing. An example with no usable sample gets one
*hinted* sample (the prompt names the best response); it is kept if usable, and counted apart
because hinted trajectories can take shortcuts.

`spct rft --format-demo` (`JudgeConfig.format_demo`) samples with a demonstrated judgment before the query, which lets a
small base model that never writes its own score line produce usable targets at all; the
training rows still carry the plain prompt, so the demonstration is distilled away. A sample that
reproduces the demonstration (`copies_format_demo`) is never a target: a sampler at chance copies
it and is right half the time by its orientation alone, and SFT on such rows taught the second
shipped round one fixed judgment for every input (docs/model-card.md).

The run appends one outcome row per example to `samples.jsonl` (resumable with
`JsonlAppender`), then rebuilds `train.jsonl` (TRL conversational prompt/completion rows) and
`stats.json` from it. The training prompt is always the *unhinted* prompt in the sampled
response order: at inference time there is no hint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..data import (
    Example,
    InputError,
    InputIssue,
    JsonlAppender,
    Judgment,
    iter_jsonl,
    write_jsonl,
    write_text,
)
from ..format import JudgingFormat
from ..jobs import judge_fitting
from ..judge import GenerativeRewardModel
from ..parsing import swap_pair
from ..prompts import copies_format_demo
from ..voting import check_rating_scale, is_correct

SAMPLES_FILE = "samples.jsonl"
TRAIN_FILE = "train.jsonl"
STATS_FILE = "stats.json"


@dataclass
class RFTConfig:
    n_samples: int = 3  # N_RFT unhinted samples per example
    hinted: bool = True  # one hinted sample for examples with no right unhinted sample
    drop_too_easy: bool = True  # drop examples on which every unhinted sample is right
    batch_size: int = 8  # examples per backend call


@dataclass
class RFTStats:
    examples: int = 0
    samples: int = 0  # unhinted samples drawn
    accepted: int = 0  # unhinted samples kept (right, own score line, not cut, not a demo copy)
    right: int = 0  # unhinted samples right by the accuracy rule, usable or not
    forced: int = 0  # unhinted samples whose score line was forced
    truncated: int = 0  # unhinted samples cut at max_new_tokens
    copied_demo: int = 0  # unhinted samples that reproduce the format demonstration
    too_easy: int = 0  # examples dropped because every sample was right
    hinted_tried: int = 0  # examples that got a hinted sample
    hinted_accepted: int = 0
    no_right_sample: int = 0  # examples left with nothing to train on
    mirrored_rows: int = 0  # kept pair judgments added again in the swapped order
    mixed_rows: int = 0  # general instruction rows mixed in
    train_rows: int = 0
    # This run's examples too large for the model's context, skipped: `file:line [field]: why`.
    too_large: list[str] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        """Share of unhinted samples that were right (before dropping too-easy examples)."""
        return self.accepted / self.samples if self.samples else 0.0

    @property
    def too_easy_rate(self) -> float:
        return self.too_easy / self.examples if self.examples else 0.0

    @property
    def hinted_share(self) -> float:
        """Share of the kept judgment rows that came from hinted sampling."""
        judged = self.train_rows - self.mixed_rows - self.mirrored_rows
        return self.hinted_accepted / judged if judged else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("too_large")  # reported as the run goes; stats.json describes samples.jsonl
        d.update(acceptance_rate=round(self.acceptance_rate, 4), too_easy_rate=round(self.too_easy_rate, 4),
                 hinted_share=round(self.hinted_share, 4))
        return d


def is_right(judgment: Judgment, example: Example) -> bool:
    return judgment.ok and is_correct(judgment.scores, example.best, example.ratings) is True


def is_usable(judgment: Judgment, example: Example, format_demo: bool = True) -> bool:
    """Right, written whole by the model, and its own: a training target.

    "Its own" matters when the sampler was shown the format demonstration (`format_demo`): a
    judgment that reproduces the demonstration copied its prompt. Without the demonstration, a
    judge that writes in that style (it was trained on such rows) is judging in its own words.
    """
    return (is_right(judgment, example) and not judgment.forced and not judgment.truncated
            and not (format_demo and copies_format_demo(judgment.text)))


def hint_for(example: Example) -> int | None:
    """Original index of the response the hint names; None when a hint says nothing (n = 1)."""
    if len(example.responses) < 2:
        return None
    if example.best:
        return example.best[0]
    top = max(example.ratings)  # type: ignore[arg-type]
    tops = [i for i, r in enumerate(example.ratings) if r == top]  # type: ignore[arg-type]
    return tops[0] if len(tops) == 1 else None


def _record(j: Judgment, example: Example, hinted: bool) -> dict[str, Any]:
    return {"sample": j.sample, "order": j.order, "text": j.text, "scores": j.scores, "hinted": hinted,
            "right": is_right(j, example), "forced": j.forced, "truncated": j.truncated,
            "copied_demo": copies_format_demo(j.text), "error": j.error}


def _outcome(example: Example, unhinted: list[Judgment], hinted: Judgment | None, cfg: RFTConfig,
             format_demo: bool) -> dict[str, Any]:
    usable = [is_usable(j, example, format_demo) for j in unhinted]
    if all(usable) and cfg.drop_too_easy:
        status, kept = "too_easy", []
    elif any(usable):
        status, kept = "kept", [j for j, u in zip(unhinted, usable, strict=True) if u]
    elif hinted is not None and is_usable(hinted, example, format_demo):
        status, kept = "hinted", [hinted]
    else:
        status, kept = "rejected", []
    return {
        "id": example.id,
        "status": status,
        "usable": sum(usable),
        "right": sum(is_right(j, example) for j in unhinted),
        "forced": sum(j.forced for j in unhinted),
        "truncated": sum(j.truncated for j in unhinted),
        "copied_demo": sum(copies_format_demo(j.text) for j in unhinted),
        "samples": len(unhinted),
        "hinted_tried": hinted is not None,
        "format_demo": format_demo,
        # Every sample with its flags, so the stats can be re-derived; `kept` is what trains.
        "drawn": [_record(j, example, False) for j in unhinted] + ([_record(hinted, example, True)] if hinted else []),
        "kept": [_record(j, example, j is hinted) for j in kept],
        "example": example.to_dict(),
    }


def rejective_sample(grm: GenerativeRewardModel, examples: list[Example], out_dir: str | Path,
                     cfg: RFTConfig | None = None, progress: bool = True) -> tuple[int, list[str]]:
    """Sample and reject; append one outcome row per example to OUT/samples.jsonl.

    Returns the rows written now, and `file:line [field]: why` for each example too large for the
    model's context: those are skipped, as `spct judge` skips them.
    """
    cfg = cfg or RFTConfig()
    unlabelled = [ex.id for ex in examples if not ex.labelled]
    if unlabelled:
        raise InputError(f"rejective sampling needs labels ('best' or 'ratings'); unlabelled: {', '.join(unlabelled[:5])}")
    check_rating_scale(examples)
    out_dir = Path(out_dir)
    demo = getattr(grm.format, "format_demo", False)
    written, too_large = 0, []
    with JsonlAppender(out_dir / SAMPLES_FILE, fields=()) as out:  # a resume holds the ids, not the rows
        todo = [ex for ex in examples if ex.id not in out]
        bar = tqdm(total=len(todo), desc="rft", unit="ex", disable=not progress)
        for b in range(0, len(todo), cfg.batch_size):
            chunk = todo[b : b + cfg.batch_size]
            sampled, oversized = judge_fitting(lambda exs: grm.sample(exs, cfg.n_samples), chunk)
            too_large += oversized
            fitting, unhinted = [ex for ex, _ in sampled], [js for _, js in sampled]
            hints: dict[str, int] = {}
            if cfg.hinted:
                for ex, js in zip(fitting, unhinted, strict=True):
                    h = hint_for(ex)
                    if h is not None and not any(is_usable(j, ex, demo) for j in js):
                        hints[ex.id] = h
            hinted: dict[str, Judgment] = {}
            if hints:
                need = [ex for ex in fitting if ex.id in hints]
                # Sample index n_samples: a fresh shuffle, distinct from the unhinted ones.
                for ex, js in zip(need, grm.sample(need, 1, hints=hints, first_sample=cfg.n_samples), strict=True):
                    hinted[ex.id] = js[0]
            for ex, js in zip(fitting, unhinted, strict=True):
                out.write(_outcome(ex, js, hinted.get(ex.id), cfg, demo))
                written += 1
            bar.update(len(chunk))
        bar.close()
    return written, too_large


def _instruction_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """General instruction data in TRL's shapes -> conversational prompt/completion rows."""
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        if isinstance(obj, InputIssue):  # malformed, or a value no field can take: named as the reader names it
            raise InputError(str(obj))
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object")
        if "messages" in obj:
            msgs = obj["messages"]
            if not isinstance(msgs, list) or len(msgs) < 2 or not isinstance(msgs[-1], dict) or msgs[-1].get("role") != "assistant":
                raise InputError(f"{where} [messages]: needs 2+ messages ending with an assistant turn")
            prompt, completion = msgs[:-1], [msgs[-1]]
        elif "prompt" in obj and "completion" in obj:
            prompt, completion = obj["prompt"], obj["completion"]
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            if isinstance(completion, str):
                completion = [{"role": "assistant", "content": completion}]
            if not isinstance(prompt, list) or not isinstance(completion, list):
                raise InputError(f"{where} [prompt]: 'prompt'/'completion' must be strings or message lists")
        else:
            raise InputError(f"{where}: expected {{messages}} or {{prompt, completion}}")
        for m in [*prompt, *completion]:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise InputError(f"{where}: every message needs string 'role' and 'content'")
        yield {"id": f"mix:{obj.get('id', lineno)}", "prompt": prompt, "completion": completion, "source": "mix"}


def build_dataset(out_dir: str | Path, principles: bool = True, mix: str | Path | None = None,
                  mix_limit: int | None = None, mirror: bool = True) -> RFTStats:
    """Rebuild OUT/train.jsonl and OUT/stats.json from OUT/samples.jsonl (plus optional instruction data).

    With `mirror`, every kept judgment of two responses trains twice: as sampled, and with the
    responses shown the other way round (`swap_pair`: references and scores trade places). Rows
    then favour each position equally often, so SFT cannot lower its loss by preferring one.
    """
    out_dir = Path(out_dir)
    stats = RFTStats()
    fmt = JudgingFormat(principles=principles)
    rows: list[dict[str, Any]] = []
    for _, o in iter_jsonl(out_dir / SAMPLES_FILE):
        if not isinstance(o, dict) or "status" not in o:
            continue
        stats.examples += 1
        stats.samples += o["samples"]
        stats.too_easy += o["status"] == "too_easy"
        stats.hinted_tried += bool(o["hinted_tried"])
        stats.hinted_accepted += o["status"] == "hinted"
        stats.no_right_sample += o["status"] == "rejected"
        unhinted = [d for d in o.get("drawn", []) if not d["hinted"]]
        copied = [copies_format_demo(d["text"]) for d in unhinted]  # re-checked: rows may predate the rule
        demo = o.get("format_demo", True)  # rows from before the flag were all sampled with the demonstration
        stats.accepted += (sum(d["right"] and not d["forced"] and not d["truncated"] and not (demo and c)
                               for d, c in zip(unhinted, copied, strict=True))
                           if unhinted else o.get("usable", o["right"]))
        stats.right += o["right"]
        stats.forced += o.get("forced", 0)
        stats.truncated += o.get("truncated", 0)
        stats.copied_demo += sum(copied)
        ex = Example(**o["example"])
        for k in o["kept"]:
            if k.get("forced") or k.get("truncated") or (demo and copies_format_demo(k["text"])):
                continue  # rows sampled before these rules existed
            source = "hinted" if k["hinted"] else "unhinted"
            rows.append({"id": f"{ex.id}#{k['sample']}", "prompt": fmt.messages(ex, k["order"]),
                         "completion": [{"role": "assistant", "content": k["text"]}], "source": source})
            if mirror and len(k["order"]) == 2:
                rows.append({"id": f"{ex.id}#{k['sample']}~swapped", "prompt": fmt.messages(ex, k["order"][::-1]),
                             "completion": [{"role": "assistant", "content": swap_pair(k["text"])}], "source": source})
                stats.mirrored_rows += 1
    if mix is not None:
        mixed = list(_instruction_rows(mix))[:mix_limit]
        stats.mixed_rows = len(mixed)
        rows.extend(mixed)
    stats.train_rows = len(rows)
    write_jsonl(out_dir / TRAIN_FILE, rows)
    write_text(out_dir / STATS_FILE, json.dumps(stats.to_dict(), indent=2) + "\n")
    return stats


def run_rft(grm: GenerativeRewardModel, examples: list[Example], out_dir: str | Path, cfg: RFTConfig | None = None,
            mix: str | Path | None = None, mix_limit: int | None = None, progress: bool = True,
            mirror: bool = True) -> RFTStats:
    _, too_large = rejective_sample(grm, examples, out_dir, cfg, progress)
    stats = build_dataset(out_dir, principles=grm.config.principles, mix=mix, mix_limit=mix_limit, mirror=mirror)
    stats.too_large = too_large
    return stats
