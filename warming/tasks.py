"""The Celery tasks: thin shells around plain functions, handling retries and routing.

    purge(batch) ──> phase 0 ──> launch_slice(batch, 0, n) for each slice
                                   └─ chord([prefetch(url, pop, variant) ...], verify(batch, 0, n))
                     the last verified slice of a phase starts the next phase (edges
                     after shields); the last one of the last phase finishes the batch.

Rules from CELERY_NOTES.md that shape this file:
- prefetch never raises out of the task: after its last retry it *returns* a failure
  outcome, so the chord callback always runs;
- no `expires` on header tasks; countdowns stay below the visibility timeout;
- chord results are one short word; the real records live in Redis hashes;
- a chord header is at most `batch.slice_size` tasks, and it is published by a
  task, never carried inside another message.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Task, chord
from celery.exceptions import Retry, SoftTimeLimitExceeded

from warming import constants as K
from warming import defaults
from warming.celery_app import app
from warming.errors import FetchError, PurgeError, RetryLater
from warming.fetch import Fetched
from warming.plan import Pair, Plan
from warming.retry import retry_delay
from warming.runtime import Runtime, current
from warming.sender import Throttled, send
from warming.tagindex import record_tags
from warming.verification import check, failed_record, warm_record

log = logging.getLogger(__name__)

# Verification checks in flight per verify task.
VERIFY_PARALLEL = 8
# Re-queues for a rate-limit slot are not failures, but they must end somewhere.
MAX_LIMITER_REQUEUES = 1000
_COMMON: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": None,  # attempts are counted by us, in kwargs, per cause
}
# Queues come from `task_routes` (celeryconf); results are stored only for prefetch,
# whose one-word results the chord needs. Nobody waits on the others, and a stored
# result would make every publisher subscribe to its channel.


@app.task(name="warming.purge", ignore_result=True, **_COMMON)
def purge(self: Task, batch_id: str, start: int = 0, attempt: int = 0) -> str:
    """Purge the batch's URLs and tags (shields first), then start warming."""
    rt = current()
    store = rt.store
    if store.is_final(batch_id):
        return "skipped"
    plan = store.plan(batch_id)
    if not plan.purge:
        start_phase(rt, plan, 0)
        return "not purged"
    store.set_state(batch_id, "purging")
    calls = rt.purger.plan(plan.urls, plan.tags, plan.pops)
    t0 = time.monotonic()
    for i in range(start, len(calls)):
        if time.monotonic() - t0 > defaults.VERIFY_BUDGET_S:
            purge.apply_async((batch_id,), {"start": i})
            return "continued"
        grant = rt.purge_limiter.acquire(defaults.MAX_LIMITER_WAIT_S)
        if not grant.ok:
            purge.apply_async(
                (batch_id,), {"start": i, "attempt": attempt}, countdown=_cap(grant.wait_s)
            )
            return "waiting for the purge limit"
        try:
            rt.purger.send(calls[i])
        except RetryLater as e:
            if attempt + 1 >= rt.settings.fetch.max_attempts:
                _fail(rt, batch_id, f"purge failed after {attempt + 1} attempts: {e}")
                return "failed"
            delay = _delay(rt, e.delay, attempt)
            purge.apply_async((batch_id,), {"start": i, "attempt": attempt + 1}, countdown=delay)
            return "retrying"
        except PurgeError as e:
            _fail(rt, batch_id, f"purge failed: {e}")
            return "failed"
        attempt = 0
    start_phase(rt, plan, 0)
    return "purged"


def _fail(rt: Runtime, batch_id: str, error: str) -> None:
    log.warning("batch %s failed: %s", batch_id, error)
    rt.store.finish(batch_id, "failed", error=error, note="nothing was warmed")


def start_phase(rt: Runtime, plan: Plan, phase: int) -> None:
    """Launch the first window of a phase's slices, once, however many tasks get here."""
    if not rt.store.claim(plan.batch_id, f"phase{phase}"):
        return
    rt.store.set_state(plan.batch_id, "warming")
    if plan.phase_size(phase) == 0:  # a tags-only purge: nothing to warm
        advance(rt, plan, phase)
        return
    window = min(plan.n_slices(phase), plan.slices_in_flight)
    if window <= 2:  # small batches: skip a hop, webhook-to-verified latency matters
        for s in range(window):
            _launch_once(rt, plan, phase, s)
        return
    # One task per slice: the window is published by every worker at once.
    for s in range(window):
        launch_slice.apply_async((plan.batch_id, phase, s))


