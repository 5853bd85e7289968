"""Stage 2: GET one URL through one PoP so the PoP caches it; record what it saw.

It never raises (CELERY_NOTES: a failed header task fails the chord, and verify
would never run): every end is a record, or a `RetryIn` for the task to schedule.
"""

from __future__ import annotations

import logging

from warming import defaults
from warming.batch.plan import Pair
from warming.batch.records import WarmRecord, failed_warm
from warming.errors import FetchError, RetryLater
from warming.runtime import Runtime
from warming.sources.tagindex import record_tags
from warming.stages.outcome import Done, RetryIn
from warming.stages.send import Throttled, send
from warming.stages.timing import backoff, cap
from warming.stages.verdict import warm_record

log = logging.getLogger(__name__)

# Re-queues for a rate-limit slot are not failures, but they must end somewhere.
MAX_LIMITER_REQUEUES = 1000


def prefetch(
    rt: Runtime,
    batch_id: str,
    pair: Pair,
    attempt: int = 0,
    waits: int = 0,
    timeouts: tuple[type[BaseException], ...] = (),
) -> Done | RetryIn:
    """Warm `pair`; Done(outcome word) once recorded, RetryIn to try again later.

    `timeouts`: the exceptions a time limit raises in this task (Celery's soft limit).
    """
    store = rt.store
    try:
        if store.is_final(batch_id):
            return Done("skipped")
        plan = store.plan(batch_id)
        got = send(rt, plan, pair, defaults.MAX_LIMITER_WAIT_S, warming=True)
        rec: WarmRecord = warm_record(pair, got, attempt + 1)
        record_tags(rt.redis, pair.url, got.keys)
    except Throttled as e:
        if waits < MAX_LIMITER_REQUEUES:
            return RetryIn(cap(e.wait_s), {"attempt": attempt, "waits": waits + 1}, "rate limit")
        rec = failed_warm(pair, "gave up waiting for the rate limits", attempt)
    except RetryLater as e:
        if attempt + 1 < rt.settings.fetch.max_attempts:
            delay = backoff(rt.settings.fetch, e.delay, attempt)
            return RetryIn(delay, {"attempt": attempt + 1, "waits": waits}, str(e))
        rec = failed_warm(
            pair, f"{e} (gave up after {attempt + 1} attempts)", attempt + 1, e.status
        )
    except FetchError as e:
        rec = failed_warm(pair, str(e), attempt + 1, e.status)
    except timeouts:
        rec = failed_warm(pair, "timed out (soft time limit)", attempt + 1)
    except Exception as e:  # a bug or a Redis outage must not fail the chord
        log.exception("prefetch %s at %s failed unexpectedly", pair.url, pair.pop)
        rec = failed_warm(pair, f"internal error: {type(e).__name__}: {e}", attempt + 1)
    try:
        store.record_warm(batch_id, pair, rec)
    except Exception:  # verify and the watchdog report the pair as never prefetched
        log.exception("could not record prefetch of %s at %s", pair.url, pair.pop)
    return Done(str(rec["outcome"]))
