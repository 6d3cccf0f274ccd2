"""One way to get GRM rewards for groups of responses, in-process or from a running `spct serve`.

Every adapter (TRL, OpenRLHF, verl) turns its framework's call into groups: one query with
the responses to judge together. `RewardClient` judges the groups either with a
GenerativeRewardModel in this process or over HTTP against the server's /v1/judge, and
returns each response's mean judge score (1..10, comparable across k), or None where every
sampled judgment failed, never a made-up default.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..data import Example, Query
from ..defaults import SERVE_MAX_NEW_TOKENS
from ..judge import GenerativeRewardModel, JudgeConfig, readable_by
from ..rollouts import MAX_ITEMS, MAX_RESPONSES
from ..settings import from_env

log = logging.getLogger(__name__)

Group = tuple[Query, list[str]]
JSON = {"Content-Type": "application/json"}
MAX_PER_REQUEST = MAX_ITEMS  # examples per /v1/judge call (the server's limit)
MAX_BODY_BYTES = 4 * 1024 * 1024  # bytes per request: `spct serve`'s default --max-body-mb


def _dumps(obj: Any) -> bytes:
    """A request body: compact UTF-8 JSON, as the server counts it against its limit."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class RewardError(RuntimeError):
    """The reward could not be computed (server refused or failed); the message says why."""


def auth_headers(api_key: str | None) -> dict[str, bytes]:
    """The Authorization header for `api_key`, as bytes: httpx sends a str header only if it is
    ASCII, and the server compares the key's UTF-8 (or, for a key from a command line or the
    environment that is not UTF-8, the bytes as typed)."""
    return {"Authorization": b"Bearer " + api_key.encode("utf-8", "surrogateescape")} if api_key else {}


