"""Redis clients and replies, the same for every part of warming.

The connection options are written here once: our clients, kombu's broker transport
and Celery's result backend all take them. Replies are decoded in one place
(`text`, `texts`), so no module guesses whether redis-py gave it bytes or str.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio as aioredis

# Fail fast instead of hanging on a dead socket (CELERY_NOTES: dead broker sockets can
# hang a worker); keepalive and health checks notice a silently dropped connection.
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 25,
}


def client(url: str) -> redis.Redis:
    """The Redis client of tasks, the CLI and the shim's thread-side work."""
    return redis.Redis.from_url(url, retry_on_timeout=True, **CLIENT_OPTIONS)


def async_client(url: str) -> aioredis.Redis:
    """`client` for an event loop (the shim's webhook route).

    No retry on timeout: the accept script's answer may be lost, not its effect; the
    shim answers 503 and the CMS's retry finds the webhook-id taken.
    """
    return aioredis.Redis.from_url(url, **CLIENT_OPTIONS)


def text(v: bytes | str | int | float | None) -> str | None:
    """A reply as text (None stays None)."""
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode()
    return str(v)


def texts(values: Iterable[bytes | str]) -> list[str]:
    """A multi-bulk reply as text."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def text_map(raw: dict[Any, Any]) -> dict[str, str]:
    """An HGETALL reply as text."""
    return {text(k) or "": text(v) or "" for k, v in raw.items()}
