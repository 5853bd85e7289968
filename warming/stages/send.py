"""One request to a PoP under every limit that applies to it.

The cluster-wide `limits.prefetch` (verification included), the PoP's own limit (its
`rate`, slowed by the adaptive governor), and for requests that can reach the origin,
`limits.origin_concurrency`. What the PoP answers is fed to that PoP's governor, so a
PoP in trouble slows only the requests sent to it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext

from warming.batch.plan import Pair, Plan
from warming.errors import FetchError, RetryLater
from warming.pop.client import Fetched
from warming.runtime import Runtime
from warming.settings import PopSettings


class Throttled(Exception):
    """No slot within the wait the caller allows; `wait_s` until one would be free."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"rate limited for {wait_s:.2f} s")
        self.wait_s = wait_s


def reaches_origin(plan: Plan, pop: str) -> bool:
    """Warming the first tier (the shields, or the edges without one) fills from the origin."""
    return any(p.name == pop for p in plan.phases()[0])


def send(rt: Runtime, plan: Plan, pair: Pair, max_wait_s: float, *, warming: bool) -> Fetched:
    """GET `pair` at its PoP once every limit grants it; raise Throttled when none does."""
    # The same joint reservation as a chunk's: one slot free in both the PoP's limit and
    # the cluster's, and nothing reserved when it is too far out.
    (at,) = reserve(rt, plan, [pair], max_wait_s)
    return fetch(rt, plan, pair, max_wait_s, warming=warming, at=at)


def reserve(
    rt: Runtime,
    plan: Plan,
    pairs: Sequence[Pair],
    max_wait_s: float,
    to: Sequence[PopSettings] | None = None,
) -> list[float]:
    """When (time.monotonic) each of `pairs` may be sent, under every limit at once.

    One round trip for the whole block (`ClusterLimiter.reserve_with`): each request
    gets the first slot free in both the cluster's limit and that of the PoP it goes
    to (`to`, default each pair's own). Raises Throttled when the last slot is further
    out than `max_wait_s` (nothing is then reserved).
    """
    targets = list(to) if to is not None else [plan.pop(p.pop) for p in pairs]
    pops = {t.name: rt.pop_limiter(t) for t in targets}
    ok, last_s, slots = rt.prefetch_limiter.reserve_with(
        [pops[t.name] for t in targets], max_wait_s
    )
    if not ok:
        raise Throttled(last_s)
    return slots


def fetch(
    rt: Runtime,
    plan: Plan,
    pair: Pair,
    max_wait_s: float,
    *,
    warming: bool,
    at: float = 0.0,
    head: bool = False,
    to: PopSettings | None = None,
) -> Fetched:
    """GET (or HEAD) `pair` at its PoP (or `to`) at `at`, a reserved slot's time: no
    limit asked here."""
    pop = to or plan.pop(pair.pop)
    unaddressed = plan.unaddressed(pop.name)
    if unaddressed:  # its DNS question failed when the batch was planned
        raise FetchError(unaddressed, url=pair.url, pop=pair.pop)
    delay = at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    origin = rt.origin_limit if warming and reaches_origin(plan, pair.pop) else None
    governor = rt.governor(pop)
    with origin.hold(max_wait_s) if origin else nullcontext(True) as held:
        if not held:
            raise Throttled(max_wait_s)
        try:
            got = rt.client.get(pop, pair.url, plan.variant(pair.variant), head=head)
        except RetryLater as e:
            if governor:
                governor.observe(e.status)
            raise
    if governor:
        governor.observe(got.status, got.ttfb_ms, miss=not got.cache.is_hit)
    return got
