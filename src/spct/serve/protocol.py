"""Wire types of spct's servers (pydantic): the reward server's OpenRLHF /get_reward and native
/v1/judge and /v1/rollout, and the chat server's OpenAI /v1/chat/completions (at the end).

Limits live in the types, so an oversized or malformed request is refused with a message that
names the field before any work is queued. How a rollout's query is split into prompt and
response lives in `spct.rollouts`, shared with the in-process adapters.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ..defaults import CHAT_API_TEMPERATURE
from ..rollouts import (
    MAX_CHARS,
    MAX_GROUP_SIZE,
    MAX_ITEMS,
    MAX_RESPONSES,
    check_counts,
    split_rollouts,
)
from ..score_line import MAX_SCORE, MIN_SCORE, SCORE_PREFIX

Text = Annotated[str, Field(max_length=MAX_CHARS)]


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic reads true as 1: `"k": true` would judge once, silently
        raise ValueError("must be a number, not a boolean")
    return value


Int = Annotated[int, BeforeValidator(_not_a_boolean)]
Number = Annotated[float, BeforeValidator(_not_a_boolean)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Strict):
    role: Text
    content: Text


class ExampleIn(_Strict):
    id: Text | None = None
    query: Text | Annotated[list[Message], Field(min_length=1, max_length=MAX_RESPONSES)]
    responses: Annotated[list[Text], Field(min_length=1, max_length=MAX_RESPONSES)]
    best: list[Int] | None = None
    ratings: list[Annotated[Number, Field(allow_inf_nan=False)]] | None = None  # NaN would poison the accuracy rule
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
    k: Annotated[Int, Field(ge=1)] | None = None  # judgments per example (server default when omitted)
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


class RolloutRequest(_Strict):
    """One response, judged listwise with the other responses of its group as they arrive
    (from any client: verl's reward workers each post their own samples)."""

    key: Text | None = None  # the group's id (verl's GRPO uid); default: the query
    query: Text | Annotated[list[Message], Field(min_length=1, max_length=MAX_RESPONSES)]
    response: Text
    group_size: Annotated[Int, Field(ge=1, le=MAX_GROUP_SIZE)] | None = None  # G: judged as soon as the group holds it
    k: Annotated[Int, Field(ge=1)] | None = None


class RolloutResponse(BaseModel):
    reward: float  # mean judge score of the response, 1..10
    score: float  # the same, rescaled to 0..1
    group_size: int  # responses the judgment saw
    used: int
    failed: int


class GetRewardRequest(BaseModel):
    """OpenRLHF's remote reward-model request; unknown extra keys are ignored, as OpenRLHF adds some.

    Empty lists are a valid request (answered with empty lists): OpenRLHF shards each call over
    all its reward URLs, so with one rollout and two URLs the second gets an empty shard, and any
    refusal there leaves the rollout's reward None and crashes the trainer.
    """

    query: Annotated[list[Text], Field(max_length=MAX_ITEMS)]
    prompts: Annotated[list[Text], Field(max_length=MAX_ITEMS)]
    labels: list[Any] | None = None  # validated for count; a GRM needs no reference answer
    # spct's own: G, the responses sampled per prompt, so a group is judged as soon as it is whole.
    group_size: Annotated[Int, Field(ge=1, le=MAX_GROUP_SIZE)] | None = None

    @model_validator(mode="after")
    def _counts_match(self) -> GetRewardRequest:
        check_counts(self.query, self.prompts, self.labels)
        return self

    def split(self) -> list[tuple[str, str]]:
        """(prompt, response) per query; raises ValueError naming the query that lacks its prompt."""
        return split_rollouts(self.query, self.prompts)


class GetRewardResponse(BaseModel):
    rewards: list[float]  # mean judge score of each response, 1..10
    scores: list[float]  # the same, rescaled to 0..1
    extra_logs: dict[str, list[float]]


# -- the chat server (chat_api.py): OpenAI's chat completions, the fields an engine can honour --------------
# Not strict: OpenAI clients send keys an engine has no use for (`stream_options`, a message's
# `name`, ...), and an OpenAI-compatible server ignores them.


class ChatMessage(BaseModel):
    role: str
    content: str


class ScoreConstraintBody(BaseModel):
    """spct's extension: force the judgment's score line (the OpenAI backend's `guided="spct"`)."""

    count: Int
    prefix: str = SCORE_PREFIX
    lo: Int = MIN_SCORE
    hi: Int = MAX_SCORE


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage]
    n: Annotated[Int, Field(ge=1)] = 1
    temperature: Number = CHAT_API_TEMPERATURE
    max_tokens: Int | None = None
    max_completion_tokens: Int | None = None  # OpenAI's newer name for max_tokens; wins over it
    seed: Int | None = None
    spct_score_constraint: ScoreConstraintBody | None = None
