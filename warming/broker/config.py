"""Celery settings, each chosen knowingly (see ../shared/CELERY_NOTES.md).

This module is pure: importing it reads no settings and cannot fail. What depends
on warming's settings (the broker and result URLs, the optional per-worker rate
limit) comes from `from_settings()`, which `warming.broker.app` applies when Celery
first reads its configuration. To override anything for one deployment, point
`CELERY_CONFIG_MODULE` at a module that does `from warming.broker.config import *`
and then sets what differs (the project's `celeryconfig.py` is that module).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from celery.schedules import crontab
from kombu import Queue  # type: ignore[attr-defined]

from warming import defaults
from warming import keys as K
from warming.broker import tasknames as T
from warming.broker.resultbackend import backend_url
from warming.errors import ConfigError
from warming.rediskit import CLIENT_OPTIONS, is_sentinel, sentinel_params
from warming.settings import Rate, ScheduleSettings, Settings

# Crash safety: a task's message is acknowledged only after it ran, and a task whose
# worker died is requeued, not failed (a failed header task would fail the chord).
task_acks_late = True
task_reject_on_worker_lost = True
# One reserved message per process: a dead worker strands at most that many.
worker_prefetch_multiplier = 1
# A message redelivered after a crash but already done is skipped, not re-run.
worker_deduplicate_successful_tasks = True

_transport = {
    # Bounds recovery after a SIGKILL; every countdown and task runtime stays below it.
    "visibility_timeout": defaults.VISIBILITY_TIMEOUT_S,
    **CLIENT_OPTIONS,
}
broker_transport_options = {
    **_transport,
    # kombu sweeps for abandoned messages every interval x throttle seconds: 10 x 10 by
    # default, which measured 100 s from SIGKILL to recovery. One cheap ZRANGE per
    # worker every 5 s makes it visibility_timeout + <= 5 s.
    "unacked_restore_interval": defaults.RESTORE_INTERVAL_S,
    "unacked_restore_throttle": 1,
    # BRPOP over the queues in QUEUES' order, never rotated (kombu's default round-robin
    # moves the queue just served to the end): a worker takes a bulk prefetch only when no
    # purge, verify, control, high or normal message waits.
    "queue_order_strategy": "priority",
}
result_backend_transport_options = dict(_transport)
redis_socket_timeout = CLIENT_OPTIONS["socket_timeout"]
redis_socket_connect_timeout = CLIENT_OPTIONS["socket_connect_timeout"]
redis_socket_keepalive = CLIENT_OPTIONS["socket_keepalive"]
redis_backend_health_check_interval = CLIENT_OPTIONS["health_check_interval"]
broker_connection_retry_on_startup = True
# Publishing must fail fast (the shim answers 503 so the CMS retries) rather than
# block a request for the default ~10 s of retries.
task_publish_retry_policy = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}

task_time_limit = defaults.TASK_TIME_LIMIT_S
task_soft_time_limit = defaults.TASK_SOFT_TIME_LIMIT_S

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_expires = 24 * 3600
# The chord's own join: with small results the Redis backend's sorted set is cheap.
result_chord_join_timeout = 10.0

task_default_queue = T.Q_CONTROL
# Declared, so a plain `celery -A warming worker` consumes every queue; `-Q` narrows it
# (e.g. a fleet of prefetch-only workers). They are taken in this order, not rotated:
# bulk waits while anything more urgent is queued.
task_queues = [Queue(q, routing_key=q) for q in T.QUEUES]
task_routes = T.task_routes()

# Flower needs task events from the workers (received, started, succeeded...). The
# "sent" event is off: it is one more Redis PUBLISH per message, and measured here a
# chord of 500 publishes at 942 msg/s with it and 1,449 msg/s without (0.66 ms CPU per
# message instead of 1.0). Flower shows a task from the moment a worker receives it.
worker_send_task_events = True
task_send_sent_event = False
task_track_started = True
worker_hijack_root_logger = False


def check_transport(options: Mapping[str, Any] | None) -> None:
    """ConfigError for a kombu transport option that warming's own publish cannot follow.

    The shim and `warming warm` push messages onto kombu's lists themselves (warming.
    broker.messages), and the watchdog reads kombu's `unacked` hash. kombu's Redis
    transport prefixes every key with `global_keyprefix` (GlobalKeyPrefixMixin), and so
    do we; two other options rename keys we use, and are refused rather than followed
    halfway: a 202 must never stand for a message no worker will take.
    """
    opts = dict(options or {})
    unacked = opts.get("unacked_key", K.KOMBU_UNACKED)
    if unacked != K.KOMBU_UNACKED:
        raise ConfigError(
            "broker_transport_options.unacked_key",
            f"must stay {K.KOMBU_UNACKED!r}: the watchdog reads that hash to tell a lost "
            "message from one a worker holds",
        )
    steps = opts.get("priority_steps")
    if steps is not None and 0 not in steps:
        # kombu puts a priority-0 message on the list of the step at or below 0; with no
        # step 0 that is `<queue>\x06\x16<highest step>`, not the queue's own list.
        raise ConfigError(
            "broker_transport_options.priority_steps",
            "must include 0: warming's own messages have priority 0 and go to the queue's "
            "own list, which kombu reads only when 0 is a step",
        )


def from_settings(settings: Settings) -> dict[str, Any]:
    """The Celery settings that follow warming's own (`broker_url`, limits)."""
    broker_url = settings.require_broker_url()
    out: dict[str, Any] = {
        "broker_url": broker_url,
        "result_backend": backend_url(settings.result_backend or broker_url),
    }
    # Celery's own limit is per worker and opt-in (see LimitsSettings.per_worker_prefetch);
    # the cluster-wide limit lives in Redis (warming.pop.limits) and binds every worker.
    # A prefetch task warms a chunk of pairs: the per-pair rate, in tasks.
    per_worker = settings.limits.per_worker_prefetch_rate
    if per_worker is not None:
        per_worker = Rate(per_worker.per_second / settings.batch.chunk_size, 1)
    out["task_annotations"] = (
        {T.PREFETCH.name: {"rate_limit": per_worker.celery()}} if per_worker else {}
    )
    out.update(beat(settings, broker_url))
    if is_sentinel(broker_url):
        out.update(_redbeat_sentinel(broker_url, settings.master_name))
    if settings.master_name:
        # kombu's and Celery's sentinel:// find the master by this name [redis.rst, Sentinel].
        name = {"master_name": settings.master_name}
        out["broker_transport_options"] = {**broker_transport_options, **name}
        out["result_backend_transport_options"] = {**result_backend_transport_options, **name}
    return out


