"""No batch waits forever: a stalled batch is driven again, an overdue one finished.

A batch that records nothing while its queue is empty has lost a message: its
unverified slices are published again (`redrive_stalled`). Past its deadline, a batch
is finished from what was recorded (`reap_overdue`).

Celery can lose a chord callback (celery #4207), a worker pool can be wiped out, a
purge can hang; whatever happened, the batch ends with every pair accounted for and
a note saying the watchdog ended it. Every worker runs the check (cheap: one
ZRANGEBYSCORE), and `finish()` is guarded so only one of them does the work.
"""

from __future__ import annotations

import logging
import threading
import time

from warming import defaults
from warming import keys as K
from warming.batch.report import iso
from warming.batch.store import BatchStore
from warming.broker.tasknames import prefetch_queue
from warming.runtime import Runtime
from warming.stages.ended import ended
from warming.stages.phases import launch_chord

log = logging.getLogger(__name__)

NOTE = "finished by the watchdog: the batch passed its deadline ({deadline})"


def reap_overdue(store: BatchStore) -> list[str]:
    """Finish every batch past its deadline; return the ids this call finished."""
    done = []
    for bid in store.overdue():
        state = store.state(bid)
        if state is None:  # expired: nothing left to finish
            store.r.zrem(K.ACTIVE, bid)
            continue
        try:
            deadline = iso(store.plan(bid).deadline) or "?"
        except KeyError:
            continue
        note = NOTE.format(deadline=deadline)
        if state in ("queued", "purging"):
            ok = store.finish(bid, "failed", error="the purge did not finish in time", note=note)
        else:
            ok = store.finish(bid, "done", note=note)
        if ok:
            log.warning("watchdog finished batch %s (was %s)", bid, state)
            done.append(bid)
    return done


def redrive_stalled(rt: Runtime, now: float | None = None) -> dict[str, list[int]]:
    """Publish again the unverified slices of every stalled batch: {batch id: slices}.

    Stalled: warming or verifying, no pair recorded for STALL_S, its prefetch queue
    empty and no message of it held by a worker (a batch waiting behind a backlog, or
    for its retries' countdowns, is not stalled, only slow). A slice
    done twice costs requests and nothing else: records are idempotent and a slice's
    verification hands over once.
    """
    store = rt.store
    out: dict[str, list[int]] = {}
    now = now or time.time()
    for bid, idle in store.idle(defaults.STALL_S, now):
        try:
            plan = store.plan(bid)
        except KeyError:
            continue
        queue = rt.messages.list_name(prefetch_queue(plan.priority))
        if store.r.llen(queue) or _held(rt, bid):
            continue
        # One worker per stall: the guard names the moment progress stopped.
        if not store.claim(bid, f"redrive:{int(now - idle)}"):
            continue
        phase, slices = store.unverified_slices(bid, plan)
        for n in slices:
            launch_chord(rt, plan, phase, n)
        store.touch(bid)
        log.warning(
            "watchdog: batch %s recorded nothing for %.0f s with its queue empty (a lost "
            "message): publishing phase %s slices %s again",
            bid, idle, phase, slices,
        )  # fmt: skip
        out[bid] = slices
    return out


def _held(rt: Runtime, batch_id: str) -> bool:
    """Whether some worker holds a message of this batch (its id is in the headers).

    Reads every held message, but only for a batch that already looks stalled.
    """
    needle = batch_id.encode()
    unacked = rt.messages.list_name(K.KOMBU_UNACKED)
    return any(needle in raw for _, raw in rt.redis.hscan_iter(unacked, count=500))


class Watchdog(threading.Thread):
    """Every worker's watchdog: a daemon thread that reaps and re-drives every interval."""

    def __init__(self, rt: Runtime, interval_s: float = defaults.WATCHDOG_INTERVAL_S) -> None:
        super().__init__(name="warming-watchdog", daemon=True)
        self.rt = rt
        self.interval_s = interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                for bid in reap_overdue(self.rt.store):
                    ended(self.rt, bid)
                redrive_stalled(self.rt)
            except Exception:  # Redis blips must not kill the thread
                log.exception("watchdog pass failed")

    def stop(self) -> None:
        self.stopped.set()
