"""Stage 2: warm a chunk of a slice's pairs, side by side, and prove each where it can.

One task per chunk (`batch.chunk_size` pairs, default 25), not per pair: the limits
are reserved as a block (one round trip per PoP and one for the cluster), the
requests go out concurrently at their slots, and records, verdicts and surrogate
keys are written in one pipeline. Measured (bench/RESULTS_THROUGHPUT.md), Redis round
trips were two thirds of a worker's samples when each pair was a task.

Each pair is still fetched, retried and recorded on its own. Right after the warm
answers, the pairs are verified here (`verify_answers`): where the warm answer is
itself a fresh HIT of the right payload it is the proof and nothing more is sent;
the others get one verification request. A pair this stage cannot settle (a
verification that failed or found a problem, the time budget spent) is left to the
slice's chord callback, which re-checks, re-warms and judges it (`stages/verify.py`).

It never raises (CELERY_NOTES: a failed header task fails the chord, and verify
would never run): every end is a record, or a `RetryIn` for the pairs to retry.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import redis

from warming import defaults
from warming.batch.plan import Pair, Plan
from warming.batch.records import Verdict, WarmRecord, as_failed, failed_warm
from warming.batch.results import chunk_field
from warming.errors import FetchError, RetryLater
from warming.pop.cachestatus import Cache, upstream_status
from warming.pop.client import Fetched
from warming.runtime import Runtime
from warming.settings import PopSettings
from warming.sources.tagindex import record_many
from warming.stages.freshness import Proof, differs_from_origin, origin_key, stale
from warming.stages.outcome import Done, RetryIn
from warming.stages.proof import proof_for
from warming.stages.push import how_warmed
from warming.stages.send import Throttled, fetch, reserve
from warming.stages.timing import backoff, cap
from warming.stages.verdict import (
    origin_unknown,
    problem,
    same_payload,
    verdict_of,
    warm_record,
)

log = logging.getLogger(__name__)

MAX_WAIT = defaults.MAX_LIMITER_WAIT_S
# Re-queues for a rate-limit slot are not failures, but they must end somewhere.
MAX_LIMITER_REQUEUES = 1000

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    """The process's request threads, shared by every chunk (bounded however many run)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(defaults.FETCH_THREADS, thread_name_prefix="fetch")
        return _pool


def prefetch(
    rt: Runtime,
    batch_id: str,
    phase: int,
    n: int,
    lo: int,
    hi: int,
    todo: Sequence[Sequence[int]] | None = None,
    waits: int = 0,
    timeouts: tuple[type[BaseException], ...] = (),
) -> Done | RetryIn:
    """Warm pairs [lo, hi) of slice `n` (or only `todo`: [index, attempts] pairs)."""
    store = rt.store
    try:
        if store.is_final(batch_id):
            return Done("skipped")
        plan = store.plan(batch_id)
    except Exception as e:  # Redis away: retry the chunk rather than fail the chord
        log.warning("prefetch %s/%s/%s: cannot read the batch (%s)", batch_id, phase, n, e)
        return RetryIn(2.0, {"todo": todo, "waits": waits}, "Redis unavailable")
    in_slice = plan.slice(phase, n)[lo:hi]
    attempts = {i: 0 for i in range(len(in_slice))} if todo is None else dict(todo)  # type: ignore[arg-type]
    idx = sorted(attempts)
    pairs = [in_slice[i] for i in idx]
    warm: dict[Pair, WarmRecord] = {}
    t0 = time.monotonic()
    # Where each warm request goes: a shield's first one through the edge that fills it.
    to = {p: plan.warmed_through(p, attempts[i]) for i, p in zip(idx, pairs, strict=True)}
    try:
        futures = paced(
            rt,
            plan,
            pairs,
            lambda p: partial(fetch, rt, plan, p, MAX_WAIT, warming=True, to=to[p]),
            [to[p] for p in pairs],
        )
    except Throttled as e:
        if waits < MAX_LIMITER_REQUEUES:
            again = [[i, attempts[i]] for i in idx]
            return RetryIn(cap(e.wait_s), {"todo": again, "waits": waits + 1}, "rate limit")
        for i, pair in zip(idx, pairs, strict=True):
            warm[pair] = failed_warm(pair, "gave up waiting for the rate limits", attempts[i])
        return _record(rt, plan, (phase, n, lo, in_slice), warm, {}, [])
    except timeouts:
        for i, pair in zip(idx, pairs, strict=True):
            warm[pair] = failed_warm(pair, "timed out (soft time limit)", attempts[i] + 1)
        return _record(rt, plan, (phase, n, lo, in_slice), warm, {}, [])
    except redis.RedisError:  # the limits are in Redis: try the chunk again once it is back
        again = [[i, attempts[i]] for i in idx]
        return RetryIn(2.0, {"todo": again, "waits": waits + 1}, "Redis unavailable")
    answers: dict[Pair, Fetched] = {}
    retry: list[tuple[int, int, float]] = []  # index, attempts so far, delay
    for i, pair, future in zip(idx, pairs, futures, strict=True):
        tried = attempts[i]
        try:
            got = _result(future)
        except Throttled:  # no origin-concurrency lease in time: not the pair's fault
            retry.append((i, tried, 1.0))
        except RetryLater as e:
            if tried + 1 < rt.settings.fetch.max_attempts:
                retry.append((i, tried + 1, backoff(rt.settings.fetch, e.delay, tried)))
            else:
                why = f"{e} (gave up after {tried + 1} attempts)"
                warm[pair] = failed_warm(pair, why, tried + 1, e.status)
        except FetchError as e:
            warm[pair] = failed_warm(pair, str(e), tried + 1, e.status)
        except timeouts:
            warm[pair] = failed_warm(pair, "timed out (soft time limit)", tried + 1)
        except redis.RedisError:
            # Redis away mid-request (the adaptive governor reads it): not the PoP's fault,
            # and not a failure of the pair: it is tried again, its attempts unchanged.
            retry.append((i, tried, 2.0))
        except Exception as e:  # a bug must not fail the chord
            log.exception("prefetch %s at %s failed unexpectedly", pair.url, pair.pop)
            warm[pair] = failed_warm(pair, f"internal error: {type(e).__name__}: {e}", tried + 1)
        else:
            warm[pair] = warm_record(pair, got, tried + 1)
            answers[pair] = got
    how_warmed(rt, plan, warm, answers)  # push mode: did the push fill it, or this GET?
    verdicts: dict[Pair, Verdict] = {p: as_failed(r) for p, r in warm.items() if p not in answers}
    # A shield seen through the edges is proven by their warm answers, later (upstream_of).
    deferred = phase == 0 and plan.shield_seen_through_edges is not None
    if answers and not deferred and time.monotonic() - t0 < defaults.CHUNK_VERIFY_BUDGET_S:
        with contextlib.suppress(*timeouts, redis.RedisError):  # the callback verifies the rest
            verdicts.update(verify_answers(rt, plan, answers, warm, timeouts))
    return _record(rt, plan, (phase, n, lo, in_slice), warm, verdicts, retry, answers, waits)


