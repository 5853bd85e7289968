"""What happens once a batch has ended: its log lines, metrics and notifications.

Called by whoever finished the batch (`store.finish()` returned True: exactly once per
batch), after the verdicts are final. Nothing here may hold up or break the pipeline:
a notification is a task of its own, and any error is logged and swallowed.
"""

from __future__ import annotations

import logging

from warming.batch.report import build
from warming.broker import tasknames as T
from warming.ops import logs, metrics
from warming.ops import notify as notices
from warming.runtime import Runtime
from warming.stages.notify import channels

log = logging.getLogger(__name__)


def ended(rt: Runtime, batch_id: str) -> None:
    """Log the batch's lines, count it, and queue its notices (`notify.on`)."""
    try:
        report = build(rt.store, batch_id)
        if report is None:
            return
        logs.batch_ended(report)
        metrics.batch_ended(report)
        for r in report["results"]:
            if r["outcome"] != "hit":
                logs.pair_failed(batch_id, r)
        if notices.wanted(rt.settings.notify.on, report):
            for channel in channels(rt):
                rt.canvas.send(T.NOTIFY, (batch_id, channel))
    except Exception:  # an operator's aid must never fail a batch
        log.exception("after batch %s ended", batch_id)
