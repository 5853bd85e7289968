"""Provider `none`: the CDN needs no purge (objects expire by TTL, or purge is external)."""

from __future__ import annotations

from collections.abc import Sequence

from warming.cdn.base import Pending, PurgeCall, Purger
from warming.settings import PopSettings


class NonePurger(Purger):
    provider = "none"

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        return []

    def send(self, call: PurgeCall) -> Pending | None:
        return None
