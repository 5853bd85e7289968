"""Coalescing webhook bursts: at most one purge-and-warm per URL per window, plus one
trailing run for changes that arrive after that run's purge began.

    t=0    webhook A (/x)  -> batch A starts now; /x is "led" by A until t=window
    t=0.3  webhook B (/x)  -> A has not purged yet: A covers B's change (B carried by A)
    t=0.9  webhook C (/x)  -> A is purging: /x joins trailing batch T(A), published at
    t=1.4  webhook D (/x)  -> joins T(A) too                           the window's end
    t=2.0  T(A) publishes  -> /x is now led by T for a new window

The leading edge is never delayed (webhook-to-verified latency matters); only
repeats inside a window wait. Every step is one Lua script, so several shim
processes coalesce together, and nothing is ever dropped: a URL that cannot join a
trailing batch any more (it was just flushed) leads a batch of its own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import redis

from warming import constants as K

# ARGV: batch id, window ms, prefix, urls... -> {lead urls}, {url, leader, url, leader...}
_CLAIM = """
local lead, follow = {}, {}
for i = 4, #ARGV do
  local k = ARGV[3] .. 'url:' .. ARGV[i]
  local cur = redis.call('GET', k)
  if not cur then
    redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
    table.insert(lead, ARGV[i])
  else
    table.insert(follow, ARGV[i])
    table.insert(follow, cur)
  end
end
return {lead, follow}
"""

# ARGV: leader, candidate trailing id, ttl ms, prefix, urls...
# -> {trailing id, created (1/0)} or {false, 0} when that trailing batch already flushed.
_TRAIL = """
local tk = ARGV[4] .. 'trail:' .. ARGV[1]
local t = redis.call('GET', tk)
local created = 0
if not t then
  t = ARGV[2]
  redis.call('SET', tk, t, 'PX', ARGV[3])
  created = 1
end
if redis.call('EXISTS', ARGV[4] .. 'flushed:' .. t) == 1 then return {false, 0} end
local uk = ARGV[4] .. 'urls:' .. t
for i = 5, #ARGV do redis.call('SADD', uk, ARGV[i]) end
redis.call('PEXPIRE', uk, ARGV[3])
return {t, created}
"""

# ARGV: trailing id, ttl ms, prefix -> urls (and marks the batch flushed)
_FLUSH = """
redis.call('SET', ARGV[3] .. 'flushed:' .. ARGV[1], '1', 'PX', ARGV[2])
local uk = ARGV[3] .. 'urls:' .. ARGV[1]
local urls = redis.call('SMEMBERS', uk)
redis.call('DEL', uk)
return urls
"""


@dataclass
class Claim:
    """How one webhook's URLs are covered."""

    lead: list[str] = field(default_factory=list)  # warmed by this webhook's own batch, now
    carried: dict[str, str] = field(default_factory=dict)  # url -> batch that covers it
    # trailing batches this webhook opened: id -> (leader, seconds until it publishes)
    new_trailing: dict[str, tuple[str, float]] = field(default_factory=dict)


class Coalescer:
    def __init__(self, r: redis.Redis, window_s: float) -> None:
        self.r = r
        self.window_ms = max(1, int(window_s * 1000))
        self.prefix = K.COALESCE.format(key="")
        self._claim = r.register_script(_CLAIM)
        self._trail = r.register_script(_TRAIL)
        self._flush = r.register_script(_FLUSH)

    def claim(self, batch_id: str, urls: list[str]) -> Claim:
        """Split `urls` between this webhook's batch, running leaders and trailing batches."""
        out = Claim()
        if not urls or self.window_ms <= 1:
            out.lead = list(urls)
            return out
        lead, follow = self._claim(args=[batch_id, self.window_ms, self.prefix, *urls])
        out.lead = [_s(u) for u in lead]
        by_leader: dict[str, list[str]] = defaultdict(list)
        for i in range(0, len(follow), 2):
            by_leader[_s(follow[i + 1])].append(_s(follow[i]))
        for leader, group in by_leader.items():
            if _s(self.r.hget(K.BATCH.format(id=leader), "state") or b"") == "queued":
                # Its purge has not started: it will purge after this change. Covered.
                out.carried.update(dict.fromkeys(group, leader))
                continue
            ttl = self.r.pttl(self.prefix + "url:" + group[0])
            remaining_ms = ttl if ttl and ttl > 0 else 0
            candidate = "t" + batch_id
            t, created = self._trail(
                args=[leader, candidate, remaining_ms + 60_000, self.prefix, *group]
            )
            if not t:  # just flushed: lead a run of our own rather than drop anything
                out.lead += group
                continue
            out.carried.update(dict.fromkeys(group, _s(t)))
            if created:
                out.new_trailing[_s(t)] = (leader, remaining_ms / 1000)
        return out

    def flush(self, trailing_id: str) -> list[str]:
        """Close a trailing batch to newcomers and return its URLs."""
        urls = self._flush(args=[trailing_id, 120_000, self.prefix])
        return sorted(_s(u) for u in urls)

    def lead(self, batch_id: str, urls: list[str]) -> None:
        """Make `batch_id` the leader of `urls` for a window (a trailing batch starting)."""
        with self.r.pipeline() as p:
            for u in urls:
                p.set(self.prefix + "url:" + u, batch_id, px=self.window_ms)
            p.execute()


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
