"""Prometheus metrics, right under prefork and `serve --workers`: multiprocess mode.

Counters and histograms are written by whichever process counts (a prefork child, a
shim process) to files in PROMETHEUS_MULTIPROC_DIR, and the process that serves
`/metrics` adds them up (prometheus_client's MultiProcessCollector). That directory is
chosen before the first metric exists, by the process that starts the others
(`fresh_dir()`: the worker's main process before it forks, `warming serve` before it
spawns), so children inherit it and no two process trees share one. What is a state
of the cluster, not a count (batches by state, queue depth, each PoP's adaptive
factor), is read from Redis when scraped (`Live`), so every scrape of every process
says the same. Until `start()`, every function here is a no-op: embedded runs and
tests pay nothing.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds from a batch's start to its end: webhooks of a few pages take seconds, crawls hours.
VERIFIED_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200)
TTFB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Limiter waits: most are 0 or a slot's spacing; above 5 s the task re-queues instead.
WAIT_BUCKETS = (0.0005, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)


@dataclass
class Live:
    """The cluster's state as Redis has it now."""

    batches: Mapping[str, int] = field(default_factory=dict)  # unfinished, by state
    queues: Mapping[str, int] = field(default_factory=dict)  # messages waiting, by queue
    factors: Mapping[str, float] = field(default_factory=dict)  # adaptive factor, by PoP
    overdue: int = 0  # unfinished batches past their deadline (the watchdog's next work)


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.pairs = Counter(
            "warming_pairs_total",
            "Pairs of finished batches, by outcome and PoP",
            ["outcome", "pop"],
        )
        self.batches = Counter(
            "warming_batches_finished_total",
            "Finished batches by state, and whether the watchdog ended them past their deadline",
            ["state", "ended_by"],
        )
        self.verified = Histogram(
            "warming_batch_duration_seconds",
            "Time from a batch's start to its end (every pair verified or accounted for)",
            buckets=VERIFIED_BUCKETS,
        )
        self.requests = Counter(
            "warming_pop_requests_total",
            "Requests to PoPs by answer's status class (error: no answer)",
            ["pop", "status_class"],
        )
        self.throttled = Counter("warming_pop_429_total", "429 answers, by PoP", ["pop"])
        self.ttfb = Histogram(
            "warming_fetch_ttfb_seconds",
            "Time to first byte, by PoP",
            ["pop"],
            buckets=TTFB_BUCKETS,
        )
        self.wait = Histogram(
            "warming_limiter_wait_seconds",
            "Wait for a rate-limit slot, by limit",
            ["limit"],
            buckets=WAIT_BUCKETS,
        )
        self.webhooks = Counter(
            "warming_webhooks_total", "Webhooks by adapter and answer", ["adapter", "status"]
        )


_m: _Metrics | None = None


def fresh_dir() -> str:
    """Give this process tree its own, empty multiprocess directory (before any fork).

    Removed when the process that made it exits (not when a forked child does).
    """
    path = tempfile.mkdtemp(prefix="warming-metrics-")
    os.environ[ENV] = path
    atexit.register(_remove, path, os.getpid())
    return path


def _remove(path: str, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def start() -> None:
    """Turn metrics on in this process (a child keeps its parent's directory)."""
    global _m
    if _m is not None:
        return
    if not os.environ.get(ENV):
        fresh_dir()
    from prometheus_client import values

    # Chosen when prometheus_client is first imported: a library that imported it before
    # the directory was set would leave every value in this process's memory alone.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _m = _Metrics()


def enabled() -> bool:
    return _m is not None


def pop_answer(pop: str, status: int, ttfb_s: float) -> None:
    if _m is None:
        return
    _m.requests.labels(pop, f"{status // 100}xx").inc()
    if status == 429:
        _m.throttled.labels(pop).inc()
    _m.ttfb.labels(pop).observe(ttfb_s)


def pop_error(pop: str) -> None:
    """A request that got no answer (refused, reset, timed out)."""
    if _m is not None:
        _m.requests.labels(pop, "error").inc()


def limiter_wait(limit: str, wait_s: float) -> None:
    if _m is not None:
        _m.wait.labels(limit).observe(wait_s)


def webhook(adapter: str, status: int) -> None:
    if _m is not None:
        _m.webhooks.labels(adapter, str(status)).inc()


def batch_ended(report: Mapping[str, Any]) -> None:
    """Count a finished batch: its state, duration and every pair's outcome."""
    if _m is None:
        return
    ended_by = "watchdog" if "watchdog" in str(report.get("note") or "") else "pipeline"
    _m.batches.labels(str(report.get("state")), ended_by).inc()
    try:
        start_at = datetime.fromisoformat(report["started_at"])
        end_at = datetime.fromisoformat(report["finished_at"])
        _m.verified.observe(max(0.0, (end_at - start_at).total_seconds()))
    except (KeyError, TypeError, ValueError):
        pass
    by_pop = report.get("by_pop")
    if by_pop is not None:  # every pair's outcome, however few results a summary lists
        for pop, outcomes in by_pop.items():
            for outcome, n in outcomes.items():
                if n:
                    _m.pairs.labels(outcome, pop).inc(n)
        return
    tally = Tally((str(r.get("outcome")), str(r.get("pop"))) for r in report.get("results") or [])
    for (outcome, pop), n in tally.items():
        _m.pairs.labels(outcome, pop).inc(n)


class _LiveCollector:
    """Reads the cluster's state at scrape time; a Redis error leaves these out."""

    def __init__(self, read: Callable[[], Live]) -> None:
        self.read = read

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            live = self.read()
        except Exception as e:  # a scrape must still answer the counters
            log.warning("metrics: cannot read the cluster's state: %s", type(e).__name__)
            return
        g = GaugeMetricFamily("warming_batches", "Unfinished batches, by state", labels=["state"])
        for state, n in sorted(live.batches.items()):
            g.add_metric([state], n)
        yield g
        q = GaugeMetricFamily(
            "warming_queue_depth", "Messages waiting in each queue", labels=["queue"]
        )
        for queue, n in sorted(live.queues.items()):
            q.add_metric([queue], n)
        yield q
        f = GaugeMetricFamily(
            "warming_adaptive_factor", "Each PoP's share of its rate (1: full)", labels=["pop"]
        )
        for pop, v in sorted(live.factors.items()):
            f.add_metric([pop], v)
        yield f
        yield GaugeMetricFamily(
            "warming_batches_overdue", "Unfinished batches past their deadline", value=live.overdue
        )


def registry(read: Callable[[], Live] | None = None) -> Any:
    """Every process's counters added up, and the cluster's state if `read` is given."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    start()
    reg = CollectorRegistry()
    MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
    if read is not None:
        reg.register(_LiveCollector(read))
    return reg


def exposition(reg: Any) -> tuple[bytes, str]:
    """The text format Prometheus scrapes, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(reg), CONTENT_TYPE_LATEST


def serve(port: int, host: str, read: Callable[[], Live] | None = None) -> None:
    """Serve `/metrics` on `host:port` from a daemon thread (a worker's main process)."""
    from prometheus_client import start_http_server

    start_http_server(port, host, registry=registry(read))
