"""Stage 1: purge the batch's URLs and tags (shields first), then start warming.

Purge strictly before warm: a warm request that reached the stale object would
make verification pass on stale content. A purge that fails for good fails the
batch, and nothing is warmed. The purge goes to the PoPs and the CDN the batch was
planned with; a worker that cannot honour them (another provider, no credentials for
the batch's account) fails the batch saying why, rather than crash or leave it purging.

A purge that is not in effect when its call returns (CloudFront's invalidation in
progress, Akamai's estimated seconds) is recorded as pending in the batch's hash and
waited out by re-queueing this task (countdowns under the cap, no sleeping thread):
before the next layer of `cdn.providers` is purged, and before anything is warmed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

from warming import defaults
from warming import keys as K
from warming.cdn import Pending, Purger
from warming.errors import ConfigError, PurgeError, RetryLater
from warming.runtime import Runtime
from warming.stages.ended import ended
from warming.stages.outcome import Continue, Done, Failed, Outcome, RetryIn
from warming.stages.push import begin_warming
from warming.stages.timing import backoff, cap

log = logging.getLogger(__name__)


def purge(rt: Runtime, batch_id: str, start: int = 0, attempt: int = 0) -> Outcome:
    """Send the batch's purge calls from `start`; Done once warming has started."""
    store = rt.store
    if store.is_final(batch_id):
        return Done("skipped")
    plan = store.plan(batch_id)
    if store.state(batch_id) in ("warming", "verifying"):
        # Redelivered after warming began (its worker died launching slices): purging again
        # would empty caches already warmed and verified. Launch only what is missing.
        begin_warming(rt, plan, resumed=True)
        return Done("resumed")
    if not plan.purge:
        begin_warming(rt, plan)
        return Done("not purged")
    try:
        purger = rt.purger_for(plan)
    except ConfigError as e:
        return fail(rt, batch_id, f"this worker cannot purge as the batch was planned: {e}")
    limiter = rt.purge_limiter(purger.cdn)
    store.set_state(batch_id, "purging")
    try:
        calls = purger.plan(plan.urls, plan.tags, plan.addressed_pops())
    except PurgeError as e:
        return fail(rt, batch_id, f"purge failed: {e}")
    if calls and start == 0:
        # Before the first call: the freshness proof by age measures from here.
        store.mark_purge_started(batch_id)
    pending = _pending(rt, batch_id)
    t0 = time.monotonic()
    for i in range(start, len(calls)):
        if pending and calls[i].layer != pending[0].layer:
            # The inner layer's purge must be in effect before the next layer is purged.
            wait = _settle(rt, batch_id, purger, pending, i, attempt)
            if wait is not None:
                return wait
            pending = []
        if time.monotonic() - t0 > defaults.VERIFY_BUDGET_S:
            return Continue({"start": i, "attempt": attempt})
        grant = limiter.acquire(defaults.MAX_LIMITER_WAIT_S)
        if not grant.ok:
            return RetryIn(cap(grant.wait_s), {"start": i, "attempt": attempt}, "purge limit")
        try:
            # The call's number makes a retried call idempotent where the API allows.
            p = purger.send(replace(calls[i], ref=f"{batch_id}-{i}"))
        except RetryLater as e:
            return _retry(rt, batch_id, e, i, attempt)
        except PurgeError as e:
            return fail(rt, batch_id, f"purge failed: {e}")
        attempt = 0
        if p is not None:
            pending.append(p)
            _keep(rt, batch_id, pending)
    if pending:
        wait = _settle(rt, batch_id, purger, pending, len(calls), attempt)
        if wait is not None:
            return wait
    begin_warming(rt, plan)  # push mode: the push first, then the slices
    return Done("purged")


def _settle(
    rt: Runtime, batch_id: str, purger: Purger, pending: list[Pending], i: int, attempt: int
) -> RetryIn | Failed | None:
    """None once every pending purge is in effect, else the task's next step."""
    left: list[Pending] = []
    for p in pending:
        if p.after_s > 0:
            left.append(p)
            continue
        try:
            q = purger.poll(p) if p.token else None
        except RetryLater as e:
            _keep(rt, batch_id, pending)
            return _retry(rt, batch_id, e, i, attempt)
        except PurgeError as e:
            return fail(rt, batch_id, f"purge failed: {e}")
        if q is not None:
            left.append(q)
    if not left:
        _keep(rt, batch_id, [])
        return None
    # One countdown for all of them; each waits only what is left of its own time.
    wait = cap(max(p.after_s for p in left))
    _keep(rt, batch_id, [replace(p, after_s=max(0.0, p.after_s - wait)) for p in left])
    return RetryIn(wait, {"start": i, "attempt": attempt}, "purge not in effect yet")


def _retry(rt: Runtime, batch_id: str, e: RetryLater, i: int, attempt: int) -> RetryIn | Failed:
    if attempt + 1 >= rt.settings.fetch.max_attempts:
        return fail(rt, batch_id, f"purge failed after {attempt + 1} attempts: {e}")
    delay = backoff(rt.settings.fetch, e.delay, attempt)
    return RetryIn(delay, {"start": i, "attempt": attempt + 1})


# In the batch's own hash, so it expires with the batch and survives a redelivered task.
_PENDING = "purge_pending"


def _pending(rt: Runtime, batch_id: str) -> list[Pending]:
    raw = rt.redis.hget(K.BATCH.format(id=batch_id), _PENDING)
    return [Pending.from_dict(d) for d in json.loads(raw)] if raw else []


def _keep(rt: Runtime, batch_id: str, pending: list[Pending]) -> None:
    rt.redis.hset(K.BATCH.format(id=batch_id), _PENDING, json.dumps([p.to_dict() for p in pending]))


def fail(rt: Runtime, batch_id: str, error: str) -> Failed:
    """End the batch `failed` before anything was warmed."""
    log.warning("batch %s failed: %s", batch_id, error)
    if rt.store.finish(batch_id, "failed", error=error, note="nothing was warmed"):
        ended(rt, batch_id)
    return Failed(error)
