"""The typed records a batch keeps per (URL, PoP, variant): what was warmed, the verdict.

They are stored as JSON in the batch's hashes (`warming.batch.store`) and shaped
into the SPEC's report when it is read (`warming.batch.report`).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, cast

from warming.batch.plan import Pair

WarmOutcome = Literal["warmed", "failed"]
VerdictOutcome = Literal["hit", "miss", "failed"]
# Push mode: how a pair was warmed. "push": the first GET after the push found it cached
# (the push filled it); "get": warming's own GET did, and `warm_reason` says why.
WarmedBy = Literal["push", "get"]
# The reason of a pushed URL whose first GET at a PoP was not a HIT (rows leave it out).
NOT_LANDED = "the push had not landed at this PoP: the first GET filled it"


class _Record(TypedDict, total=False):
    url: str
    pop: str
    variant: str
    status: int | None
    cache: str | None
    cache_header: str | None
    age: int | None
    etag: str | None
    last_modified: str | None
    digest: str
    size: int
    keys: list[str]
    ttfb_ms: float
    elapsed_ms: float
    # When the answer arrived (epoch seconds): the freshness proof compares Age with it.
    at: float
    attempts: int
    error: str | None
    warm: WarmedBy
    warm_reason: str
    # The CDN location that answered, as the response named it (warming.pop.cachestatus).
    served_by: str | None


class WarmRecord(_Record, total=False):
    """What a prefetch saw: `warmed` (an answer to verify) or `failed` (with why)."""

    outcome: WarmOutcome


class Verdict(_Record, total=False):
    """A pair's final record: `hit`, `miss` (with why) or `failed` (with why)."""

    outcome: VerdictOutcome
    rewarmed: bool
    # A shield pair proven by an edge's fill from it: that edge's name (no request sent).
    via: str


class OriginVersion(TypedDict, total=False):
    """What the origin served for one URL and variant (or why it could not be asked)."""

    status: int
    etag: str | None
    last_modified: str | None
    digest: str
    error: str


def _failure(pair: Pair, error: str, attempts: int, status: int | None) -> dict[str, Any]:
    return {
        "url": pair.url,
        "pop": pair.pop,
        "variant": pair.variant,
        "outcome": "failed",
        "status": status,
        "cache": None,
        "attempts": attempts,
        "error": error,
    }


def failed(pair: Pair, error: str, attempts: int, status: int | None = None) -> Verdict:
    """A pair that could not be warmed or verified, and why."""
    return cast(Verdict, _failure(pair, error, attempts, status))


def failed_warm(pair: Pair, error: str, attempts: int, status: int | None = None) -> WarmRecord:
    """A prefetch that failed for good: kept as the warm record, reported as failed."""
    return cast(WarmRecord, _failure(pair, error, attempts, status))


def as_failed(rec: WarmRecord | Verdict, error: str | None = None) -> Verdict:
    """`rec` as a failed verdict (keeping what it saw), with `error` if given."""
    out: Verdict = {k: v for k, v in rec.items() if k != "outcome"}  # type: ignore[assignment]
    out["outcome"] = "failed"
    if error is not None:
        out["error"] = error
    return out
