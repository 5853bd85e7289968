"""Celery settings, each chosen knowingly (see ../shared/CELERY_NOTES.md).

Loaded lazily by the app (`config_from_object`), after a front door has installed
the warming settings. To override anything for one deployment, point
`CELERY_CONFIG_MODULE` at a module that does `from warming.celeryconf import *`
and then sets what differs (the project's `celeryconfig.py` is that module).
"""

from __future__ import annotations

import sys

from kombu import Queue  # type: ignore[attr-defined]

from warming import constants as K
from warming import defaults
from warming.errors import ConfigError
from warming.resultbackend import backend_url
from warming.runtime import current
from warming.settings import Rate

try:
    _rt = current()
    broker_url = _rt.broker_url
except ConfigError as _e:
    print(f"warming: invalid configuration: {_e}", file=sys.stderr)
    raise SystemExit(2) from None

result_backend = backend_url(_rt.settings.result_backend or broker_url)

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
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 25,
}
broker_transport_options = {
    **_transport,
    # kombu sweeps for abandoned messages every interval x throttle seconds: 10 x 10 by
    # default, which measured 100 s from SIGKILL to recovery. One cheap ZRANGE per
    # worker every 5 s makes it visibility_timeout + <= 5 s.
    "unacked_restore_interval": defaults.RESTORE_INTERVAL_S,
    "unacked_restore_throttle": 1,
}
result_backend_transport_options = dict(_transport)
redis_socket_timeout = 10
redis_socket_connect_timeout = 5
redis_socket_keepalive = True
redis_backend_health_check_interval = 25
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

task_default_queue = K.Q_CONTROL
# Declared, so a plain `celery -A warming worker` consumes every queue; `-Q` narrows it
# (e.g. a fleet of prefetch-only workers). kombu rotates between them: no starvation.
task_queues = [Queue(q, routing_key=q) for q in K.QUEUES]
task_routes = {
    "warming.purge": {"queue": K.Q_PURGE},
    "warming.prefetch": {"queue": K.Q_PREFETCH},
    "warming.verify": {"queue": K.Q_VERIFY},
    "warming.*": {"queue": K.Q_CONTROL},
}
# Celery's own limit is per worker and opt-in (see LimitsSettings.per_worker_prefetch);
# the cluster-wide limit lives in Redis (warming.ratelimit) and binds every worker.
_per_worker = _rt.settings.limits.per_worker_prefetch
task_annotations = (
    {"warming.prefetch": {"rate_limit": Rate.parse(_per_worker).celery()}} if _per_worker else {}
)

# Flower needs task events from the workers (received, started, succeeded...). The
# "sent" event is off: it is one more Redis PUBLISH per message, and measured here a
# chord of 500 publishes at 942 msg/s with it and 1,449 msg/s without (0.66 ms CPU per
# message instead of 1.0). Flower shows a task from the moment a worker receives it.
worker_send_task_events = True
task_send_sent_event = False
task_track_started = True
worker_hijack_root_logger = False
