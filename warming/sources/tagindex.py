"""Which URLs were last seen carrying which surrogate key (for tag-only webhooks)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis
import redis.asyncio as aioredis

from warming import defaults
from warming import keys as K


def record_tags(r: redis.Redis, url: str, keys: Iterable[str]) -> None:
    """Remember that `url` now carries exactly `keys`; forget keys it no longer has."""
    record_many(r, {url: keys})


def record_many(r: redis.Redis, seen: Mapping[str, Iterable[str]]) -> None:
    """`record_tags` for many URLs in two round trips (what each had, then the changes)."""
    urls = list(seen)
    if not urls:
        return
    with r.pipeline(transaction=False) as p:
        for url in urls:
            p.get(K.URL_TAGS.format(url=url))
        olds = p.execute()
    ttl = defaults.TAG_INDEX_TTL_S
    with r.pipeline() as p:
        changed = False
        for url, raw_old in zip(urls, olds, strict=True):
            new = set(seen[url])
            old = set((raw_old.decode() if isinstance(raw_old, bytes) else raw_old or "").split())
            if new == old:
                continue  # the common case on every later warm: nothing to write
            changed = True
            own = K.URL_TAGS.format(url=url)
            for key in old - new:
                p.hdel(K.TAG.format(key=key), url)
            for key in new:
                p.hset(K.TAG.format(key=key), url, "")
                p.expire(K.TAG.format(key=key), ttl)
            if new:
                p.set(own, " ".join(sorted(new)), ex=ttl)
            else:
                p.delete(own)
        if changed:
            p.execute()


def urls_for(r: redis.Redis, tags: Iterable[str]) -> list[str]:
    """The URLs last seen carrying any of `tags`, sorted."""
    keys = [K.TAG.format(key=t) for t in tags]
    if not keys:
        return []
    with r.pipeline(transaction=False) as p:
        for k in keys:
            p.hkeys(k)
        return _union(p.execute())


async def urls_for_async(r: aioredis.Redis, tags: Iterable[str]) -> list[str]:
    """`urls_for` on an asyncio client (the shim's event loop)."""
    keys = [K.TAG.format(key=t) for t in tags]
    if not keys:
        return []
    async with r.pipeline(transaction=False) as p:
        for k in keys:
            p.hkeys(k)
        return _union(await p.execute())


def _union(replies: Iterable[Iterable[bytes | str]]) -> list[str]:
    return sorted({m.decode() if isinstance(m, bytes) else str(m) for ms in replies for m in ms})
