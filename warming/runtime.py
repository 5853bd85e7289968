"""The process's settings and the long-lived clients built from them.

A front door (CLI, worker start, shim) installs the settings once with `use()`;
tasks ask `current()`. Clients are built lazily and shared by the threads of a
process (redis-py pools and our PopClient are thread-safe).
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

import redis
import redis.asyncio as aioredis

from warming import defaults
from warming.adaptive import Governor
from warming.cdn import Purger, purger_for
from warming.errors import ConfigError
from warming.fetch import PopClient
from warming.ratelimit import ClusterLimiter, ConcurrencyLimit
from warming.settings import Rate, Settings, load_settings
from warming.store import BatchStore
from warming.urls import URLFilter

# Fail fast instead of hanging on a dead socket.
_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 25,
}


def redis_client(url: str) -> redis.Redis:
    """The Redis client of tasks, the CLI and the shim's thread-side work."""
    return redis.Redis.from_url(url, retry_on_timeout=True, **_CLIENT_OPTIONS)


def async_redis_client(url: str) -> aioredis.Redis:
    """`redis_client` for an event loop (the shim's webhook route).

    No retry on timeout: the accept script's answer may be lost, not its effect; the
    shim answers 503 and the CMS's retry finds the webhook-id taken.
    """
    return aioredis.Redis.from_url(url, **_CLIENT_OPTIONS)


class Runtime:
    """Settings plus the clients every task needs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def broker_url(self) -> str:
        if not self.settings.broker_url:
            raise ConfigError(
                "broker_url",
                "is not set: workers and the shim need the shared Redis "
                "(embedded mode is only for `warming warm` and `warming demo`)",
            )
        return self.settings.broker_url

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(self.broker_url)

    @cached_property
    def store(self) -> BatchStore:
        return BatchStore(self.redis, self.settings.batch.report_ttl_s)

    @cached_property
    def url_filter(self) -> URLFilter:
        """The SPEC's URL filter for `site` (built once: settings never change)."""
        return URLFilter.from_site(self.settings.site)

    @cached_property
    def client(self) -> PopClient:
        return PopClient(self.settings.fetch)

    @cached_property
    def purger(self) -> Purger:
        return purger_for(self.settings)

    @cached_property
    def prefetch_limiter(self) -> ClusterLimiter:
        """Every request to a PoP, verification included, takes a token here."""
        return ClusterLimiter(self.redis, "prefetch", self.settings.limits.prefetch_rate)

    @cached_property
    def governor(self) -> Governor | None:
        if not self.settings.limits.adaptive:
            return None
        target = self.settings.limits.origin_latency_target_ms
        return Governor(self.redis, self.prefetch_limiter, target)

    @cached_property
    def pop_limiters(self) -> dict[str, ClusterLimiter]:
        """`[[pops]] rate`: a PoP's own limit, on top of the cluster's."""
        return {
            p.name: ClusterLimiter(self.redis, f"pop:{p.name}", Rate.parse(p.rate))
            for p in self.settings.pops
            if p.rate
        }

    @cached_property
    def origin_limit(self) -> ConcurrencyLimit | None:
        """At most `limits.origin_concurrency` requests that can reach the origin in flight."""
        n = self.settings.limits.origin_concurrency
        # A lease outlives any request (read timeout) so it never expires under one.
        ttl = self.settings.fetch.connect_timeout_s + self.settings.fetch.read_timeout_s + 5
        return ConcurrencyLimit(self.redis, "origin", n, ttl_s=ttl) if n else None

    @cached_property
    def purge_limiter(self) -> ClusterLimiter:
        # One limit per provider account: two clusters purging the same CDN account
        # through one Redis share it.
        name = f"purge:{self.settings.cdn.provider}:{self.settings.cdn.service_id or ''}"
        rate = self.settings.limits.purge_rate
        # Purge APIs meter per second or minute and accept short bursts: one second's
        # worth may go at once, so purging one URL at every PoP adds no queueing delay.
        return ClusterLimiter(self.redis, name, rate, burst=max(1, int(rate.per_second)))


_lock = threading.Lock()
_current: Runtime | None = None


def use(settings: Settings) -> Runtime:
    """Install `settings` for this process (before the Celery app is configured)."""
    global _current
    with _lock:
        _current = Runtime(settings)
        return _current


def install(rt: Runtime) -> Runtime:
    """Make an existing runtime this process's (an app factory given one, e.g. the shim)."""
    global _current
    with _lock:
        _current = rt
        return rt


def current() -> Runtime:
    """The installed runtime; loads settings from file and environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime(load_settings())
        return _current


__all__ = ["Runtime", "async_redis_client", "current", "defaults", "install", "redis_client", "use"]
