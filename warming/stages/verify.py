"""Stage 3, the chord callback: every pair of a slice has a verdict, then hand over.

The prefetch chunks settle most pairs themselves (`stages/prefetch.py`); this judges
the rest: pairs whose inline check found a problem (re-warmed once, then a miss with
the reason), whose verification could not be sent, or whose chunk ran out of time.
It runs even when some prefetches failed for good (they are recorded `failed`). It
checks pairs until its budget is spent, then continues in a fresh task, so no task
runs near the time limits however slow the PoPs are.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from warming import defaults
from warming.batch.plan import Pair
from warming.pop.client import Fetched
from warming.runtime import Runtime
from warming.stages.outcome import Continue, Done, RetryIn
from warming.stages.phases import advance, chunk_task_ids, launch_once
from warming.stages.proof import proof_for
from warming.stages.send import Throttled, send
from warming.stages.verdict import check

log = logging.getLogger(__name__)

# Checks in flight per verify task: each waits on a PoP's round trip, and one at a time a
# distant PoP (100 ms) would cap a slice at 10 checks/s whatever the rate limit.
VERIFY_PARALLEL = 8


class _OutOfBudget(Exception):
    """No rate-limit slot within this task's time budget."""


def verify(
    rt: Runtime,
    batch_id: str,
    phase: int,
    n: int,
    start: int = 0,
    timeouts: tuple[type[BaseException], ...] = (),
) -> Done | Continue | RetryIn:
    """Check slice `n` of `phase` from pair `start`; hand over to the next slice or phase."""
    store = rt.store
    if store.is_final(batch_id):
        return Done("skipped")
    plan = store.plan(batch_id)
    if phase == len(plan.phases()) - 1:
        store.set_state(batch_id, "verifying")
    if phase == 0 and plan.shield_seen_through_edges is not None:
        pairs: list[Pair] = []  # the edges' slices prove these pairs (Plan.upstream_of)
    else:
        in_slice = plan.slice(phase, n)
        upstream = [u for p in in_slice if (u := plan.upstream_of(p)) is not None]
        done = store.judged(plan, phase, n, upstream)
        pairs = [p for p in [*in_slice, *upstream] if p not in done]
    deadline = time.monotonic() + defaults.VERIFY_BUDGET_S
    out_of_time: tuple[type[BaseException], ...] = (_OutOfBudget, *timeouts)

    def _send(pair: Pair) -> Fetched:
        try:
            return send(rt, plan, pair, max(0.0, deadline - time.monotonic()), warming=False)
        except Throttled:
            raise _OutOfBudget from None

    warm = store.warm_records(batch_id, pairs)
    with ThreadPoolExecutor(VERIFY_PARALLEL, thread_name_prefix="verify") as pool:
        proof = proof_for(rt, plan, pairs, pool) if pairs else None
        for i in range(0, len(pairs), VERIFY_PARALLEL):
            assert proof is not None
            if time.monotonic() > deadline:
                return Continue({"start": 0})  # verdicts recorded so far are kept
            chunk = list(
                zip(pairs[i : i + VERIFY_PARALLEL], warm[i : i + VERIFY_PARALLEL], strict=True)
            )
            futures = [
                pool.submit(check, pair, warmed, _send, time.sleep, proof) for pair, warmed in chunk
            ]
            try:
                records = [f.result() for f in futures]
            except out_of_time:
                # Some of the chunk may be recorded below; re-checking them is harmless.
                for (pair, _), f in zip(chunk, futures, strict=True):
                    if f.exception() is None:
                        store.record_result(batch_id, pair, f.result())
                return Continue({"start": 0}, countdown=1.0)
            for (pair, _), rec in zip(chunk, records, strict=True):
                store.record_result(batch_id, pair, rec)
    # The chord is joined: its tasks' results ("N hit") are kept by no one. Best effort.
    with contextlib.suppress(Exception):
        rt.canvas.forget(chunk_task_ids(plan, phase, n))
    if phase != 0 or plan.shield_seen_through_edges is None:
        # Every pair of the slice (and the shield pairs it proves) has its verdict now.
        in_slice = plan.slice(phase, n)
        store.forget_warm(
            batch_id, [*in_slice, *(u for p in in_slice if (u := plan.upstream_of(p)))]
        )
    _, phase_done = store.slice_done(batch_id, phase, n, plan.n_slices(phase))
    try:
        if phase_done:
            advance(rt, plan, phase)
        else:
            # Slice n hands over to slice n + window: every slice has exactly one
            # predecessor, and a redelivered verify repeats the hand-over if it was lost.
            launch_once(rt, plan, phase, n + plan.slices_in_flight)
    except Exception as e:  # e.g. Redis briefly away: retry the hand-over, not the slice
        log.warning("verify %s/%s/%s: hand-over failed (%s), retrying", batch_id, phase, n, e)
        return RetryIn(2, {"start": len(plan.slice(phase, n))}, "hand-over failed")
    return Done("verified")