@app.task(name="warming.launch_slice", ignore_result=True, **_COMMON)
def launch_slice(self: Task, batch_id: str, phase: int, n: int) -> str:
    """Publish one slice's chord: prefetch each pair, then verify the slice."""
    rt = current()
    if rt.store.is_final(batch_id):
        return "skipped"
    _launch_once(rt, rt.store.plan(batch_id), phase, n)
    return "launched"


def _launch_once(rt: Runtime, plan: Plan, phase: int, n: int) -> None:
    """Publish slice `n` unless it already was (a crash between the two may repeat it:
    a repeated slice costs requests, a skipped one would stall the batch)."""
    if n < plan.n_slices(phase) and not rt.store.launched(plan.batch_id, phase, n):
        launch_chord(plan, phase, n)
        rt.store.mark_launched(plan.batch_id, phase, n)


def launch_chord(plan: Plan, phase: int, n: int) -> None:
    """Publish slice `n`'s chord: its prefetches, then its verification."""
    queue = K.Q_PREFETCH_BULK if plan.priority == "bulk" else K.Q_PREFETCH
    header = [
        prefetch.s(plan.batch_id, p.url, p.pop, p.variant).set(queue=queue)
        for p in plan.slice(phase, n)
    ]
    chord(header, verify.si(plan.batch_id, phase, n)).apply_async()


@app.task(name="warming.prefetch", **_COMMON)
def prefetch(
    self: Task, batch_id: str, url: str, pop: str, variant: str, attempt: int = 0, waits: int = 0
) -> str:
    """GET one URL through one PoP so the PoP caches it; record what it saw.

    Returns a one-word outcome and never raises (a raise would fail the chord).
    """
    rt = current()
    store = rt.store
    pair = Pair(url, pop, variant)
    retry_in: float | None = None
    kwargs = {"attempt": attempt, "waits": waits}
    try:
        if store.is_final(batch_id):
            return "skipped"
        plan = store.plan(batch_id)
        got = send(rt, plan, pair, defaults.MAX_LIMITER_WAIT_S, warming=True)
        rec = warm_record(pair, got, attempt + 1)
        record_tags(rt.redis, url, got.keys)
    except Throttled as e:
        if waits < MAX_LIMITER_REQUEUES:
            retry_in, kwargs["waits"] = _cap(e.wait_s), waits + 1
        else:
            rec = failed_record(pair, "gave up waiting for the rate limits", attempt)
    except RetryLater as e:
        if attempt + 1 < rt.settings.fetch.max_attempts:
            retry_in, kwargs["attempt"] = _delay(rt, e.delay, attempt), attempt + 1
        else:
            rec = failed_record(
                pair, f"{e} (gave up after {attempt + 1} attempts)", attempt + 1, e.status
            )
    except FetchError as e:
        rec = failed_record(pair, str(e), attempt + 1, e.status)
    except SoftTimeLimitExceeded:
        rec = failed_record(pair, "timed out (soft time limit)", attempt + 1)
    except Retry:
        raise
    except Exception as e:  # a bug or a Redis outage must not fail the chord
        log.exception("prefetch %s at %s failed unexpectedly", url, pop)
        rec = failed_record(pair, f"internal error: {type(e).__name__}: {e}", attempt + 1)
    if retry_in is not None:
        raise self.retry(
            countdown=retry_in,
            kwargs={"batch_id": batch_id, "url": url, "pop": pop, "variant": variant, **kwargs},
        )
    try:
        store.record_warm(batch_id, pair, rec)
    except Exception:  # verify and the watchdog report the pair as never prefetched
        log.exception("could not record prefetch of %s at %s", url, pop)
    return str(rec["outcome"])


