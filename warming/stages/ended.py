"""What happens once a batch has ended: its log lines, metrics, notices and Flower's task.

Called by whoever finished the batch (`store.finish()` returned True: exactly once per
batch), after the verdicts are final. Nothing here may hold up or break the pipeline:
a notification is a task of its own, and any error is logged and swallowed.
"""

from __future__ import annotations

import logging

from warming.batch.report import KEEP_NOT_HIT, build
from warming.broker import tasknames as T
from warming.errors import NotAllHit
from warming.ops import logs, metrics
from warming.ops import notify as notices
from warming.runtime import Runtime
from warming.stages.notify import channels

log = logging.getLogger(__name__)


def ended(rt: Runtime, batch_id: str) -> None:
    """Log the batch's lines, count it, queue its result task and notices (`notify.on`)."""
    try:
        report = build(rt.store, batch_id, keep=KEEP_NOT_HIT)
        if report is None:
            return
        logs.batch_ended(report)
        for w in report.get("warnings", []):
            log.warning("batch %s: %s", batch_id, w["message"])
        metrics.batch_ended(report)
        for r in report["results"]:  # the first KEEP_NOT_HIT that are not a HIT
            logs.pair_failed(batch_id, r)
        c = report["counts"]
        if c["miss"] + c["failed"] > len(report["results"]):
            log.warning(
                "batch %s: %d more pairs not a HIT are not logged one by one (the report has them)",
                batch_id,
                c["miss"] + c["failed"] - len(report["results"]),
            )
        rt.canvas.send(T.BATCH_RESULT, (batch_id,))
        if notices.wanted(rt.settings.notify.on, report):
            for channel in channels(rt):
                rt.canvas.send(T.NOTIFY, (batch_id, channel))
    except Exception:  # an operator's aid must never fail a batch
        log.exception("after batch %s ended", batch_id)


# Pairs a result names: Flower shows the whole message in its task list.
_NAMED = 10


def result(rt: Runtime, batch_id: str) -> str:
    """The `batch_result` task: a line if every pair is a fresh HIT, else NotAllHit."""
    report = build(rt.store, batch_id, keep=KEEP_NOT_HIT)
    if report is None:
        return "expired"
    c = report["counts"]
    if report["state"] == "done" and c["total"] and c["hit"] == c["total"]:
        return f"{c['hit']} of {c['total']} pairs a fresh HIT"
    bad = report["results"]  # not a HIT, the first KEEP_NOT_HIT
    n_bad = c["total"] - c["hit"]
    named = "; ".join(
        f"{r['outcome']} {r['url']} at {r['pop']}: {r.get('error') or 'no reason'}"
        for r in bad[:_NAMED]
    )
    more = f"; and {n_bad - _NAMED} more" if n_bad > _NAMED else ""
    head = f"batch {batch_id} {report['state']}: {n_bad} of {c['total']} pairs not a HIT"
    if report.get("error"):
        head += f" ({report['error']})"
    raise NotAllHit(f"{head}: {named}{more}" if named else head, batch_id=batch_id)
