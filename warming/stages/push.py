"""Stage 1b (push mode): hand the batch's URLs to the CDN's push API, then start warming.

    purge ──> push(batch) ──> calls of ≤ max_per_call URLs, under the account's rate
                              and daily quota (cluster-wide) ──> settle_s ──> phase 0

It runs after the purge has taken effect (purge strictly before warm) and before any
GET. Waits (the rate, a Retry-After, the settling) are re-queued tasks with countdowns
under the cap, never a sleeping thread. A URL is never silently dropped: one the push
cannot carry (quota used up, call refused, retries spent) falls back to GET warming,
its reason kept in `warming:batch:{id}:pushfallback` and shown in each of its pairs'
rows. Every URL is then verified by GETs through every PoP as in get mode: the first
GET of a pushed pair is its check (`how_warmed` marks it "push" when it finds it cached;
a MISS means the push had not landed there, and that GET warmed it).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping

import redis

from warming import defaults
from warming import keys as K
from warming.batch.plan import Pair, Plan
from warming.batch.records import NOT_LANDED, WarmRecord
from warming.broker import tasknames as T
from warming.cdn.pushbase import PushCall
from warming.errors import ConfigError, PurgeError, RetryLater
from warming.pop.client import Fetched
from warming.rediskit import text
from warming.runtime import Runtime
from warming.stages.outcome import Continue, Done, Outcome, RetryIn
from warming.stages.phases import start_phase
from warming.stages.timing import backoff, cap

log = logging.getLogger(__name__)

# Fields of the batch's own hash (they expire with it and survive a redelivered task).
_SETTLE = "push_settle_until"  # Redis time after which verification may start
_DONE = "push_done"  # "1" once phase 0 was started
_PUSHED = "pushed"  # URLs the API accepted


def begin_warming(rt: Runtime, plan: Plan, resumed: bool = False) -> None:
    """After the purge: in push mode the push task, else (or once pushed) the first phase.

    `resumed` (a purge redelivered after warming began): a push under way carries on in
    its own task; if that task was lost, the watchdog re-drives the slices (GETs).
    """
    if plan.warm is None or rt.redis.hget(K.BATCH.format(id=plan.batch_id), _DONE):
        start_phase(rt, plan, 0)
    elif not resumed:
        rt.canvas.send(T.PUSH, (plan.batch_id,))


def push(rt: Runtime, batch_id: str, start: int = 0, attempt: int = 0) -> Outcome:
    """Send the batch's push calls from `start`; Done once warming has started."""
    store = rt.store
    if store.is_final(batch_id):
        return Done("skipped")
    plan = store.plan(batch_id)
    bkey = K.BATCH.format(id=batch_id)
    if plan.warm is None or rt.redis.hget(bkey, _DONE):
        start_phase(rt, plan, 0)
        return Done("resumed")
    store.set_state(batch_id, "warming")
    store.touch(batch_id)
    try:
        pusher = rt.pusher_for(plan)
    except ConfigError as e:
        fall_back(rt, plan, plan.urls, f"not pushed: this worker cannot push as planned: {e}")
        return _started(rt, plan)
    calls = pusher.plan(plan.urls)
    groups = pusher.by_item(plan.urls)
    limiter, quota = rt.push_limiter(pusher), rt.push_quota(pusher)
    t0 = time.monotonic()
    for i in range(start, len(calls)):
        if time.monotonic() - t0 > defaults.VERIFY_BUDGET_S:
            return Continue({"start": i, "attempt": attempt})
        call, rest = calls[i], PushCall((), ())
        if quota is not None:
            call, rest = call.first(quota.take(len(call.items)), groups)
        if call.items:
            grant = limiter.acquire(defaults.MAX_LIMITER_WAIT_S)
            if not grant.ok:
                if quota is not None:  # taken again when the slot comes
                    quota.give_back(len(call.items))
                why = "push rate limit"
                return RetryIn(cap(grant.wait_s), {"start": i, "attempt": attempt}, why)
        if rest.urls and quota is not None:
            used_up = f"warm.daily_quota of {quota.quota:,} URLs a day is used up"
            fall_back(rt, plan, rest.urls, f"not pushed: {used_up} ({pusher.account})")
        if not call.items:
            continue
        try:
            pusher.send(call)
        except RetryLater as e:
            if quota is not None:
                quota.give_back(len(call.items))
            if attempt + 1 < rt.settings.fetch.max_attempts:
                delay = backoff(rt.settings.fetch, e.delay, attempt)
                return RetryIn(delay, {"start": i, "attempt": attempt + 1}, "push retry")
            why = f"not pushed: {e} (gave up after {attempt + 1} attempts)"
            fall_back(rt, plan, call.urls, why)
        except PurgeError as e:
            if quota is not None:
                quota.give_back(len(call.items))
            fall_back(rt, plan, call.urls, f"not pushed: the push API refused it: {e}")
        else:
            rt.redis.hincrby(bkey, _PUSHED, len(call.urls))
        attempt = 0
        store.touch(batch_id)
    return _settle(rt, plan, pusher.warm.settle_s, len(calls))


