"""Stage 1: purge the batch's URLs and tags (shields first), then start warming.

Purge strictly before warm: a warm request that reached the stale object would
make verification pass on stale content. A purge that fails for good fails the
batch, and nothing is warmed. The purge goes to the PoPs and the CDN the batch was
planned with; a worker that cannot honour them (another provider, no credentials for
the batch's account) fails the batch saying why, rather than crash or leave it purging.
"""

from __future__ import annotations

import logging
import time

from warming import defaults
from warming.errors import ConfigError, PurgeError, RetryLater
from warming.runtime import Runtime
from warming.stages.outcome import Continue, Done, Failed, Outcome, RetryIn
from warming.stages.phases import start_phase
from warming.stages.timing import backoff, cap

log = logging.getLogger(__name__)


def purge(rt: Runtime, batch_id: str, start: int = 0, attempt: int = 0) -> Outcome:
    """Send the batch's purge calls from `start`; Done once warming has started."""
    store = rt.store
    if store.is_final(batch_id):
        return Done("skipped")
    plan = store.plan(batch_id)
    if not plan.purge:
        start_phase(rt, plan, 0)
        return Done("not purged")
    try:
        purger = rt.purger_for(plan)
    except ConfigError as e:
        return fail(rt, batch_id, f"this worker cannot purge as the batch was planned: {e}")
    limiter = rt.purge_limiter(purger.cdn)
    store.set_state(batch_id, "purging")
    calls = purger.plan(plan.urls, plan.tags, plan.pops)
    if calls and start == 0:
        # Before the first call: the freshness proof by age measures from here.
        store.mark_purge_started(batch_id)
    t0 = time.monotonic()
    for i in range(start, len(calls)):
        if time.monotonic() - t0 > defaults.VERIFY_BUDGET_S:
            return Continue({"start": i, "attempt": attempt})
        grant = limiter.acquire(defaults.MAX_LIMITER_WAIT_S)
        if not grant.ok:
            return RetryIn(cap(grant.wait_s), {"start": i, "attempt": attempt}, "purge limit")
        try:
            purger.send(calls[i])
        except RetryLater as e:
            if attempt + 1 >= rt.settings.fetch.max_attempts:
                return fail(rt, batch_id, f"purge failed after {attempt + 1} attempts: {e}")
            delay = backoff(rt.settings.fetch, e.delay, attempt)
            return RetryIn(delay, {"start": i, "attempt": attempt + 1})
        except PurgeError as e:
            return fail(rt, batch_id, f"purge failed: {e}")
        attempt = 0
    start_phase(rt, plan, 0)
    return Done("purged")


def fail(rt: Runtime, batch_id: str, error: str) -> Failed:
    """End the batch `failed` before anything was warmed."""
    log.warning("batch %s failed: %s", batch_id, error)
    rt.store.finish(batch_id, "failed", error=error, note="nothing was warmed")
    return Failed(error)
