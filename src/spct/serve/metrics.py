"""What the reward server reports about itself: Prometheus text at /metrics, the same as JSON.

Operators scrape /metrics in Prometheus' text format; /metrics/json is the same state for a
human with curl. Both read the batcher's counters at request time, so nothing is counted twice;
only request latency is observed as it happens (a Prometheus histogram, plus a window of recent
values for the JSON percentiles). Each app has a registry of its own, so several apps in one
process (tests, embedding) never share or clash over metrics.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .batcher import MicroBatcher

# Rollout groups are at most protocol.MAX_RESPONSES (64) responses.
GROUP_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# Judging takes from well under a second (a fake engine) to the full request timeout.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 90, 120, 150, 180)


class ServerMetrics(Collector):
    def __init__(self, batcher: MicroBatcher, group_size: int | None):
        self.batcher = batcher
        self.group_size = group_size  # given by the operator; the learned one is read from the batcher
        self.started = time.time()
        self.statuses: Counter = Counter()
        self.latencies: deque = deque(maxlen=2000)  # for the JSON percentiles
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram("spct_request_duration_seconds", "Time to answer a judging request, queueing included",
                                 ["path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(self)

    def observe(self, path: str, status: int, seconds: float | None = None) -> None:
        """Count one answered request; `seconds` for the judging endpoints, whose latency matters."""
        self.statuses[status] += 1
        if seconds is not None:
            self.latencies.append(seconds)
            self.latency.labels(path).observe(seconds)

    def prometheus(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        s = self.batcher.stats
        requests = CounterMetricFamily("spct_requests", "Requests answered, by HTTP status", labels=["status"])
        for status, n in sorted(self.statuses.items()):
            requests.add_metric([str(status)], n)
        yield requests
        yield GaugeMetricFamily("spct_queue_depth", "Requests waiting for a batch", value=self.batcher.depth)
        yield CounterMetricFamily("spct_batches", "Generation batches run", value=s.batches)
        yield CounterMetricFamily("spct_batched_requests", "Requests in those batches", value=s.batched_requests)
        yield CounterMetricFamily("spct_batched_examples", "Examples in those batches", value=s.batched_examples)
        yield CounterMetricFamily("spct_groups_rerun_alone", "Groups re-run alone after their batch failed",
                                  value=s.rerun_alone)
        yield CounterMetricFamily("spct_judgments", "Judgments generated", value=s.judgments)
        yield CounterMetricFamily("spct_parse_failures", "Judgments that failed to parse", value=s.parse_failures)
        yield CounterMetricFamily("spct_rollouts_judged", "Single responses judged in regrouped groups "
                                  "(/get_reward, /v1/rollout)", value=s.rollouts)
        sizes = HistogramMetricFamily("spct_rollout_group_size", "Responses per judgment of a regrouped group")
        sizes.add_metric([], [(str(float(b)), sum(c for n, c in s.group_sizes.items() if n <= b)) for b in GROUP_SIZE_BUCKETS]
                         + [("+Inf", sum(s.group_sizes.values()))], sum(n * c for n, c in s.group_sizes.items()))
        yield sizes
        closed = CounterMetricFamily("spct_rollout_groups_closed", "Rollout groups taken for judging, by why: "
                                     "complete (full) or their deadline passed (deadline)", labels=["reason"])
        for reason in ("full", "deadline"):
            closed.add_metric([reason], s.groups_closed[reason])
        yield closed
        expected = GaugeMetricFamily("spct_expected_group_size", "G, responses per prompt: given by the operator "
                                     "or learned from arrivals (absent while unknown)", labels=["source"])
        for source, value in (("given", self.group_size), ("learned", self.batcher.learner.size)):
            if value is not None:
                expected.add_metric([source], value)
        yield expected
        yield GaugeMetricFamily("spct_start_time_seconds", "When the server started (Unix time)", value=self.started)

    def json(self) -> dict:
        lat = sorted(self.latencies)
        s = self.batcher.stats

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 4) if lat else None

        return {
            "uptime_s": round(time.time() - self.started, 1),
            "requests": {str(k): v for k, v in sorted(self.statuses.items())},
            "queue_depth": self.batcher.depth,
            "latency_s": {"p50": pct(0.5), "p99": pct(0.99), "window": len(lat)},
            "batches": s.batches,
            "mean_batch_requests": round(s.batched_requests / s.batches, 2) if s.batches else None,
            "mean_batch_examples": round(s.batched_examples / s.batches, 2) if s.batches else None,
            "requests_rerun_alone": s.rerun_alone,
            "mean_rollout_group_size": round(s.rollouts / s.rollout_examples, 2) if s.rollout_examples else None,
            "rollout_group_sizes": {str(n): c for n, c in sorted(s.group_sizes.items())},
            "rollout_groups_closed": dict(sorted(s.groups_closed.items())),
            "group_size": {"given": self.group_size, "learned": self.batcher.learner.size},
            "judgments": s.judgments,
            "parse_failures": s.parse_failures,
        }
