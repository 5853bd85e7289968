"""The proof of freshness: a PoP's HIT is the object the origin serves now, not an old one.

A cache that ignored a purge, or soft-purged and keeps serving stale content, answers
HIT with the warm-time payload twice in a row: consistency alone proves nothing. Two
proofs that do not trust the PoP:

- **age**: an object refilled after the batch's purge began has `Age` <= the time since
  then. The purge start and "now" are both read from Redis's clock, so worker clocks
  never matter, and `Age` is the cache's own duration, so the PoP's clock does not
  either. Shields are covered: an edge filled from a shield carries the shield's Age,
  and the shield was purged after the batch's purge began, so the same bound holds at
  every tier; an edge filled from a shield that kept its old copy is caught by it.
- **origin**: one request per URL and variant to `verify.origin_url` (bypassing the
  caches) gives the version (ETag, else Last-Modified, else body digest) that every
  PoP's answer must match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from warming import defaults
from warming.batch.records import OriginVersion
from warming.pop.client import Fetched


@dataclass(frozen=True)
class Proof:
    """What a verification compares each answer with, for one batch."""

    freshness: str  # "age", "origin", "both" or "off" (Plan.freshness)
    statuses: tuple[int, ...] = defaults.HIT_STATUSES
    purged_at: float | None = None  # Redis clock, when the batch's purge began
    now: Callable[[], float] = field(default=lambda: 0.0)  # the Redis clock
    origin: Mapping[str, OriginVersion] = field(default_factory=dict)  # by origin_key

    @property
    def by_age(self) -> bool:
        return self.freshness in ("age", "both") and self.purged_at is not None

    @property
    def by_origin(self) -> bool:
        return self.freshness in ("origin", "both")


def origin_key(url: str, variant: str) -> str:
    return f"{variant} {url}"


def stale(got: Fetched, proof: Proof) -> str | None:
    """Why `got`, a HIT, is not the object refilled after the purge, or None."""
    if proof.freshness == "off":
        return None
    if got.age is not None and got.lifetime_s is not None and got.age > got.lifetime_s:
        return (
            f"stale: Age {got.age:,} s is past the object's lifetime of "
            f"{got.lifetime_s:,} s (a grace or stale hit)"
        )
    if not proof.by_age:
        return None
    assert proof.purged_at is not None
    elapsed = max(0.0, proof.now() - proof.purged_at)
    if got.age is None:
        return (
            "no Age header, so freshness cannot be proven by age "
            "(set verify.origin_url to prove it against the origin)"
        )
    if got.age > elapsed + defaults.AGE_SLACK_S:
        return (
            f"stale: Age {got.age:,} s but purged {elapsed:,.0f} s ago "
            "(the purge did not take effect here, or a soft purge serves the old copy)"
        )
    return None


def differs_from_origin(got: Fetched, origin: OriginVersion) -> str | None:
    """Why `got` is not the version the origin serves now, or None when it is."""
    if origin.get("etag") and got.etag:
        if strong(got.etag) != strong(str(origin["etag"])):
            return f"payload differs from the origin's: ETag {got.etag}, origin {origin['etag']}"
        return None
    if origin.get("last_modified") and got.last_modified:
        if got.last_modified != origin["last_modified"]:
            return (
                f"payload differs from the origin's: Last-Modified {got.last_modified}, "
                f"origin {origin['last_modified']}"
            )
        return None
    if got.digest != origin.get("digest"):
        return "payload differs from the origin's: the body is not the one the origin serves"
    return None


def strong(etag: str) -> str:
    # Varnish weakens an ETag when it gzips on the fly; the object is the same.
    return etag[2:] if etag.startswith("W/") else etag
