"""What the freshness proof keeps in a batch: when its purge began, the origin's versions."""

from __future__ import annotations

import json
from typing import cast

import redis

from warming import keys as K
from warming.batch.records import OriginVersion
from warming.rediskit import text


class ProofRecords:
    """The proof's part of `BatchStore` (`r` and `ttl_s` are the store's)."""

    r: redis.Redis
    ttl_s: int

    def clock(self) -> float:
        """Redis's clock (epoch seconds): one clock for every worker, whatever theirs say."""
        sec, usec = self.r.time()
        return float(sec) + float(usec) / 1e6

    def mark_purge_started(self, batch_id: str) -> float:
        """Record, once, when the batch's purge began (Redis clock); return that time."""
        key = K.BATCH.format(id=batch_id)
        now = self.clock()
        with self.r.pipeline() as p:
            p.hsetnx(key, "purge_started_at", repr(now))
            p.hget(key, "purge_started_at")
            _, first = p.execute()
        return float(first) if first else now

    def purge_started(self, batch_id: str) -> float | None:
        raw = text(self.r.hget(K.BATCH.format(id=batch_id), "purge_started_at"))
        return float(raw) if raw else None

    def origin_versions(self, batch_id: str, keys: list[str]) -> dict[str, OriginVersion]:
        """What the origin served, by `origin_key`, for those of `keys` already asked."""
        if not keys:
            return {}
        raws = self.r.hmget(K.ORIGIN.format(id=batch_id), keys)
        return {k: cast(OriginVersion, json.loads(v)) for k, v in zip(keys, raws, strict=True) if v}

    def record_origin(self, batch_id: str, versions: dict[str, OriginVersion]) -> None:
        """Keep the first version seen per key: every PoP is held to the same one."""
        if not versions:
            return
        key = K.ORIGIN.format(id=batch_id)
        with self.r.pipeline() as p:
            for k, v in versions.items():
                p.hsetnx(key, k, json.dumps(v))
            p.expire(key, self.ttl_s * 2)
            p.execute()

    def record_short_lived(self, batch_id: str, windows: dict[str, float]) -> None:
        """URLs that stop being servable (max-age + SWR, seconds) before the next warm."""
        if not windows:
            return
        key = K.SHORT_LIVED.format(id=batch_id)
        with self.r.pipeline() as p:
            p.zadd(key, windows, nx=True)
            p.expire(key, self.ttl_s * 2)
            p.execute()

    def short_lived(self, batch_id: str, n: int = 20) -> tuple[int, list[tuple[str, float]]]:
        """How many URLs `record_short_lived` saw, and the `n` with the shortest window."""
        key = K.SHORT_LIVED.format(id=batch_id)
        with self.r.pipeline(transaction=False) as p:
            p.zcard(key)
            p.zrange(key, 0, n - 1, withscores=True)
            count, rows = p.execute()
        return int(count), [(text(u) or "", float(w)) for u, w in rows]