class RewardClient:
    def __init__(self, grm: GenerativeRewardModel | None = None, *, url: str | None = None, api_key: str | None = None,
                 k: int | None = None, timeout_s: float = 600.0, max_busy_retries: int = 20,
                 max_body_bytes: int = MAX_BODY_BYTES):
        if (grm is None) == (url is None):
            raise ValueError("give exactly one of grm (in-process) or url (a running `spct serve`)")
        self.grm = grm
        self.url = url.rstrip("/") if url else None
        self.headers = auth_headers(api_key)
        self.k = k
        self.timeout_s = timeout_s
        self.max_busy_retries = max_busy_retries
        self.max_body_bytes = max_body_bytes  # the server's --max-body-mb, when it was raised

    @classmethod
    def from_env(cls, **overrides: Any) -> RewardClient:
        """Configured by SPCT_REWARD_URL (+ SPCT_API_KEY) for a server, else in-process with EngineConfig's
        fields from SPCT_MODEL, SPCT_ENGINE, SPCT_DEVICE, ... (default: the embedded model); the judging
        settings come from JudgeConfig's SPCT_K, SPCT_MAX_NEW_TOKENS, ... (`spct.settings.from_env`)
        with serving's token budget and one retry. Keyword overrides (a field name, or url, api_key
        and RewardClient's own) win."""
        from ..backends import EngineConfig, load_backend
        from ..backends.models import recommended_judging

        def take(config_cls: type) -> dict[str, Any]:
            return {f.name: overrides.pop(f.name) for f in fields(config_cls) if f.name in overrides}

        serving = {"max_new_tokens": SERVE_MAX_NEW_TOKENS, "retries": 1}
        judge_settings, engine = take(JudgeConfig), take(EngineConfig)
        url = overrides.pop("url", None) or os.environ.get("SPCT_REWARD_URL")
        if url:
            judging = from_env(JudgeConfig, serving, **judge_settings)
            return cls(url=url, api_key=overrides.pop("api_key", None) or os.environ.get("SPCT_API_KEY"), k=judging.k,
                       **overrides)
        engine_config = from_env(EngineConfig, **engine)
        # In-process, the model's own reading (spct_judging.json) is the default, as on the command line.
        recommended = recommended_judging(engine_config.model, engine_config.engine)
        judging = from_env(JudgeConfig, {**recommended, **serving}, **judge_settings)
        backend = load_backend(engine_config)
        if "readout" not in judge_settings and not os.environ.get("SPCT_READOUT", "").strip():
            judging, note = readable_by(judging, backend)
            if note:
                log.warning(note)
        grm = GenerativeRewardModel(backend, judging)
        return cls(grm, k=judging.k, **overrides)

    # -- in-process ---------------------------------------------------------------------------
    @staticmethod
    def _examples(groups: Sequence[Group]) -> list[Example]:
        return [Example(f"g{i}", query, list(responses)) for i, (query, responses) in enumerate(groups)]

    def _local(self, groups: Sequence[Group]) -> list[list[float | None]]:
        assert self.grm is not None
        examples = self._examples(groups)
        rewards = self.grm.judge(examples, self.k, batch_size=max(1, len(examples)))
        return [r.mean_scores or [None] * len(ex.responses)
                for ex, r in zip(examples, rewards, strict=True)]

    # -- over HTTP ----------------------------------------------------------------------------
    def _payloads(self, groups: Sequence[Group]) -> list[tuple[list[dict], bytes]]:
        """The /v1/judge requests for `groups`, in order: their examples and body. Each holds at most
        the server's MAX_PER_REQUEST examples and max_body_bytes (a body past it is a 413), save a
        lone example larger than that, which goes alone for the server to judge or refuse."""
        def body(examples: list[dict]) -> bytes:
            return _dumps({"examples": examples, "k": self.k})

        out: list[tuple[list[dict], bytes]] = []
        batch: list[dict] = []
        empty = size = len(body([]))
        for q, rs in groups:
            example = {"query": q, "responses": list(rs)}
            n = len(_dumps(example)) + 1  # and a comma
            if batch and (len(batch) == MAX_PER_REQUEST or size + n > self.max_body_bytes):
                out.append((batch, body(batch)))
                batch, size = [], empty
            batch.append(example)
            size += n
        if batch:
            out.append((batch, body(batch)))
        return out

    @staticmethod
    def _scores(body: dict, examples: list[dict]) -> list[list[float | None]]:
        if len(body["rewards"]) != len(examples):
            raise RewardError(f"server answered {len(body['rewards'])} rewards for {len(examples)} examples")
        return [r["mean_scores"] if r["mean_scores"] is not None else [None] * len(ex["responses"])
                for r, ex in zip(body["rewards"], examples, strict=True)]

    # httpx's transport retries cover failed connects only, not a busy 503 with Retry-After, and
    # there is no OpenAI SDK here (/v1/judge is spct's own API): the busy loops below stay.
    def _check(self, response) -> bool:
        """True when the server was busy (503: wait and retry); raises on any other failure."""
        if response.status_code == 503:
            return True
        if response.status_code != 200:
            try:
                reason = response.json().get("error", response.text)
            except ValueError:
                reason = response.text
            raise RewardError(f"reward server answered {response.status_code}: {reason}")
        return False

    def _remote(self, groups: Sequence[Group]) -> list[list[float | None]]:
        import httpx

        out: list[list[float | None]] = []
        with httpx.Client(timeout=self.timeout_s, headers=self.headers) as client:
            for examples, body in self._payloads(groups):
                for _ in range(self.max_busy_retries + 1):
                    resp = client.post(f"{self.url}/v1/judge", content=body, headers=JSON)
                    if not self._check(resp):
                        break
                    time.sleep(float(resp.headers.get("retry-after", "1")))
                else:
                    raise RewardError(f"reward server stayed busy after {self.max_busy_retries} retries")
                out += self._scores(resp.json(), examples)
        return out

    async def _apost(self, client: Any, path: str, body: bytes) -> dict:
        """POST a JSON body to the server, waiting out 503s as told by Retry-After; the answer's JSON."""
        for _ in range(self.max_busy_retries + 1):
            resp = await client.post(f"{self.url}{path}", content=body, headers=JSON)
            if not self._check(resp):
                return resp.json()
            await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
        raise RewardError(f"reward server stayed busy after {self.max_busy_retries} retries")

    async def _aremote(self, groups: Sequence[Group]) -> list[list[float | None]]:
        import httpx

        async with httpx.AsyncClient(timeout=self.timeout_s, headers=self.headers) as client:
            async def one(examples: list[dict], body: bytes) -> list[list[float | None]]:
                return self._scores(await self._apost(client, "/v1/judge", body), examples)

            parts = await asyncio.gather(*(one(*p) for p in self._payloads(groups)))
        return [scores for part in parts for scores in part]

    async def ajudge_rollout(self, key: str, query: Query, response: str, group_size: int) -> tuple[float, int]:
        """One response, judged by the server with the others posted under `key` (its /v1/rollout):
        the mean judge score and the size of the group it was judged in."""
        import httpx

        if self.url is None:
            raise ValueError("ajudge_rollout needs a server (url): in-process, use GroupGatherer")
        payload = {"key": key, "query": query, "response": response, "group_size": group_size, "k": self.k}
        async with httpx.AsyncClient(timeout=self.timeout_s, headers=self.headers) as client:
            body = await self._apost(client, "/v1/rollout", _dumps(payload))
        return body["reward"], body["group_size"]

    # -- public -------------------------------------------------------------------------------
    def judge_groups(self, groups: Sequence[Group]) -> list[list[float | None]]:
        """Mean judge score per response, group by group."""
        if not groups:
            return []
        if self.grm is not None:
            return self._local(groups)
        parts, counts = split_groups(groups)
        return join_parts(self._remote(parts), counts)

    async def ajudge_groups(self, groups: Sequence[Group]) -> list[list[float | None]]:
        if not groups:
            return []
        if self.grm is not None:
            return await asyncio.to_thread(self._local, groups)
        parts, counts = split_groups(groups)
        return join_parts(await self._aremote(parts), counts)


