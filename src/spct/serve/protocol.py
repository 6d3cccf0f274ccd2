"""Wire types of the reward server (pydantic): OpenRLHF's /get_reward and spct's native /v1/judge.

Limits live in the types, so an oversized or malformed request is refused with a message that
names the field before any work is queued. OpenRLHF sends each rollout as one decoded string
(`query` = prompt + response) plus the `prompts` it started from; the response is what
follows the prompt.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Per-request limits; the body-size limit (app.py) bounds what reaches these checks.
MAX_ITEMS = 256  # queries per /get_reward request, examples per /v1/judge request
MAX_RESPONSES = 64  # responses per example
MAX_CHARS = 200_000  # characters in one string

Text = Annotated[str, Field(max_length=MAX_CHARS)]
# Special tokens a decoded rollout often ends with; they are not part of the judged response.
END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>", "<|end|>", "<end_of_turn>")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Strict):
    role: Text
    content: Text


class ExampleIn(_Strict):
    id: Text | None = None
    query: Text | Annotated[list[Message], Field(min_length=1, max_length=MAX_RESPONSES)]
    responses: Annotated[list[Text], Field(min_length=1, max_length=MAX_RESPONSES)]
    best: list[int] | None = None
    ratings: list[Annotated[float, Field(allow_inf_nan=False)]] | None = None  # NaN would poison the accuracy rule
    domain: Text | None = None

    @model_validator(mode="after")
    def _labels_fit(self) -> ExampleIn:
        n = len(self.responses)
        for b in self.best or []:
            if not 0 <= b < n:
                raise ValueError(f"best index {b} out of range for {n} responses")
        if self.ratings is not None and len(self.ratings) != n:
            raise ValueError(f"ratings has {len(self.ratings)} values for {n} responses")
        return self


class JudgeRequest(_Strict):
    examples: Annotated[list[ExampleIn], Field(min_length=1, max_length=MAX_ITEMS)]
    k: Annotated[int, Field(ge=1)] | None = None  # judgments per example (server default when omitted)
    include_judgments: bool = False


class JudgmentOut(BaseModel):
    sample: int
    order: list[int]
    principles: str | None
    critique: str | None
    scores: list[int] | None
    error: str | None
    forced: bool
    text: str


class RewardOut(BaseModel):
    id: str
    rewards: list[int] | None  # summed scores per response; None when every judgment failed
    mean_scores: list[float] | None  # rewards / used: on the 1..10 scale whatever k is
    k: int
    used: int
    failed: int
    best: int | None
    correct: bool | None
    judgments: list[JudgmentOut] | None = None


class JudgeResponse(BaseModel):
    rewards: list[RewardOut]


class GetRewardRequest(BaseModel):
    """OpenRLHF's remote reward-model request; unknown extra keys are ignored, as OpenRLHF adds some."""

    query: Annotated[list[Text], Field(min_length=1, max_length=MAX_ITEMS)]
    prompts: Annotated[list[Text], Field(min_length=1, max_length=MAX_ITEMS)]
    labels: list[Any] | None = None  # validated for count; a GRM needs no reference answer

    @model_validator(mode="after")
    def _counts_match(self) -> GetRewardRequest:
        if len(self.prompts) != len(self.query):
            raise ValueError(f"prompts has {len(self.prompts)} items but query has {len(self.query)}; send one prompt per query")
        if self.labels is not None and len(self.labels) != len(self.query):
            raise ValueError(f"labels has {len(self.labels)} items but query has {len(self.query)}; send one label per query")
        return self

    def split(self) -> list[tuple[str, str]]:
        """(prompt, response) per query; raises ValueError naming the query that lacks its prompt."""
        pairs = []
        for i, (q, p) in enumerate(zip(self.query, self.prompts, strict=True)):
            at = q.find(p) if p else -1
            if at < 0:
                raise ValueError(f"query[{i}] does not contain prompts[{i}]; each query must be its prompt followed by the response")
            response = q[at + len(p):].strip()
            for marker in END_MARKERS:
                response = response.removesuffix(marker).rstrip()
            pairs.append((p, response))
        return pairs


class GetRewardResponse(BaseModel):
    rewards: list[float]  # mean judge score of each response, 1..10
    scores: list[float]  # the same, rescaled to 0..1
    extra_logs: dict[str, list[float]]