def paced(
    rt: Runtime,
    plan: Plan,
    pairs: Sequence[Pair],
    call: Callable[[Pair], Callable[[], Fetched]],
    to: Sequence[PopSettings] | None = None,
) -> list[Future[Fetched]]:
    """Each pair's request, handed to the request threads at a slot reserved for it.

    Slots are waited for here, not in the request threads (a thread asleep until its slot
    would hold back others whose slots have come). A slot missed by more than
    `defaults.SLOT_LATE_S` (a stalled process, a slow reply) is given up and a new one
    reserved: sent late, it would leave together with on-time requests, a burst above
    the limit. Raises Throttled when the first reservation finds no room in time.
    """
    futures: dict[int, Future[Fetched]] = {}
    todo = list(range(len(pairs)))
    for round_ in range(defaults.SLOT_ROUNDS):
        try:
            at = reserve(
                rt, plan, [pairs[i] for i in todo], MAX_WAIT, [to[i] for i in todo] if to else None
            )
        except Throttled as e:
            if round_ == 0:
                raise
            for i in todo:  # the caller retries these like any throttled request
                futures[i] = Future()
                futures[i].set_exception(e)
            break
        late: list[int] = []
        last_round = round_ + 1 == defaults.SLOT_ROUNDS
        for j in sorted(range(len(todo)), key=at.__getitem__):
            delay = at[j] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif -delay > defaults.SLOT_LATE_S and not last_round:
                late.append(todo[j])
                continue
            futures[todo[j]] = pool().submit(call(pairs[todo[j]]))
        if not late:
            break
        todo = late
    return [futures[i] for i in range(len(pairs))]


def _result(future: Future[Fetched]) -> Fetched:
    # Bounded: a request ends by fetch.total_timeout_s, a reserved slot within the wait.
    return future.result()


def _record(
    rt: Runtime,
    plan: Plan,
    where: tuple[int, int, int, list[Pair]],
    warm: dict[Pair, WarmRecord],
    verdicts: dict[Pair, Verdict],
    retry: list[tuple[int, int, float]],
    answers: dict[Pair, Fetched] | None = None,
    waits: int = 0,
) -> Done | RetryIn:
    """Write the chunk's records (one pipeline) and its surrogate keys; say what is next."""
    phase, n, lo, pairs = where
    members = plan.chunk_members(phase, n, lo, lo + len(pairs))
    try:
        rt.store.record_chunk(plan.batch_id, chunk_field(phase, n, lo), members, warm, verdicts)
        if answers:
            record_many(rt.redis, _first_seen_keys(plan, answers))
            if plan.refresh_s:
                rt.store.record_short_lived(plan.batch_id, short_lived(plan.refresh_s, answers))
    except Exception:  # the callback and the watchdog account for what is missing
        log.exception("could not record a prefetch chunk of batch %s", plan.batch_id)
    if retry:
        todo = [[i, tried] for i, tried, _ in retry]
        delay = max(d for _, _, d in retry)  # never sooner than any PoP asked for
        return RetryIn(delay, {"todo": todo, "waits": waits}, f"retrying {len(todo)} pair(s)")
    hits = sum(1 for v in verdicts.values() if v.get("outcome") == "hit")
    return Done(f"{hits} hit")


