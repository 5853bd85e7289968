"""Deciding HIT with the warmed payload, the one re-warm, and retries during verification."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import pytest

from warming.batch.plan import Pair
from warming.batch.records import failed as failed_record
from warming.errors import FetchError, RetryLater
from warming.pop.cachestatus import Cache, cache_status
from warming.pop.client import Fetched
from warming.stages.verdict import (
    VERIFY_ATTEMPTS,
    VERIFY_MAX_SLEEP_S,
    check,
    problem,
    warm_record,
)

pytestmark = pytest.mark.timeout(30)

PAIR = Pair("https://www.example.com/a", "fra", "default")
BODY = b"<html>v1</html>"


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def fetched(
    x_cache: str | None = "HIT",
    status: int = 200,
    etag: str | None = None,
    body: bytes = BODY,
    age: int | None = None,
    headers: dict[str, str] | None = None,
) -> Fetched:
    hdrs = dict(headers or {})
    if x_cache is not None:
        hdrs["X-Cache"] = x_cache
    if age is not None:
        hdrs["Age"] = str(age)
    return Fetched(
        status=status,
        cache=cache_status(hdrs),
        age=age,
        etag=etag,
        digest=digest(body),
        size=len(body),
        keys=("k1",),
        ttfb_ms=12.345,
        elapsed_ms=20.0,
        headers=hdrs,
    )


def warmed(etag: str | None = None, body: bytes = BODY, attempts: int = 2) -> dict[str, Any]:
    return warm_record(PAIR, fetched("MISS", etag=etag, body=body), attempts)


class Script:
    """A fake send: answers (or raises) from a list, counting calls."""

    def __init__(self, answers: Iterable[Fetched | Exception]) -> None:
        self.answers = list(answers)
        self.sent: list[Pair] = []

    def __call__(self, pair: Pair) -> Fetched:
        self.sent.append(pair)
        if not self.answers:
            raise AssertionError(f"unexpected send #{len(self.sent)}")
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, s: float) -> None:
        self.calls.append(s)


def no_sleep(s: float) -> None:
    raise AssertionError(f"slept {s} s without a RetryLater")


# -- problem() -------------------------------------------------------------------


def test_warm_record_shape() -> None:
    rec = warmed(etag='"e1"')
    assert rec["outcome"] == "warmed"
    assert (rec["status"], rec["cache"], rec["cache_header"]) == (200, "MISS", "x-cache")
    assert (rec["etag"], rec["digest"], rec["size"]) == ('"e1"', digest(BODY), len(BODY))
    assert (rec["keys"], rec["ttfb_ms"], rec["attempts"], rec["error"]) == (["k1"], 12.3, 2, None)


def test_hit_with_same_etag_is_fine() -> None:
    assert problem(fetched("HIT", etag='"e1"'), warmed(etag='"e1"')) is None


def test_hit_with_same_digest_and_no_etags_is_fine() -> None:
    assert problem(fetched("HIT"), warmed()) is None


def test_hit_with_etag_on_one_side_only_falls_back_to_digest() -> None:
    assert problem(fetched("HIT", etag='"e1"'), warmed()) is None
    why = problem(fetched("HIT", etag='"e1"', body=b"other"), warmed())
    assert why is not None and "digest" in why


@pytest.mark.parametrize(("got", "was"), [('W/"e1"', '"e1"'), ('"e1"', 'W/"e1"')])
def test_weak_etag_equals_its_strong_form(got: str, was: str) -> None:
    # Varnish weakens the ETag when it gzips on the fly; the body bytes differ then.
    assert problem(fetched("HIT", etag=got, body=b"gzipped"), warmed(etag=was)) is None


def test_changed_etag_is_a_payload_difference() -> None:
    why = problem(fetched("HIT", etag='"e2"'), warmed(etag='"e1"'))
    assert why is not None
    assert why.startswith("payload differs")
    assert '"e2"' in why and '"e1"' in why


def test_changed_body_is_a_payload_difference() -> None:
    why = problem(fetched("HIT", body=b"<html>v2</html>"), warmed())
    assert why == "payload differs: body digest changed since it was warmed"


@pytest.mark.parametrize(
    ("x_cache", "verdict"),
    [("MISS", "MISS"), ("STALE", "STALE"), ("HIT-STALE", "STALE"), ("EXPIRED", "EXPIRED")],
)
def test_not_a_fresh_hit(x_cache: str, verdict: str) -> None:
    why = problem(fetched(x_cache), warmed())
    assert why == f"cache {verdict} (x-cache: {x_cache})"


def test_no_cache_header_at_all_is_not_a_hit() -> None:
    why = problem(fetched(None), warmed())
    assert why == "cache UNKNOWN"


def test_age_alone_counts_as_a_hit() -> None:
    got = fetched(None, age=30)
    assert got.cache.verdict is Cache.HIT
    assert problem(got, warmed()) is None


@pytest.mark.parametrize("status", [404, 304, 206, 500])
def test_status_other_than_200(status: int) -> None:
    assert problem(fetched("HIT", status=status), warmed()) == f"status {status}"


# -- check() -------------------------------------------------------------------


def test_hit_first_time_sends_once() -> None:
    send = Script([fetched("HIT", etag='"e1"', age=5)])
    rec = check(PAIR, warmed(etag='"e1"'), send, sleep=no_sleep)
    assert send.sent == [PAIR]
    assert rec["outcome"] == "hit"
    assert (rec["status"], rec["cache"], rec["age"], rec["error"]) == (200, "HIT", 5, None)
    assert rec["rewarmed"] is False
    assert rec["attempts"] == 2
    assert (rec["url"], rec["pop"], rec["variant"]) == PAIR


def test_miss_gets_one_rewarm_then_hit() -> None:
    send = Script([fetched("MISS"), fetched("MISS"), fetched("HIT")])
    rec = check(PAIR, warmed(), send, sleep=no_sleep)
    assert len(send.sent) == 3
    assert rec["outcome"] == "hit"
    assert rec["rewarmed"] is True
    assert rec["error"] is None


def test_miss_twice_is_a_miss_with_reason() -> None:
    send = Script([fetched("MISS"), fetched("MISS"), fetched("MISS")])
    rec = check(PAIR, warmed(), send, sleep=no_sleep)
    assert len(send.sent) == 3
    assert rec["outcome"] == "miss"
    assert rec["cache"] == "MISS"
    assert rec["error"] == "cache MISS (x-cache: MISS) after a re-warm"
    assert rec["rewarmed"] is True


def test_stale_is_not_a_hit() -> None:
    send = Script([fetched("STALE"), fetched("MISS"), fetched("STALE")])
    rec = check(PAIR, warmed(), send, sleep=no_sleep)
    assert rec["outcome"] == "miss"
    assert rec["cache"] == "STALE"
    assert "STALE" in rec["error"]


def test_404_is_a_miss() -> None:
    send = Script([fetched("HIT", status=404)] * 3)
    rec = check(PAIR, warmed(), send, sleep=no_sleep)
    assert len(send.sent) == 3
    assert rec["outcome"] == "miss"
    assert rec["status"] == 404
    assert rec["error"] == "status 404 after a re-warm"


def test_payload_that_keeps_changing_is_a_miss() -> None:
    # The re-warm sees e2, but the re-check already serves e3: the object is churning.
    send = Script(
        [
            fetched("HIT", etag='"e2"'),
            fetched("MISS", etag='"e2"'),
            fetched("HIT", etag='"e3"'),
        ]
    )
    rec = check(PAIR, warmed(etag='"e1"'), send, sleep=no_sleep)
    assert rec["outcome"] == "miss"
    assert rec["error"].startswith("payload differs")
    assert '"e3"' in rec["error"] and '"e2"' in rec["error"]
    assert rec["etag"] == '"e2"', "after a re-warm the re-warmed object is the reference"


def test_changed_payload_rewarmed_becomes_a_hit_on_the_new_payload() -> None:
    send = Script(
        [
            fetched("HIT", etag='"e2"'),
            fetched("MISS", etag='"e2"'),
            fetched("HIT", etag='"e2"'),
        ]
    )
    rec = check(PAIR, warmed(etag='"e1"'), send, sleep=no_sleep)
    assert len(send.sent) == 3
    assert rec["outcome"] == "hit"
    assert rec["etag"] == '"e2"'


def test_retry_later_is_retried_then_hit() -> None:
    sleeps = Sleeps()
    send = Script([RetryLater("429", delay=1.5, status=429), fetched("HIT")])
    rec = check(PAIR, warmed(), send, sleep=sleeps)
    assert rec["outcome"] == "hit"
    assert len(send.sent) == 2
    assert sleeps.calls == [1.5]


def test_retry_later_every_time_fails_with_the_reason() -> None:
    sleeps = Sleeps()
    errors: list[Fetched | Exception] = [
        RetryLater("PoP answered 503", delay=None, status=503),
        RetryLater("PoP answered 503", delay=600.0, status=503),
        RetryLater("PoP answered 503", delay=None, status=503),
        fetched("HIT"),  # never reached
    ]
    send = Script(errors)
    rec = check(PAIR, warmed(attempts=4), send, sleep=sleeps)
    assert len(send.sent) == VERIFY_ATTEMPTS == 3
    # Backoff without Retry-After, and a long Retry-After capped.
    assert sleeps.calls == [0.5, VERIFY_MAX_SLEEP_S]
    assert rec["outcome"] == "failed"
    assert rec["error"] == "verification: PoP answered 503"
    assert rec["status"] == 503
    assert rec["attempts"] == 4
    assert (rec["url"], rec["pop"], rec["variant"]) == PAIR


def test_retry_during_the_rewarm_has_its_own_budget() -> None:
    sleeps = Sleeps()
    send = Script(
        [
            fetched("MISS"),
            RetryLater("429", delay=0.1, status=429),
            RetryLater("429", delay=0.2, status=429),
            fetched("MISS"),
            fetched("HIT"),
        ]
    )
    rec = check(PAIR, warmed(), send, sleep=sleeps)
    assert rec["outcome"] == "hit"
    assert sleeps.calls == [0.1, 0.2]
    assert len(send.sent) == 5


def test_fetch_error_fails_without_retry() -> None:
    send = Script([FetchError("redirect 301 to /b is not followed", status=301)])
    rec = check(PAIR, warmed(), send, sleep=no_sleep)
    assert len(send.sent) == 1
    assert rec["outcome"] == "failed"
    assert rec["status"] == 301
    assert "redirect 301" in rec["error"]


def test_a_failed_prefetch_stays_failed() -> None:
    rec_in = failed_record(PAIR, "PoP answered 503", 5, 503)
    send = Script([fetched("HIT")])
    rec = check(PAIR, rec_in, send, sleep=no_sleep)
    assert send.sent == [], "a pair that was never warmed is not re-checked"
    assert rec["outcome"] == "failed"
    assert (rec["error"], rec["status"], rec["attempts"]) == ("PoP answered 503", 503, 5)


def test_never_prefetched_is_failed() -> None:
    send = Script([fetched("HIT")])
    rec = check(PAIR, None, send, sleep=no_sleep)
    assert send.sent == []
    assert rec["outcome"] == "failed"
    assert rec["error"] == "never prefetched"
    assert rec["attempts"] == 0
    assert (rec["url"], rec["pop"], rec["variant"]) == PAIR
