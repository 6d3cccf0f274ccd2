"""Two-phase decoding lives once, in Backend.generate; engines only generate free text and forced tails."""

from __future__ import annotations

import ast
from pathlib import Path

from _tiny import tiny_engine

from spct.backends.base import Backend, Continuation, Generation, GenerationRequest, ScoreConstraint
from spct.backends.transformers import TransformersBackend

BACKENDS = Path(__file__).parent.parent / "src" / "spct" / "backends"


class Scripted(Backend):
    """Free text from a list; forced tails are '7, 3}'."""

    name = "scripted"

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.free: list[GenerationRequest] = []
        self.forced: list[Continuation] = []

    def generate_free(self, requests):
        self.free += requests
        it = iter(self.texts)
        return [[Generation(next(it), new_tokens=5) for _ in range(r.n)] for r in requests]

    def generate_forced(self, continuations):
        self.forced += continuations
        return [("7, 3}", 2) for _ in continuations]


PAIR = ScoreConstraint(2)


def _req(n: int = 1, temperature: float = 0.5, constraint: ScoreConstraint | None = PAIR) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": "judge"}], n=n, temperature=temperature, constraint=constraint)


def test_only_samples_without_a_valid_score_line_are_forced():
    engine = Scripted(["Analysis: A is right.\nScores: \\boxed{9, 2}", "Analysis: hmm\nScores: \\boxed{11, 2}", "no line"])
    [gens] = engine.generate([_req(n=3)])
    assert [g.forced for g in gens] == [False, True, True]
    assert gens[0].text.endswith("\\boxed{9, 2}")
    assert gens[1].text == "Analysis: hmm\nScores: \\boxed{7, 3}"  # the broken line is cut before forcing
    assert gens[2].text == "no line\nScores: \\boxed{7, 3}" and gens[2].new_tokens == 7
    assert [c.sample for c in engine.forced] == [1, 2] and engine.forced[0].prefill == "Analysis: hmm\nScores: \\boxed{"


def test_greedy_is_generated_once_and_copied_and_no_constraint_means_no_forcing():
    engine = Scripted(["free text"])
    [gens] = engine.generate([_req(n=3, temperature=0.0, constraint=None)])
    assert [r.n for r in engine.free] == [1] and not engine.forced
    assert [g.text for g in gens] == ["free text"] * 3 and len({id(g) for g in gens}) == 3


def test_transformers_engine_forces_through_its_logits_processor():
    engine = TransformersBackend.__new__(TransformersBackend)  # no model: the phases are stubbed below
    engine.batch_size = 4
    engine.reuse_kv, engine._forced_ahead, engine.share_prefill = False, {}, True
    engine.render = lambda messages: "<prompt>"
    engine.encode_chat = lambda messages, tail="": f"<prompt>{tail}"  # stands in for the token ids
    runs: list[tuple[list[str], int, object]] = []

    def run(prompts, temperature, max_new_tokens, seed, constraints=None, state=None):
        runs.append((prompts, max_new_tokens, constraints))
        return [("5, 6}", 3, False) if constraints else ("Principles: be right", 9, False) for _ in prompts]

    engine._run = run
    [[g]] = engine.generate([_req()])
    assert g.text == "Principles: be right\nScores: \\boxed{5, 6}" and g.forced and g.new_tokens == 12
    (free_prompts, _, none), (forced_prompts, budget, cons) = runs
    assert none is None and forced_prompts == ["<prompt>Principles: be right\nScores: \\boxed{"]
    assert cons == [ScoreConstraint(2)] and budget == 12


def test_engines_import_neither_prompts_nor_the_parser():
    for path in BACKENDS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[-1] not in ("prompts", "parsing", "format", "judge"), path.name


def test_forced_line_from_the_kv_cache_matches_re_reading():
    reqs = [GenerationRequest([{"role": "user", "content": f"judge {i} " + "x" * (7 * i)}], n=1, temperature=0.0,
                              max_new_tokens=6, constraint=PAIR) for i in range(3)]
    reread = tiny_engine(reuse_kv=False).generate(reqs)
    engine = tiny_engine(reuse_kv=True)
    called: list[int] = []
    original = engine._run
    engine._run = lambda *a, **kw: called.append(len(a[0])) or original(*a, **kw)  # noqa: ARG005
    reused = engine.generate(reqs)
    assert all(g.forced for gens in reused for g in gens)  # a random model never writes its own score line
    assert [g.text for gens in reused for g in gens] == [g.text for gens in reread for g in gens]
    assert called == [3]  # one free batch; no re-reading batch for the forced lines
