"""Deciding whether a PoP serves the warmed object as a fresh HIT (no Celery here)."""

from __future__ import annotations

import time
from collections.abc import Callable

from warming.batch.plan import Pair
from warming.batch.records import Verdict, WarmRecord, as_failed, failed
from warming.errors import FetchError, RetryLater
from warming.pop.client import Fetched

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
        "digest": got.digest,
        "size": got.size,
        "keys": list(got.keys),
        "ttfb_ms": round(got.ttfb_ms, 1),
        "elapsed_ms": round(got.elapsed_ms, 1),
        "attempts": attempts,
        "error": None,
    }


def problem(got: Fetched, warmed: WarmRecord) -> str | None:
    """Why `got` is not the warmed object served as a fresh HIT, or None when it is."""
    if got.status != 200:
        return f"status {got.status}"
    if not got.cache.is_hit:
        source = f" ({got.cache.header}: {got.cache.raw})" if got.cache.header else ""
        return f"cache {got.cache.verdict.value}{source}"
    if warmed.get("etag") and got.etag:
        if _strong(got.etag) != _strong(str(warmed["etag"])):
            return f"payload differs: ETag {got.etag} != warmed {warmed['etag']}"
    elif got.digest != warmed.get("digest"):
        return "payload differs: body digest changed since it was warmed"
    return None


def _strong(etag: str) -> str:
    # Varnish weakens an ETag when it gzips on the fly; the object is the same.
    return etag[2:] if etag.startswith("W/") else etag


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
    try:
        got = _send_patiently(send, pair, sleep)
        why = problem(got, warmed)
        rewarmed = False
        if why is not None:
            again = _send_patiently(send, pair, sleep)  # the re-warm
            warmed = warm_record(pair, again, attempts)
            got = _send_patiently(send, pair, sleep)  # and the re-check
            why = problem(got, warmed)
            rewarmed = True
    except FetchError as e:
        return failed(pair, f"verification: {e}", attempts, e.status)
    rec: Verdict = {
        **warmed,
        "outcome": "hit" if why is None else "miss",
        "status": got.status,
        "cache": got.cache.verdict.value,
        "cache_header": got.cache.header,
        "age": got.age,
        "attempts": attempts,
        "error": None if why is None else f"{why} after a re-warm",
        "rewarmed": rewarmed,
    }
    return rec
