"""Micro-batching and listwise grouping: requests that arrive together become one generation batch.

RL clients send many small reward requests at once; generating each alone wastes the engine.
OpenRLHF (>= 0.9.1) even sends every rollout in a POST of its own, so the responses to one
prompt (a GRPO group) reach the server one by one, spread over as long as the policy takes to
generate them. The batcher regroups them: a rollout joins the open group of its prompt (same
k); a group is judged, listwise, as one example, once it holds the G responses its prompt is
sampled with, or at its deadline, `group_window_s` after its FIRST response arrived. G comes
from the request (`group_size`), else from the server (`group_size`), else from the request
itself when it carries several rollouts (a batching client sends each group whole), else it is
learned from arrivals (grouping.py). A G past `max_group_size` is judged in near-equal parts (100 at
64: 50 + 50), each as soon as it is whole: the prompt's "round" counts the responses its earlier
parts took, so the last part knows its size too. Each request gets the reward of its own
response. Explicit examples (/v1/judge) are judged as sent.

One worker takes the groups that are ready (waiting at most `batch_wait_s` for more, up to
`max_batch_examples`) and runs them as a single `GenerativeRewardModel.sample` call in a worker
thread, so the event loop keeps accepting requests meanwhile. At most `max_queue` requests
wait; past that a request whose responses can all join open groups of their prompts is taken
at once (it adds no example to judge, and holding it back would split its group), and any
other either waits for room (`when_full="wait"`, the default: RL clients such as OpenRLHF
cannot back off, and a refusal costs them a reward) or is refused at once (`"reject"`: the
app answers 503 with Retry-After). Either way a request never waits longer
than its timeout, and a request that times out is dropped from its group if the group has not
started. When a batch fails, each of its groups is re-run alone, so one poisoned request fails
by itself and the rest of the batch is still answered; a rollout group that fails alone is
re-run in halves, and halves of the halves that fail, until the rollouts that break the engine
are alone: only their requests get the error, and the rest are judged in groups as large as
the failure allows (a few calls, not one per rollout).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from ..backends.base import BackendError
from ..data import Example, Query, Reward
from ..judge import GenerativeRewardModel
from .grouping import GroupSizeLearner

log = logging.getLogger(__name__)

WHEN_FULL = ("wait", "reject")


def example_id(query: Query, responses: list[str]) -> str:
    """Content-derived, so an example gets the same shuffles and seeds whatever batch it lands in."""
    return "h" + hashlib.sha256(json.dumps([query, responses]).encode()).hexdigest()[:16]


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
class _Job:
    """One request: a result slot per part, filled as the groups holding its parts are judged."""

    k: int
    future: asyncio.Future
    slots: list
    untaken: int  # parts no batch has taken yet
    counted: bool = True  # still counted in the queue depth


@dataclass
class _Member:
    job: _Job
    slot: int
    positions: list[int]  # where the job's responses sit in the group's example


@dataclass
class _Group:
    """Responses judged together as one example: an explicit example, or rollouts of one prompt."""

    key: tuple | None  # (group key, k) for rollouts, which others may join; None for an explicit example
    query: Query
    responses: list[str]
    members: list[_Member]
    opened: float  # when its first response arrived: the deadline counts from here
    example: Example | None = None
    asked: int | None = None  # G the request named
    implied: int | None = None  # responses to this prompt in the (multi-rollout) request that opened the group
    before: int = 0  # responses of its prompt's G already judged in earlier parts (G > max_group_size)


@dataclass
class BatchStats:
    batches: int = 0
    batched_requests: int = 0
    batched_examples: int = 0
    rerun_alone: int = 0  # groups re-run alone after their batch failed
    judgments: int = 0
    parse_failures: int = 0
    rollouts: int = 0  # single responses (/get_reward, /v1/rollout) judged
    rollout_examples: int = 0  # examples those responses were judged in
    group_sizes: Counter = field(default_factory=Counter)  # responses per rollout example judged -> examples
    groups_closed: Counter = field(default_factory=Counter)  # "full" / "deadline" -> rollout groups
    batch_seconds: deque = field(default_factory=lambda: deque(maxlen=200))


class MicroBatcher:
    def __init__(self, grm: GenerativeRewardModel, *, max_queue: int = 16384, max_batch_examples: int = 32,
                 batch_wait_s: float = 0.01, group_window_s: float = 60.0, group_size: int | None = None,
                 max_group_size: int = 64, when_full: str = "wait"):
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {WHEN_FULL}, got {when_full!r}")
        if max_group_size < 1:
            raise ValueError(f"max_group_size must be >= 1, got {max_group_size}")
        if group_size is not None and group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.grm = grm
        self.max_queue = max_queue
        self.max_batch_examples = max_batch_examples
        self.batch_wait_s = batch_wait_s
        self.group_window_s = group_window_s
        self.group_size = group_size
        self.max_group_size = max_group_size
        self.when_full = when_full
        self.learner = GroupSizeLearner(group_window_s)
        self.stats = BatchStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task | None = None
        self._pending: list[_Group] = []  # in arrival order
        self._open: dict[tuple, _Group] = {}  # rollout groups others may still join
        # key -> [first arrival, responses taken by parts closed whole]: a G past max_group_size, part way
        # judged. In first-arrival order, so the rounds whose window has passed are at the front.
        self._rounds: dict[tuple, list] = {}
        self._depth = 0
        self._waiting = 0  # requests waiting for room
        self._changed = asyncio.Event()
        self._room = asyncio.Condition()

    @property
    def depth(self) -> int:
        """Requests waiting for a batch."""
        return self._depth

    def _ensure_worker(self) -> None:
        # Started lazily inside the serving loop, so the app works under any ASGI runner
        # (and test clients that open a new loop get fresh state bound to it).
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._worker = loop, None
            self._pending, self._open, self._rounds, self._depth, self._waiting = [], {}, {}, 0, 0
            self._changed, self._room = asyncio.Event(), asyncio.Condition()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run())

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained by one batch's worth."""
        per_batch = sum(self.stats.batch_seconds) / len(self.stats.batch_seconds) if self.stats.batch_seconds else 1.0
        return max(1, math.ceil(per_batch * max(1, self.depth) / self.max_batch_examples))

    # -- grouping ---------------------------------------------------------------------------
    def _size(self, g: _Group) -> int:
        """G for a rollout group (the cap while it is unknown)."""
        return g.asked or self.group_size or g.implied or self.learner.size or self.max_group_size

    def _target(self, g: _Group) -> int:
        """How many responses complete a rollout group: what is left of G (all of it unless earlier
        parts took some), cut into near-equal parts of at most max_group_size."""
        size = self._size(g)
        left = size - g.before if g.before < size else size
        return math.ceil(left / math.ceil(left / self.max_group_size))

    def _full(self, g: _Group) -> bool:
        return len(g.responses) >= self._target(g)

    def _closed_whole(self, g: _Group) -> None:
        """Count a rollout group closed whole towards its prompt's round; a round that reaches G ends."""
        taken = g.before + len(g.responses)
        round_ = self._rounds.get(g.key)
        if taken >= self._size(g):
            self._rounds.pop(g.key, None)
        elif g.before and round_ is not None:
            round_[1] = taken
        else:  # the first part of a new round
            self._rounds.pop(g.key, None)  # re-inserted: first-arrival order
            self._rounds[g.key] = [g.opened, taken]

    def _expire_rounds(self, now: float) -> None:
        while self._rounds:
            key = next(iter(self._rounds))
            if now < self._rounds[key][0] + self.group_window_s:
                break
            del self._rounds[key]

    # -- submitting ---------------------------------------------------------------------------
    async def submit(self, examples: list[Example], k: int, timeout_s: float) -> list[Reward]:
        """Judge explicit examples, each as sent; one Reward per example."""
        def place(job: _Job, now: float) -> bool:
            for slot, ex in enumerate(examples):
                member = _Member(job, slot, list(range(len(ex.responses))))
                self._pending.append(_Group(None, ex.query, list(ex.responses), [member], now, ex))
            return False  # nobody joins an explicit example

        results = await self._submit(len(examples), k, timeout_s, place, lambda: False)
        return [reward for reward, _ in results]

    async def submit_rollouts(self, rollouts: list[tuple[Hashable, Query, str]], k: int, timeout_s: float,
                              group_size: int | None = None) -> list[tuple[Reward, int]]:
        """Judge single responses (group key, query, response), each listwise with the other
        responses with the same key (the prompt, or a client's group id) that arrive meanwhile;
        per response its example's Reward and its position in that example. `group_size`: G,
        when the client knows it."""
        counts = Counter(prompt for prompt, _, _ in rollouts)

        def place(job: _Job, now: float) -> bool:
            opened = False
            for slot, (prompt, query, response) in enumerate(rollouts):
                key = (prompt, k)
                self.learner.arrive(key, now)
                group = self._open.get(key)
                if group is None:
                    # A request of several rollouts comes from a batching client: it holds each of its prompts' groups.
                    implied = counts[prompt] if len(rollouts) > 1 else None
                    round_ = self._rounds.get(key)
                    before = round_[1] if round_ is not None and now < round_[0] + self.group_window_s else 0
                    group = self._open[key] = _Group(key, query, [], [], now, asked=group_size, implied=implied,
                                                     before=before)
                    self._pending.append(group)
                    opened = True
                group.members.append(_Member(job, slot, [len(group.responses)]))
                group.responses.append(response)
                if self._full(group):
                    del self._open[key]  # complete: the next rollout of this prompt opens a new group
                    self._closed_whole(group)
            return opened

        def joinable() -> bool:
            return all((prompt, k) in self._open for prompt, _, _ in rollouts)

        results = await self._submit(len(rollouts), k, timeout_s, place, joinable)
        return [(reward, positions[0]) for reward, positions in results]

    async def _submit(self, parts: int, k: int, timeout_s: float, place: Callable[[_Job, float], bool],
                      joinable: Callable[[], bool]) -> list[tuple[Reward, list[int]]]:
        if parts == 0:  # nothing to judge: a job without parts would never be completed
            return []
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        # Past max_queue, a request that only joins open groups is still taken: it adds no
        # example, and holding it back would leave its group to be judged without it.
        if self._depth >= self.max_queue and not joinable():
            if self.when_full == "reject":
                raise QueueFull(self.retry_after())
            self._waiting += 1
            try:
                async with self._room:  # wait for room (or an open group), within the request's own time budget
                    await asyncio.wait_for(self._room.wait_for(lambda: self._depth < self.max_queue or joinable()),
                                           deadline - loop.time())
            finally:
                self._waiting -= 1
        job = _Job(k, loop.create_future(), [None] * parts, parts)
        self._depth += 1
        opened = place(job, loop.time())
        self._changed.set()
        if opened and self._waiting:  # waiting requests to this prompt can join now
            async with self._room:
                self._room.notify_all()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            job.future.cancel()  # the worker drops its parts from groups that have not started
            self._uncount(job)
            raise

    def _uncount(self, job: _Job) -> None:
        if job.counted:
            job.counted = False
            self._depth -= 1

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass

    # -- worker -----------------------------------------------------------------------------
    def _ready(self, now: float) -> list[_Group]:
        self.learner.expire(now)  # a newly learned G may complete open groups
        self._expire_rounds(now)
        return [g for g in self._pending if g.key is None or self._full(g) or now >= g.opened + self.group_window_s]

    async def _wait_change(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _next_batch(self) -> list[_Group]:
        loop = asyncio.get_running_loop()
        while True:  # until some group is ready
            self._changed.clear()
            now = loop.time()
            ready = self._ready(now)
            if ready:
                break
            soonest = min((g.opened + self.group_window_s for g in self._pending), default=None)
            await self._wait_change(None if soonest is None else max(0.0, soonest - now))
        until = loop.time() + self.batch_wait_s
        while len(ready) < self.max_batch_examples and loop.time() < until:  # a moment for more
            self._changed.clear()
            await self._wait_change(until - loop.time())
            ready = self._ready(loop.time())
        batch = ready[: self.max_batch_examples]
        taken = {id(g) for g in batch}
        self._pending = [g for g in self._pending if id(g) not in taken]
        now = loop.time()
        for g in batch:
            if g.key is not None:  # judged complete, or because its deadline passed first
                self.stats.groups_closed["deadline" if now >= g.opened + self.group_window_s else "full"] += 1
                if self._open.get(g.key) is g:
                    del self._open[g.key]
                    if self._full(g):  # whole at a G learned meanwhile
                        self._closed_whole(g)
                    else:  # its deadline passed: what is missing of its G is not coming
                        self._rounds.pop(g.key, None)
            for m in g.members:
                m.job.untaken -= 1
                if m.job.untaken == 0:
                    self._uncount(m.job)
        async with self._room:
            self._room.notify_all()
        return [g for g in map(self._live, batch) if g is not None]

    @staticmethod
    def _live(g: _Group) -> _Group | None:
        """The group without the responses of requests answered meanwhile (timed out, or failed by
        another of their responses); None if none is left."""
        live = [m for m in g.members if not m.job.future.done()]
        if len(live) == len(g.members):
            return g
        if not live or g.key is None:
            return None
        responses = [g.responses[m.positions[0]] for m in live]
        members = [_Member(m.job, m.slot, [i]) for i, m in enumerate(live)]
        return _Group(g.key, g.query, responses, members, g.opened)

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            by_k: dict[int, list[_Group]] = {}
            for g in batch:
                by_k.setdefault(g.members[0].job.k, []).append(g)
            for k, groups in by_k.items():
                t0 = time.perf_counter()
                try:
                    results = await asyncio.to_thread(self._judge, [self._example(g) for g in groups], k)
                except Exception as e:  # noqa: BLE001 - any engine failure is reported per request
                    log.warning("batch of %d example(s) failed (%s); re-running each alone", len(groups), e)
                    await self._rerun_alone(groups, k, e)
                else:
                    self._deliver(groups, results)
                self.stats.batch_seconds.append(time.perf_counter() - t0)
                self.stats.batches += 1
                self.stats.batched_requests += len({id(m.job) for g in groups for m in g.members})
                self.stats.batched_examples += len(groups)

    @staticmethod
    def _example(g: _Group) -> Example:
        return g.example if g.example is not None else Example(example_id(g.query, g.responses), g.query, g.responses)

    async def _rerun_alone(self, groups: list[_Group], k: int, first_error: Exception) -> None:
        """Judge each group of a failed batch on its own. A rollout group that fails is judged in
        halves, recursively, so only the requests whose responses break the engine get the error."""
        if len(groups) == 1:
            if self._splittable(groups[0]):
                await self._rerun_alone(self._halves(groups[0]), k, first_error)
            else:
                self._fail(groups[0], first_error)
            return
        for live in map(self._live, groups):
            if live is None:  # every request in it has its answer (an error from an earlier part) or timed out
                continue
            self.stats.rerun_alone += 1
            try:
                self._deliver([live], await asyncio.to_thread(self._judge, [self._example(live)], k))
            except Exception as e:  # noqa: BLE001
                if self._splittable(live):
                    await self._rerun_alone(self._halves(live), k, e)
                else:
                    self._fail(live, e)

    @staticmethod
    def _splittable(g: _Group) -> bool:
        return g.key is not None and len(g.members) > 1

    @staticmethod
    def _halves(g: _Group) -> list[_Group]:
        """A rollout group as two, the first half of its rollouts and the rest, each to be judged on its own."""
        half = len(g.members) // 2
        return [_Group(g.key, g.query, [g.responses[m.positions[0]] for m in part],
                       [_Member(m.job, m.slot, [i]) for i, m in enumerate(part)], g.opened)
                for part in (g.members[:half], g.members[half:])]

    def _judge(self, examples: list[Example], k: int) -> list[Reward]:
        # The judge's own policy (voting, meta-guided, adaptive), all examples in one round.
        return self.grm.judge(examples, k, batch_size=max(1, len(examples)))

    def _deliver(self, groups: list[_Group], rewards: list[Reward]) -> None:
        for g, reward in zip(groups, rewards, strict=True):
            self.stats.judgments += len(reward.judgments)
            self.stats.parse_failures += reward.failed
            if g.key is not None:
                self.stats.rollouts += len(g.responses)
                self.stats.rollout_examples += 1
                self.stats.group_sizes[len(g.responses)] += 1
            for m in g.members:
                job = m.job
                if job.future.done():
                    continue
                job.slots[m.slot] = (reward, m.positions)
                if all(s is not None for s in job.slots):
                    job.future.set_result(job.slots)

    @staticmethod
    def _fail(g: _Group, error: Exception) -> None:
        if isinstance(error, BackendError):
            failure = JudgeFailed(502, f"the judge backend failed: {error}")
        elif isinstance(error, ValueError):  # e.g. a query too long for the model's context
            failure = JudgeFailed(422, str(error))
        else:
            failure = JudgeFailed(500, f"judging failed: {type(error).__name__}: {error}")
        for m in g.members:
            if not m.job.future.done():
                m.job.future.set_exception(failure)
