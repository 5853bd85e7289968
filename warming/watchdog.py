"""No batch waits forever: past its deadline, a batch is finished from what was recorded.

Celery can lose a chord callback (celery #4207), a worker pool can be wiped out, a
purge can hang; whatever happened, the batch ends with every pair accounted for and
a note saying the watchdog ended it. Every worker runs the check (cheap: one
ZRANGEBYSCORE), and `finish()` is guarded so only one of them does the work.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from warming import constants as K
from warming import defaults
from warming.runtime import current
from warming.store import BatchStore, iso

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


class _Thread(threading.Thread):
    def __init__(self, store: BatchStore, interval_s: float) -> None:
        super().__init__(name="warming-watchdog", daemon=True)
        self.store = store
        self.interval_s = interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                reap_overdue(self.store)
            except Exception:  # Redis blips must not kill the thread
                log.exception("watchdog pass failed")


_thread: _Thread | None = None


@worker_ready.connect
def _start(**_: Any) -> None:
    global _thread
    if _thread is None:
        _thread = _Thread(current().store, defaults.WATCHDOG_INTERVAL_S)
        _thread.start()


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    global _thread
    if _thread is not None:
        _thread.stopped.set()
        _thread = None
