"""Coalescing webhook bursts: at most one purge-and-warm per URL per window, plus one
trailing run for changes that arrive after that run's purge began.

    t=0    webhook A (/x)  -> batch A starts now; /x is "led" by A until t=window
    t=0.3  webhook B (/x)  -> A has not purged yet: A covers B's change (B carried by A)
    t=0.9  webhook C (/x)  -> A is purging: /x joins trailing batch T(A), published at
    t=1.4  webhook D (/x)  -> joins T(A) too                           the window's end
    t=2.0  T(A) publishes  -> /x is now led by T for a new window

The leading edge is never delayed (webhook-to-verified latency matters); only
repeats inside a window wait. Every step is one Lua script, so several shim
processes coalesce together, and nothing is ever dropped: a trailing batch is
created in the same script as the `flush_trailing` message that will publish it,
and a URL that cannot join a trailing batch any more (it was just flushed) leads a
batch of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from warming import constants as K
from warming.messages import Message, messages

# claim(a, i): from a[i]: batch id, window ms, coalesce prefix, batch key prefix, n, then n
# URLs. A URL nobody leads is led by this batch for a window; for the others it returns
# (url, leader, the leader's state or '', ms left in its window). Also run inside the
# shim's accept script, so that one round trip claims, records and queues a webhook.
CLAIM_LUA = """
local function claim(a, i)
  local bid, window, prefix, bprefix = a[i], a[i + 1], a[i + 2], a[i + 3]
  local n = tonumber(a[i + 4])
  local lead, follow = {}, {}
  for j = i + 5, i + 4 + n do
    local k = prefix .. 'url:' .. a[j]
    local cur = redis.call('GET', k)
    if not cur then
      redis.call('SET', k, bid, 'PX', window)
      lead[#lead + 1] = a[j]
    else
      follow[#follow + 1] = a[j]
      follow[#follow + 1] = cur
      follow[#follow + 1] = redis.call('HGET', bprefix .. cur, 'state') or ''
      follow[#follow + 1] = redis.call('PTTL', k)
    end
  end
  return lead, follow, i + 5 + n
end
"""

# ARGV: leader, candidate trailing id, ttl ms, prefix, ms until due, queue, flush message,
# urls... -> {trailing id, created (1/0)}, or {false, 0} when that trailing batch already
# flushed. A trailing batch is created together with its flush message, so none is ever
# created that nothing will publish; the task waits out the `due:` key, then publishes.
_TRAIL = """
local p = ARGV[4]
local tk = p .. 'trail:' .. ARGV[1]
local t = redis.call('GET', tk)
local created = 0
if not t then
  t = ARGV[2]
  redis.call('SET', tk, t, 'PX', ARGV[3])
  local due = tonumber(ARGV[5])
  -- One webhook whose URLs follow several leaders opens one trailing batch for all.
  if redis.call('SET', p .. 'leader:' .. t, ARGV[1], 'NX', 'PX', ARGV[3]) then
    if due > 0 then redis.call('SET', p .. 'due:' .. t, '1', 'PX', due) end
    redis.call('LPUSH', ARGV[6], ARGV[7])
    created = 1
  elseif due > redis.call('PTTL', p .. 'due:' .. t) then
    redis.call('SET', p .. 'due:' .. t, '1', 'PX', due)
  end
end
if redis.call('EXISTS', p .. 'flushed:' .. t) == 1 then return {false, 0} end
local uk = p .. 'urls:' .. t
for i = 8, #ARGV do redis.call('SADD', uk, ARGV[i]) end
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


def _flush_message(trailing_id: str) -> Message:
    return messages().build("warming.flush_trailing", (trailing_id,))


class Coalescer:
    """`flush_message(trailing id)`: the message that publishes a trailing batch when due."""

    def __init__(
        self,
        r: redis.Redis,
        window_s: float,
        flush_message: Callable[[str], Message] = _flush_message,
    ) -> None:
        self.r = r
        self.flush_message = flush_message
        self.window_ms = max(1, int(window_s * 1000))
        self.prefix = K.COALESCE.format(key="")
        self._claim = r.register_script(
            CLAIM_LUA + "local lead, follow = claim(ARGV, 1)\nreturn {lead, follow}\n"
        )
        self._trail = r.register_script(_TRAIL)
        self._flush = r.register_script(_FLUSH)

    @property
    def enabled(self) -> bool:
        return self.window_ms > 1

    def claim_args(self, batch_id: str, urls: list[str]) -> list[str | int]:
        """ARGV for CLAIM_LUA; no URLs when coalescing is off (each then leads)."""
        urls = urls if self.enabled else []
        return [batch_id, self.window_ms, self.prefix, K.BATCH.format(id=""), len(urls), *urls]

    def claim(self, batch_id: str, urls: list[str]) -> Claim:
        """Split `urls` between this webhook's batch, running leaders and trailing batches."""
        if not self.enabled:
            return Claim(lead=list(urls))
        lead, follow = self._claim(args=self.claim_args(batch_id, urls))
        return self.resolve(batch_id, lead, follow)

    def resolve(self, batch_id: str, lead: list[Any], follow: list[Any]) -> Claim:
        """The claim of CLAIM_LUA's answer: who carries each URL that another batch leads."""
        out = Claim(lead=[_s(u) for u in lead])
        groups: dict[str, list[str]] = defaultdict(list)
        left_ms: dict[str, int] = {}
        for i in range(0, len(follow), 4):
            url, leader, state, ttl = _s(follow[i]), _s(follow[i + 1]), follow[i + 2], follow[i + 3]
            if _s(state) == "queued":
                # Its purge has not started: it will purge after this change. Covered.
                out.carried[url] = leader
                continue
            groups[leader].append(url)
            left_ms.setdefault(leader, max(0, int(ttl)))
        flush: Message | None = None
        for leader, group in groups.items():
            remaining_ms = left_ms[leader]
            candidate = "t" + batch_id
            if flush is None:
                flush = self.flush_message(candidate)
            t, created = self._trail(
                args=[
                    leader,
                    candidate,
                    remaining_ms + 60_000,
                    self.prefix,
                    remaining_ms,
                    flush.queue,
                    flush.payload,
                    *group,
                ]
            )
            if not t:  # just flushed: lead a run of our own rather than drop anything
                out.lead += group
                continue
            out.carried.update(dict.fromkeys(group, _s(t)))
            if created:
                out.new_trailing[_s(t)] = (leader, remaining_ms / 1000)
        return out

    def wait_s(self, trailing_id: str) -> float:
        """Seconds until a trailing batch is due (its leader's window ends); 0 when due."""
        ms = self.r.pttl(self.prefix + "due:" + trailing_id)
        return max(0, int(ms)) / 1000

    def leader_of(self, trailing_id: str) -> str:
        return _s(self.r.get(self.prefix + "leader:" + trailing_id) or b"")

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