def _settle(rt: Runtime, plan: Plan, settle_s: float, n_calls: int) -> Outcome:
    """Wait `settle_s` after the last call (pushes land asynchronously), then warm."""
    bkey = K.BATCH.format(id=plan.batch_id)
    if not int(rt.redis.hget(bkey, _PUSHED) or 0):
        return _started(rt, plan)  # nothing was pushed: nothing to wait for
    now = _now(rt)
    until = rt.redis.hget(bkey, _SETTLE)
    if until is None:
        rt.redis.hset(bkey, _SETTLE, repr(now + settle_s))
        until_s = now + settle_s
    else:
        until_s = float(until)
    if now < until_s:
        left = cap(until_s - now)
        return RetryIn(left, {"start": n_calls, "attempt": 0}, "letting the push land")
    return _started(rt, plan)


def _started(rt: Runtime, plan: Plan) -> Done:
    rt.redis.hset(K.BATCH.format(id=plan.batch_id), _DONE, "1")
    start_phase(rt, plan, 0)
    return Done("pushed")


def _now(rt: Runtime) -> float:
    # Redis's clock: the settling is measured alike whichever worker runs the next step.
    sec, usec = rt.redis.time()
    return float(sec) + usec / 1e6


def fall_back(rt: Runtime, plan: Plan, urls: tuple[str, ...] | list[str], reason: str) -> None:
    """Warm `urls` by GET instead, recording why (each of their pairs' rows says it)."""
    if not urls:
        return
    key = K.PUSH_FALLBACK.format(id=plan.batch_id)
    with rt.redis.pipeline() as p:
        p.hset(key, mapping=dict.fromkeys(urls, reason))
        # As long as the batch's own keys: until its deadline, then its report's time.
        p.expire(key, int(max(0.0, plan.deadline - time.time()) + rt.store.ttl_s))
        p.execute()
    log.warning("batch %s: %d URL(s) warmed by GET: %s", plan.batch_id, len(urls), reason)


def fallbacks(rt: Runtime, plan: Plan, urls: list[str]) -> dict[str, str]:
    """URL -> why it was not pushed, for those of `urls` that were not."""
    if not urls:
        return {}
    raw = rt.redis.hmget(K.PUSH_FALLBACK.format(id=plan.batch_id), urls)
    return {u: text(r) or "" for u, r in zip(urls, raw, strict=True) if r}


def how_warmed(
    rt: Runtime, plan: Plan, warm: Mapping[Pair, WarmRecord], answers: Mapping[Pair, Fetched]
) -> None:
    """Mark each warm record with how its pair was warmed (push mode; no-op otherwise).

    "push": its URL was pushed and the first GET found it cached. "get" with the reason:
    its URL was not pushed, or the push had not landed at this PoP (the GET filled it).
    A pair whose GET failed says how it was to be warmed.
    """
    if plan.warm is None or not warm:
        return
    why: dict[str, str] = {}
    with contextlib.suppress(redis.RedisError):  # unmarked rows, never a failed chunk
        why = fallbacks(rt, plan, list(dict.fromkeys(p.url for p in warm)))
    for pair, rec in warm.items():
        got = answers.get(pair)
        if pair.url in why:
            rec["warm"], rec["warm_reason"] = "get", why[pair.url]
        elif got is not None and not got.cache.is_hit:
            rec["warm"], rec["warm_reason"] = "get", NOT_LANDED
        else:
            rec["warm"] = "push"
