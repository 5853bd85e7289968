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

from warming import keys as K
from warming import lua
from warming.broker.messages import Message
from warming.rediskit import text, texts


@dataclass
class Claim:
    """How one webhook's URLs are covered."""

    lead: list[str] = field(default_factory=list)  # warmed by this webhook's own batch, now
    carried: dict[str, str] = field(default_factory=dict)  # url -> batch that covers it
    # trailing batches this webhook opened: id -> (leader, seconds until it publishes)
    new_trailing: dict[str, tuple[str, float]] = field(default_factory=dict)


class Coalescer:
    """`flush_message(trailing id)`: the message that publishes a trailing batch when due."""

    def __init__(
        self,
        r: redis.Redis,
        window_s: float,
        flush_message: Callable[[str], Message],
    ) -> None:
        self.r = r
        self.flush_message = flush_message
        self.window_ms = max(1, int(window_s * 1000))
        self.prefix = K.COALESCE_PREFIX
        self._claim = r.register_script(lua.source("claim", "claim_main"))
        self._trail = r.register_script(lua.source("trail"))
        self._flush = r.register_script(lua.source("flush"))

    @property
    def enabled(self) -> bool:
        return self.window_ms > 1

    def claim_args(self, batch_id: str, urls: list[str]) -> list[str | int]:
        """ARGV for claim.lua; no URLs when coalescing is off (each then leads)."""
        urls = urls if self.enabled else []
        return [batch_id, self.window_ms, self.prefix, K.BATCH.format(id=""), len(urls), *urls]

    def claim(self, batch_id: str, urls: list[str]) -> Claim:
        """Split `urls` between this webhook's batch, running leaders and trailing batches."""
        if not self.enabled:
            return Claim(lead=list(urls))
        lead, follow = self._claim(args=self.claim_args(batch_id, urls))
        return self.resolve(batch_id, lead, follow)

    def resolve(self, batch_id: str, lead: list[Any], follow: list[Any]) -> Claim:
        """The claim of claim.lua's answer: who carries each URL that another batch leads."""
        out = Claim(lead=texts(lead))
        groups: dict[str, list[str]] = defaultdict(list)
        left_ms: dict[str, int] = {}
        for i in range(0, len(follow), 4):
            url, leader = text(follow[i]) or "", text(follow[i + 1]) or ""
            state, ttl = text(follow[i + 2]), follow[i + 3]
            if state == "queued":
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
            trailing = text(t) or ""
            out.carried.update(dict.fromkeys(group, trailing))
            if created:
                out.new_trailing[trailing] = (leader, remaining_ms / 1000)
        return out

    def wait_s(self, trailing_id: str) -> float:
        """Seconds until a trailing batch is due (its leader's window ends); 0 when due."""
        ms = self.r.pttl(K.COALESCE_DUE.format(id=trailing_id))
        return max(0, int(ms)) / 1000

    def leader_of(self, trailing_id: str) -> str:
        return text(self.r.get(K.COALESCE_LEADER.format(id=trailing_id))) or ""

    def flush(self, trailing_id: str) -> list[str]:
        """Close a trailing batch to newcomers and return its URLs."""
        urls = self._flush(args=[trailing_id, 120_000, self.prefix])
        return sorted(texts(urls))

    def lead(self, batch_id: str, urls: list[str]) -> None:
        """Make `batch_id` the leader of `urls` for a window (a trailing batch starting)."""
        with self.r.pipeline() as p:
            for u in urls:
                p.set(K.COALESCE_URL.format(url=u), batch_id, px=self.window_ms)
            p.execute()
