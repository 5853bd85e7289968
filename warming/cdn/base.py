"""What every CDN purge provider implements.

A purge is planned as a list of `PurgeCall`s, each one request to the provider
(one URL at one Varnish PoP, or up to N URLs in one Fastly/Cloudflare API call),
so the purge task can rate-limit, retry and resume per call without knowing
which CDN it talks to. A call whose purge is not yet in effect when it returns
(CloudFront's invalidation in progress, Akamai's `estimatedSeconds`) answers a
`Pending`; the purge stage waits it out with re-queued tasks, never a sleeping
thread, before anything is warmed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from warming.settings import CdnSettings, PopSettings

# When a provider's purge takes effect, which decides when warming may start:
# "at once" (its answer means done), "after polling" (ask until it says done),
# "after seconds" (the vendor's estimate, waited out), and "stale until revalidated"
# (objects are only marked stale: the first requests may be served STALE while the
# PoP revalidates; warming starts at once and verification proves the fresh copy).
Effect = Literal["at once", "after polling", "after seconds", "stale until revalidated"]


@dataclass(frozen=True)
class PurgeCall:
    """One request to the CDN: purge these URLs or these surrogate keys (at one PoP).

    `layer` is the provider's place in `cdn.providers`; `ref` is set by the purge stage
    (batch and call number) so that a provider can make a retried call idempotent.
    """

    pop: str | None
    urls: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    layer: int = 0
    ref: str = ""

    def describe(self) -> str:
        what = f"{len(self.urls)} URL(s)" if self.urls else f"tag(s) {' '.join(self.tags)}"
        return f"purge {what}" + (f" at {self.pop}" if self.pop else "")


@dataclass(frozen=True)
class Pending:
    """A purge sent but not in effect yet: wait `after_s`, then poll `token` if any."""

    layer: int = 0
    after_s: float = 0.0
    token: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Pending:
        return cls(int(d.get("layer", 0)), float(d.get("after_s", 0.0)), str(d.get("token", "")))


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

    @property
    def effect(self) -> Effect:
        """When this provider's purge takes effect (README "CDN providers")."""
        return "at once"

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        """The calls that purge `urls` and `tags`; shield PoPs come before edges.

        The default suits a provider with one global API: calls carry no PoP.
        Raises PurgeError when the batch cannot be purged this way (say, tags only).
        """
        n = self.max_urls_per_call
        calls = [PurgeCall(None, urls=tuple(urls[i : i + n])) for i in range(0, len(urls), n)]
        if tags:
            calls.append(PurgeCall(None, tags=tuple(tags)))
        return calls

    @abstractmethod
    def send(self, call: PurgeCall) -> Pending | None:
        """Perform one call; None once it has taken effect, else what to wait for.

        Raises RetryLater (retryable: 429, 5xx, network) or PurgeError (final).
        """

    def poll(self, pending: Pending) -> Pending | None:
        """Ask whether `pending` is done: None when it is, else what to wait for next."""
        return None


def chunks(items: Sequence[str], n: int) -> Iterator[tuple[str, ...]]:
    """`items` in order, `n` at a time."""
    for i in range(0, len(items), max(1, n)):
        yield tuple(items[i : i + n])


def limit(cdn: CdnSettings, vendor_max: int) -> int:
    """Objects per call: `cdn.max_per_call` when set, never above the vendor's maximum."""
    return min(cdn.max_per_call or vendor_max, vendor_max)
