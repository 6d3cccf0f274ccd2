"""Reward-model benchmarks in their published shapes, converted to spct Examples.

One registry entry per benchmark: a row converter (published columns -> Example), how a subset
maps to a section, how subsets are weighted inside a section, how sections make the overall
score, and which metric applies. Rows come from a local JSON / JSONL(.gz) / parquet file, a
folder of such files (RMB ships one JSON file per scenario), or a Hugging Face dataset name or
folder when it is not a local file (loaded with `datasets`, only when the user has it cached or
can reach the hub). Adding a benchmark is one `register(...)` call with one converter.

Each Example keeps its subset in `domain`; the expected columns of every loader are listed in
`COLUMNS` (and docs/evaluation.md).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import (
    Example,
    InputError,
    InputIssue,
    example_from_dict,
    iter_jsonl,
    load_json,
    parse_hh_dialogue,
    poison_issue,
)

Row = dict[str, Any]
Converter = Callable[[Row, str, "LoadOptions"], Example | None]  # None: row has no usable label


@dataclass
class LoadOptions:
    max_responses: int | None = None  # best-of-N sets: keep at most this many responses per item
    seed: int = 0  # which responses are kept when max_responses cuts


@dataclass(frozen=True)
class Benchmark:
    name: str
    convert: Converter
    columns: str  # the published columns the converter reads (documentation)
    metric: str = "accuracy"  # "accuracy" (pairs and best-of-N, a tie is wrong) or "roc_auc" (single responses)
    hf_split: str = "test"
    section_of: Callable[[str], str] = lambda subset: subset
    # weight of a subset inside its section, given the item counts of every subset present
    subset_weight: Callable[[str, dict[str, int]], float] = lambda subset, counts: counts[subset]
    overall: str = "pooled"  # "pooled" (every item counts once) or "mean_of_sections"
    notes: str = ""


BENCHMARKS: dict[str, Benchmark] = {}


def register(b: Benchmark) -> Benchmark:
    BENCHMARKS[b.name] = b
    return b


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise InputError(f"unknown benchmark {name!r}; choose from {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]


# ---------------------------------------------------------------------------------------------
# Reading rows: files, folders, Hugging Face datasets
# ---------------------------------------------------------------------------------------------

_DATA_SUFFIXES = (".json", ".jsonl", ".jsonl.gz", ".parquet")


def _is_data_file(p: Path) -> bool:
    return p.is_file() and p.name.endswith(_DATA_SUFFIXES)


def iter_rows(source: str, split: str) -> Iterator[tuple[str, int, Row | InputIssue]]:
    """(file, row number, row or InputIssue) from a file, a folder of files, or a HF dataset."""
    p = Path(source)
    if p.is_dir() and any(_is_data_file(f) for f in p.rglob("*")):
        for f in sorted(f for f in p.rglob("*") if _is_data_file(f)):
            yield from _file_rows(f)
    elif p.is_file():
        if not p.name.endswith(_DATA_SUFFIXES):
            raise InputError(f"{source}: expected a .json, .jsonl, .jsonl.gz or .parquet file")
        yield from _file_rows(p)
    else:
        yield from _hf_rows(source, split)


def _file_rows(p: Path) -> Iterator[tuple[str, int, Row | InputIssue]]:
    path = str(p)
    if p.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(p)
        except Exception as e:  # corrupt or not parquet: one clear line
            raise InputError(f"{path}: not a readable parquet file ({e})") from e
        for i, row in enumerate(table.to_pylist(), start=1):
            yield path, i, row
    elif p.name.endswith(".json"):
        try:
            text = p.read_text(encoding="utf-8")
            data = load_json(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: not valid JSON ({e})") from e
        except RecursionError:
            raise InputError(f"{path}: JSON nested too deeply to read") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of objects (or {{\"data\": [...]}})")
        surrogates = "\\u" in text
        for i, row in enumerate(data, start=1):  # a row as a JSONL line is checked: a bad one is an issue, not a crash
            yield path, i, poison_issue(path, i, row, surrogates) or row
    else:
        for lineno, obj in iter_jsonl(p):
            yield path, lineno, obj


def _hf_rows(name: str, split: str) -> Iterator[tuple[str, int, Row | InputIssue]]:
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - depends on the install
        raise InputError(f"{name}: not a local file; reading a Hugging Face dataset needs `pip install datasets`") from e
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # offline, unknown name, wrong split: one clear line
        raise InputError(f"{name}: not a local file or folder, and not loadable as a dataset split {split!r} ({e})") from e
    for i, row in enumerate(ds, start=1):
        yield f"{name}[{split}]", i, dict(row)


def load_benchmark(name: str, source: str, *, split: str | None = None, options: LoadOptions | None = None,
                   limit: int | None = None) -> tuple[list[Example], list[InputIssue]]:
    """Every usable Example of `source` in benchmark `name`'s shape; bad rows become issues."""
    bench = get_benchmark(name)
    options = options or LoadOptions()
    examples: list[Example] = []
    issues: list[InputIssue] = []
    seen: set[str] = set()
    for path, i, row in iter_rows(source, split or bench.hf_split):
        if limit is not None and len(examples) >= limit:
            break
        if isinstance(row, InputIssue):
            issues.append(row)
            continue
        try:
            if not isinstance(row, dict):
                raise InputError(f"expected a JSON object, got {type(row).__name__}")
            ex = bench.convert(row, f"{Path(path).stem}-{i}", options)
        except InputError as e:
            m = re.search(r"'([\w\[\]]+)'", str(e))
            issues.append(InputIssue(path, i, m.group(1) if m else None, str(e)))
            continue
        if ex is None:
            issues.append(InputIssue(path, i, None, "no usable label (e.g. a tie, or every response equally right); skipped"))
            continue
        if ex.id in seen:
            issues.append(InputIssue(path, i, "id", f"duplicate id {ex.id!r}; row skipped"))
            continue
        seen.add(ex.id)
        ex.source = f"{path}:{i}"  # so a later message (an item past the model's context) names its row
        examples.append(ex)
    return examples, issues


