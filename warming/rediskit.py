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
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel

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


def client(url: str, master_name: str | None = None) -> redis.Redis:
    """The Redis client of tasks, the CLI and the shim's thread-side work.

    A `sentinel://` URL gives the master that Redis Sentinel names `master_name`, found
    again after a failover.
    """
    if is_sentinel(url):
        hosts, conn = sentinel_params(url)
        sentinels = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            hosts, sentinel_kwargs=_SENTINEL_OPTIONS, **conn
        )
        master: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
            _master(master_name), retry_on_timeout=True, **CLIENT_OPTIONS
        )
        return master
    return redis.Redis.from_url(url, retry_on_timeout=True, **CLIENT_OPTIONS)


def async_client(url: str, master_name: str | None = None) -> aioredis.Redis:
    """`client` for an event loop (the shim's webhook route).

    No retry on timeout: the accept script's answer may be lost, not its effect; the
    shim answers 503 and the CMS's retry finds the webhook-id taken. With no master
    known, Sentinel's MasterNotFoundError is a ConnectionError: a 503 too.
    """
    if is_sentinel(url):
        hosts, conn = sentinel_params(url)
        sentinels = aiosentinel.Sentinel(  # type: ignore[no-untyped-call]
            hosts, sentinel_kwargs=_SENTINEL_OPTIONS, **conn
        )
        master: _AsyncMaster = sentinels.master_for(
            _master(master_name), redis_class=_AsyncMaster, **CLIENT_OPTIONS
        )
        master.sentinels = sentinels
        return master
    return aioredis.Redis.from_url(url, **CLIENT_OPTIONS)


class _AsyncMaster(aioredis.Redis):
    """A Sentinel-managed master whose `aclose` closes the sentinels' connections too."""

    sentinels: aiosentinel.Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for s in self.sentinels.sentinels if self.sentinels else ():
            await s.aclose()


# The sentinels are asked who the master is before each new connection: a dead one must
# not hold that up for socket_timeout (the next one in the list is asked instead).
_SENTINEL_OPTIONS: dict[str, Any] = {"socket_timeout": 1, "socket_connect_timeout": 1}


def is_sentinel(url: str) -> bool:
    """Whether `url` names Redis Sentinels (kombu's and Celery's `sentinel://`)."""
    return url.startswith("sentinel://")


def sentinel_params(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The sentinels of `sentinel://h1:p1[;sentinel://h2:p2...][/db]`, and the master's db
    and credentials (taken from the first address that gives them, as Celery does)."""
    hosts: list[tuple[str, int]] = []
    conn: dict[str, Any] = {}
    for chunk in url.split(";"):
        parts = urlsplit(chunk.strip())
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ConfigError("broker_url", f"{redacted(chunk)!r} is not sentinel://host:port")
        hosts.append((parts.hostname, parts.port or defaults.SENTINEL_PORT))
        db = parts.path.strip("/")
        if db and "db" not in conn:
            if not db.isdigit():
                raise ConfigError("broker_url", f"database {db!r} is not a number")
            conn["db"] = int(db)
        if parts.password is not None and "password" not in conn:
            conn["password"] = parts.password
            if parts.username:
                conn["username"] = parts.username
    return hosts, conn


def _master(master_name: str | None) -> str:
    if not master_name:
        raise ConfigError(
            "master_name", "is not set: a sentinel:// broker_url needs the master's name"
        )
    return master_name


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
