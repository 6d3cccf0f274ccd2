"""Wire types of the reward server (pydantic): OpenRLHF's /get_reward and spct's native /v1/judge.

Limits live in the types, so an oversized or malformed request is refused with a message that
names the field before any work is queued. OpenRLHF sends each rollout as one decoded string
(`query` = prompt + response, special tokens kept) plus the `prompts` it started from; the
response is what follows the prompt. When the policy's prompt was too long OpenRLHF cuts it
from the left, so the query then starts inside the prompt: the response follows the longest
overlap. The policy's chat-template markup is not part of what is judged: a ChatML or Llama 3
prompt becomes its conversation, and role headers and end markers around a response go.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Per-request limits; the body-size limit (app.py) bounds what reaches these checks.
MAX_ITEMS = 256  # queries per /get_reward request, examples per /v1/judge request
MAX_RESPONSES = 64  # responses per example
MAX_CHARS = 200_000  # characters in one string

Text = Annotated[str, Field(max_length=MAX_CHARS)]
# Special tokens a decoded rollout often ends with (end of turn, end of text, padding); they
# are not part of the judged response.
END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "</s>", "<|end|>",
               "<end_of_turn>", "<eos>", "<pad>", "<|end▁of▁sentence|>", "<｜end▁of▁sentence｜>")
# An assistant header a response may start with when the prompt lacked the generation prompt.
_ROLE_HEADER = re.compile(r"(?:\s*(?:<\|im_start\|>assistant\n|<\|start_header_id\|>assistant<\|end_header_id\|>\n*"
                          r"|<start_of_turn>model\n|<\|assistant\|>\n?|\[/INST\]))+")
# Chat templates whose prompts are read back into conversations: (turn, trailing generation prompt, leading BOS).
_TEMPLATES = (
    (re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)<\|im_end\|>\n?", re.S),
     re.compile(r"<\|im_start\|>assistant\n?"), ""),
    (re.compile(r"<\|start_header_id\|>(system|user|assistant)<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", re.S),
     re.compile(r"<\|start_header_id\|>assistant<\|end_header_id\|>\s*"), "<|begin_of_text|>"),
)
MIN_OVERLAP = 16  # characters of a left-truncated prompt a query must still start with


def untemplate(prompt: str) -> str | list[dict[str, str]]:
    """A ChatML or Llama 3 chat prompt as its messages; any other prompt unchanged."""
    for turn, opener, bos in _TEMPLATES:
        text, pos, messages = prompt.removeprefix(bos), 0, []
        while (m := turn.match(text, pos)) is not None:
            messages.append({"role": m.group(1), "content": m.group(2)})
            pos = m.end()
        if any(m["role"] == "user" for m in messages) and (pos == len(text) or opener.fullmatch(text, pos)):
            return messages
    return prompt


def clean_response(text: str) -> str:
    """The response without a leading assistant header and without any trailing end markers."""
    header = _ROLE_HEADER.match(text)
    text = text[header.end():].strip() if header else text.strip()
    while True:
        for marker in END_MARKERS:
            if text.endswith(marker):
                text = text[: -len(marker)].rstrip()
                break
        else:
            return text


def prompt_overlap(prompt: str, query: str) -> int:
    """Length of the longest suffix of `prompt` that `query` starts with (prefix function, linear time)."""
    m = min(len(prompt), len(query))
    seq: list[str | None] = [*query[:m], None, *prompt[len(prompt) - m:]]
    pi = [0] * len(seq)
    for i in range(1, len(seq)):
        j = pi[i - 1]
        while j and seq[i] != seq[j]:
            j = pi[j - 1]
        pi[i] = j + (seq[i] == seq[j])
    return pi[-1]


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


class RolloutRequest(_Strict):
    """One response, judged listwise with the other responses of its group as they arrive
    (from any client: verl's reward workers each post their own samples)."""

    key: Text | None = None  # the group's id (verl's GRPO uid); default: the query
    query: Text | Annotated[list[Message], Field(min_length=1, max_length=MAX_RESPONSES)]
    response: Text
    group_size: Annotated[int, Field(ge=1, le=MAX_RESPONSES)] | None = None  # G: judged as soon as the group holds it
    k: Annotated[int, Field(ge=1)] | None = None


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
    group_size: Annotated[int, Field(ge=1, le=MAX_RESPONSES)] | None = None

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
            if at >= 0:
                response = q[at + len(p):]
            else:  # a left-truncated prompt: the query starts inside it (maybe mid-character)
                head = q.lstrip("\ufffd")
                overlap = prompt_overlap(p, head)
                if overlap < min(MIN_OVERLAP, len(p)) or not p:
                    raise ValueError(f"query[{i}] does not contain prompts[{i}] (nor start with its last {MIN_OVERLAP} "
                                     "characters); each query must be its prompt followed by the response")
                response = head[overlap:]
            pairs.append((p, clean_response(response)))
        return pairs


class GetRewardResponse(BaseModel):
    rewards: list[float]  # mean judge score of each response, 1..10
    scores: list[float]  # the same, rescaled to 0..1
    extra_logs: dict[str, list[float]]
