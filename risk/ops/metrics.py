"""Prometheus metrics of every API and worker process.

Under `presign serve` (and wherever PROMETHEUS_MULTIPROC_DIR is set before the process starts) each
process writes its samples to files in that folder and `/metrics` adds them up, as prometheus-client's
multiprocess mode documents; otherwise `/metrics` shows the serving process's own. Queue depth is read
from Redis when scraped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from risk.runtime import Runtime

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The workers' queues, named here so that the API need not import `worker` to count them.
QUEUES = ("reports", "maintenance", "webhooks")

# Created once per process, in this process's registry (plain mode) or its files (multiprocess mode).
OWN = CollectorRegistry(auto_describe=True)
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)

REPORT_SECONDS = Histogram(
    "presign_report_seconds",
    "From a report's request to its completion, by stage.",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
    registry=OWN,
)
CHECK_SECONDS = Histogram(
    "presign_check_seconds",
    "One check's run inside a report, by check and the provider that answered it.",
    ["check", "provider"],
    buckets=_LATENCY_BUCKETS,
    registry=OWN,
)
PROVIDER_ERRORS = Counter(
    "presign_provider_errors_total",
    "Failed calls to an HTTP provider, by provider and kind of failure (an attempt a retry may still save).",
    ["provider", "kind"],
    registry=OWN,
)
WEBHOOK_DELIVERIES = Counter(
    "presign_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome: delivered, retrying (pending) or failed.",
    ["outcome"],
    registry=OWN,
)
GATE_ANSWERS = Counter(
    "presign_gate_answers_total",
    "Gate answers sent, by decision.",
    ["decision"],
    registry=OWN,
)
RATE_LIMITED = Counter(
    "presign_rate_limited_total",
    "Requests refused with 429 rate_limited.",
    registry=OWN,
)


class QueueDepth(Collector):
    """Jobs waiting in each queue, read from Redis at scrape time; nothing while Redis is down."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterable[Metric]:
        from rq import Queue

        family = GaugeMetricFamily("presign_queue_depth", "Jobs waiting in each queue.", labels=["queue"])
        try:
            redis = self.rt.redis()
            for name in QUEUES:
                family.add_metric([name], Queue(name, connection=redis).count)
        except RedisError:
            return
        yield family


class _Own(Collector):
    def collect(self) -> Iterable[Metric]:
        return OWN.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(rt: Runtime) -> bytes:
    """Every metric in the Prometheus text format: all processes' in multiprocess mode."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Own())
    registry.register(QueueDepth(rt))
    return generate_latest(registry)


def process_exited(pid: int) -> None:
    """Bookkeeping for a child process that exited, in multiprocess mode (its live gauges go)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)