def short_lived(refresh_s: float, answers: dict[Pair, Fetched]) -> dict[str, float]:
    """URLs whose answers stop being servable (max-age + stale-while-revalidate) before
    `refresh_s`, the next warm: between runs the edges would fetch them cold or serve them
    expired. URL -> that window in seconds (0 for no max-age at all)."""
    out: dict[str, float] = {}
    for pair, got in answers.items():
        window = float((got.lifetime_s or 0) + (got.swr_s or 0))
        if window < refresh_s:
            out[pair.url] = min(window, out.get(pair.url, window))
    return out


def _first_seen_keys(plan: Plan, answers: dict[Pair, Fetched]) -> dict[str, tuple[str, ...]]:
    """Each URL's surrogate keys, from one answer per URL (every PoP sends the same)."""
    out: dict[str, tuple[str, ...]] = {}
    for pair, got in answers.items():
        out.setdefault(pair.url, got.keys)
    return out


def verify_answers(
    rt: Runtime,
    plan: Plan,
    answers: dict[Pair, Fetched],
    warm: dict[Pair, WarmRecord],
    timeouts: tuple[type[BaseException], ...] = (),
) -> dict[Pair, Verdict]:
    """Verdicts for the warmed pairs this stage can settle; the rest go to the callback.

    A warm answer that already is a fresh HIT of the right payload is its own proof. A
    MISS only shows the PoP fetched the object; one more request shows it serves it
    from cache. A pair whose check finds a problem is not judged here: the callback
    re-warms it once and judges it.
    """
    proof = proof_for(rt, plan, list(answers), pool())
    out: dict[Pair, Verdict] = _upstream_verdicts(rt, plan, answers, proof)
    need: list[Pair] = []
    for pair, got in answers.items():
        if origin_unknown(pair, proof) is not None:
            continue  # the callback asks the origin again, or fails the pair saying why
        if got.cache.is_hit and problem(got, warm[pair], proof, pair) is None:
            out[pair] = verdict_of(warm[pair], got, None, rewarmed=False)
        else:
            need.append(pair)
    if not need:
        return out

    # HEAD where the ETag is the proof of the payload: the body would only be read and dropped.
    def check_call(p: Pair) -> Callable[[], Fetched]:
        return partial(fetch, rt, plan, p, MAX_WAIT, warming=False, head=bool(warm[p].get("etag")))

    try:
        futures = paced(rt, plan, need, check_call)
    except Throttled:
        return out
    for pair, future in zip(need, futures, strict=True):
        try:
            got = _result(future)
        except (FetchError, Throttled):
            continue
        if problem(got, warm[pair], proof, pair) is None:
            out[pair] = verdict_of(warm[pair], got, None, rewarmed=False)
    return out


def _upstream_verdicts(
    rt: Runtime, plan: Plan, answers: dict[Pair, Fetched], proof: Proof
) -> dict[Pair, Verdict]:
    """Verdicts for the shield pairs these edge answers prove (`Plan.upstream_of`).

    The edge filled from the shield: the chain's shield entry is HIT, the Age it carries
    is the shield's (the freshness proof applies to it as to any answer), and the payload
    is the one the shield was warmed with. Any doubt leaves the pair to the callback.
    """
    owned = {u: p for p in answers if (u := plan.upstream_of(p)) is not None}
    if not owned:
        return {}
    shield_warm = rt.store.warm_records(plan.batch_id, list(owned))
    out: dict[Pair, Verdict] = {}
    for (upstream, edge_pair), warmed in zip(owned.items(), shield_warm, strict=True):
        got = answers[edge_pair]
        if warmed is None or warmed.get("outcome") != "warmed":
            continue
        if upstream_status(got.headers) is not Cache.HIT or got.status not in proof.statuses:
            continue
        if stale(got, proof) is not None or origin_unknown(upstream, proof) is not None:
            continue
        if proof.by_origin and differs_from_origin(got, proof.origin[origin_key(
            upstream.url, upstream.variant)]) is not None:  # fmt: skip
            continue
        if not same_payload(got, warmed):
            continue
        rec = verdict_of(warmed, got, None, rewarmed=False)
        rec["cache"] = Cache.HIT.value
        rec["via"] = edge_pair.pop
        out[upstream] = rec
    return out
