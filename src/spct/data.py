"""Data contracts: what is judged (Example), one sampled judgment (Judgment), the aggregate (Reward).

Everything spct reads or writes is JSON Lines with these shapes (docs/data.md). Readers accept
the ecosystem's common shapes too and convert them, so a RewardBench/TRL pair file or an
HH-RLHF dump can be judged as it is. Bad input never raises a traceback at the user: each bad
line becomes an `InputIssue` that names file, line and field, and the reader moves on.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import filelock

log = logging.getLogger(__name__)

Message = dict[str, str]
Query = str | list[Message]


@dataclass
class Example:
    """One query and 1..N candidate responses, with optional labels."""

    id: str
    query: Query
    responses: list[str]
    best: list[int] | None = None  # indices of the preferred response(s)
    ratings: list[float] | None = None  # one label per response (single-response data)
    domain: str | None = None
    # Where the example was read from ("file:line"), for messages; not part of the data.
    source: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Checked here, not only in the file reader, so the Python API refuses what a file line
        # would be refused for (a string of responses is no list of them), with the same message.
        self.check()

    def check(self) -> None:
        """Raise InputError naming the field that cannot be judged or scored as given (the judge checks again, in
        case a field was changed after construction)."""
        _check_example(self)

    @property
    def labelled(self) -> bool:
        return bool(self.best) or self.ratings is not None

    def query_text(self) -> str:
        """The query with its earlier turns, flattened for an encoder (the scalar RM's input)."""
        if isinstance(self.query, str):
            return self.query
        return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in self.query)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return d


