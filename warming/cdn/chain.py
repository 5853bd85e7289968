"""`cdn.providers`: several layers purged in order, the inner one first.

A Next.js app behind Cloudflare keeps rendered pages in its Data Cache: purging
Cloudflare first would let the next request refill Cloudflare from the app's stale
copy. So each call carries its layer, and the purge stage lets one layer's purge take
effect before it sends the next layer's first call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from warming.cdn.base import Effect, Pending, PurgeCall, Purger
from warming.settings import CdnSettings, PopSettings


class ChainPurger(Purger):
    provider = "chain"

    def __init__(self, cdn: CdnSettings, layers: Sequence[Purger]) -> None:
        super().__init__(cdn)
        self.layers = list(layers)

    @property
    def effect(self) -> Effect:
        return self.layers[-1].effect

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        return [
            replace(call, layer=i)
            for i, layer in enumerate(self.layers)
            for call in layer.plan(urls, tags, pops)
        ]

    def send(self, call: PurgeCall) -> Pending | None:
        p = self.layers[call.layer].send(call)
        return replace(p, layer=call.layer) if p is not None else None

    def poll(self, pending: Pending) -> Pending | None:
        p = self.layers[pending.layer].poll(pending)
        return replace(p, layer=pending.layer) if p is not None else None
