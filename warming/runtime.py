"""The process's settings and the long-lived objects built from them.

The composition root: a front door (CLI, shim) builds a `Runtime` with `use()` and
hands it to what it calls; the Celery tasks, whose caller is the worker, take the
process's with `current()`. Nothing below this layer looks a runtime up: stages,
the store and the clients are given what they need. Objects are built lazily and
shared by the threads of a process (redis-py pools and our PopClient are thread-safe).
"""

from __future__ import annotations

import json
import threading
from functools import cached_property

import redis

from warming import defaults, rediskit
from warming.batch.coalesce import Coalescer
from warming.batch.plan import Plan
from warming.batch.store import BatchStore
from warming.broker import app as celery_app
from warming.broker import tasknames as T
from warming.broker.canvas import Canvas
from warming.broker.messages import Messages, messages
from warming.cdn import Purger, as_planned, purger_for
from warming.cdn import push as cdn_push
from warming.errors import ConfigError
from warming.pop.adaptive import Governor
from warming.pop.client import PopClient
from warming.pop.discover import Discoverer
from warming.pop.limits import ClusterLimiter, ConcurrencyLimit, DailyQuota
from warming.settings import CdnSettings, PopSettings, Rate, Settings, load_settings
from warming.sources.filter import URLFilter


class Runtime:
    """Settings plus the clients every task needs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._purgers: dict[str, Purger] = {}
        self._purge_limiters: dict[str, ClusterLimiter] = {}
        # Per PoP name, for the PoPs of the plans this process has worked on.
        self._pop_limiters: dict[str, ClusterLimiter] = {}
        self._governors: dict[str, Governor] = {}
        self._pushers: dict[str, cdn_push.Pusher] = {}
        self._push_limiters: dict[str, ClusterLimiter] = {}

    @property
    def broker_url(self) -> str:
        return self.settings.require_broker_url()

    @cached_property
    def redis(self) -> redis.Redis:
        return rediskit.client(self.broker_url, self.settings.master_name)

    @cached_property
    def messages(self) -> Messages:
        """Builds the task messages our own scripts push (the shim's one round trip)."""
        return messages()

    @cached_property
    def coalescer(self) -> Coalescer:
        """Webhook coalescing; its trailing runs are published by `flush_trailing`."""
        return Coalescer(
            self.redis,
            self.settings.webhook.coalesce_window_s,
            lambda trailing_id: self.messages.build(T.FLUSH_TRAILING.name, (trailing_id,)),
        )

    @cached_property
    def canvas(self) -> Canvas:
        """Publishes tasks and chords by name."""
        return Canvas(celery_app.app)

    @cached_property
    def store(self) -> BatchStore:
        return BatchStore(self.redis, self.settings.batch.report_ttl_s)

    @cached_property
    def url_filter(self) -> URLFilter:
        """The SPEC's URL filter for `site` (built once: settings never change)."""
        return URLFilter.from_site(self.settings.site)

    @cached_property
    def discoverer(self) -> Discoverer:
        """Finds the PoPs that have no `url` (one DNS cache for the process)."""
        return Discoverer(self.settings.site, self.settings.discover)

    @cached_property
    def client(self) -> PopClient:
        return PopClient(self.settings.fetch, self.settings.site)

    def purger_for(self, plan: Plan) -> Purger:
        """A purger for the CDN settings and PoPs `plan` was made with, not this worker's.

        In a rolling deploy a worker may have other PoPs or another provider than the
        publisher had. Raises ConfigError when this worker cannot honour the plan.
        """
        base_url = plan.base_url or self.settings.site.base_url
        shape = [plan.cdn, [p.model_dump() for p in plan.pops], base_url]
        key = json.dumps(shape, sort_keys=True)
        purger = self._purgers.get(key)
        if purger is None:
            cdn = as_planned(plan.cdn, self.settings.cdn)
            purger = purger_for(cdn, plan.pops, base_url)
            if len(self._purgers) >= _PURGERS_KEPT:  # a config change per deploy at most
                self._purgers.pop(next(iter(self._purgers)))
            self._purgers[key] = purger
        return purger

    @cached_property
    def prefetch_limiter(self) -> ClusterLimiter:
        """Every request to a PoP, verification included, takes a token here."""
        return ClusterLimiter(self.redis, "prefetch", self.settings.limits.prefetch_rate)

    def pop_limiter(self, pop: PopSettings) -> ClusterLimiter | None:
        """A PoP's own limit, on top of the cluster's; None when it has none.

        Its `rate`, else (with `limits.adaptive`) the cluster's rate, which binds only
        once the PoP's governor slows it: a PoP in trouble is slowed alone, and the
        cluster-wide limit stays the cap for all of them.
        """
        rate = pop.rate_limit
        if rate is None and self.settings.limits.adaptive:
            rate = self.settings.limits.prefetch_rate
        if rate is None:
            return None
        limiter = self._pop_limiters.get(pop.name)
        if limiter is None or limiter.rate != rate:
            limiter = ClusterLimiter(self.redis, f"pop:{pop.name}", rate)
            self._pop_limiters[pop.name] = limiter
        return limiter

    def governor(self, pop: PopSettings) -> Governor | None:
        """The adaptive slow-down of one PoP (`limits.adaptive`): it sets that PoP's factor."""
        limiter = self.pop_limiter(pop) if self.settings.limits.adaptive else None
        if limiter is None:
            return None
        gov = self._governors.get(pop.name)
        if gov is None or gov.limiter is not limiter:
            target = self.settings.limits.origin_latency_target_ms
            gov = self._governors[pop.name] = Governor(self.redis, limiter, target)
        return gov

    @cached_property
    def origin_limit(self) -> ConcurrencyLimit | None:
        """At most `limits.origin_concurrency` requests that can reach the origin in flight."""
        n = self.settings.limits.origin_concurrency
        # A lease outlives any request (read timeout) so it never expires under one.
        ttl = self.settings.fetch.connect_timeout_s + self.settings.fetch.read_timeout_s + 5
        return ConcurrencyLimit(self.redis, "origin", n, ttl_s=ttl) if n else None

    def purge_limiter(self, cdn: CdnSettings) -> ClusterLimiter:
        """The purge limit of `cdn`'s provider account (the batch's, as planned)."""
        # One limit per provider account: two clusters purging the same CDN account
        # through one Redis share it.
        name = f"purge:{cdn.provider}:{cdn.service_id or ''}"
        limiter = self._purge_limiters.get(name)
        if limiter is None:
            rate = self.settings.limits.purge_rate
            # Purge APIs meter per second or minute and accept short bursts: one second's
            # worth may go at once, so purging one URL at every PoP adds no queueing delay.
            limiter = ClusterLimiter(self.redis, name, rate, burst=max(1, int(rate.per_second)))
            self._purge_limiters[name] = limiter
        return limiter


    def pusher_for(self, plan: Plan) -> cdn_push.Pusher:
        """The push API of `plan` (push mode), as planned, with this worker's token.

        Raises ConfigError when this worker cannot push as the batch was planned.
        """
        if plan.warm is None:
            raise ConfigError("warm.mode", "the batch was not planned in push mode")
        key = json.dumps(plan.warm, sort_keys=True)
        pusher = self._pushers.get(key)
        if pusher is None:
            pusher = cdn_push.pusher_for(cdn_push.as_planned(plan.warm, self.settings.warm))
            if len(self._pushers) >= _PURGERS_KEPT:
                self._pushers.pop(next(iter(self._pushers)))
            self._pushers[key] = pusher
        return pusher

    def push_limiter(self, pusher: cdn_push.Pusher) -> ClusterLimiter:
        """The call rate of `pusher`'s account, shared by every worker (Gcore: 1/m)."""
        name = f"push:{pusher.account}"
        rate = Rate(pusher.rate.count, pusher.rate.period_s * defaults.PUSH_RATE_MARGIN)
        limiter = self._push_limiters.get(name)
        if limiter is None or limiter.rate != rate:
            limiter = ClusterLimiter(self.redis, name, rate)
            self._push_limiters[name] = limiter
        return limiter

    def push_quota(self, pusher: cdn_push.Pusher) -> DailyQuota | None:
        """`warm.daily_quota` of `pusher`'s account, or None when it has none."""
        quota = pusher.warm.daily_quota
        return None if quota is None else DailyQuota(self.redis, pusher.account, quota)


# Purgers a process keeps, one per shape of plan (CDN settings, PoPs) it has purged.
_PURGERS_KEPT = 8

_lock = threading.Lock()
_current: Runtime | None = None


def use(settings: Settings) -> Runtime:
    """Build this process's runtime from `settings` and configure the Celery app with them."""
    return install(Runtime(settings))


def install(rt: Runtime) -> Runtime:
    """Make an existing runtime this process's (an app factory given one, e.g. the shim)."""
    global _current
    with _lock:
        _current = rt
    celery_app.bind(rt.settings)
    return rt


def current() -> Runtime:
    """This process's runtime, for the Celery tasks; loads settings on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime(load_settings())
        return _current


__all__ = ["Runtime", "current", "install", "use"]