def beat(settings: Settings, broker_url: str) -> dict[str, Any]:
    """Celery beat with RedBeat: `[[schedules]]` kept in Redis, one beat at a time.

    RedBeat's lock lets only one `celery -A warming beat` send anything; a second one
    waits for the lock and takes over within BEAT_LOCK_TIMEOUT_S if the first dies.
    """
    return {
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "redbeat_redis_url": broker_url,
        "redbeat_key_prefix": K.REDBEAT_PREFIX,
        "redbeat_lock_timeout": defaults.BEAT_LOCK_TIMEOUT_S,
        "beat_max_loop_interval": defaults.BEAT_MAX_LOOP_INTERVAL_S,
        "beat_schedule": {
            s.name: {
                "task": T.RUN_SCHEDULE.name,
                "schedule": _when(s),
                "args": (s.name,),
                "options": {"queue": T.RUN_SCHEDULE.queue},
            }
            for s in settings.schedules
        },
    }


def _redbeat_sentinel(broker_url: str, master_name: str | None) -> dict[str, Any]:
    """RedBeat's own spelling of a Sentinel setup (`redis-sentinel://` plus options)."""
    hosts, conn = sentinel_params(broker_url)
    return {
        "redbeat_redis_url": "redis-sentinel://",
        "redbeat_redis_options": {
            "sentinels": hosts,
            "service_name": master_name,
            "socket_timeout": CLIENT_OPTIONS["socket_timeout"],
            **conn,
        },
    }


def _when(s: ScheduleSettings) -> Any:
    if s.every_s is not None:
        return timedelta(seconds=s.every_s)
    minute, hour, day, month, weekday = (s.cron or "").split()
    return crontab(
        minute=minute, hour=hour, day_of_month=day, month_of_year=month, day_of_week=weekday
    )
