"""What every push-mode provider implements: a CDN's prefetch (push, preload) API.

A push is planned as a list of `PushCall`s, each one API request carrying up to the
vendor's maximum of URLs (or paths), so the push stage (`warming.stages.push`) can
rate-limit, count the daily quota and retry per call without knowing the vendor. A
provider answers once the vendor has accepted a call: the fetches it triggers complete
later, asynchronously, which is why verification waits `warm.settle_s` and then GETs
every PoP (a push that had not landed is warmed by that GET).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from warming import defaults
from warming.settings import Rate, WarmSettings

__all__ = ["PushCall", "Pusher", "url_path"]


@dataclass(frozen=True)
class PushCall:
    """One request to the push API: `items` in its body, warming the batch's `urls`."""

    items: tuple[str, ...]
    urls: tuple[str, ...]

    def first(self, n: int, by_item: Mapping[str, Sequence[str]]) -> tuple[PushCall, PushCall]:
        """This call cut after `n` items: (what is sent, what is not)."""
        sent, rest = self.items[:n], self.items[n:]

        def urls(items: Sequence[str]) -> tuple[str, ...]:
            return tuple(u for i in items for u in by_item[i])

        return PushCall(sent, urls(sent)), PushCall(rest, urls(rest))

    def describe(self) -> str:
        return f"push {len(self.items)} item(s)"


def url_path(url: str) -> str:
    """What a path-based push API is given for `url`: its path and query, no host."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class Pusher(ABC):
    """A CDN's push API."""

    provider: ClassVar[str]
    # Items one call may carry: `warm.max_per_call` never raises it.
    vendor_max: ClassVar[int] = defaults.PUSH_MAX_PER_CALL
    # The `warm` secrets its calls need: a worker without them for the batch's account
    # falls every URL back to GETs, saying why, instead of sending calls that fail.
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, warm: WarmSettings) -> None:
        self.warm = warm

    @property
    @abstractmethod
    def account(self) -> str:
        """The account the vendor meters: it names the rate limit and the daily quota."""

    @property
    def rate(self) -> Rate:
        """Calls per account, cluster-wide: `warm.rate`, else the vendor's."""
        return Rate.parse(self.warm.rate or defaults.PUSH_RATES[self.provider])

    @property
    def per_call(self) -> int:
        return min(self.warm.max_per_call or self.vendor_max, self.vendor_max)

    def item(self, url: str) -> str:
        """What the body carries for `url` (the URL itself, or its path)."""
        return url

    def by_item(self, urls: Sequence[str]) -> dict[str, list[str]]:
        """The batch's URLs under the item each is pushed as, in order (two hosts' URLs
        with one path are one path for a path-based API)."""
        out: dict[str, list[str]] = {}
        for u in urls:
            out.setdefault(self.item(u), []).append(u)
        return out

    def plan(self, urls: Sequence[str]) -> list[PushCall]:
        """The calls that push `urls`, `per_call` items each."""
        groups = self.by_item(urls)
        items = list(groups)
        n = self.per_call
        return [
            PushCall(tuple(part), tuple(u for i in part for u in groups[i]))
            for part in (items[k : k + n] for k in range(0, len(items), n))
        ]

    @abstractmethod
    def send(self, call: PushCall) -> None:
        """Perform one call; return once the vendor accepted it.

        Raises RetryLater (429 with its Retry-After, 5xx, network) or PurgeError (refused).
        """

    def token(self) -> str:
        return self.warm.api_token.get_secret_value() if self.warm.api_token else ""
