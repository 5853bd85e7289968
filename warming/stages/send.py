"""One request to a PoP under every limit that applies to it.

The cluster-wide `limits.prefetch` (verification included), the PoP's own limit (its
`rate`, slowed by the adaptive governor), and for requests that can reach the origin,
`limits.origin_concurrency`. What the PoP answers is fed to that PoP's governor, so a
PoP in trouble slows only the requests sent to it.
"""

from __future__ import annotations

from contextlib import nullcontext

from warming.batch.plan import Pair, Plan
from warming.errors import RetryLater
from warming.pop.client import Fetched
from warming.runtime import Runtime


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
    # The PoP's own limit first: when that PoP is saturated, a refusal must not have
    # burned a slot of the cluster-wide limit that every other PoP shares.
    pop = plan.pop(pair.pop)
    pop_limit = rt.pop_limiter(pop)
    if pop_limit is not None:
        grant = pop_limit.acquire(max_wait_s)
        if not grant.ok:
            raise Throttled(grant.wait_s)
    grant = rt.prefetch_limiter.acquire(max_wait_s)
    if not grant.ok:
        raise Throttled(grant.wait_s)
    origin = rt.origin_limit if warming and reaches_origin(plan, pair.pop) else None
    governor = rt.governor(pop)
    with origin.hold(max_wait_s) if origin else nullcontext(True) as held:
        if not held:
            raise Throttled(max_wait_s)
        try:
            got = rt.client.get(pop, pair.url, plan.variant(pair.variant))
        except RetryLater as e:
            if governor:
                governor.observe(e.status)
            raise
    if governor:
        governor.observe(got.status, got.ttfb_ms, miss=not got.cache.is_hit)
    return got
