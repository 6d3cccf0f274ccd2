"""Learning G, the number of responses an RL trainer samples per prompt, from when they arrive.

A rollout group is judged at once when it holds G responses; without G it waits for its
deadline. When neither the request nor the operator gives G, the server learns it: every
response to a prompt that arrives within `window_s` of that prompt's first response counts
toward one episode, and G is the most common episode size of the recent past. It counts
arrivals, not judged groups, so closing groups early at a learned G cannot bias what is
learned next.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable


class GroupSizeLearner:
    def __init__(self, window_s: float, history: int = 256):
        self.window_s = window_s
        # key -> [first arrival, responses so far]; dicts keep insertion order, which is
        # first-arrival order, so the episodes that end first are always at the front.
        self._episodes: dict[Hashable, list] = {}
        self._sizes: deque[int] = deque(maxlen=history)
        self.size: int | None = None  # None until one episode has ended

    def arrive(self, key: Hashable, now: float) -> None:
        self.expire(now)
        episode = self._episodes.get(key)
        if episode is None:
            self._episodes[key] = [now, 1]
        else:
            episode[1] += 1

    def expire(self, now: float) -> None:
        """End the episodes whose window has passed and update the learned size."""
        ended = False
        while self._episodes:
            key = next(iter(self._episodes))
            first, count = self._episodes[key]
            if now < first + self.window_s:
                break
            del self._episodes[key]
            self._sizes.append(count)
            ended = True
        if ended:
            # The most common size; on a tie the larger, which waits rather than splits.
            self.size = max(Counter(self._sizes).items(), key=lambda kv: (kv[1], kv[0]))[0]

