"""Micro-batching: requests that arrive together become one generation batch.

RL clients send many small reward requests at once; generating each alone wastes the engine.
Requests wait in a bounded asyncio queue; one worker takes what has arrived (waiting at most
`batch_wait_s` for more, up to `max_batch_examples`) and runs it as a single
`GenerativeRewardModel.sample` call in a worker thread, so the event loop keeps accepting and
refusing requests meanwhile. Past `max_queue` waiting requests a submit is refused (the app
answers 503 with Retry-After), never dropped. A request that times out is skipped if its batch
has not started. When a batch fails, each of its requests is re-run alone, so one poisoned
request fails by itself and the rest of the batch is still answered.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

from ..backends.base import BackendError
from ..data import Example, Reward
from ..judge import GenerativeRewardModel

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    def __init__(self, retry_after_s: int):
        super().__init__(f"the reward queue is full; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class JudgeFailed(RuntimeError):
    """A request's batch failed; `status` is the HTTP status the app answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class _Item:
    examples: list[Example]
    k: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    batches: int = 0
    batched_requests: int = 0
    batched_examples: int = 0
    rerun_alone: int = 0  # requests re-run alone after their batch failed
    judgments: int = 0
    parse_failures: int = 0
    batch_seconds: deque = field(default_factory=lambda: deque(maxlen=200))


class MicroBatcher:
    def __init__(self, grm: GenerativeRewardModel, *, max_queue: int = 256, max_batch_examples: int = 32,
                 batch_wait_s: float = 0.01):
        self.grm = grm
        self.max_queue = max_queue
        self.max_batch_examples = max_batch_examples
        self.batch_wait_s = batch_wait_s
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue else 0

    def _ensure_worker(self) -> asyncio.Queue:
        # Started lazily inside the serving loop, so the app works under any ASGI runner
        # (and test clients that open a new loop get a fresh queue bound to it).
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            self._queue, self._loop = asyncio.Queue(maxsize=self.max_queue), loop
            self._worker = None
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run(self._queue))
        return self._queue

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained by one batch's worth."""
        per_batch = sum(self.stats.batch_seconds) / len(self.stats.batch_seconds) if self.stats.batch_seconds else 1.0
        return max(1, math.ceil(per_batch * max(1, self.depth) / self.max_batch_examples))

    async def submit(self, examples: list[Example], k: int, timeout_s: float) -> list[Reward]:
        queue = self._ensure_worker()
        item = _Item(examples, k, asyncio.get_running_loop().create_future())
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            raise QueueFull(self.retry_after()) from None
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), timeout_s)
        except asyncio.TimeoutError:
            item.future.cancel()  # the worker skips it if its batch has not started
            raise

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass

    # -- worker -----------------------------------------------------------------------------
    async def _next_batch(self, queue: asyncio.Queue) -> list[_Item]:
        batch = [await queue.get()]
        size = len(batch[0].examples)
        deadline = time.perf_counter() + self.batch_wait_s
        while size < self.max_batch_examples:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), left)
                except asyncio.TimeoutError:
                    break
            batch.append(item)
            size += len(item.examples)
        return batch

    async def _run(self, queue: asyncio.Queue) -> None:
        while True:
            batch = [it for it in await self._next_batch(queue) if not it.future.done()]
            by_k: dict[int, list[_Item]] = {}
            for it in batch:
                by_k.setdefault(it.k, []).append(it)
            for k, items in by_k.items():
                t0 = time.perf_counter()
                try:
                    results = await asyncio.to_thread(self._judge, [ex for it in items for ex in it.examples], k)
                except Exception as e:  # noqa: BLE001 - any engine failure is reported per request
                    log.warning("batch of %d request(s) failed (%s); re-running each alone", len(items), e)
                    await self._rerun_alone(items, k, e)
                else:
                    self._deliver(items, results)
                self.stats.batch_seconds.append(time.perf_counter() - t0)
                self.stats.batches += 1
                self.stats.batched_requests += len(items)
                self.stats.batched_examples += sum(len(it.examples) for it in items)

    async def _rerun_alone(self, items: list[_Item], k: int, first_error: Exception) -> None:
        if len(items) == 1:
            self._fail(items[0], first_error)
            return
        for it in items:
            if it.future.done():
                continue
            self.stats.rerun_alone += 1
            try:
                self._deliver([it], await asyncio.to_thread(self._judge, it.examples, k))
            except Exception as e:  # noqa: BLE001
                self._fail(it, e)

    def _judge(self, examples: list[Example], k: int) -> list[Reward]:
        # The judge's own policy (voting, meta-guided, adaptive), all examples in one round.
        return self.grm.judge(examples, k, batch_size=max(1, len(examples)))

    def _deliver(self, items: list[_Item], rewards: list[Reward]) -> None:
        at = 0
        for it in items:
            mine = rewards[at : at + len(it.examples)]
            at += len(it.examples)
            self.stats.judgments += sum(len(r.judgments) for r in mine)
            self.stats.parse_failures += sum(r.failed for r in mine)
            if not it.future.done():
                it.future.set_result(mine)

    @staticmethod
    def _fail(item: _Item, error: Exception) -> None:
        if item.future.done():
            return
        if isinstance(error, BackendError):
            item.future.set_exception(JudgeFailed(502, f"the judge backend failed: {error}"))
        elif isinstance(error, ValueError):  # e.g. a query too long for the model's context
            item.future.set_exception(JudgeFailed(422, str(error)))
        else:
            item.future.set_exception(JudgeFailed(500, f"judging failed: {type(error).__name__}: {error}"))