def split_groups(groups: Sequence[Group], limit: int = MAX_RESPONSES) -> tuple[list[Group], list[int]]:
    """Groups larger than the server takes (`limit` responses per example), cut into near-equal parts.

    Returns the parts and how many parts each group became; a part is judged listwise on its
    own (100 responses -> two judgments of 50, not 64 + 36).
    """
    parts: list[Group] = []
    counts: list[int] = []
    for query, responses in groups:
        n = max(1, math.ceil(len(responses) / limit))
        size = math.ceil(len(responses) / n)
        parts += [(query, responses[b : b + size]) for b in range(0, len(responses), size)] or [(query, responses)]
        counts.append(n)
    return parts, counts


def join_parts(scores: list[list[float | None]], counts: list[int]) -> list[list[float | None]]:
    """The inverse of split_groups on the scores: each group's parts joined back in order."""
    out, at = [], 0
    for n in counts:
        out.append([s for part in scores[at : at + n] for s in part])
        at += n
    return out


def group_runs(prompts: Sequence[Any], size: int | None = None) -> list[list[int]]:
    """Indices of consecutive equal prompts (TRL's num_generations runs), cut into runs of `size` if given."""
    runs: list[list[int]] = []
    for i, p in enumerate(prompts):
        if runs and prompts[runs[-1][0]] == p and (size is None or len(runs[-1]) < size):
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def group_equal(prompts: Sequence[Any]) -> list[list[int]]:
    """Indices of equal prompts wherever they occur, in first-seen order (OpenRLHF, verl batches)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(repr(p), []).append(i)
    return list(groups.values())


def scatter(groups: list[list[int]], scores: list[list[float | None]], n: int) -> list[float | None]:
    out: list[float | None] = [None] * n
    for idx, s in zip(groups, scores, strict=True):
        for i, v in zip(idx, s, strict=True):
            out[i] = v
    return out


class ServerGrouper:
    """GroupGatherer's counterpart against a running `spct serve`: each response goes to the
    server under its group's key with G, and the server holds it until the group is complete
    (or the server's deadline passes). As every worker posts to the same server, a group is
    judged whole however its responses are spread over workers, processes or machines."""

    def __init__(self, client: RewardClient, group_size: int):
        if client.url is None:
            raise ValueError("ServerGrouper needs a client with a url (a running `spct serve`)")
        self.client = client
        self.group_size = group_size

    async def score(self, key: Hashable, query: Query, response: str) -> tuple[float | None, int]:
        return await self.client.ajudge_rollout(str(key), query, response, self.group_size)


@dataclass
class _OpenGroup:
    query: Query
    responses: list[str] = field(default_factory=list)
    futures: list[asyncio.Future] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class GroupGatherer:
    """Regroups responses that arrive one at a time (verl's reward loop scores each sample in a
    task of its own) so the responses to one prompt are judged together, listwise.

    `score(key, query, response)` waits until `group_size` responses share `key` (verl's GRPO
    `uid`) or `window_s` has passed since the first, judges them in one example, and returns
    this response's mean judge score (None when every judgment failed) and the group's size.
    Use it from one event loop.
    """

    def __init__(self, client: RewardClient, group_size: int, window_s: float = 1.0):
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.client = client
        self.group_size = group_size
        self.window_s = window_s
        self._open: dict[Hashable, _OpenGroup] = {}

    async def score(self, key: Hashable, query: Query, response: str) -> tuple[float | None, int]:
        loop = asyncio.get_running_loop()
        group = self._open.get(key)
        if group is None:
            group = self._open[key] = _OpenGroup(query)
            group.timer = loop.call_later(self.window_s, self._close, key, group)
        future: asyncio.Future = loop.create_future()
        group.responses.append(response)
        group.futures.append(future)
        if len(group.responses) >= self.group_size:
            self._close(key, group)
        return await future

    def _close(self, key: Hashable, group: _OpenGroup) -> None:
        if self._open.get(key) is group:
            del self._open[key]
        if group.timer is not None:
            group.timer.cancel()
        asyncio.get_running_loop().create_task(self._judge(group))

    async def _judge(self, group: _OpenGroup) -> None:
        try:
            [scores] = await self.client.ajudge_groups([(group.query, group.responses)])
        except Exception as e:  # noqa: BLE001 - every waiting response gets the failure
            for f in group.futures:
                if not f.done():
                    f.set_exception(e)
            return
        for f, s in zip(group.futures, scores, strict=True):
            if not f.done():
                f.set_result((s, len(group.responses)))
