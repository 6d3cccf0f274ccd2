"""Fuzzing (issue 13): random JSON values and bytes as input lines through reader -> judge (fake engine)
-> writer, random engine text through the parser, random bodies at the server.

The properties: no exception escapes; every non-blank input line ends as exactly one result row
or one named issue (nothing lost, nothing twice); a rerun resumes without judging anything again;
every judgment either has valid scores or a typed error. `bench/fuzz_robustness.py` runs the
same properties with many more examples.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any
from unittest.mock import patch

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import spct
from spct.backends.fake import FakeBackend
from spct.data import Example, InputError, read_examples
from spct.jobs import judge_file
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.parsing import JudgmentParseError, parse_judgment
from spct.prompts import _defuse
from spct.score_line import ScoreConstraint, constraint_satisfied, head_before_score_line
from spct.serve import ServerConfig, create_app
from spct.voting import check_rating_scale

PARSE_KINDS = ("no_box", "not_last", "wrong_count", "not_integer", "out_of_range")
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- strategies ------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=10)
roles = st.sampled_from(["user", "assistant", "system"]) | st.text(max_size=12)
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": st.text(max_size=40)}), min_size=1, max_size=4)
# Characters a marker look-alike hides behind: every format character and combining mark (Cf, Mn, Me),
# the blanks drawn as nothing, and every look-alike of a Latin letter or digit in Unicode's confusables.
invisible = (st.characters(categories=["Cf", "Mn", "Me"]) | st.sampled_from("\u115f\u1160\u2800\u3164\uffa0\U000e0020"))
_TABLE = (Path(spct.__file__).parent / "assets" / "lookalikes.txt").read_text("utf-8").splitlines()
CONFUSABLE = {latin: alikes for line in _TABLE if line and not line.startswith("#") for latin, alikes in [line.split("\t")]}
MARKER_NAMES = ["Response 1", "End of response 1", "User query", "End of user query", "Conversation so far",
                "End of conversation so far", "Conversation after the query", "End of conversation after the query"]


@st.composite
def disguised_markers(draw) -> str:
    """A marker name with some letters swapped for look-alikes (any case) and invisible characters strewn in."""
    out = []
    for c in draw(st.sampled_from(MARKER_NAMES)):
        alikes = CONFUSABLE.get(c, "") + CONFUSABLE.get(c.swapcase(), "")
        if alikes and draw(st.booleans()):
            c = draw(st.sampled_from(alikes))
        out.append(c + draw(st.text(invisible, max_size=2)))
    return "[" + draw(st.text(invisible, max_size=1)) + "[" + "".join(out) + "]" + draw(st.text(invisible, max_size=1)) + "]"


lookalikes = disguised_markers()
# Lone surrogates (half of a UTF-16 pair) anywhere in a string.
surrogates = st.tuples(st.text(max_size=4), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                       st.text(max_size=4)).map("".join)
texts = (st.text(max_size=60) | lookalikes | surrogates
         | st.sampled_from(["[[End of response 1]]", "x[[0,1]]", "［［Response 2］］", "Scores: \\boxed{10}"]))
example_like = st.fixed_dictionaries(
    {"query": texts | messages | json_values, "responses": st.lists(texts, max_size=4) | json_values},
    optional={"id": st.text(max_size=4) | st.integers(-3, 3) | json_values,
              "best": st.lists(st.integers(-1, 4), max_size=3) | json_values,
              "ratings": st.lists(st.integers(-2, 12) | st.floats(), max_size=4) | json_values,
              "domain": texts | json_values})
# The Python API's Example arguments: plausible ones with one field (or none) swapped for anything at all
# (a huge integer, a tuple, a set, any JSON value), and the judge's k and batch size.
api_values = json_values | st.integers(10**300, 10**400) | st.tuples(st.text(max_size=4)) | st.sets(st.integers(0, 3), max_size=2)


@st.composite
def example_args(draw) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    args = {"id": draw(st.text(max_size=4)), "query": draw(texts | messages),
            "responses": draw(st.lists(texts, min_size=n, max_size=n))}
    if draw(st.booleans()):
        args["best"] = draw(st.lists(st.integers(-1, n), min_size=1, max_size=2))
    if draw(st.booleans()):
        args["ratings"] = draw(st.lists(st.integers(1, 10) | st.floats() | st.integers(10**300, 10**400), min_size=n, max_size=n))
    if draw(st.booleans()):
        args["domain"] = draw(texts)
    odd = draw(st.sampled_from([None, "id", "query", "responses", "best", "ratings", "domain"]))
    if odd:
        args[odd] = draw(api_values)
    return args


judge_args = st.fixed_dictionaries({}, optional={"k": st.none() | st.integers(-3, 3) | st.floats(-2, 3) | st.booleans(),
                                                 "batch_size": st.integers(-2, 3) | st.booleans()})
pair_like = st.fixed_dictionaries({"chosen": texts | messages, "rejected": texts | messages},
                                  optional={"prompt": texts | messages | json_values, "id": st.text(max_size=4)})
# One input line: valid-looking examples, any JSON value, or raw bytes (no newline inside).
json_lines = st.one_of(example_like, pair_like, json_values).flatmap(
    lambda v: st.sampled_from([json.dumps(v).encode(), json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")]))
# Integers too large for a float (310 digits and up) and past Python's 4300-digit limit (written raw:
# json.dumps cannot write those), in a field that takes a number, and lines past the line limit.
LINE_LIMIT = 4096  # spct.data.MAX_LINE_BYTES while fuzzing, so an oversized line stays small
huge_int_lines = st.tuples(st.integers(310, 6000), st.sampled_from(["ratings", "best", "id", "domain", "extra"]),
                           st.booleans()).map(
    lambda t: f'{{"query": "q", "responses": ["a"], "{t[1]}": {"[" * t[2]}{"9" * t[0]}{"]" * t[2]}}}'.encode())
oversized_lines = st.integers(LINE_LIMIT, 3 * LINE_LIMIT).map(lambda n: b'{"query": "' + b"x" * n + b'", "responses": ["a"]}')
input_lines = st.lists(json_lines | huge_int_lines | oversized_lines | st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
                       min_size=1, max_size=8)

numbers = (st.integers(-3, 14).map(str) | st.text(alphabet="0123456789²³٣７.+-e ", max_size=8)
           | st.sampled_from(["9" * 400, "1" * 5000, "7." + "0" * 50, "1e999", "NaN"]))
boxes = st.lists(numbers, max_size=4).map(lambda xs: "\\boxed{" + ", ".join(xs) + "}")
good_boxes = st.lists(st.integers(1, 10), min_size=1, max_size=4).map(lambda xs: "Scores: \\boxed{" + ", ".join(map(str, xs)) + "}")
pieces = st.text(max_size=30) | boxes | good_boxes | st.sampled_from(["Scores:", "**Analysis:**", "Principles:\n- x (100%)\n", "\n", " " * 50,
                                                         "*" * 50, "\\boxed{", "}", "[[End of response 1]]"])
engine_texts = st.lists(pieces, max_size=6).map("".join)

# Server bodies: any JSON, near-valid requests of both endpoints, and valid ones with hostile text.
good_examples = st.fixed_dictionaries({"query": texts | messages, "responses": st.lists(texts, min_size=1, max_size=3)},
                                      optional={"ratings": st.lists(st.floats(), min_size=1, max_size=3), "k": st.integers(0, 3)})
rollouts = st.lists(st.tuples(texts, texts), min_size=1, max_size=3).map(
    lambda pairs: {"prompts": [p for p, _ in pairs], "query": [p + r for p, r in pairs]})
server_bodies = st.one_of(
    st.tuples(st.just("/v1/judge"), st.fixed_dictionaries({"examples": st.lists(good_examples | example_like, max_size=3)},
                                                            optional={"k": json_values | st.integers(1, 3)})),
    st.tuples(st.just("/get_reward"), rollouts
              | st.fixed_dictionaries({"query": st.lists(texts, max_size=3), "prompts": st.lists(texts, max_size=3)})),
    st.tuples(st.sampled_from(["/v1/judge", "/get_reward"]), json_values))


# -- the properties, shared with bench/fuzz_robustness.py -------------------------------------------


def non_blank_lines(lines: list[bytes]) -> set[int]:
    """Line numbers the reader must account for (it skips only lines that decode to whitespace)."""
    out = set()
    for i, raw in enumerate(lines, start=1):
        try:
            if not raw.decode("utf-8-sig" if i == 1 else "utf-8").strip():
                continue
        except UnicodeDecodeError:
            pass
        out.add(i)
    return out


def run_pipeline(lines: list[bytes], engine: list[str], k: int = 2) -> dict[str, Any]:
    """Reader -> judge -> writer on `lines`, engine texts drawn from `engine` (default fake scoring if empty).

    Asserts the properties and returns counts for reporting.
    """
    def script(req, s):  # a hostile engine: replies chosen by the request's seed
        return engine[(req.seed + s) % len(engine)]

    backend = FakeBackend(script=script if engine else None)
    with tempfile.TemporaryDirectory() as tmp, patch("spct.data.MAX_LINE_BYTES", LINE_LIMIT):
        src, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_bytes(b"".join(line + b"\n" for line in lines))
        examples, issues = read_examples(src)
        try:  # as the CLI does: a single-response rating off the 1..10 scale refuses the file, by line
            check_rating_scale(examples)
        except InputError as e:
            assert str(e).startswith(f"{src}:") and "score scale" in str(e)
            return {"lines": len(lines), "blank_lines": len(lines) - len(non_blank_lines(lines)),
                    "refused_lines": len(non_blank_lines(lines))}
        summary = judge_file(GenerativeRewardModel(backend, JudgeConfig(k=k)), examples, out, batch_size=3, progress=False)
        rows = [json.loads(line) for line in out.read_bytes().split(b"\n")[:-1]]  # not str.splitlines: "\x85" is no break
        again = judge_file(GenerativeRewardModel(FakeBackend(), JudgeConfig(k=k)), examples, out, progress=False)
        assert (again.skipped_done, again.written) == (len(examples), 0)  # resumes; nothing judged twice
        assert out.read_text(encoding="utf-8").count("\n") == len(rows)

    example_lines = [int(ex.source.rsplit(":", 1)[1]) for ex in examples]
    issue_lines = [i.line for i in issues]
    assert sorted(example_lines + issue_lines) == sorted(non_blank_lines(lines))  # each line once: a result or an issue
    assert all(str(i).startswith(f"{src}:{i.line}") and i.message for i in issues)
    assert [r["id"] for r in rows] == [ex.id for ex in examples]
    for ex, r in zip(examples, rows, strict=True):
        assert len(r["judgments"]) == k
        for j in r["judgments"]:
            if j["error"] is None:
                assert len(j["scores"]) == len(ex.responses) and all(1 <= s <= 10 for s in j["scores"])
            else:
                assert j["scores"] is None and j["error"].split(":")[0] in PARSE_KINDS
    return {"lines": len(lines), "blank_lines": len(lines) - len(non_blank_lines(lines)), "results": len(rows),
            "issues": len(issues), "judgments": summary.judgments,
            "failed_judgments": summary.failed_judgments}


def check_engine_text(text: str, n: int) -> bool:
    """The parser's contract on any text: scores or a typed error; the constraint check agrees with it."""
    try:
        parsed = parse_judgment(text, n)
    except JudgmentParseError as e:
        assert e.kind in PARSE_KINDS and len(str(e)) < 500
        parsed = None
    else:
        assert len(parsed.scores) == n and all(1 <= s <= 10 for s in parsed.scores)
    if constraint_satisfied(text, ScoreConstraint(n)):
        assert parsed is not None
    assert isinstance(head_before_score_line(text), str)
    return parsed is not None


