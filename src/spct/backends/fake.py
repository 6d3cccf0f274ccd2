"""A scripted backend for tests and dry runs: no model, deterministic, inspectable.

It reads the numbered responses back out of the judging prompt and scores each with a rule
you pass in (by default: longer is better), so tests can check that shuffling, unshuffling,
voting and resume are right without a model. `script` overrides the text outright.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..score_line import MAX_SCORE, MIN_SCORE
from .base import Backend, BackendError, Generation, GenerationRequest

_RESPONSE = re.compile(r"\[\[Response (\d+)\]\]\n(.*?)\n\[\[End of response \1\]\]", re.S)


def responses_in_prompt(text: str) -> list[str]:
    return [m.group(2) for m in _RESPONSE.finditer(text)]


def _by_length(response: str, sample: int) -> int:
    return max(MIN_SCORE, min(MAX_SCORE, 1 + len(response) // 10))


class FakeBackend(Backend):
    name = "fake"

    def __init__(
        self,
        score: Callable[[str, int], int] = _by_length,
        script: Callable[[GenerationRequest, int], str] | None = None,
        fail: Callable[[GenerationRequest], bool] | None = None,
        context_length: int | None = None,
    ):
        self.context_length = context_length  # set it to exercise fitting long inputs
        self.score = score
        self.script = script
        self.fail = fail
        self.calls: list[list[GenerationRequest]] = []

    def forces_score_line(self, request: GenerationRequest) -> bool:
        return False  # scripted text is returned as written, so tests see parse failures

    def generate_free(self, requests: list[GenerationRequest]) -> list[list[Generation]]:
        self.calls.append(list(requests))
        out = []
        for req in requests:
            if self.fail and self.fail(req):
                raise BackendError("scripted failure")
            gens = []
            for s in range(req.n):
                if self.script is not None:
                    text = self.script(req, s)
                else:
                    shown = responses_in_prompt(req.messages[-1]["content"])
                    scores = [self.score(r, req.seed + s) for r in shown]
                    text = (
                        "Principles:\n- Helpfulness (100%)\nAnalysis:\nScored by the fake rule.\n"
                        f"Scores: \\boxed{{{', '.join(map(str, scores))}}}"
                    )
                gens.append(Generation(text=text, new_tokens=len(text.split())))
            out.append(gens)
        return out