# ---------------------------------------------------------------------------------------------
# Field helpers
# ---------------------------------------------------------------------------------------------


def _get(row: Row, *names: str) -> Any:
    for n in names:
        if n in row and row[n] is not None:
            return row[n]
    raise InputError(f"missing field '{names[0]}'")


def _text(row: Row, *names: str) -> str:
    v = _get(row, *names)
    if not isinstance(v, str):
        raise InputError(f"'{names[0]}' must be a string, got {type(v).__name__}")
    return v


def _text_list(row: Row, name: str) -> list[str]:
    v = _get(row, name)
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise InputError(f"'{name}' must be a string or a non-empty list of strings")
    return v


def _row_id(row: Row, default: str, *names: str) -> str:
    for n in names:
        if row.get(n) is not None:
            return str(row[n])
    return default


def _cut_best_of_n(ex: Example, options: LoadOptions) -> Example:
    """Keep at most max_responses responses, always at least one best and one other (seeded)."""
    n_max = options.max_responses
    if n_max is None or len(ex.responses) <= n_max:
        return ex
    if n_max < 2:
        raise InputError("--max-responses must be at least 2 for best-of-N sets")
    rng = random.Random(f"{options.seed}|{ex.id}")
    best = set(ex.best or [])
    good = [i for i in range(len(ex.responses)) if i in best]
    bad = [i for i in range(len(ex.responses)) if i not in best]
    keep = [rng.choice(good), rng.choice(bad)]
    rest = [i for i in range(len(ex.responses)) if i not in keep]
    keep += rng.sample(rest, n_max - 2)
    keep.sort()
    return Example(ex.id, ex.query, [ex.responses[i] for i in keep], [k for k, i in enumerate(keep) if i in best],
                   None, ex.domain)


def _chat(messages: Any, field_name: str) -> str | list[dict[str, str]]:
    """A list of {role, content} turns -> a plain query (one turn) or a chat query."""
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list) or not messages:
        raise InputError(f"'{field_name}' must be a string or a list of {{role, content}} turns")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or not isinstance(m.get("role"), str):
            raise InputError(f"'{field_name}[{i}]' must be an object with string 'role' and 'content'")
        turns.append({"role": m["role"], "content": m["content"]})
    return turns[0]["content"] if len(turns) == 1 else turns


# ---------------------------------------------------------------------------------------------
# The benchmarks
# ---------------------------------------------------------------------------------------------