@dataclass
class Judgment:
    """One sampled generation; `scores` and `order` refer to the original response order."""

    id: str
    sample: int
    order: list[int]  # order[p] = original index of the response shown at position p
    principles: str | None
    critique: str | None
    scores: list[int] | None
    text: str
    error: str | None = None
    meta: float | None = None  # meta RM's probability that this judgment is right
    forced: bool = False  # the score line was completed under constraint
    truncated: bool = False  # generation hit max_new_tokens before the score line
    expected: list[float] | None = None  # expected score per response under the model's score probabilities (readout)

    @property
    def ok(self) -> bool:
        return self.scores is not None and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reward:
    """Votes of the k sampled judgments of one example."""

    id: str
    rewards: list[float] | None  # summed scores (or expected scores) per response; None when every sample failed
    k: int  # judgments sampled
    used: int  # judgments voted on (valid, and kept by the meta RM if any)
    failed: int  # judgments that did not parse
    best: int | None  # index with the strictly highest reward; None on a tie or failure
    correct: bool | None = None  # accuracy rule against the label; None when unlabelled
    judgments: list[Judgment] = field(default_factory=list)
    margin: float | None = None  # winner's reward minus the runner-up's (0 on a tie); None for n = 1
    confidence: float | None = None  # 0..1: margin per voted sample over the widest possible (9)
    aggregate: str = "sum"  # how `rewards` were formed: "sum" over the used judgments, or already a "mean" (pointwise)

    @property
    def mean_scores(self) -> list[float] | None:
        """Each response's mean score per judgment, 1..10 whatever the policy: what a reward consumer wants."""
        if self.rewards is None:
            return None
        return list(self.rewards) if self.aggregate == "mean" else [x / self.used for x in self.rewards]

    def to_dict(self, with_judgments: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if not with_judgments:
            d.pop("judgments")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reward:
        d = dict(d)
        d["judgments"] = [Judgment(**j) for j in d.get("judgments", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


class InputError(ValueError):
    """User input that cannot be used; the message names where and why, `field` which field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class InputIssue:
    path: str
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        if self.field:
            where += f" [{self.field}]"
        return f"{where}: {self.message}"


# ---------------------------------------------------------------------------------------------
# Converting the shapes people have into Examples
# ---------------------------------------------------------------------------------------------

_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh_dialogue(text: str) -> list[Message]:
    """Split an HH-RLHF transcript ("\\n\\nHuman: ... \\n\\nAssistant: ...") into messages."""
    parts = _HH_TURN.split(text)
    messages: list[Message] = []
    # parts = [preamble, role, content, role, content, ...]
    for role, content in zip(parts[1::2], parts[2::2], strict=True):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    if not messages:
        raise InputError("not an HH-RLHF dialogue (no '\\n\\nHuman: ' turn)")
    return messages


def _hh_pair(chosen: str, rejected: str) -> tuple[list[Message], str, str]:
    """The two HH sides share every turn but the last Assistant turn: that turn is judged."""
    c, r = parse_hh_dialogue(chosen), parse_hh_dialogue(rejected)
    if c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant":
        raise InputError("dialogue does not end with an Assistant turn")
    # In rare rows the sides diverge earlier; the chosen side's context is used then.
    return c[:-1], c[-1]["content"], r[-1]["content"]


def _check_messages(value: Any, fieldname: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise InputError(f"'{fieldname}' must be a non-empty list of {{role, content}} messages", fieldname)
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise InputError(f"'{fieldname}[{i}]' must be an object with string 'role' and 'content'", f"{fieldname}[{i}]")
    return value


def _json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages ("null", not "NoneType")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names = {str: "string", list: "array", dict: "object"}
    return next((name for t, name in names.items() if isinstance(value, t)), type(value).__name__)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_message(char: str) -> str:
    return f"lone surrogate {ascii(char)[1:-1]} (half of a UTF-16 pair, e.g. a cut emoji) is not valid Unicode"


def _check_text(value: str, fieldname: str) -> None:
    """Refuse a lone surrogate: it cannot be written as UTF-8, so it would crash the output, not this line."""
    m = _SURROGATE.search(value)
    if m:
        raise InputError(_surrogate_message(m.group()), fieldname)


def _int_text(x: int) -> str:
    """An integer for a message: its digits, or their count when there are too many to show (or for str() to write)."""
    return str(x) if x.bit_length() <= 64 else f"of about {int(x.bit_length() * math.log10(2)) + 1} digits"


def _check_example(ex: Example) -> None:
    """Raise InputError naming the field of an Example that cannot be judged or scored as given."""
    if not isinstance(ex.id, str):
        raise InputError(f"'id' must be a string, got {_json_type(ex.id)}", "id")
    _check_text(ex.id, "id")
    if isinstance(ex.query, list):
        for i, m in enumerate(_check_messages(ex.query, "query")):
            _check_text(m["role"], f"query[{i}].role")
            _check_text(m["content"], f"query[{i}].content")
    elif isinstance(ex.query, str):
        _check_text(ex.query, "query")
    else:
        raise InputError("'query' must be a string or a list of messages", "query")
    responses = ex.responses
    if not isinstance(responses, list) or not responses:
        raise InputError("'responses' must be a non-empty list of strings (zero responses: nothing to judge)", "responses")
    for i, r in enumerate(responses):
        if not isinstance(r, str):
            raise InputError(f"'responses[{i}]' must be a string, got {type(r).__name__}", f"responses[{i}]")
        _check_text(r, f"responses[{i}]")
    if ex.best is not None:
        if not isinstance(ex.best, list) or not all(isinstance(b, int) and not isinstance(b, bool) for b in ex.best):
            raise InputError("'best' must be a list of response indices", "best")
        bad = [b for b in ex.best if not 0 <= b < len(responses)]
        if bad:
            raise InputError(f"'best' index {_int_text(bad[0])} out of range for {len(responses)} responses", "best")
    if ex.ratings is not None:
        if not isinstance(ex.ratings, list) or len(ex.ratings) != len(responses):
            raise InputError(f"'ratings' must have one number per response ({len(responses)})", "ratings")
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in ex.ratings):
            raise InputError("'ratings' must be numbers", "ratings")
        for i, x in enumerate(ex.ratings):
            if isinstance(x, int) and abs(x) > sys.float_info.max:  # no float holds it: math.isfinite overflows
                raise InputError(f"a rating {_int_text(x)} is too large to use", f"ratings[{i}]")
            if not math.isfinite(x):  # NaN or Infinity would poison voting and the accuracy rule
                raise InputError(f"not a finite number ({json.dumps(x)})", f"ratings[{i}]")
    if ex.domain is not None:
        if not isinstance(ex.domain, str):
            raise InputError(f"'domain' must be a string, got {_json_type(ex.domain)}", "domain")
        _check_text(ex.domain, "domain")  # it is written out as the row's subset


def _as_text(value: Any, fieldname: str) -> Any:
    """A number given as an id or domain, as a string (`7` -> "7"); null, booleans, arrays, objects refused."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if value is not None and not isinstance(value, str):  # str(True) or str(["x"]) would be a made-up id
        raise InputError(f"'{fieldname}' must be a string or a number, got {_json_type(value)}", fieldname)
    return value


def id_text(value: Any) -> str:
    """A row's id as a string: a number becomes one (`7` -> "7"); null, a boolean, an array or an object raises
    InputError (str() would make up an id such as "None" or "['x']")."""
    text = _as_text(value, "id")
    if text is None:
        raise InputError("'id' must be a string or a number, got null", "id")
    return text


def example_from_dict(d: Any, default_id: str) -> Example:
    """Build an Example from any accepted shape, or raise InputError naming the field."""
    if not isinstance(d, dict):
        raise InputError(f"expected a JSON object, got {type(d).__name__}")
    ex_id = id_text(d.get("id", d.get("example_id", default_id)))
    domain = _as_text(d.get("domain", d.get("subset")), "domain")

    if "responses" in d:  # native shape
        query = d.get("query", d.get("prompt"))
        if query is None:
            raise InputError("missing field 'query'", "query")
        best = d.get("best")
        if isinstance(best, int) and not isinstance(best, bool):
            best = [best]
        elif best == []:
            best = None
        return Example(ex_id, query, d["responses"], best, d.get("ratings"), domain)

    if "chosen" in d and "rejected" in d:  # pair shape (RewardBench, TRL, HH-RLHF)
        chosen, rejected = d["chosen"], d["rejected"]
        prompt = d.get("prompt")
        if prompt is None and isinstance(chosen, str) and isinstance(rejected, str):
            try:
                context, c, r = _hh_pair(chosen, rejected)
            except InputError as e:
                raise InputError(f"missing field 'prompt', and 'chosen' is no HH-RLHF dialogue ({e})", "prompt") from None
            query: Query = context if len(context) > 1 else context[0]["content"]
            return Example(ex_id, query, [c, r], [0], None, domain)
        if isinstance(chosen, list) and isinstance(rejected, list):  # conversational TRL shape
            chosen_msgs = _check_messages(chosen, "chosen")
            r = _check_messages(rejected, "rejected")[-1]["content"]
            # An explicit prompt, or (TRL's implicit-prompt shape) the turns before the last.
            prompt_msgs = _check_messages(prompt, "prompt") if prompt else chosen_msgs[:-1]
            if not prompt_msgs:
                raise InputError("missing field 'prompt'", "prompt")
            query = prompt_msgs if len(prompt_msgs) != 1 else prompt_msgs[0]["content"]
            return Example(ex_id, query, [chosen_msgs[-1]["content"], r], [0], None, domain)
        if not isinstance(prompt, str):
            raise InputError("'prompt' must be a string", "prompt")
        for name in ("chosen", "rejected"):
            if not isinstance(d[name], str):
                raise InputError(f"'{name}' must be a string", name)
        return Example(ex_id, prompt, [chosen, rejected], [0], None, domain)

    missing = "responses" if ("query" in d or "prompt" in d) else "query"
    raise InputError(f"missing field '{missing}' (expected {{query, responses}} or {{prompt, chosen, rejected}})", missing)


# ---------------------------------------------------------------------------------------------
# JSONL in and out
# ---------------------------------------------------------------------------------------------


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


# The longest input line read: past it, a line (a .jsonl.gz bomb that expands to one huge line, say)
# is reported and skipped without being held in memory.
MAX_LINE_BYTES = 64 * 1024 * 1024


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any | InputIssue]]:
    """Yield (line number, parsed object or InputIssue) for each non-blank line."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a JSONL file")
    with _open_text(p) as fh:
        lineno = 0
        try:
            while raw := fh.readline(MAX_LINE_BYTES + 1):
                lineno += 1
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    size = len(raw) + _skip_line(fh)
                    yield lineno, InputIssue(str(p), lineno, None, f"line of {size} bytes is longer than the limit of "
                                             f"{MAX_LINE_BYTES} bytes (spct.data.MAX_LINE_BYTES); not read")
                    continue
                item = _parse_line(p, lineno, raw)
                if item is not _BLANK:  # a `null` line is a value (and a bad example), not a blank line
                    yield lineno, item
        except (OSError, EOFError) as e:  # a corrupt or cut-off .gz: keep what was read
            yield lineno + 1, InputIssue(str(p), lineno + 1, None, f"cannot read further ({e}); the rest of the file is skipped")


def _skip_line(fh) -> int:
    """Read past the rest of the current line in bounded chunks; the number of bytes skipped."""
    skipped = 0
    while chunk := fh.readline(64 * 1024):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


_BLANK = object()  # what _parse_line returns for a blank line


class _HugeInt:
    """Stands in for an integer too long for Python to convert (sys.get_int_max_str_digits), to find its field."""

    def __init__(self, digits: int):
        self.digits = digits


def _int_or_huge(text: str) -> int | _HugeInt:
    digits = len(text.lstrip("-"))
    return _HugeInt(digits) if digits > sys.get_int_max_str_digits() > 0 else int(text)


def _parse_line(p: Path, lineno: int, raw: bytes) -> Any:
    """The line's JSON value, an InputIssue, or _BLANK."""
    try:
        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # tolerate a byte-order mark
    except UnicodeDecodeError as e:
        return InputIssue(str(p), lineno, None, f"not valid UTF-8 (byte {e.start} of the line is 0x{raw[e.start]:02x})")
    if not line.strip():
        return _BLANK
    try:
        obj = load_json(line)
    except json.JSONDecodeError as e:
        return InputIssue(str(p), lineno, None, f"malformed JSON: {e.msg.removesuffix(' at')} at column {e.colno}")
    except RecursionError:
        return InputIssue(str(p), lineno, None, "JSON nested too deeply to read")
    return poison_issue(str(p), lineno, obj, surrogates="\\u" in line) or obj


def load_json(text: str) -> Any:
    """json.loads, but an integer past Python's digit limit is read as a marker that `poison_issue` names.

    json.loads would raise a bare ValueError for the whole text; JSONDecodeError and
    RecursionError are raised as json.loads raises them.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:  # the int-string limit: read again, marking the integer, to name its field
        return json.loads(text, parse_int=_int_or_huge)


def poison_issue(path: str, line: int, value: Any, surrogates: bool = True) -> InputIssue | None:
    """The issue naming the first value inside `value` (read by `load_json`) that no field can take, else None.

    `surrogates=False` skips the search for lone surrogates (for a text without a `\\u` escape).
    """
    bad = _poison(value, surrogates)
    if bad is None:
        return None
    where, message = bad
    return InputIssue(path, line, where or None, message)


def _poison(obj: Any, surrogates: bool = True, numbers: bool = True) -> tuple[str, str] | None:
    """(field path, why) of the first value inside a parsed JSON value that no field can take, else None.

    Python's json reads what strict JSON has not and spct cannot use: NaN, Infinity and overflowing
    numbers such as 1e400, integers past its digit limit (`_HugeInt`, from `load_json`) and, when
    `surrogates`, \\ud83d escapes (lone surrogates, which cannot be written back as UTF-8) in a
    string or key. A row holding one is refused where it is read, naming where the value sits.
    `numbers=False` looks for lone surrogates only.
    """
    stack: list[tuple[str, Any]] = [("", obj)]  # iterative: a deeply nested line must not overflow the stack
    while stack:
        where, value = stack.pop()
        if numbers and isinstance(value, float) and not math.isfinite(value):
            return where, f"not a finite number ({json.dumps(value)})"
        if isinstance(value, _HugeInt):
            return where, (f"an integer of {value.digits} digits is longer than Python reads "
                           f"({sys.get_int_max_str_digits()} digits)")
        if surrogates and isinstance(value, str) and (m := _SURROGATE.search(value)):
            return where, _surrogate_message(m.group())
        if isinstance(value, dict):
            for k in value:
                if surrogates and (m := _SURROGATE.search(k)):
                    return where, f"a key: {_surrogate_message(m.group())}"
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(value))))
    return None


def read_examples(path: str | os.PathLike) -> tuple[list[Example], list[InputIssue]]:
    """Read every usable Example from a JSONL(.gz) file; collect the rest as issues.

    An example with no id gets `line<N>`, which is stable across reruns so resume works.
    """
    examples: list[Example] = []
    issues: list[InputIssue] = []
    seen: set[str] = set()
    for lineno, obj in iter_jsonl(path):
        if isinstance(obj, InputIssue):
            issues.append(obj)
            continue
        try:
            ex = example_from_dict(obj, default_id=f"line{lineno}")
        except InputError as e:
            issues.append(InputIssue(str(path), lineno, e.field, str(e)))
            continue
        ex.source = f"{path}:{lineno}"
        if ex.id in seen:
            issues.append(InputIssue(str(path), lineno, "id", f"duplicate id {ex.id!r}; line skipped"))
            continue
        seen.add(ex.id)
        examples.append(ex)
    return examples, issues


def load_examples(source: str, split: str = "test") -> tuple[list[Example], list[InputIssue]]:
    """A local JSONL(.gz) file, or a Hugging Face dataset (local path or hub id) when not a file."""
    p = Path(source)
    if p.is_file():
        return read_examples(source)
    if p.exists() and not p.is_dir():
        raise InputError(f"{source}: not a readable file")
    if not p.exists() and p.suffix in (".jsonl", ".json", ".gz"):  # a mistyped file, not a hub dataset
        raise InputError(f"{source}: no such file")
    return examples_from_hf(source, split)


def examples_from_hf(name_or_dataset: Any, split: str = "test") -> tuple[list[Example], list[InputIssue]]:
    """Convert a `datasets.Dataset` (or load one by name/path) into Examples."""
    if isinstance(name_or_dataset, str):
        try:
            import datasets
        except ImportError as e:  # pragma: no cover - depends on the install
            raise InputError("reading Hugging Face datasets needs `pip install datasets`") from e
        try:
            ds = datasets.load_dataset(name_or_dataset, split=split)
        except Exception as e:  # the hub or a local folder; report without a traceback
            raise InputError(f"{name_or_dataset}: not a file, and not loadable as a dataset ({e})") from e
        label = name_or_dataset
    else:
        ds, label = name_or_dataset, "<dataset>"
    examples, issues = [], []
    for i, row in enumerate(ds):
        try:
            examples.append(example_from_dict(dict(row), default_id=f"row{i}"))
        except InputError as e:
            issues.append(InputIssue(label, i, e.field, str(e)))
    return examples, issues


@contextlib.contextmanager
def open_output(path: str | os.PathLike) -> Iterator[IO[str]]:
    """`path` opened to write UTF-8 text, gzip-compressed under a .gz name (plain text there would later
    read as a corrupt gzip). An OSError while writing or closing (a full disk, say) names the file:
    the system's own message names none."""
    p = Path(path)
    try:
        with gzip.open(p, "wt", encoding="utf-8") if p.suffix == ".gz" else open(p, "w", encoding="utf-8") as fh:
            yield fh
    except OSError as e:
        if e.filename is not None:  # open() failed: the message names the file already
            raise
        raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from e


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write `rows` as JSON Lines (gzip-compressed under a .gz name), replacing the file."""
    with open_output(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """`Path.write_text`, but a failed write names the file (a results file on a full disk, say)."""
    with open_output(path) as fh:
        fh.write(text)


def check_output_path(path: str | os.PathLike) -> Path:
    """The resolved path of an output file to append to; InputError when it cannot be one.

    Refused: a folder; anything that is not a regular file (`/dev/zero` would be read into
    memory on resume); a `.gz` name (appending and resuming need plain text, and plain text
    under a .gz name would later read as a corrupt gzip).
    """
    real = Path(path).resolve()
    if real.is_dir():
        raise InputError(f"{path}: is a folder; the output must be a file")
    if real.exists() and not real.is_file():
        raise InputError(f"{path}: not a regular file (a device or a pipe); the output must be a file")
    if Path(path).suffix == ".gz" or real.suffix == ".gz":
        raise InputError(f"{path}: spct appends plain JSON lines as it goes, which a gzip file cannot take; name the "
                         "output .jsonl (and gzip it once the run is done)")
    return real


def check_output_dir(path: str | os.PathLike) -> Path:
    """`path` as an output folder: one that exists, or a path where one can be made; InputError otherwise.

    A file or a device there (`-o /dev/zero`), or a file on the way to it, would fail later with the
    system's "File exists" or "Not a directory", which does not say that a folder was wanted.
    """
    p = Path(path)
    for part in (p, *p.parents):
        if part.exists():
            if not part.is_dir():
                on_the_way = "" if part == p else f" ({part} is not a folder)"
                raise InputError(f"{path}: the output must be a folder, or a path where one can be created{on_the_way}")
            break
    return p


class OutputLocked(InputError):
    """Another process (or another appender here) holds the output file's lock."""


class JsonlAppender:
    """Append-as-you-go output that resumes: rows already written (by key) are skipped.

    One writer at a time: a `filelock` lock on a hidden `.NAME.lock` beside the output (taken
    without waiting, left in place on release as filelock does), so a second concurrent run on
    the same output stops at once with OutputLocked instead of writing every row twice. The
    path is resolved first (`a/../b` and symlinks name the file they reach).

    A partial last line (a crash mid-write: no newline, and it opens like one of our rows) is
    cut off on open with a warning naming it, so a rerun neither loses finished rows nor
    duplicates them. Anything else that is not a spct output -- a line that is not a JSON
    object holding the key, or a broken line before the last -- is not ours to repair: opening
    refuses with an InputError naming the line, and the file is left as it was. Each row is
    flushed and fsynced as it is written.
    """

    def __init__(self, path: str | os.PathLike, key: str = "id", fields: Iterable[str] | None = None):
        self.path = Path(path)  # as the user named it, for messages
        self.key = key
        # With `fields`, only those fields of each finished row are kept in `done` (a resume
        # onto a large output then holds its keys, not its rows).
        self.fields = None if fields is None else tuple(fields)
        self.done: dict[str, dict[str, Any]] = {}
        real = check_output_path(self.path)
        real.parent.mkdir(parents=True, exist_ok=True)
        # Not thread-local: an appender may be closed by another thread than the one that opened it.
        self._lock = filelock.FileLock(real.with_name(f".{real.name}.lock"), thread_local=False)
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise OutputLocked(f"another spct run is writing {self.path}; wait for it to finish "
                               "or choose another output") from None
        except OSError as e:  # the lock file cannot be made: go on, but say what is not guarded
            log.warning("%s: cannot lock the output (%s); make sure no other run writes to it", self.path, e)
        try:
            self._fh = open(real, "a+b")
        except BaseException:
            self._lock.release()
            raise
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    def _not_ours(self, lineno: int, why: str, field: str | None = None) -> InputError:
        where = f"{self.path}:{lineno}" + (f" [{field}]" if field else "")
        return InputError(f"{where}: {why}; this is not a spct output (or it was edited), so spct will "
                          "not append to it or cut it: choose another output file, or fix or remove the line", field)

    def _recover(self) -> None:
        """Read the finished rows back one line at a time (never the whole file at once)."""
        self._fh.seek(0)
        good_end = 0
        lineno = 0
        ends_with_newline = True
        raw = self._fh.readline()
        while raw:
            lineno += 1
            following = self._fh.readline()
            last = not following
            if raw.strip():
                try:
                    row = json.loads(raw)
                except (ValueError, RecursionError):  # not JSON, not UTF-8, or an integer too long to read
                    row = ...
                if row is ... and last and not raw.endswith(b"\n") and raw.lstrip().startswith(b"{"):
                    log.warning("%s:%d: dropped a partial last line (a write cut off by a crash or Ctrl-C); "
                                "its row is redone", self.path, lineno)
                    break
                if row is ...:
                    raise self._not_ours(lineno, "not a JSON line" if last else
                                         "not a JSON line (the rows after it are finished work)")
                if not isinstance(row, dict) or self.key not in row:
                    raise self._not_ours(lineno, f"not a JSON object with {self.key!r}")
                # spct cannot write a lone surrogate (it is not UTF-8), so such a row was made by hand; kept,
                # it would crash the first write that copies it (a \ud83d escape is the only way in).
                if b"\\u" in raw and (bad := _poison(row, numbers=False)):
                    raise self._not_ours(lineno, bad[1], bad[0] or None)
                self.done[str(row[self.key])] = row if self.fields is None else {f: row[f] for f in self.fields if f in row}
            good_end += len(raw)
            ends_with_newline = raw.endswith(b"\n")
            raw = following
        if good_end < self._fh.seek(0, os.SEEK_END):
            self._fh.truncate(good_end)
        elif not ends_with_newline:  # a finished last row that lost only its newline
            self._write(b"\n")

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def write(self, row: dict[str, Any]) -> None:
        k = str(row[self.key])
        if k in self.done:
            return
        self._write((json.dumps(row, ensure_ascii=False) + "\n").encode())
        self.done[k] = row if self.fields is None else {f: row[f] for f in self.fields if f in row}

    def _write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as e:  # a full disk, say: the message must name the file
            raise OSError(e.errno, f"cannot write {self.path}: {e.strerror}") from e

    def close(self) -> None:
        self._fh.close()
        self._lock.release()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
