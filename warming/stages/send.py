"""One request to a PoP under every limit that applies to it.

The cluster-wide `limits.prefetch` (verification included), the PoP's own limit (its
`rate`, slowed by the adaptive governor), and for requests that can reach the origin,
`limits.origin_concurrency`. What the PoP answers is fed to that PoP's governor, so a
PoP in trouble slows only the requests sent to it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
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
    return fetch(rt, plan, pair, max_wait_s, warming=warming)


def reserve(rt: Runtime, plan: Plan, pairs: Sequence[Pair], max_wait_s: float) -> list[float]:
    """When (time.monotonic) each of `pairs` may be sent, under every limit at once.

    One reservation per PoP and one for the cluster, each a block of consecutive
    slots (one round trip each, not one per request). Raises Throttled when a limit
    has no room within `max_wait_s`; blocks already taken then go unused, which costs
    those slots and nothing else.
    """
    # Slots are placed on Redis's clock (Grant.slots), so blocks of different processes
    # never overlap however late a reply is read.
    at = [time.monotonic()] * len(pairs)
    by_pop: dict[str, list[int]] = defaultdict(list)
    for i, pair in enumerate(pairs):
        by_pop[pair.pop].append(i)
    for name, idx in by_pop.items():
        limiter = rt.pop_limiter(plan.pop(name))
        if limiter is None:
            continue
        grant = limiter.reserve(max_wait_s, cost=len(idx))
        if not grant.ok:
            raise Throttled(grant.wait_s)
        for i, slot in zip(idx, grant.slots(), strict=True):
            at[i] = slot
    grant = rt.prefetch_limiter.reserve(max_wait_s, cost=len(pairs))
    if not grant.ok:
        raise Throttled(grant.wait_s)
    # The cluster's slots in order, to the pairs in the order their PoPs allow them.
    order = sorted(range(len(pairs)), key=at.__getitem__)
    for i, slot in zip(order, grant.slots(), strict=True):
        at[i] = max(at[i], slot)
    return at


def fetch(
    rt: Runtime,
    plan: Plan,
    pair: Pair,
    max_wait_s: float,
    *,
    warming: bool,
    at: float = 0.0,
    head: bool = False,
) -> Fetched:
    """GET (or HEAD) `pair` at its PoP at `at`, a reserved slot's time: no limit asked here."""
    delay = at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    pop = plan.pop(pair.pop)
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
