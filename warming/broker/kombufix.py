"""kombu's Redis channel, kept usable after Celery closes a lost broker connection.

When the broker connection drops, Celery 5.7 closes it (`Consumer.
on_connection_error_after_connected`), and kombu 5.7 then sets the transport's `client`
to None and drops the channel's connection pool. The next use of that channel rebuilds
the pool from `transport.client` and raises AttributeError, which is not a connection
error, so it kills the worker ("Unrecoverable error"). Two uses come for sure: the
channel's own close restoring the messages it holds, and the ack of every task that
was running when Redis went away (acks_late), once it finishes. Measured here with
Redis SIGKILLed and restarted mid-batch: both workers died, and the batch could end
only at its deadline.

The fix keeps the connection parameters each channel was built with, so a rebuilt pool
reaches the same server as before: the ack goes through once Redis is back (as it did
with kombu's pool still in place), or fails with a connection error that kombu logs and
Celery survives; the message then stays in the unacked hash until the visibility
timeout brings it back.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

_ORIGINAL = kombu_redis.Channel._connparams
_SAVED = "_warming_connparams"


def _connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
    saved: dict[bool, dict[str, Any]] = self.__dict__.setdefault(_SAVED, {})
    if self.connection is None or self.connection.client is None:
        if asynchronous in saved:
            return dict(saved[asynchronous])
        raise redis.ConnectionError("the broker connection was closed")
    params: dict[str, Any] = _ORIGINAL(self, asynchronous)  # type: ignore[no-untyped-call]
    saved[asynchronous] = dict(params)
    return params


def install() -> None:
    """Patch kombu's Redis channel (idempotent; every process that talks to the broker)."""
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]
