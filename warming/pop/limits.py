"""Limits shared through Redis by every worker process: a rate (GCRA) and a concurrency cap.

Celery's `rate_limit` holds per worker (CELERY_NOTES, "Rate limits"); these hold for the
whole cluster. Each call is one Lua script that reads the clock with `TIME`, so worker
clocks never matter and no two callers can interleave.

The rate limit hands out *reservations*: the script gives each caller its own slot, one
emission interval after the previous one, and says how long to wait for it. Callers
sleep that long and send, so sends are spaced exactly 1/rate apart with no polling and
no thundering herd when a slot frees up; a caller that would wait longer than it is
willing to reserves nothing and gets the wait it would have had (e.g. for a countdown).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis

from warming import keys, lua
from warming.ops import metrics
from warming.settings import Rate

__all__ = ["ClusterLimiter", "ConcurrencyLimit", "DailyQuota", "Grant"]

# An adaptive slow-down never stops traffic altogether: at 5% a limit still probes
# the far side often enough to notice that it has recovered.
MIN_FACTOR = 0.05
# A slow-down outlives short pauses in traffic but is forgotten after this long idle,
# so a limit that was throttled once doesn't stay slow for good.
FACTOR_IDLE_TTL_S = 600.0
# Replies a limiter keeps to place slots on Redis's clock (the quickest one wins).
_LAG_SAMPLES = 64


@dataclass(frozen=True)
class Grant:
    """The answer to a reservation."""

    ok: bool
    """A slot is reserved for us."""
    wait_s: float
    """Seconds until our slot (ok), or until a slot would have been free (not ok)."""
    interval_s: float = 0.0
    """Seconds between two slots at the rate now in force (the adaptive factor included)."""
    cost: int = 1
    at: float = 0.0
    """time.monotonic() when Redis made the reservation (see ClusterLimiter._clock)."""

    def waits(self) -> list[float]:
        """Seconds until each of the `cost` slots of a block reservation starts."""
        last = self.wait_s
        return [max(0.0, last - (self.cost - 1 - j) * self.interval_s) for j in range(self.cost)]

    def slots(self) -> list[float]:
        """When (time.monotonic) each slot of the block starts."""
        return [self.at + w for w in self.waits()]


class ClusterLimiter:
    """A named limit shared through Redis by every process that uses the same name.

    `burst` requests may go back-to-back after the limit has been idle. Processes
    sharing a name must agree on `rate` and `burst`.
    """

    def __init__(self, redis: Redis, name: str, rate: Rate, burst: int = 1) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.name = name
        self.rate = rate
        self.burst = burst
        self._redis = redis
        self._key = keys.LIMIT.format(name=name)
        self._factor_key = self._key + ":factor"
        self._interval_us = rate.period_s / rate.count * 1e6
        self._script = redis.register_script(lua.source("reserve"))
        self._many = redis.register_script(lua.source("reserve_many"))
        # How far this process's clock is ahead of Redis's, plus the quickest reply seen:
        # the least of the recent (clock at reply - Redis's clock in the script).
        self._lags: deque[float] = deque(maxlen=_LAG_SAMPLES)

    def reserve(self, max_wait_s: float, cost: int = 1) -> Grant:
        """Reserve the next slot if it starts within `max_wait_s`; never sleeps."""
        if cost < 1 or max_wait_s < 0:
            raise ValueError(f"need cost >= 1 and max_wait_s >= 0, not {cost}, {max_wait_s}")
        ok, wait_us, interval_us, now_us = self._script(
            keys=[self._key, self._factor_key],
            args=[
                self._interval_us,
                self.burst,
                max_wait_s * 1e6,
                cost,
                int(FACTOR_IDLE_TTL_S * 1000),
            ],
        )
        wall, mono = time.time(), time.monotonic()
        metrics.limiter_wait(self.name, int(wait_us) / 1e6)
        return Grant(
            bool(ok), int(wait_us) / 1e6, int(interval_us) / 1e6, cost,
            self._clock(int(now_us) / 1e6, wall, mono),
        )  # fmt: skip

    def _clock(self, redis_now: float, wall: float, mono: float) -> float:
        """time.monotonic() at the moment Redis ran the script.

        Slots are on Redis's clock. A reply read late (a busy process, the GIL) would
        shift a whole block late onto the next block of another process, a burst above
        the rate; placing the block by Redis's clock instead keeps blocks apart.
        """
        self._lags.append(wall - redis_now)
        return mono - (wall - (redis_now + min(self._lags)))

    def reserve_with(
        self, pops: Sequence[ClusterLimiter | None], max_wait_s: float
    ) -> tuple[bool, float, list[float]]:
        """A slot for each of len(`pops`) requests under this limit and its own PoP limit.

        One script, one round trip: each request gets the first slot that both limits
        have free. Returns (reserved, seconds until the last slot, when each slot starts
        on time.monotonic). Nothing is reserved when the last slot is past `max_wait_s`.
        """
        distinct = list(dict.fromkeys(p for p in pops if p is not None))
        number = {id(p): j + 1 for j, p in enumerate(distinct)}
        keys = [self._key, self._factor_key]
        for p in distinct:
            keys += [p._key, p._factor_key]
        args: list[float | int] = [
            self._interval_us, max_wait_s * 1e6, int(FACTOR_IDLE_TTL_S * 1000), len(distinct),
            *(p._interval_us for p in distinct),
            *(number[id(p)] if p is not None else 0 for p in pops),
        ]  # fmt: skip
        ok, last_us, now_us, *waits_us = self._many(keys=keys, args=args)
        wall, mono = time.time(), time.monotonic()
        at = self._clock(int(now_us) / 1e6, wall, mono)
        metrics.limiter_wait(self.name, int(last_us) / 1e6)
        return bool(ok), int(last_us) / 1e6, [at + int(w) / 1e6 for w in waits_us]

    def acquire(self, max_wait_s: float, sleep: Callable[[float], None] = time.sleep) -> Grant:
        """Reserve, then sleep until the slot if one was reserved."""
        grant = self.reserve(max_wait_s)
        delay = grant.slots()[-1] - time.monotonic() if grant.ok else 0.0
        if delay > 0:
            sleep(delay)
        return grant

    def set_factor(self, factor: float) -> None:
        """Run every process at `rate * factor` (clamped to [MIN_FACTOR, 1]).

        It applies from the next reservation on; slots already reserved keep their times.
        """
        factor = min(max(factor, MIN_FACTOR), 1.0)
        if factor == 1.0:
            self._redis.delete(self._factor_key)
        else:
            self._redis.set(self._factor_key, repr(factor), px=int(FACTOR_IDLE_TTL_S * 1000))

    def factor(self) -> float:
        value = self._redis.get(self._factor_key)
        return 1.0 if value is None else float(value)


class ConcurrencyLimit:
    """At most `limit` holders at once across the cluster (origin protection).

    Each lease expires after `ttl_s`, so a crashed worker can't leak a slot; work that
    may outlast `ttl_s` would let an extra holder in.
    """

    def __init__(self, redis: Redis, name: str, limit: int, ttl_s: float = 60.0) -> None:
        if limit < 1 or ttl_s <= 0:
            raise ValueError(f"need limit >= 1 and ttl_s > 0, not {limit}, {ttl_s}")
        self.name = name
        self.limit = limit
        self.ttl_s = ttl_s
        self._redis = redis
        self._key = keys.LIMIT.format(name=name) + ":leases"
        self._script = redis.register_script(lua.source("lease"))

    def try_acquire(self) -> str | None:
        """A lease token, or None when `limit` unexpired leases are out."""
        token = uuid.uuid4().hex
        ttl_ms = max(1, int(self.ttl_s * 1000))
        got = self._script(keys=[self._key], args=[self.limit, ttl_ms, token])
        return token if got else None

    def release(self, token: str) -> None:
        self._redis.zrem(self._key, token)

    @contextmanager
    def hold(self, max_wait_s: float, poll_s: float = 0.01) -> Iterator[bool]:
        """Yield True once a lease is held (released on exit), False if none came in time."""
        deadline = time.monotonic() + max_wait_s
        token = self.try_acquire()
        while token is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # Jitter keeps waiting workers from polling in lockstep.
            time.sleep(min(left, poll_s * random.uniform(0.5, 1.5)))
            token = self.try_acquire()
        if token is None:
            yield False
            return
        try:
            yield True
        finally:
            self.release(token)


class DailyQuota:
    """At most `quota` items a UTC day for one account, counted by every worker at once.

    Push APIs meter URLs per day (Alibaba Cloud's PushObjectCache: 1,000 by default); one
    Lua script takes what is left, so two workers never both take the last of it.
    """

    def __init__(self, redis: Redis, account: str, quota: int) -> None:
        self.quota = quota
        self._key = keys.PUSH_QUOTA.format(account=account)
        self._script = redis.register_script(lua.source("push_quota"))

    def take(self, n: int) -> int:
        """Take up to `n` of today's quota: how many were taken (0: it is used up)."""
        return int(self._script(keys=[self._key], args=[self.quota, n, 0])) if n else 0

    def give_back(self, n: int) -> None:
        """Return `n` taken for a call the vendor did not accept."""
        if n:
            self._script(keys=[self._key], args=[self.quota, n, 1])
