"""Deciding whether a PoP serves the fresh object as a HIT (no Celery here).

A pair is a hit only if the PoP answers a fresh HIT (STALE, UPDATING, REVALIDATED,
EXPIRED... are not), with a status that counts (`verify.statuses`, 200), the payload
that was warmed, and the freshness proof of its batch (`warming.stages.freshness`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from warming.batch.plan import Pair
from warming.batch.records import Verdict, WarmRecord, as_failed, failed
from warming.errors import FetchError, RetryLater
from warming.pop.client import Fetched
from warming.stages.freshness import Proof, differs_from_origin, origin_key, stale, strong

# Sends one GET for a pair (rate-limited by the caller) and returns what came back.
Send = Callable[[Pair], Fetched]
# Verification retries a 429/503 briefly in-task; longer waits become a failure.
VERIFY_ATTEMPTS = 3
VERIFY_MAX_SLEEP_S = 5.0


def warm_record(pair: Pair, got: Fetched, attempts: int) -> WarmRecord:
    """What a successful prefetch stores for its pair."""
    return {
        "url": pair.url,
        "pop": pair.pop,
        "variant": pair.variant,
        "outcome": "warmed",
        "status": got.status,
        "cache": got.cache.verdict.value,
        "cache_header": got.cache.header,
        "age": got.age,
        "etag": got.etag,
        "last_modified": got.last_modified,
        "digest": got.digest,
        "size": got.size,
        "keys": list(got.keys),
        "ttfb_ms": round(got.ttfb_ms, 1),
        "elapsed_ms": round(got.elapsed_ms, 1),
        "attempts": attempts,
        "error": None,
        "served_by": got.served_by,
    }


NO_PROOF = Proof("off")


def problem(
    got: Fetched, warmed: WarmRecord, proof: Proof = NO_PROOF, pair: Pair | None = None
) -> str | None:
    """Why `got` is not the fresh object served as a HIT, or None when it is."""
    if got.status not in proof.statuses:
        return f"status {got.status}"
    if not got.cache.is_hit:
        source = f" ({got.cache.header}: {got.cache.raw})" if got.cache.header else ""
        return f"cache {got.cache.verdict.value}{source}"
    why = stale(got, proof)
    if why is not None:
        return why
    if proof.by_origin and pair is not None:
        why = differs_from_origin(got, proof.origin[origin_key(pair.url, pair.variant)])
        if why is not None:
            return why
    if warmed.get("etag") and got.etag:
        if strong(got.etag) != strong(str(warmed["etag"])):
            return f"payload differs: ETag {got.etag} != warmed {warmed['etag']}"
    elif got.digest != warmed.get("digest"):
        return "payload differs: body digest changed since it was warmed"
    return None


def same_payload(got: Fetched, warmed: WarmRecord) -> bool:
    """Whether `got` carries the payload that was warmed (ETag, else body digest)."""
    if warmed.get("etag") and got.etag:
        return strong(got.etag) == strong(str(warmed["etag"]))
    return got.digest == warmed.get("digest")


def _send_patiently(send: Send, pair: Pair, sleep: Callable[[float], None]) -> Fetched:
    for attempt in range(VERIFY_ATTEMPTS):
        try:
            return send(pair)
        except RetryLater as e:
            if attempt + 1 == VERIFY_ATTEMPTS:
                raise
            sleep(min(e.delay if e.delay is not None else 0.5 * 2**attempt, VERIFY_MAX_SLEEP_S))
    raise AssertionError("unreachable")


def check(
    pair: Pair,
    warmed: WarmRecord | None,
    send: Send,
    sleep: Callable[[float], None] = time.sleep,
    proof: Proof = NO_PROOF,
) -> Verdict:
    """The final record of one pair: hit, miss (with why) or failed (with why).

    A pair that is not a fresh HIT with the warmed payload gets one re-warm and
    one re-check before it is reported a miss.
    """
    if warmed is None:
        return failed(pair, "never prefetched", 0)
    if warmed.get("outcome") != "warmed":
        return as_failed(warmed)
    attempts = int(warmed.get("attempts") or 1)
    unknown = origin_unknown(pair, proof)
    if unknown is not None:
        return failed(pair, unknown, attempts)
    try:
        got = _send_patiently(send, pair, sleep)
        why = problem(got, warmed, proof, pair)
        rewarmed = False
        if why is not None:
            again = _send_patiently(send, pair, sleep)  # the re-warm
            warmed = {**warm_record(pair, again, attempts), **_how(warmed)}
            got = _send_patiently(send, pair, sleep)  # and the re-check
            why = problem(got, warmed, proof, pair)
            rewarmed = True
    except FetchError as e:
        return failed(pair, f"verification: {e}", attempts, e.status)
    return verdict_of(warmed, got, why, rewarmed)


def _how(warmed: WarmRecord) -> WarmRecord:
    """How the pair was warmed at first (push mode), kept through a re-warm."""
    out: WarmRecord = {}
    if "warm" in warmed:
        out["warm"] = warmed["warm"]
    if "warm_reason" in warmed:
        out["warm_reason"] = warmed["warm_reason"]
    return out


def verdict_of(warmed: WarmRecord, got: Fetched, why: str | None, rewarmed: bool) -> Verdict:
    """The final record of a pair whose answer `got` was judged (`why` None: a hit)."""
    rec: Verdict = {
        **warmed,  # type: ignore[typeddict-item]  # a warm record is a verdict's first half
        "outcome": "hit" if why is None else "miss",
        "status": got.status,
        "cache": got.cache.verdict.value,
        "cache_header": got.cache.header,
        "age": got.age,
        "attempts": int(warmed.get("attempts") or 1),
        "error": None if why is None else f"{why} after a re-warm",
        "rewarmed": rewarmed,
        # What verification really saw: on an anycast CDN, maybe not where the warm went.
        "served_by": got.served_by,
    }
    return rec


def origin_unknown(pair: Pair, proof: Proof) -> str | None:
    """Why the pair cannot be judged against the origin (its version is unknown), or None."""
    if not proof.by_origin:
        return None
    origin = proof.origin.get(origin_key(pair.url, pair.variant))
    if origin is not None and not origin.get("error"):
        return None
    unknown = (origin or {}).get("error") or "not asked"
    return f"verification: the origin's version is unknown: {unknown}"
