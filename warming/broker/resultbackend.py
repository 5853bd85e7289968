"""Celery's Redis result backend, minus subscriptions to results nobody awaits.

Stock, every process that publishes a group or chord subscribes (Redis pub/sub) to
each header task's result channel until the result arrives: hundreds of channels
per slice on the worker that launches it, and a 20-second reconnect storm when an
embedded Redis goes away. Warming never waits on a Celery result (its own records
live in warming.batch.store), so this backend stores results, which chords need, and
never subscribes. `AsyncResult.get()` is therefore unsupported; nothing calls it.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend, SentinelBackend


class _Quiet:
    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None

    def add_pending_result(
        self, result: Any, weak: bool = False, start_drainer: bool = True
    ) -> Any:
        return result

    def remove_pending_result(self, result: Any) -> Any:
        return result


class QuietRedisBackend(_Quiet, RedisBackend):  # type: ignore[misc]
    pass


class QuietSentinelBackend(_Quiet, SentinelBackend):  # type: ignore[misc]
    """For `sentinel://` URLs (the master's name in `result_backend_transport_options`)."""


def backend_url(redis_url: str) -> str:
    """The `result_backend` setting that selects the quiet backend for `redis_url`."""
    cls = "QuietSentinelBackend" if redis_url.startswith("sentinel://") else "QuietRedisBackend"
    return f"warming.broker.resultbackend:{cls}+{redis_url}"
