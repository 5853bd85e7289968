"""Adaptive slow-down: requests to a PoP back off when that PoP (or the origin behind
it) struggles.

AIMD on a limiter's factor (stored in Redis, read by every reservation). Each PoP has
its own limiter and governor (`Runtime.governor`), so a dead PoP's errors slow only
the requests sent to it: one shared factor let a dead PoP leave the cluster at 5%,
and the next batch, to healthy PoPs only, took 2.7 times as long. A 429 halves the
rate, a 5xx or a network error takes 30% off, an origin miss slower than the
configured target takes 10% off; every healthy second adds 5% of the limit back.
Each step is taken at most once per second per limiter for the whole cluster (a SET
NX per direction), so 40 workers seeing the same 429 storm cut once, not 40 times.
"""

from __future__ import annotations

import time

import redis

from warming import keys as K
from warming.pop.limits import ClusterLimiter

DOWN_429 = 0.5
DOWN_5XX = 0.7
DOWN_SLOW = 0.9
UP_STEP = 0.05
STEP_EVERY_MS = 1000
# Successes re-read the shared factor at most this often per process.
_LOCAL_CACHE_S = 1.0


class Governor:
    """Feeds what one PoP answers back into its limiter's factor (shared by every worker)."""

    def __init__(
        self, r: redis.Redis, limiter: ClusterLimiter, latency_target_ms: float | None = None
    ) -> None:
        self.r = r
        self.limiter = limiter
        self.latency_target_ms = latency_target_ms
        self._key = K.LIMIT.format(name=limiter.name) + ":step:{dir}"
        self._factor = 1.0
        self._read_at = 0.0

    def observe(self, status: int | None, ttfb_ms: float | None = None, miss: bool = False) -> None:
        """One response (status None: a network error)."""
        if status is None or status >= 500:
            self._down(DOWN_5XX)
        elif status == 429:
            self._down(DOWN_429)
        elif miss and self.latency_target_ms and (ttfb_ms or 0) > self.latency_target_ms:
            self._down(DOWN_SLOW)
        else:
            self._up()

    def _down(self, mult: float) -> None:
        if self._step("down"):
            self._factor = max(self.limiter.factor() * mult, 0.0)
            self.limiter.set_factor(self._factor)
            self._read_at = time.monotonic()

    def _up(self) -> None:
        now = time.monotonic()
        if now - self._read_at > _LOCAL_CACHE_S:
            self._factor, self._read_at = self.limiter.factor(), now
        if self._factor < 1.0 and self._step("up"):
            self._factor = min(1.0, self.limiter.factor() + UP_STEP)
            self.limiter.set_factor(self._factor)

    def _step(self, direction: str) -> bool:
        key = self._key.format(dir=direction)
        # A cut also blocks increases for a second, so recovery starts from calm.
        if direction == "down":
            self.r.set(self._key.format(dir="up"), "1", px=STEP_EVERY_MS)
        return bool(self.r.set(key, "1", nx=True, px=STEP_EVERY_MS))
