"""Any OpenAI-compatible chat server as an engine: vLLM `serve`, SGLang, llama.cpp's server,
Ollama, hosted APIs, or spct's own chat server (`spct serve --api openai`).

Requests go out concurrently (an asyncio semaphore caps how many are in flight), each asking
for all `n` samples at once; servers that return fewer choices than asked (some ignore `n`)
are asked again for the rest. 408/409/429s, 5xx answers, timeouts and dropped connections are
retried by the OpenAI SDK itself (`max_retries`, exponential backoff, honouring `Retry-After`);
when every attempt fails, or the server cannot be reached at all, a `BackendError` names the URL
and the cause.

The constrained score line goes through the server's own mechanism, chosen with `guided`:

- `"vllm"`: vLLM >= 0.12 (`structured_outputs: {regex}`), with the assistant prefill
  `continue_final_message`; `"vllm-legacy"` sends `guided_regex` for older vLLM.
- `"sglang"`: SGLang (`regex`, `continue_final_message`).
- `"llamacpp"`: llama.cpp's `llama-server` (`grammar` in GBNF; a final assistant message is
  continued as a prefill).
- `"spct"`: spct's chat server (`spct serve --api openai`), which runs the transformers engine's constraint itself.
- `"none"`: send nothing; the judgments parse only when the model writes the line itself.

For the server-side dialects (vllm, sglang, llamacpp) generation is two-phase (`Backend.generate`),
as in every engine: free text first; a sample whose last box is not a valid score list is cut
before its score line and continued from `Scores: \\boxed{` with only the score list allowed.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from ..score_line import ScoreConstraint, score_budget, score_tail_gbnf, score_tail_regex
from .base import (
    Backend,
    BackendError,
    Continuation,
    Generation,
    GenerationRequest,
    neutralise_messages,
)

GUIDED = ("none", "vllm", "vllm-legacy", "sglang", "llamacpp", "spct")


def _constraint_body(guided: str, c: ScoreConstraint) -> dict[str, Any]:
    """extra_body fields that continue a prefilled assistant message under the score constraint."""
    prefill = {"continue_final_message": True, "add_generation_prompt": False}
    if guided == "vllm":
        return {**prefill, "structured_outputs": {"regex": score_tail_regex(c)}}
    if guided == "vllm-legacy":
        return {**prefill, "guided_regex": score_tail_regex(c)}
    if guided == "sglang":
        return {**prefill, "regex": score_tail_regex(c)}
    if guided == "llamacpp":
        return {"grammar": score_tail_gbnf(c)}
    raise ValueError(guided)


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        max_retries: int = 4,
        timeout: float = 300.0,
        guided: str = "none",
        context_length: int | None = None,
    ):
        if guided not in GUIDED:
            raise ValueError(f"unknown guided mode {guided!r}; choose from {', '.join(GUIDED)}")
        self.model = model.removeprefix("openai:")
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        # Local servers accept any key; the client library insists on one.
        self.api_key = api_key or os.environ.get("SPCT_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.guided = guided
        self.context_length = context_length

    # -- one HTTP call (the SDK retries it) --------------------------------------------------
    async def _call(self, client, sem: asyncio.Semaphore, messages: list[dict], n: int, req: GenerationRequest,
                    max_tokens: int, seed: int, extra_body: dict) -> list[Any]:
        import openai

        # The server tokenizes what we send: control-token look-alikes in judged text are broken up.
        kwargs: dict[str, Any] = {"model": self.model, "messages": neutralise_messages(messages), "n": n, "max_tokens": max_tokens,
                                  "temperature": req.temperature, "seed": seed}
        if req.temperature > 0:
            kwargs["top_p"] = 1.0
        if extra_body:
            kwargs["extra_body"] = extra_body
        attempts = f"{self.max_retries + 1} attempt(s)"
        try:
            async with sem:
                resp = await client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as e:
            raise BackendError(f"{self.base_url}: no answer within the {self.timeout:g} s timeout, {attempts}") from e
        except openai.APIConnectionError as e:
            raise BackendError(f"cannot reach the OpenAI-compatible server at {self.base_url} after {attempts}: "
                               f"{e.__cause__ or e}") from e
        except openai.APIStatusError as e:
            retried = e.status_code in (408, 409, 429) or e.status_code >= 500  # the SDK's rule
            raise BackendError(f"{self.base_url}: " + (f"giving up after {attempts}: " if retried else "")
                               + f"HTTP {e.status_code}: {e.message}") from e
        return list(resp.choices)

    # -- the two phases -------------------------------------------------------------------
    def forces_score_line(self, request: GenerationRequest) -> bool:
        # "spct": the server forces the line itself; "none": the server has no way to.
        return self.guided not in ("none", "spct")

    async def _one(self, client, sem, req: GenerationRequest) -> list[Generation]:
        extra: dict[str, Any] = {}
        if req.constraint and self.guided == "spct":
            c = req.constraint
            extra["spct_score_constraint"] = {"count": c.count, "prefix": c.prefix, "lo": c.lo, "hi": c.hi}
        choices: list[Any] = []
        while len(choices) < req.n:
            got = await self._call(client, sem, req.messages, req.n - len(choices), req, req.max_new_tokens,
                                   req.seed + len(choices), extra)
            if not got:
                raise BackendError(f"{self.base_url}: the server returned no choices")
            choices += got
        return [self._generation(ch) for ch in choices[: req.n]]

    @staticmethod
    def _generation(choice) -> Generation:
        text = choice.message.content or ""
        forced = bool(getattr(choice, "spct_forced", False))
        new_tokens = int(getattr(choice, "spct_new_tokens", 0) or 0)
        return Generation(text, "length" if choice.finish_reason == "length" else "stop", forced, new_tokens)

    async def _force(self, client, sem, cont: Continuation) -> tuple[str, int]:
        """Continue the assistant turn from `cont.prefill` under the server's constraint."""
        req, c = cont.request, cont.request.constraint
        messages = [*req.messages, {"role": "assistant", "content": cont.prefill}]
        choice = (await self._call(client, sem, messages, 1, req, score_budget(c), req.seed + 7919 + cont.sample,  # type: ignore[arg-type]
                                   _constraint_body(self.guided, c)))[0]  # type: ignore[arg-type]
        tail = choice.message.content or ""
        # Servers return only the continuation; be lenient if one echoes the prefill.
        return tail.removeprefix(cont.prefill).removeprefix(c.prefix), 0  # type: ignore[union-attr]

    async def _gather(self, jobs, items: list) -> list:
        import openai

        sem = asyncio.Semaphore(self.concurrency)
        async with openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout,
                                     max_retries=self.max_retries) as client:
            return list(await asyncio.gather(*(jobs(client, sem, x) for x in items)))

    def generate_free(self, requests: list[GenerationRequest]) -> list[list[Generation]]:
        return self._run_async(self._gather(self._one, requests))

    def generate_forced(self, continuations: list[Continuation]) -> list[tuple[str, int]]:
        return self._run_async(self._gather(self._force, continuations))

    @staticmethod
    def _run_async(coro) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        # Called from inside an event loop (a server, a notebook): run on a private loop in a thread.
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["out"] = asyncio.run(coro)
            except BaseException as e:  # re-raised in the caller's thread
                box["err"] = e

        t = threading.Thread(target=work)
        t.start()
        t.join()
        if "err" in box:
            raise box["err"]
        return box["out"]
