"""A judge someone else serves: spct's prompts, parsing and voting over an OpenAI-compatible
server at an address, such as verl's reward router in front of the vLLM or SGLang judge it runs.

The server is asked once, at `/v1/models`, what it serves, so the caller need not repeat what
it already knows: the model name requests must carry (verl serves the judge under its local
path), its context length (so long prompts are cut to fit instead of refused), and which engine
it is (vLLM and SGLang name themselves in `owned_by`), so the score line can be forced the
server's own way where a sample does not write one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..backends.base import BackendError, HFTokenizerMixin
from ..backends.openai import OpenAIBackend
from ..defaults import SERVE_MAX_NEW_TOKENS
from ..judge import GenerativeRewardModel, JudgeConfig, readable_by
from .client import RewardClient, RewardError

log = logging.getLogger(__name__)

#: The `guided` dialect for the engines that name themselves in /v1/models' `owned_by`.
GUIDED_BY_ENGINE = {"vllm": "vllm", "sglang": "sglang"}


@dataclass(frozen=True)
class ServedModel:
    """What a server's /v1/models says of the (first) model it serves."""

    name: str
    context_length: int | None
    engine: str | None


def served_model(base_url: str, api_key: str | None = None, timeout_s: float = 30.0) -> ServedModel:
    """Ask the server at `base_url` (ending in /v1) which model it serves."""
    import httpx

    url = f"{base_url.rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(url, headers=headers, timeout=timeout_s)
        resp.raise_for_status()
        card = resp.json()["data"][0]
        name = card["id"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as e:
        raise RewardError(f"cannot read the served judge's name from {url}: {e!r}; pass the model name (and "
                          "context_length, guided) yourself") from e
    length = card.get("max_model_len")
    return ServedModel(name, int(length) if isinstance(length, int) else None, card.get("owned_by"))


class ServedJudgeBackend(HFTokenizerMixin, OpenAIBackend):
    """OpenAIBackend for a served judge: counts tokens with the judge's own tokenizer where one is
    given (so cuts to its context are exact), and says what to check when the server fails."""

    def __init__(self, model: str, *, tokenizer: Any = None, **options: Any):
        super().__init__(model, **options)
        self.tokenizer = tokenizer

    def count_tokens(self, text: str) -> int:
        return super().count_tokens(text) if self.tokenizer is not None else OpenAIBackend.count_tokens(self, text)

    def truncate(self, text: str, max_tokens: int) -> str:
        return super().truncate(text, max_tokens) if self.tokenizer is not None else OpenAIBackend.truncate(self, text, max_tokens)

    async def _call(self, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            return await super()._call(*args, **kwargs)
        except BackendError as e:
            raise BackendError(f"{e} (each request may take {self.timeout:g} s and is retried {self.max_retries} "
                               "time(s): raise timeout_s if the judge is slow under load; a proxy such as verl's "
                               "reward router answers 500 for the judge's own refusals, whose cause is in the judge "
                               "server's log)") from e


def served_judge_client(base_url: str, *, model: str | None = None, api_key: str | None = None, k: int = 1,
                        max_new_tokens: int = SERVE_MAX_NEW_TOKENS, guided: str = "auto",
                        context_length: int | None = None, timeout_s: float = 600.0, max_retries: int = 2,
                        tokenizer: Any = None, policy: str | None = None, readout: str | None = None) -> RewardClient:
    """A RewardClient judging with spct's GenerativeRewardModel through the server at `base_url`.

    What is not given (model, context_length, guided="auto") is read from the server's /v1/models;
    `guided="auto"` forces the score line the vLLM or SGLang way, and not at all on other servers.
    `policy` / `readout` not given: the served model's own recommendation, when its name is a folder
    here with a `spct_judging.json` (vLLM names a model by its path) or an embedded judge's name,
    else spct's defaults. The expected readout needs log-probabilities this engine does not read,
    so a recommended one becomes the written integer (logged); an explicit one is an error.
    """
    if model is None or context_length is None or guided == "auto":
        served = served_model(base_url, api_key)
        model = model or served.name
        context_length = context_length or served.context_length
        if guided == "auto":
            guided = GUIDED_BY_ENGINE.get(served.engine or "", "none")
    backend = ServedJudgeBackend(model, tokenizer=tokenizer, base_url=base_url, api_key=api_key, guided=guided,
                                 context_length=context_length, timeout=timeout_s, max_retries=max_retries)
    chosen = {name: value for name, value in (("policy", policy), ("readout", readout)) if value is not None}
    config = JudgeConfig.for_model(model, k=k, max_new_tokens=max_new_tokens, retries=1, **chosen)
    if readout is None:  # only recommended: fit it to the engine (an explicit one is checked by the judge)
        config, note = readable_by(config, backend)
        if note:
            log.warning("%s", note)
    log.info("judging %s with policy %s, readout %s", model, config.policy, config.readout)
    grm = GenerativeRewardModel(backend, config)
    return RewardClient(grm, k=k)
