"""Stage 3, the chord callback: prove each pair of a slice is served as a fresh HIT.

It runs even when some prefetches failed for good (they are recorded `failed`).
A verify task checks pairs until its budget is spent, then continues in a fresh
task, so no task runs near the time limits however slow the PoPs are.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from warming import defaults
from warming.batch.plan import Pair
from warming.pop.client import Fetched
from warming.runtime import Runtime
from warming.stages import origin
from warming.stages.freshness import Proof
from warming.stages.outcome import Continue, Done, RetryIn
from warming.stages.phases import advance, launch_once
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
    pairs = plan.slice(phase, n)[start:]
    deadline = time.monotonic() + defaults.VERIFY_BUDGET_S
    out_of_time: tuple[type[BaseException], ...] = (_OutOfBudget, *timeouts)

    def _send(pair: Pair) -> Fetched:
        try:
            return send(rt, plan, pair, max(0.0, deadline - time.monotonic()), warming=False)
        except Throttled:
            raise _OutOfBudget from None

    warm = store.warm_records(batch_id, pairs)
    # "Now" on Redis's clock, the one the purge start was read from: one offset per task.
    offset = store.clock() - time.time()
    proof = Proof(
        plan.freshness,
        plan.statuses,
        store.purge_started(batch_id),
        lambda: time.time() + offset,
    )
    with ThreadPoolExecutor(VERIFY_PARALLEL, thread_name_prefix="verify") as pool:
        if proof.by_origin:
            proof = replace(proof, origin=origin.versions(rt, plan, pairs, pool))
        for i in range(0, len(pairs), VERIFY_PARALLEL):
            if time.monotonic() > deadline:
                return Continue({"start": start + i})
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
                return Continue({"start": start + i}, countdown=1.0)
            for (pair, _), rec in zip(chunk, records, strict=True):
                store.record_result(batch_id, pair, rec)
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