@app.task(name="warming.verify", ignore_result=True, **_COMMON)
def verify(self: Task, batch_id: str, phase: int, n: int, start: int = 0) -> str:
    """Chord callback: check each pair of a slice serves a fresh HIT of what was warmed."""
    rt = current()
    store = rt.store
    if store.is_final(batch_id):
        return "skipped"
    plan = store.plan(batch_id)
    if phase == len(plan.phases()) - 1:
        store.set_state(batch_id, "verifying")
    pairs = plan.slice(phase, n)[start:]
    deadline = time.monotonic() + defaults.VERIFY_BUDGET_S

    def _send(pair: Pair) -> Fetched:
        try:
            return send(rt, plan, pair, max(0.0, deadline - time.monotonic()), warming=False)
        except Throttled:
            raise _OutOfBudget from None

    warm = store.warm_records(batch_id, pairs)
    # Checks run a few at a time: each waits on a PoP's round trip, and one at a time a
    # distant PoP (100 ms) would cap a slice at 10 checks/s whatever the rate limit.
    with ThreadPoolExecutor(VERIFY_PARALLEL, thread_name_prefix="verify") as pool:
        for i in range(0, len(pairs), VERIFY_PARALLEL):
            if time.monotonic() > deadline:
                return _continue_verify(batch_id, phase, n, start + i, 0)
            chunk = list(
                zip(pairs[i : i + VERIFY_PARALLEL], warm[i : i + VERIFY_PARALLEL], strict=True)
            )
            futures = [pool.submit(check, pair, warmed, _send) for pair, warmed in chunk]
            try:
                records = [f.result() for f in futures]
            except (_OutOfBudget, SoftTimeLimitExceeded):
                # Some of the chunk may be recorded below; re-checking them is harmless.
                for (pair, _), f in zip(chunk, futures, strict=True):
                    if f.exception() is None:
                        store.record_result(batch_id, pair, f.result())
                return _continue_verify(batch_id, phase, n, start + i, 1.0)
            for (pair, _), rec in zip(chunk, records, strict=True):
                store.record_result(batch_id, pair, rec)
    _, phase_done = store.slice_done(batch_id, phase, n, plan.n_slices(phase))
    try:
        if phase_done:
            advance(rt, plan, phase)
        else:
            # Slice n hands over to slice n + window: every slice has exactly one
            # predecessor, and a redelivered verify repeats the hand-over if it was lost.
            _launch_once(rt, plan, phase, n + plan.slices_in_flight)
    except Exception as e:  # e.g. Redis briefly away: retry the hand-over, not the slice
        log.warning("verify %s/%s/%s: hand-over failed (%s), retrying", batch_id, phase, n, e)
        raise self.retry(countdown=2, kwargs={"start": len(plan.slice(phase, n))}) from None
    return "verified"


class _OutOfBudget(Exception):
    """No rate-limit slot within this task's time budget."""


def _continue_verify(batch_id: str, phase: int, n: int, start: int, countdown: float) -> str:
    verify.apply_async((batch_id, phase, n), {"start": start}, countdown=countdown)
    return "continued"


def advance(rt: Runtime, plan: Plan, phase: int) -> None:
    """A phase is verified: warm the next tier, or finish the batch."""
    if phase + 1 < len(plan.phases()):
        start_phase(rt, plan, phase + 1)
    else:
        rt.store.finish(plan.batch_id, "done")


def _cap(seconds: float) -> float:
    return min(max(seconds, 0.0), defaults.RETRY_AFTER_CAP_S)


def _delay(rt: Runtime, retry_after: float | None, attempt: int) -> float:
    f = rt.settings.fetch
    return retry_delay(
        retry_after, attempt, f.backoff_base_s, min(f.retry_after_cap_s, defaults.RETRY_AFTER_CAP_S)
    )


@app.task(name="warming.flush_trailing", ignore_result=True, **_COMMON)
def flush_trailing(self: Task, trailing_id: str, leader: str = "") -> str:
    """Publish the trailing batch of a coalescing window (changes seen mid-run), when due."""
    from warming.coalesce import Coalescer
    from warming.publish import WarmRequest, publish

    rt = current()
    coalescer = Coalescer(rt.redis, rt.settings.webhook.coalesce_window_s)
    wait_s = coalescer.wait_s(trailing_id)
    if wait_s > 0:  # its leader's window is still open: more changes may join
        raise self.retry(countdown=_cap(wait_s))
    urls = coalescer.flush(trailing_id)
    if not urls:
        return "empty"
    if rt.store.state(trailing_id) is None:
        coalescer.lead(trailing_id, urls)
        trigger = {
            "source": "webhook:coalesced",
            "trailing_for": leader or coalescer.leader_of(trailing_id),
        }
        publish(rt, WarmRequest(urls=urls, trigger=trigger), batch_id=trailing_id)
    return "published"
