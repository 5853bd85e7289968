"""Which URLs were last seen carrying which surrogate key (for tag-only webhooks)."""

from __future__ import annotations

from collections.abc import Iterable

import redis
import redis.asyncio as aioredis

from warming import defaults
from warming import keys as K


def record_tags(r: redis.Redis, url: str, keys: Iterable[str]) -> None:
    """Remember that `url` now carries exactly `keys`; forget keys it no longer has."""
    new = set(keys)
    own = K.URL_TAGS.format(url=url)
    old = {k.decode() if isinstance(k, bytes) else str(k) for k in r.smembers(own)}
    if not new and not old:
        return
    ttl = defaults.TAG_INDEX_TTL_S
    with r.pipeline() as p:
        for key in old - new:
            p.srem(K.TAG.format(key=key), url)
        for key in new:
            p.sadd(K.TAG.format(key=key), url)
            p.expire(K.TAG.format(key=key), ttl)
        p.delete(own)
        if new:
            p.sadd(own, *new)
            p.expire(own, ttl)
        p.execute()


def urls_for(r: redis.Redis, tags: Iterable[str]) -> list[str]:
    """The URLs last seen carrying any of `tags`, sorted."""
    keys = [K.TAG.format(key=t) for t in tags]
    return _sorted(r.sunion(keys)) if keys else []


async def urls_for_async(r: aioredis.Redis, tags: Iterable[str]) -> list[str]:
    """`urls_for` on an asyncio client (the shim's event loop)."""
    keys = [K.TAG.format(key=t) for t in tags]
    return _sorted(await r.sunion(keys)) if keys else []


def _sorted(members: Iterable[bytes | str]) -> list[str]:
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
