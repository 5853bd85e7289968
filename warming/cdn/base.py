"""What every CDN purge provider implements.

A purge is planned as a list of `PurgeCall`s, each one request to the provider
(one URL at one Varnish PoP, or up to N URLs in one Fastly/Cloudflare API call),
so the purge task can rate-limit, retry and resume per call without knowing
which CDN it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from warming.settings import CdnSettings, PopSettings


@dataclass(frozen=True)
class PurgeCall:
    """One request to the CDN: purge these URLs or these surrogate keys (at one PoP)."""

    pop: str | None
    urls: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def describe(self) -> str:
        what = f"{len(self.urls)} URL(s)" if self.urls else f"tag(s) {' '.join(self.tags)}"
        return f"purge {what}" + (f" at {self.pop}" if self.pop else "")


class Purger(ABC):
    """A CDN's purge API."""

    provider: ClassVar[str]
    # URLs one API call may carry (1 for per-URL purges).
    max_urls_per_call: ClassVar[int] = 1
    # The `cdn` secrets its calls need (e.g. "api_token"): a worker without them for the
    # batch's account fails the batch, saying which, instead of sending calls that fail.
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cdn: CdnSettings) -> None:
        self.cdn = cdn

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        """The calls that purge `urls` and `tags`; shield PoPs come before edges.

        The default suits a provider with one global API: calls carry no PoP.
        """
        n = self.max_urls_per_call
        calls = [PurgeCall(None, urls=tuple(urls[i : i + n])) for i in range(0, len(urls), n)]
        if tags:
            calls.append(PurgeCall(None, tags=tuple(tags)))
        return calls

    @abstractmethod
    def send(self, call: PurgeCall) -> None:
        """Perform one call; raise RetryLater (retryable) or PurgeError (final)."""
