"""No batch waits forever: a stalled batch is driven again, an overdue one finished.

A batch that records nothing while its queue is empty has lost a message: its
unverified slices (or its purge) are published again (`redrive_stalled`). Past its
deadline, a batch is finished from what was recorded (`reap_overdue`).

Celery can lose a chord callback (celery #4207), a worker pool can be wiped out, a
purge can hang; whatever happened, the batch ends with every pair accounted for and
a note saying the watchdog ended it. Every worker runs the check (cheap: one
ZRANGEBYSCORE), and `finish()` is guarded so only one of them does the work.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from warming import defaults
from warming import keys as K
from warming.batch.report import iso
from warming.batch.store import BatchStore
from warming.broker import tasknames as T
from warming.runtime import Runtime
from warming.stages.ended import ended
from warming.stages.phases import advance, launch_chord

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
    """Publish again what a stalled batch lost: {batch id: slices} ([] for its purge).

    Stalled: purging, warming or verifying, no pair recorded for STALL_S, its queue
    empty and no message of it held by a worker (a batch waiting behind a backlog, or
    for its retries' countdowns, is not stalled, only slow). A batch that lived through
    a Redis restart is stalled after RESTART_STALL_S instead (see `_window`). A slice
    done twice costs requests and nothing else: records are idempotent and a slice's
    verification hands over once; a purge done twice only purges again before warming.
    """
    store = rt.store
    out: dict[str, list[int]] = {}
    now = now or time.time()
    booted = booted_at(rt.redis)
    for bid, state, idle, started in store.idle(defaults.RESTART_STALL_S, now):
        restarted = started < booted
        if idle < _window(restarted):
            continue
        try:
            plan = store.plan(bid)
        except KeyError:
            continue
        if _queued(rt, plan.priority, state, restarted) or _held(rt, bid):
            continue
        # One worker per stall: the guard names the moment progress stopped.
        if not store.claim(bid, f"redrive:{int(now - idle)}"):
            continue
        slices: list[int] = []
        if state == "purging":
            what = "its purge"
            rt.canvas.send(T.PURGE, (bid,))
        else:
            phase, slices = store.unverified_slices(bid, plan)
            what = f"phase {phase} slices {slices}"
            for n in slices:
                launch_chord(rt, plan, phase, n)
            if phase == len(plan.phases()):  # all verified: the last hand-over was lost
                what = "its last hand-over"
                advance(rt, plan, phase - 1)
        store.touch(bid)
        log.warning(
            "watchdog: batch %s recorded nothing for %.0f s with its queue empty (a lost "
            "message%s): publishing %s again",
            bid, idle, ", after a Redis restart" if restarted else "", what,
        )  # fmt: skip
        out[bid] = slices
    return out


def _window(restarted: bool) -> float:
    """How long a batch may record nothing, its messages out of sight, before it is stalled.

    Out of sight: in no queue and in no worker's unacked hash. A Redis restart keeps both
    (AOF), but a task that hit it and raised was acknowledged as failed, and nothing brings
    it back (measured: the callbacks of 2 slices of 6 lost to a 2 s restart). Waiting
    STALL_S after the last record, which came from the messages the restart left unacked
    (back after the visibility timeout), ended such a batch 162 and 171 s after the restart.
    """
    return defaults.RESTART_STALL_S if restarted else defaults.STALL_S


def _queued(rt: Runtime, priority: str, state: str, restarted: bool) -> bool:
    """Whether a queue holds messages the batch may be waiting for."""
    if state == "purging":
        queues = [T.Q_PURGE]
    else:
        queues = [T.prefetch_queue(priority)]
        if restarted:  # the short window must not miss a callback queued behind others
            queues += [T.Q_VERIFY, T.Q_CONTROL]
    with rt.redis.pipeline(transaction=False) as p:
        for q in queues:
            p.llen(rt.messages.list_name(q))
        return any(p.execute())


def booted_at(r: redis.Redis) -> float:
    """When the Redis server last started, at the earliest (0.0 if it does not say).

    Its uptime is whole seconds: one more is taken off, so a batch started after the
    start never counts as having lived through it.
    """
    try:
        return time.time() - float(r.info("server")["uptime_in_seconds"]) - 1.0
    except (redis.RedisError, KeyError, TypeError, ValueError):
        return 0.0


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
