"""Redis clients and replies, the same for every part of warming.

The connection options are written here once: our clients, kombu's broker transport
and Celery's result backend all take them. Replies are decoded in one place
(`text`, `texts`), so no module guesses whether redis-py gave it bytes or str.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis

from warming import defaults
from warming.errors import BrokerUnavailable, ConfigError

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


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    netloc = parts.netloc
    if parts.password is not None:
        user = f"{parts.username}@" if parts.username else ""
        netloc = f"{user}{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def unreachable(e: BaseException) -> bool:
    """Whether a Redis error means "not reachable now", as opposed to a refused command."""
    if isinstance(e, (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)):
        return True  # ReadOnlyError: a replica, mid-failover
    # Refusals that pass: out of memory (a script's first write is refused, nothing
    # written), a script or a load still running, a cluster re-sharding.
    return isinstance(e, redis.ResponseError) and bool(_TRANSIENT.match(str(e)))


_TRANSIENT = re.compile(r"^(OOM|BUSY|LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b")


def check_server(r: redis.Redis) -> str:
    """The server's version; ConfigError when warming cannot run on it.

    Raises BrokerUnavailable when the server cannot be reached.
    """
    need = ".".join(map(str, defaults.MIN_REDIS_VERSION))
    try:
        info = r.info("server")
    except redis.RedisError as e:
        if unreachable(e) or not isinstance(e, redis.ResponseError):
            raise BrokerUnavailable(str(e) or type(e).__name__) from None
        # redis-py opens each connection with HELLO (RESP3), which Redis 6.0 introduced.
        raise ConfigError(
            "broker_url",
            f"the server refused the connection's HELLO ({e}): Redis older than 6.0, and "
            f"warming needs {need} or later",
        ) from None
    version = str(info.get("redis_version", ""))
    found = tuple(int(x) for x in re.findall(r"\d+", version)[:3])
    if found < defaults.MIN_REDIS_VERSION:
        raise ConfigError(
            "broker_url",
            f"the server runs Redis {version or '(unknown version)'}; warming needs {need} or "
            "later (kombu's message recovery and warming's scripts use its commands)",
        )
    return version


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