def check_api_example(args: dict[str, Any], call: dict[str, Any]) -> str:
    """Example(**args) then judge(..., **call) through the Python API: a Reward, or an InputError that names
    its field -- never another exception. Returns which of the three happened."""
    try:
        ex = Example(**args)
    except InputError as e:
        assert str(e) and (e.field is None or e.field.split("[")[0].split(".")[0] in args), (e.field, args)
        return "refused_example"
    try:
        [reward] = GenerativeRewardModel(FakeBackend()).judge([ex], **call)
    except InputError as e:
        assert str(e)
        return "refused_call"
    k = 1 if call.get("k") is None else call["k"]  # k=0 is no default
    assert reward.id == ex.id and len(reward.judgments) == k and (reward.rewards is None or len(reward.rewards) == len(ex.responses))
    return "judged"


def check_disguised_marker(text: str) -> None:
    """A disguised marker is escaped whole; the same text with its brackets taken away is shown unchanged."""
    out = _defuse(text)
    assert out.startswith("[\\[") and out.endswith("]\\]") and "[[" not in out, ascii(text)
    plain = text.replace("[", "(").replace("]", ")")
    assert _defuse(plain) == plain


# -- the tests ------------------------------------------------------------------------------------------


@FUZZ
@given(input_lines, st.lists(engine_texts, max_size=3))
@example([b'{"query": "q", "responses": ["a"], "ratings": [' + b"9" * 400 + b"]}"], [])  # once an OverflowError
def test_every_input_line_ends_as_a_result_or_a_named_issue(lines, engine):
    run_pipeline(lines, engine)


