"""The one table of warming's Celery tasks: name, queue and options.

The task decorators (`warming.tasks`), `task_routes` (`warming.broker.config`) and
the message builder (`warming.broker.messages`) all read it, so code publishes a
task by its name and never imports `warming.tasks` to do so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from warming.settings import Priority

# One queue per task kind: Redis priorities are approximate, separate queues are the
# reliable way to keep purges and verifications from waiting behind 100k prefetches.
# Prefetches get a queue per priority: high (webhooks), normal, bulk (sitemaps, files,
# schedules).
Q_PURGE = "warming.purge"
Q_PREFETCH = "warming.prefetch"
Q_PREFETCH_NORMAL = "warming.prefetch.normal"
Q_PREFETCH_BULK = "warming.prefetch.bulk"
Q_VERIFY = "warming.verify"
Q_CONTROL = "warming.control"
# In the order a worker takes from them (broker.config: queue_order_strategy "priority"):
# a message of a later queue is taken only while every earlier queue is empty.
QUEUES = (Q_PURGE, Q_VERIFY, Q_CONTROL, Q_PREFETCH, Q_PREFETCH_NORMAL, Q_PREFETCH_BULK)
PREFETCH_QUEUES: dict[str, str] = {
    "high": Q_PREFETCH,
    "normal": Q_PREFETCH_NORMAL,
    "bulk": Q_PREFETCH_BULK,
}

__all__ = [
    "COMMON",
    "PREFETCH_QUEUES",
    "QUEUES",
    "TASKS",
    "Priority",
    "TaskSpec",
    "prefetch_queue",
    "task_routes",
]


@dataclass(frozen=True)
class TaskSpec:
    """What a publisher needs to know about a task without importing it."""

    name: str
    queue: str
    # Results are stored only where a chord needs them (prefetch's one word): nobody
    # waits on the others, and a stored result makes every publisher subscribe to it.
    ignore_result: bool = True


PURGE = TaskSpec("warming.purge", Q_PURGE)
LAUNCH_SLICE = TaskSpec("warming.launch_slice", Q_CONTROL)
PREFETCH = TaskSpec("warming.prefetch", Q_PREFETCH, ignore_result=False)
VERIFY = TaskSpec("warming.verify", Q_VERIFY)
# Push mode: after the purge, the batch's URLs go to the CDN's push API. On the purge
# queue: it is as urgent, and until it runs the batch is "purging", whose queue the
# watchdog looks at before it calls a message lost.
PUSH = TaskSpec("warming.push", Q_PURGE)
FLUSH_TRAILING = TaskSpec("warming.flush_trailing", Q_CONTROL)
# A batch ended: tell Slack or a callback (retried with backoff, never on a batch's path).
NOTIFY = TaskSpec("warming.notify", Q_CONTROL)
# A batch ended: one task whose state in Flower is the batch's (FAILURE names the pairs).
BATCH_RESULT = TaskSpec("warming.batch_result", Q_CONTROL)
# Sent by Celery beat (RedBeat) for a `[[schedules]]` entry; builds and publishes its batch.
RUN_SCHEDULE = TaskSpec("warming.run_schedule", Q_CONTROL)

# Tasks that are not part of a batch's pipeline.
_OPS = (NOTIFY, BATCH_RESULT)

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (PURGE, PUSH, LAUNCH_SLICE, PREFETCH, VERIFY, FLUSH_TRAILING, RUN_SCHEDULE)
}
TASKS.update((t.name, t) for t in _OPS)

# Options every task shares (CELERY_NOTES, "Retries, acks, crashes"): a message is
# acknowledged after it ran, and a task whose worker died is requeued, not failed.
COMMON: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": None,  # attempts are counted by us, in kwargs, per cause
}


def prefetch_queue(priority: str) -> str:
    """The prefetch queue for a batch of this priority (the one place that decides).

    Each priority has its own queue, taken in order, so a 100k-URL crawl never delays a
    webhook's batch by more than the prefetch tasks already running.
    """
    return PREFETCH_QUEUES.get(priority, Q_PREFETCH)


def task_routes() -> dict[str, dict[str, str]]:
    """Celery's `task_routes` for the table."""
    return {t.name: {"queue": t.queue} for t in TASKS.values()}
