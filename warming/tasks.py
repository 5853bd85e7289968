"""The Celery tasks: thin shells that call a stage and turn its answer into Celery.

Each stage (`warming.stages`) is a plain function returning `Done`, `RetryIn`,
`Continue` or `Failed`; here that becomes a return value, `self.retry`, or a fresh
message. Names, queues and options come from `warming.broker.tasknames`. Rules from
CELERY_NOTES.md kept here: no task raises out of a chord header (prefetch returns a
failure outcome), no `expires` on header tasks, countdowns below the visibility timeout.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import after_setup_logger, worker_init, worker_ready, worker_shutdown

from warming import defaults
from warming.broker import tasknames as T
from warming.broker.app import app
from warming.errors import BrokerUnavailable, ConfigError, NotAllHit
from warming.ops import logs, metrics
from warming.rediskit import check_server
from warming.runtime import Runtime, current
from warming.stages import ended as ended_stage
from warming.stages import notify as notify_stage
from warming.stages import observe, phases, trailing
from warming.stages import prefetch as prefetch_stage
from warming.stages import purge as purge_stage
from warming.stages import push as push_stage
from warming.stages import schedule as schedule_stage
from warming.stages import verify as verify_stage
from warming.stages.outcome import Continue, Done, Failed, Outcome, RetryIn
from warming.stages.watchdog import Watchdog

_TIMEOUTS = (SoftTimeLimitExceeded,)


class WarmingTask(Task):  # type: ignore[misc]
    """A task that knows this process's runtime."""

    @property
    def rt(self) -> Runtime:
        return current()

    def follow(self, out: Outcome, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """Act on a stage's answer: retry, continue in a fresh task, or return its word."""
        if isinstance(out, RetryIn):
            raise self.retry(args=args, kwargs={**kwargs, **out.kwargs}, countdown=out.seconds)
        if isinstance(out, Continue):
            spec = T.TASKS[self.name]
            self.rt.canvas.send(spec, args, {**kwargs, **out.kwargs}, countdown=out.countdown)
            return out.why
        if isinstance(out, Failed):
            return "failed"
        assert isinstance(out, Done)
        return out.result


def _task(spec: T.TaskSpec) -> Any:
    return app.task(name=spec.name, ignore_result=spec.ignore_result, base=WarmingTask, **T.COMMON)


@_task(T.PURGE)
def purge(self: WarmingTask, batch_id: str, start: int = 0, attempt: int = 0) -> str:
    """Purge the batch's URLs and tags (shields first), then start warming."""
    out = purge_stage.purge(self.rt, batch_id, start, attempt)
    return self.follow(out, (batch_id,), {"start": start, "attempt": attempt})


@_task(T.PUSH)
def push(self: WarmingTask, batch_id: str, start: int = 0, attempt: int = 0) -> str:
    """Push mode: send the batch's URLs to the CDN's push API, let it land, start warming."""
    out = push_stage.push(self.rt, batch_id, start, attempt)
    return self.follow(out, (batch_id,), {"start": start, "attempt": attempt})


@_task(T.LAUNCH_SLICE)
def launch_slice(self: WarmingTask, batch_id: str, phase: int, n: int) -> str:
    """Publish one slice's chord: prefetch each pair, then verify the slice."""
    rt = self.rt
    if rt.store.is_final(batch_id):
        return "skipped"
    phases.launch_once(rt, rt.store.plan(batch_id), phase, n)
    return "launched"


@_task(T.PREFETCH)
def prefetch(
    self: WarmingTask,
    batch_id: str,
    phase: int,
    n: int,
    lo: int,
    hi: int,
    todo: list[list[int]] | None = None,
    waits: int = 0,
) -> str:
    """Warm pairs [lo, hi) of slice `n` side by side; record and prove what each saw.

    Returns a short word and never raises (a raise would fail the chord).
    """
    out = prefetch_stage.prefetch(self.rt, batch_id, phase, n, lo, hi, todo, waits, _TIMEOUTS)
    args = {"batch_id": batch_id, "phase": phase, "n": n, "lo": lo, "hi": hi}
    return self.follow(out, (), {**args, "todo": todo, "waits": waits})


@_task(T.VERIFY)
def verify(self: WarmingTask, batch_id: str, phase: int, n: int, start: int = 0) -> str:
    """Chord callback: check each pair of a slice serves a fresh HIT of what was warmed."""
    out = verify_stage.verify(self.rt, batch_id, phase, n, start, _TIMEOUTS)
    return self.follow(out, (batch_id, phase, n), {"start": start})


@_task(T.NOTIFY)
def notify(self: WarmingTask, batch_id: str, channel: str, attempt: int = 0) -> str:
    """Tell `channel` (slack, callback) that the batch ended; retried with backoff."""
    out = notify_stage.notify(self.rt, batch_id, channel, attempt)
    return self.follow(out, (batch_id, channel), {"attempt": attempt})


@app.task(
    name=T.BATCH_RESULT.name,
    ignore_result=True,
    base=WarmingTask,
    throws=(NotAllHit,),  # expected: logged in one line, no traceback
    **T.COMMON,
)
def batch_result(self: WarmingTask, batch_id: str) -> str:
    """The batch's outcome as a task's: SUCCESS if every pair is a HIT, else FAILURE
    (NotAllHit naming the pairs and their reasons), so Flower shows a failed pair."""
    return ended_stage.result(self.rt, batch_id)


@_task(T.FLUSH_TRAILING)
def flush_trailing(self: WarmingTask, trailing_id: str, leader: str = "") -> str:
    """Publish the trailing batch of a coalescing window (changes seen mid-run), when due."""
    out = trailing.flush_trailing(self.rt, trailing_id, leader)
    return self.follow(out, (trailing_id,), {"leader": leader})


@worker_init.connect
def pace_requests_closely(**_: Any) -> None:
    """A 1 ms GIL switch interval: a request due at its slot leaves within ~1 ms, not 5.

    Requests leave at reserved slots of the cluster limit; a thread waiting 5 ms for
    the GIL (Python's default) sends late, and late requests bunch with on-time ones.
    """
    sys.setswitchinterval(defaults.GIL_SWITCH_S)


@worker_init.connect
def refuse_an_old_redis(**_: Any) -> None:
    """A worker stops at start (exit 2) on a Redis too old for warming."""
    try:
        check_server(current().redis)
    except BrokerUnavailable:
        pass  # not up yet: Celery retries the connection (broker_connection_retry_on_startup)
    except ConfigError as e:
        print(f"warming: invalid configuration: {e}", file=sys.stderr)
        raise SystemExit(2) from None  # an Exception would only be logged by the signal


@worker_init.connect
def serve_metrics(**_: Any) -> None:
    """With `metrics.port`, the worker's main process serves /metrics for all its children.

    Before the pool forks, so prefork children inherit the multiprocess directory.
    """
    rt = current()
    port = rt.settings.metrics.port
    if port is None:
        return
    metrics.fresh_dir()
    metrics.start()
    try:
        metrics.serve(port, rt.settings.metrics.host, lambda: observe.live(rt))
    except OSError as e:
        print(f"warming: cannot serve metrics on port {port}: {e.strerror or e}", file=sys.stderr)
        raise SystemExit(2) from None


@after_setup_logger.connect
def log_as_configured(logger: Any = None, **_: Any) -> None:
    """`log.format` and `log.level` for the worker's lines (Celery set up its handlers)."""
    logs.configure(current().settings.log, logger)


_watchdog: Watchdog | None = None


@worker_ready.connect
def start_watchdog(**_: Any) -> None:
    """Every worker runs the watchdog (cheap; `finish()` is guarded)."""
    global _watchdog
    if _watchdog is None:
        _watchdog = Watchdog(current())
        _watchdog.start()


@worker_shutdown.connect
def stop_watchdog(**_: Any) -> None:
    global _watchdog
    if _watchdog is not None:
        _watchdog.stop()
        _watchdog = None


@_task(T.RUN_SCHEDULE)
def run_schedule(self: WarmingTask, name: str) -> str:
    """One run of `[[schedules]]` entry `name` (sent by Celery beat): its batch id, or why none."""
    return schedule_stage.run(self.rt, name)
