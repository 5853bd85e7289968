"""The freshness proof's rules, on made-up answers (pure logic: no network, no Redis)."""

from __future__ import annotations

import pytest

from warming.batch.records import OriginVersion
from warming.pop.cachestatus import cache_status
from warming.pop.client import Fetched, shared_lifetime
from warming.settings import VerifySettings
from warming.stages.freshness import Proof, differs_from_origin, stale

PURGED_AT = 1_000_000.0


def hit(
    age: int | None, etag: str | None = '"v2"', lifetime: int | None = 3600, **kw: str
) -> Fetched:
    return Fetched(
        status=200,
        cache=cache_status({"x-cache": "HIT"}),
        age=age,
        etag=etag,
        digest=kw.get("digest", "d2"),
        size=10,
        keys=(),
        ttfb_ms=1.0,
        elapsed_ms=1.0,
        last_modified=kw.get("last_modified"),
        lifetime_s=lifetime,
    )


def proof(freshness: str = "age", since_purge_s: float = 10.0) -> Proof:
    return Proof(freshness, purged_at=PURGED_AT, now=lambda: PURGED_AT + since_purge_s)


def test_an_object_younger_than_the_purge_passes() -> None:
    assert stale(hit(age=9), proof(since_purge_s=10)) is None
    # Whole seconds and a fast PoP clock: two seconds of slack, not more.
    assert stale(hit(age=12), proof(since_purge_s=10)) is None


def test_an_object_older_than_the_purge_is_stale_with_a_reason_a_person_reads() -> None:
    why = stale(hit(age=3600), proof(since_purge_s=2))
    assert why is not None
    assert why.startswith("stale: Age 3,600 s but purged 2 s ago")
    assert stale(hit(age=13), proof(since_purge_s=10)) is not None


def test_a_hit_without_age_cannot_be_proven_by_age() -> None:
    why = stale(hit(age=None), proof())
    assert why is not None and "no Age header" in why


def test_a_hit_past_its_lifetime_is_a_grace_hit_whatever_the_proof() -> None:
    why = stale(hit(age=120, lifetime=60), proof("origin"))
    assert why is not None and "past the object's lifetime of 60 s" in why
    assert stale(hit(age=120, lifetime=60), proof("off")) is None


def test_no_purge_time_means_no_age_proof() -> None:
    p = Proof("age", purged_at=None, now=lambda: PURGED_AT)
    assert not p.by_age
    assert stale(hit(age=3000), p) is None  # old, but nothing says it was purged


@pytest.mark.parametrize(
    ("origin", "got", "differs"),
    [
        ({"etag": '"v2"'}, hit(1), False),
        ({"etag": '"v2"'}, hit(1, etag='W/"v2"'), False),  # gzip-weakened by Varnish
        ({"etag": '"v3"'}, hit(1), True),
        ({"last_modified": "Tue, 01 Dec 2026 10:00:00 GMT"}, hit(1, etag=None,
         last_modified="Tue, 01 Dec 2026 09:00:00 GMT"), True),
        ({"digest": "d2"}, hit(1, etag=None), False),
        ({"digest": "d1"}, hit(1, etag=None), True),
    ],
)  # fmt: skip
def test_the_answer_must_be_the_origins_version(
    origin: OriginVersion, got: Fetched, differs: bool
) -> None:
    why = differs_from_origin(got, origin)
    assert (why is not None) is differs
    if differs:
        assert why is not None and why.startswith("payload differs from the origin's")


@pytest.mark.parametrize(
    ("freshness", "origin_url", "purged", "proof_used"),
    [
        ("auto", None, True, "age"),
        ("auto", "http://origin:8080", True, "both"),
        ("auto", "http://origin:8080", False, "origin"),
        ("auto", None, False, "off"),
        ("age", None, True, "age"),
        ("off", "http://origin:8080", True, "off"),
    ],
)
def test_the_strongest_proof_that_works_is_the_default(
    freshness: str, origin_url: str | None, purged: bool, proof_used: str
) -> None:
    v = VerifySettings.model_validate({"freshness": freshness, "origin_url": origin_url})
    assert v.proof(purged) == proof_used


def test_only_2xx_statuses_can_count_and_origin_url_is_an_address() -> None:
    with pytest.raises(ValueError, match="2xx"):
        VerifySettings.model_validate({"statuses": [200, 404]})
    with pytest.raises(ValueError, match="http"):
        VerifySettings.model_validate({"origin_url": "origin.internal"})


def test_shared_lifetime_prefers_s_maxage() -> None:
    assert shared_lifetime("public, max-age=600, s-maxage=60") == 60
    assert shared_lifetime("max-age=600") == 600
    assert shared_lifetime("no-store") is None