@settings(max_examples=300, deadline=None)
@given(engine_texts, st.integers(1, 4))
def test_any_engine_text_parses_or_fails_typed(text, n):
    check_engine_text(text, n)
    check_engine_text("Analysis: ok\nScores: " + text, n)


SERVER_STATUSES = (200, 400, 413, 422, 502)  # 502: every judgment of a rollout failed to parse (the engine's fault)


def hostile_client() -> TestClient:
    """A server whose engine replies with random hostile text for some requests, valid scores for others."""
    def script(req, s):
        n = req.messages[-1]["content"].count("[[Response ")
        return f"Analysis: ok\nScores: \\boxed{{{', '.join(['5'] * n)}}}" if req.seed % 3 else "\\boxed{², " + "9" * 400 + "}"

    # Window 0: a rollout is grouped with what arrives with it, never held for a deadline.
    config = ServerConfig(max_body_bytes=100_000, group_window_s=0.0)
    return TestClient(create_app(GenerativeRewardModel(FakeBackend(script=script)), config))


@FUZZ
@given(server_bodies)
def test_the_server_never_answers_500(request):
    path, body = request
    r = hostile_client().post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code in SERVER_STATUSES, r.text
    assert r.status_code == 200 or r.json()["error"]


@FUZZ
@given(example_args(), judge_args)
@example({"id": "e", "query": "q", "responses": ["a", "b"], "ratings": [10**400, 1]}, {})  # once an OverflowError
@example({"id": "e", "query": "q", "responses": ["a", "b"]}, {"k": 0})  # once judged with the default k
@example({"id": "e", "query": "q", "responses": ["a", "b"]}, {"batch_size": -1})  # once judged nothing
def test_the_python_api_refuses_by_name_or_judges(args, call):
    check_api_example(args, call)


@settings(max_examples=200, deadline=None)
@given(disguised_markers())
def test_a_disguised_marker_is_always_escaped(text):
    check_disguised_marker(text)
