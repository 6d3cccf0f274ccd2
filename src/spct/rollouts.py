"""Reading a decoded RL rollout: one string of prompt + response, as OpenRLHF sends it.

OpenRLHF sends each rollout as one decoded string (`query` = prompt + response, special tokens
kept) plus the `prompts` it started from; the response is what follows the prompt. When the
policy's prompt was too long OpenRLHF cuts it from the left, so the query then starts inside
the prompt: the response follows the longest overlap. The policy's chat-template markup is not
part of what is judged: a ChatML or Llama 3 prompt becomes its conversation, and role headers
and end markers around a response go. The reward server and the in-process OpenRLHF and verl
adapters read rollouts the same way, through this module, and share its request limits; it
imports nothing from spct.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

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

# Limits of one reward request: the server's wire types enforce them, and the clients split
# their work to fit them. The server's body-size limit bounds what reaches these checks.
MAX_ITEMS = 256  # queries per /get_reward request, examples per /v1/judge request
MAX_RESPONSES = 64  # responses per example
MAX_GROUP_SIZE = 4096  # G a request may name: responses per prompt, judged in parts of at most MAX_RESPONSES
MAX_CHARS = 200_000  # characters in one string


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


def check_counts(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any] | None) -> None:
    """One prompt (and label, if any) per query; raises ValueError saying which count is off."""
    if len(prompts) != len(queries):
        raise ValueError(f"prompts has {len(prompts)} items but query has {len(queries)}; send one prompt per query")
    if labels is not None and len(labels) != len(queries):
        raise ValueError(f"labels has {len(labels)} items but query has {len(queries)}; send one label per query")


def split_rollouts(queries: Sequence[str], prompts: Sequence[str]) -> list[tuple[str, str]]:
    """(prompt, response) per query; raises ValueError naming the query that lacks its prompt."""
    pairs = []
    for i, (q, p) in enumerate(zip(queries, prompts, strict=True)):
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