# RewardBench v1: subset -> section, as its authors group them.
REWARDBENCH_SECTIONS = {
    **dict.fromkeys(["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"], "Chat"),
    **dict.fromkeys(["mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                     "llmbar-adver-GPTOut", "llmbar-adver-manual"], "Chat Hard"),
    **dict.fromkeys(["refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
                     "donotanswer"], "Safety"),
    **dict.fromkeys(["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"], "Reasoning"),
}


def _rewardbench_weight(subset: str, counts: dict[str, int]) -> float:
    # Inside Reasoning, math counts as much as all code subsets together (the authors' weighting).
    if subset == "math-prm":
        code = sum(c for s, c in counts.items() if s.startswith("hep-"))
        return float(code or counts[subset])
    return float(counts[subset])


def _rewardbench_v1(row: Row, default_id: str, options: LoadOptions) -> Example:
    subset = _text(row, "subset")
    ex_id = _row_id(row, default_id, "id")
    return Example(ex_id, _text(row, "prompt"), [_text(row, "chosen"), _text(row, "rejected")], [0], None, subset)


register(Benchmark(
    "rewardbench", _rewardbench_v1,
    columns="prompt (str), chosen (str), rejected (str), subset (str), id (optional)",
    hf_split="filtered",
    section_of=lambda s: REWARDBENCH_SECTIONS.get(s, "Other"),
    subset_weight=_rewardbench_weight,
    overall="mean_of_sections",
    notes="Sections Chat / Chat Hard / Safety / Reasoning; a section is the size-weighted mean of its subsets, "
          "with math-prm weighted like all hep-* code subsets together; overall is the mean of the sections.",
))


def _rewardbench_v2(row: Row, default_id: str, options: LoadOptions) -> Example:
    chosen, rejected = _text_list(row, "chosen"), _text_list(row, "rejected")
    ex = Example(_row_id(row, default_id, "id"), _text(row, "prompt"), chosen + rejected, list(range(len(chosen))),
                 None, _text(row, "subset"))
    return _cut_best_of_n(ex, options)


register(Benchmark(
    "rewardbench2", _rewardbench_v2,
    columns="prompt (str), chosen (list[str]), rejected (list[str]), subset (str), id (optional)",
    overall="mean_of_sections",
    notes="Best-of-N: right iff a chosen response scores strictly above every rejected one and every other chosen "
          "one (the Ties subset's own margin score is not reproduced); overall is the mean of the subsets.",
))


_WINNER = {"model_a": 0, "a": 0, "response_1": 0, "response_a": 0, "1": 0,
           "model_b": 1, "b": 1, "response_2": 1, "response_b": 1, "2": 1}


def _ppe_preference(row: Row, default_id: str, options: LoadOptions) -> Example | None:
    winner = str(_get(row, "winner")).strip().lower()
    if winner.startswith("tie"):
        return None
    if winner not in _WINNER:
        raise InputError(f"'winner' must be model_a or model_b (or tie), got {row['winner']!r}")
    query = _chat(_get(row, "prompt"), "prompt")
    responses = [_text(row, "response_1"), _text(row, "response_2")]
    domain = row.get("language") or row.get("category")
    return Example(_row_id(row, default_id, "question_id", "id"), query, responses, [_WINNER[winner]], None,
                   str(domain) if domain else "all")


register(Benchmark(
    "ppe-preference", _ppe_preference,
    columns="prompt (str or turns), response_1 (str), response_2 (str), winner (model_a | model_b | tie*), "
            "question_id (optional), language (optional, used as subset)",
    notes="Ties in the human vote are skipped (no label to check).",
))


def _ppe_correctness(row: Row, default_id: str, options: LoadOptions) -> Example | None:
    keys = sorted((k for k in row if re.fullmatch(r"response_\d+", k)), key=lambda k: int(k.split("_")[1]))
    if not keys:
        raise InputError("missing field 'response_1' (expected response_1 .. response_K)")
    responses = [_text(row, k) for k in keys]
    scores = _get(row, "scores")
    if not isinstance(scores, list) or len(scores) != len(responses):
        raise InputError(f"'scores' must hold one correctness label per response ({len(responses)})")
    best = [i for i, s in enumerate(scores) if bool(s)]
    if not best or len(best) == len(responses):
        return None  # every response equally right: nothing to pick
    ex = Example(_row_id(row, default_id, "question_id", "id"), _chat(_get(row, "prompt"), "prompt"), responses,
                 best, None, str(row.get("source") or row.get("model_name") or "all"))
    return _cut_best_of_n(ex, options)


register(Benchmark(
    "ppe-correctness", _ppe_correctness,
    columns="prompt (str), response_1 .. response_K (str), scores (list of K correctness labels), "
            "question_id (optional), source or model_name (optional, used as subset)",
    notes="Best-of-K: all kept responses judged together; right iff a correct response scores strictly highest. "
          "Items whose responses are all right or all wrong are skipped; --max-responses keeps a seeded subset.",
))


def _rmb_answer(v: Any, name: str) -> str:
    if isinstance(v, dict):
        v = v.get("answer")
    if not isinstance(v, str):
        raise InputError(f"'{name}' must be an object with a string 'answer'")
    return v


def _rmb_subset(row: Row) -> str:
    path = str(row.get("category_path") or "")
    parts = [p for p in path.split("/") if p]
    # e.g. Pairwise_set/Helpfulness/Chat/Brainstorming -> Helpfulness/Brainstorming
    if len(parts) >= 2:
        return f"{parts[1]}/{parts[-1]}"
    return path or "all"


def _rmb(row: Row, default_id: str, options: LoadOptions) -> Example:
    query = _chat(_get(row, "conversation_input"), "conversation_input")
    if "bon_best" in row:
        responses = [_rmb_answer(row["bon_best"], "bon_best")]
        losers = _get(row, "loser_list")
        if not isinstance(losers, list) or not losers:
            raise InputError("'loser_list' must be a non-empty list")
        responses += [_rmb_answer(x, f"loser_list[{i}]") for i, x in enumerate(losers)]
        ex = Example(_row_id(row, default_id, "bon_uid"), query, responses, [0], None, _rmb_subset(row))
        return _cut_best_of_n(ex, options)
    responses = [_rmb_answer(_get(row, "chosen"), "chosen"), _rmb_answer(_get(row, "reject", "rejected"), "reject")]
    return Example(_row_id(row, default_id, "pair_uid"), query, responses, [0], None, _rmb_subset(row))


register(Benchmark(
    "rmb", _rmb,
    columns="pairwise: pair_uid, conversation_input (turns), chosen {answer}, reject {answer}, category_path; "
            "best-of-N: bon_uid, conversation_input, bon_best {answer}, loser_list [{answer}...], category_path",
    section_of=lambda s: s.split("/")[0],
    overall="mean_of_sections",
    notes="Point --data at the RMB folder (one JSON file per scenario) or one file; sections are Helpfulness and "
          "Harmlessness; best-of-N is right iff the best response scores strictly above every loser.",
))


def _realmistake(row: Row, default_id: str, options: LoadOptions) -> Example:
    label = str(_get(row, "error_label")).strip().lower().replace("-", "_").replace(" ", "_")
    if label not in ("error", "no_error"):
        raise InputError(f"'error_label' must be 'error' or 'no_error', got {row['error_label']!r}")
    # ratings = 1 for a response without error: a good reward model scores those higher.
    return Example(_row_id(row, default_id, "id"), _text(row, "input"), [_text(row, "llm_response")], None,
                   [1.0 if label == "no_error" else 0.0], str(row.get("task_source") or row.get("task_name") or "all"))


register(Benchmark(
    "realmistake", _realmistake,
    columns="input (str), llm_response (str), error_label (error | no_error), task_source (optional, subset), id",
    metric="roc_auc",
    notes="Single responses; the reward is scored by ROC-AUC against 'no error'.",
))


_JUDGEBENCH_CATEGORY = (("mmlu", "knowledge"), ("livebench-reasoning", "reasoning"), ("livebench-math", "math"),
                        ("livecodebench", "coding"))


def _judgebench(row: Row, default_id: str, options: LoadOptions) -> Example:
    label = _text(row, "label").replace(" ", "")
    if label not in ("A>B", "B>A"):
        raise InputError(f"'label' must be 'A>B' or 'B>A', got {row['label']!r}")
    source = str(row.get("source") or "")
    subset = next((cat for prefix, cat in _JUDGEBENCH_CATEGORY if source.startswith(prefix)), source or "all")
    return Example(_row_id(row, default_id, "pair_id", "id"), _text(row, "question"),
                   [_text(row, "response_A"), _text(row, "response_B")], [0 if label == "A>B" else 1], None, subset)


register(Benchmark(
    "judgebench", _judgebench,
    columns="question (str), response_A (str), response_B (str), label (A>B | B>A), source (subset), pair_id",
))


def _hh_rlhf(row: Row, default_id: str, options: LoadOptions) -> Example:
    chosen, rejected = _text(row, "chosen"), _text(row, "rejected")
    c, r = parse_hh_dialogue(chosen), parse_hh_dialogue(rejected)
    if c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant":
        raise InputError("'chosen' and 'rejected' must end with an Assistant turn")
    context = c[:-1]
    query: str | list[dict[str, str]] = context if len(context) > 1 else context[0]["content"]
    return Example(_row_id(row, default_id, "id"), query, [c[-1]["content"], r[-1]["content"]], [0], None,
                   str(row.get("subset") or "harmless"))


register(Benchmark(
    "hh-rlhf", _hh_rlhf,
    columns="chosen (str transcript '\\n\\nHuman: ... \\n\\nAssistant: ...'), rejected (same), id (optional)",
    notes="The two transcripts share all turns but the last Assistant turn, which is judged.",
))


def _native(row: Row, default_id: str, options: LoadOptions) -> Example:
    ex = example_from_dict(row, default_id)
    if ex.domain is None:
        ex.domain = "all"
    return _cut_best_of_n(ex, options) if ex.best else ex


register(Benchmark(
    "spct", _native,
    columns="spct's own shape {id, query, responses, best | ratings, domain} (e.g. `spct data verifiable` output), "
            "or {prompt, chosen, rejected}",
    notes="Pairs and best-of-N by accuracy; use the realmistake loader for single responses scored by ROC-AUC.",
))
