"""Cache verdicts from header values as the CDNs document them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from warming.pop.cachestatus import HEADER_ORDER, Cache, CacheStatus, cache_status


def check(headers: dict[str, str], verdict: Cache, header: str | None) -> CacheStatus:
    status = cache_status(headers)
    assert (status.verdict, status.header) == (verdict, header)
    return status


# Varnish appends "MISS" at each miss; Fastly with shielding lists the shield first and the
# edge last (X-Served-By: shield, edge), as in docs.fastly.com "Checking cache".
VARNISH_FASTLY = [
    ({"X-Cache": "HIT", "Age": "42", "Via": "1.1 varnish (Varnish/7.4)"}, Cache.HIT),
    ({"X-Cache": "MISS", "Age": "0", "Via": "1.1 varnish (Varnish/7.4)"}, Cache.MISS),
    ({"X-Cache": "hit"}, Cache.HIT),
    ({"X-Cache": "miss"}, Cache.MISS),
    ({"X-Cache": "PASS"}, Cache.BYPASS),
    ({"X-Cache": "HIT-STALE"}, Cache.STALE),
    ({"X-Cache": "HITSTALE"}, Cache.STALE),
    ({"X-Cache": "hit-stale"}, Cache.STALE),
    ({"X-Cache": "HIT, MISS"}, Cache.MISS),
    (
        {
            "X-Cache": "MISS, HIT",
            "X-Served-By": "cache-jfk1041-JFK, cache-ord1720-ORD",
            "X-Cache-Hits": "0, 7",
            "Age": "142",
        },
        Cache.HIT,
    ),
    (
        {
            "X-Cache": "HIT, HIT",
            "X-Served-By": "cache-jfk1041-JFK, cache-ord1720-ORD",
            "X-Cache-Hits": "1, 7",
        },
        Cache.HIT,
    ),
    (
        {
            "X-Cache": "MISS, MISS",
            "X-Served-By": "cache-sea1925-SEA, cache-lhr6324-LHR",
            "X-Cache-Hits": "0, 0",
        },
        Cache.MISS,
    ),
    # A restart adds a third entry; the last one is still the answer at the edge.
    ({"X-Cache": "MISS, HIT, HIT", "X-Cache-Hits": "3, 16"}, Cache.HIT),
    ({"X-Cache": "HIT, "}, Cache.HIT),
]


@pytest.mark.parametrize(("headers", "verdict"), VARNISH_FASTLY)
def test_varnish_and_fastly_x_cache(headers: dict[str, str], verdict: Cache) -> None:
    check(headers, verdict, "x-cache")


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("HIT", Cache.HIT),
        ("MISS", Cache.MISS),
        ("EXPIRED", Cache.EXPIRED),
        ("STALE", Cache.STALE),
        ("REVALIDATED", Cache.REVALIDATED),
        ("UPDATING", Cache.UPDATING),
        ("DYNAMIC", Cache.DYNAMIC),
        ("BYPASS", Cache.BYPASS),
        ("NONE", Cache.UNKNOWN),
        ("UNKNOWN", Cache.UNKNOWN),
        ("NONE/UNKNOWN", Cache.UNKNOWN),
    ],
)
def test_cloudflare(value: str, verdict: Cache) -> None:
    status = check(
        {"CF-Cache-Status": value, "CF-RAY": "8f1e2d3c4b5a6978-FRA"}, verdict, "cf-cache-status"
    )
    assert status.raw == value


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("Hit from cloudfront", Cache.HIT),
        ("RefreshHit from cloudfront", Cache.REVALIDATED),
        ("Miss from cloudfront", Cache.MISS),
        ("Error from cloudfront", Cache.ERROR),
        ("LimitExceeded from cloudfront", Cache.ERROR),
        ("Redirect from cloudfront", Cache.UNKNOWN),
    ],
)
def test_cloudfront(value: str, verdict: Cache) -> None:
    headers = {
        "X-Cache": value,
        "Via": "1.1 0123456789abcdef.cloudfront.net (CloudFront)",
        "X-Amz-Cf-Pop": "FRA56-P5",
    }
    check(headers, verdict, "x-cache")


def test_cloudfront_refresh_hit_is_not_a_fresh_hit() -> None:
    assert not cache_status({"X-Cache": "RefreshHit from cloudfront"}).is_hit
    assert cache_status({"X-Cache": "Hit from cloudfront"}).is_hit


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("HIT", Cache.HIT),
        ("MISS", Cache.MISS),
        ("EXPIRED", Cache.EXPIRED),
        ("STALE", Cache.STALE),
        ("UPDATING", Cache.UPDATING),
        ("REVALIDATED", Cache.REVALIDATED),
        ("BYPASS", Cache.BYPASS),
    ],
)
def test_nginx_upstream_cache_status(value: str, verdict: Cache) -> None:
    check({"X-Cache-Status": value, "Server": "nginx"}, verdict, "x-cache-status")


# X-Cache as returned with "Pragma: akamai-x-cache-on" (techdocs.akamai.com, Pragma headers).
@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (
            "TCP_HIT from a23-62-100-14.deploy.akamaitechnologies.com (AkamaiGHost/22.1.0)",
            Cache.HIT,
        ),
        ("TCP_MEM_HIT from a69-174-50-208 (AkamaiGHost/5.7.2-5726413) (-)", Cache.HIT),
        ("TCP_IMS_HIT from a118-214-191-15 (AkamaiGHost/6.7.0.2-9183648)", Cache.HIT),
        ("TCP_MISS from a23-62-100-14 (AkamaiGHost/22.1.0) (-)", Cache.MISS),
        ("TCP_REFRESH_MISS from a23-62-100-14 (AkamaiGHost/22.1.0) (-)", Cache.MISS),
        ("TCP_REFRESH_HIT from a23-62-100-14 (AkamaiGHost/22.1.0) (-)", Cache.REVALIDATED),
        ("TCP_REFRESH_FAIL_HIT from a23-62-100-14 (AkamaiGHost/22.1.0) (-)", Cache.STALE),
        ("TCP_DENIED from a23-62-100-14 (AkamaiGHost/22.1.0) (-)", Cache.ERROR),
    ],
)
def test_akamai_x_cache(value: str, verdict: Cache) -> None:
    headers = {"X-Cache": value, "X-Check-Cacheable": "YES", "X-Serial": "2649"}
    check(headers, verdict, "x-cache")


def test_akamai_x_cache_remote_is_the_parent_and_ignored() -> None:
    headers = {
        "X-Cache": "TCP_MISS from a23-62-100-14 (AkamaiGHost/22.1.0) (-)",
        "X-Cache-Remote": "TCP_HIT from a23-62-100-20 (AkamaiGHost/22.1.0) (-)",
    }
    check(headers, Cache.MISS, "x-cache")


# "Return Cache Status" behaviour: "{status} from child[, {status} from parent]".
@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("Hit from child", Cache.HIT),
        ("Miss from child", Cache.MISS),
        ("Hit from child, Miss from parent", Cache.HIT),
        ("Miss from child, Hit from parent", Cache.MISS),
        ("RefreshHit from child", Cache.REVALIDATED),
        ("HitStale from child, Hit from parent", Cache.STALE),
        ("NotCacheable from child", Cache.BYPASS),
        ("Error from child", Cache.ERROR),
        ("Constructed from child", Cache.UNKNOWN),
        ("Redirect from child", Cache.UNKNOWN),
    ],
)
def test_akamai_cache_status_reads_the_child(value: str, verdict: Cache) -> None:
    check({"Akamai-Cache-Status": value}, verdict, "akamai-cache-status")


# RFC 9211 section 3 examples; several header lines arrive joined with ", ".
RFC9211 = [
    ("ExampleCache; hit", Cache.HIT),
    ("ExampleCache; hit; ttl=376", Cache.HIT),
    ("ExampleCache; hit; ttl=-412", Cache.STALE),
    ("ExampleCache; fwd=uri-miss", Cache.MISS),
    ("ExampleCache; fwd=stale; fwd-status=304", Cache.STALE),
    ("ExampleCache; fwd=uri-miss; collapsed", Cache.MISS),
    ("ExampleCache; fwd=uri-miss; collapsed=?0", Cache.MISS),
    ('OriginCache; hit; ttl=1100, "CDN Company Here"; hit; ttl=545', Cache.HIT),
    (
        "ReverseProxyCache; hit, ForwardProxyCache; fwd=uri-miss; collapsed; stored, "
        "BrowserCache; fwd=uri-miss",
        Cache.MISS,
    ),
    ("OriginCache; hit, CDN; fwd=miss; stored", Cache.MISS),
    ("OriginCache; fwd=miss; stored, CDN; hit; ttl=545", Cache.HIT),
    ("ExampleCDN; fwd=vary-miss", Cache.MISS),
    ("ExampleCDN; fwd=miss; stored", Cache.MISS),
    ("ExampleCDN; fwd=method", Cache.MISS),
    ("ExampleCDN; fwd=partial", Cache.MISS),
    ("ExampleCDN; fwd=request", Cache.BYPASS),
    ("ExampleCDN; fwd=bypass", Cache.BYPASS),
    ("ExampleCDN; hit=?1", Cache.HIT),
    ("ExampleCDN; hit=?0", Cache.UNKNOWN),
    ("ExampleCDN; hit=?0; fwd=miss", Cache.MISS),
    ("ExampleCDN; stored; ttl=30", Cache.UNKNOWN),
    ("ExampleCDN", Cache.UNKNOWN),
    ("ExampleCDN; fwd=teleported", Cache.UNKNOWN),
    # Quoted strings may hold the separators; they must not split members or params.
    ('ExampleCDN; fwd=uri-miss; key="/foo;hit,bar"', Cache.MISS),
    ('"CDN, Inc."; hit', Cache.HIT),
    ('Origin; hit, "CDN, Inc."; fwd=miss; detail="a \\"quoted\\" hit, here"', Cache.MISS),
    ('ExampleCDN; fwd="uri-miss"', Cache.MISS),
]


@pytest.mark.parametrize(("value", "verdict"), RFC9211)
def test_rfc9211_cache_status(value: str, verdict: Cache) -> None:
    check({"Cache-Status": value}, verdict, "cache-status")


verdict_members = st.sampled_from(
    [
        ("hit", Cache.HIT),
        ("hit; ttl=10", Cache.HIT),
        ("hit; ttl=-3", Cache.STALE),
        ("fwd=uri-miss; stored", Cache.MISS),
        ("fwd=stale; fwd-status=304", Cache.STALE),
        ("fwd=bypass", Cache.BYPASS),
        ("stored", Cache.UNKNOWN),
    ]
)
cache_names = st.sampled_from(["Origin", "cache-3.example.com", '"Example CDN"', '"a, b; c"'])


@given(st.lists(st.tuples(cache_names, verdict_members), min_size=1, max_size=5))
def test_rfc9211_last_member_decides(members: list[tuple[str, tuple[str, Cache]]]) -> None:
    value = ", ".join(f"{name}; {params}" for name, (params, _) in members)
    assert cache_status({"Cache-Status": value}).verdict == members[-1][1][1]


@given(st.lists(st.sampled_from(["HIT", "MISS"]), min_size=1, max_size=6))
def test_x_cache_last_entry_decides(entries: list[str]) -> None:
    assert cache_status({"X-Cache": ", ".join(entries)}).verdict == Cache(entries[-1])


@pytest.mark.parametrize(
    ("headers", "verdict", "header"),
    [
        ({"Cache-Status": "CDN; fwd=miss", "CF-Cache-Status": "HIT"}, Cache.MISS, "cache-status"),
        ({"CF-Cache-Status": "DYNAMIC", "X-Cache": "HIT"}, Cache.DYNAMIC, "cf-cache-status"),
        ({"X-Cache-Status": "EXPIRED", "X-Cache": "HIT"}, Cache.EXPIRED, "x-cache-status"),
        (
            {"Akamai-Cache-Status": "Miss from child", "X-Cache": "TCP_HIT from a1"},
            Cache.MISS,
            "akamai-cache-status",
        ),
        ({"X-Cache": "MISS", "Age": "100"}, Cache.MISS, "x-cache"),
        # A present header decides even when it says nothing useful.
        ({"CF-Cache-Status": "NONE", "X-Cache": "HIT"}, Cache.UNKNOWN, "cf-cache-status"),
        # A blank header is as good as absent.
        ({"CF-Cache-Status": "  ", "X-Cache": "HIT"}, Cache.HIT, "x-cache"),
    ],
)
def test_header_order(headers: dict[str, str], verdict: Cache, header: str) -> None:
    check(headers, verdict, header)


def test_header_order_is_the_documented_one() -> None:
    assert HEADER_ORDER == (
        "cache-status",
        "cf-cache-status",
        "x-cache-status",
        "akamai-cache-status",
        "x-cache",
    )


@pytest.mark.parametrize("prefer", ["X-Cache", "x-cache", "X-CACHE", " x-cache "])
def test_prefer_trusts_only_that_header(prefer: str) -> None:
    headers = {"Cache-Status": "CDN; fwd=miss", "CF-Cache-Status": "MISS", "X-Cache": "HIT"}
    status = cache_status(headers, prefer=prefer)
    assert (status.verdict, status.header, status.raw) == (Cache.HIT, "x-cache", "HIT")


@pytest.mark.parametrize(
    ("headers", "prefer", "verdict", "header"),
    [
        # The preferred header is absent: Age, never another status header.
        ({"CF-Cache-Status": "MISS", "Age": "30"}, "X-Cache", Cache.HIT, "age"),
        ({"CF-Cache-Status": "HIT"}, "X-Cache", Cache.UNKNOWN, None),
        # Present but unreadable: it still decides, Age is not consulted.
        ({"X-Cache": "weird", "Age": "5"}, "X-Cache", Cache.UNKNOWN, "x-cache"),
        # Any header name, read as a vendor list.
        (
            {"X-Edge-Cache": "MISS, HIT", "X-Cache": "MISS"},
            "X-Edge-Cache",
            Cache.HIT,
            "x-edge-cache",
        ),
        # The name picks the grammar.
        (
            {"Cache-Status": "cdn; hit", "X-Cache": "MISS"},
            "Cache-Status",
            Cache.HIT,
            "cache-status",
        ),
        (
            {"Akamai-Cache-Status": "Hit from child, Miss from parent", "X-Cache": "MISS"},
            "akamai-cache-status",
            Cache.HIT,
            "akamai-cache-status",
        ),
        ({"X-Cache": "MISS", "Age": "5"}, "Age", Cache.HIT, "age"),
    ],
)
def test_prefer(headers: dict[str, str], prefer: str, verdict: Cache, header: str | None) -> None:
    status = cache_status(headers, prefer=prefer)
    assert (status.verdict, status.header) == (verdict, header)


@pytest.mark.parametrize(
    ("headers", "verdict", "header", "raw"),
    [
        ({"Age": "1"}, Cache.HIT, "age", "1"),
        ({"Age": " 3600 "}, Cache.HIT, "age", " 3600 "),
        ({"Age": "0"}, Cache.UNKNOWN, "age", "0"),
        ({"Age": "000"}, Cache.UNKNOWN, "age", "000"),
        ({"Age": "-5"}, Cache.UNKNOWN, "age", "-5"),
        ({"Age": "1.5"}, Cache.UNKNOWN, "age", "1.5"),
        ({"Age": "soon"}, Cache.UNKNOWN, "age", "soon"),
        ({"Age": "9" * 5000}, Cache.HIT, "age", "9" * 5000),
        ({"Content-Type": "text/html"}, Cache.UNKNOWN, None, None),
        ({}, Cache.UNKNOWN, None, None),
    ],
)
def test_age_fallback(
    headers: dict[str, str], verdict: Cache, header: str | None, raw: str | None
) -> None:
    assert cache_status(headers) == CacheStatus(verdict, header, raw)


@pytest.mark.parametrize("name", ["x-cache", "X-CACHE", "x-CaChE", "X-Cache"])
def test_plain_dict_names_in_any_case(name: str) -> None:
    check({name: "MISS, HIT"}, Cache.HIT, "x-cache")


def test_requests_case_insensitive_dict() -> None:
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict({"CF-Cache-Status": "EXPIRED"})
    status = check(dict(headers), Cache.EXPIRED, "cf-cache-status")
    assert cache_status(headers) == status
    assert cache_status(headers, prefer="CF-CACHE-STATUS") == status


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("Hit From CloudFront", Cache.HIT),
        ("tcp_refresh_hit from a1", Cache.REVALIDATED),
        ('"HIT"', Cache.HIT),
    ],
)
def test_values_in_any_case(value: str, verdict: Cache) -> None:
    check({"X-Cache": value}, verdict, "x-cache")


@pytest.mark.parametrize("verdict", list(Cache))
def test_is_hit_only_for_a_fresh_hit(verdict: Cache) -> None:
    assert CacheStatus(verdict, "x-cache", "x").is_hit is (verdict is Cache.HIT)


def test_raw_keeps_the_whole_value() -> None:
    status = cache_status({"X-Cache": "MISS, HIT"})
    assert status.raw == "MISS, HIT"


header_names = st.sampled_from([*HEADER_ORDER, "Age", "X-CACHE", "cache-STATUS"]) | st.text(
    max_size=20
)


@given(
    st.dictionaries(header_names, st.text(max_size=200), max_size=6),
    st.none() | header_names,
)
def test_garbage_never_raises(headers: dict[str, str], prefer: str | None) -> None:
    status = cache_status(headers, prefer=prefer)
    assert status.verdict in set(Cache)
    assert status.is_hit == (status.verdict is Cache.HIT)
    if status.header is not None:
        assert status.header == status.header.lower()
        assert status.raw in headers.values()


@given(st.text(max_size=300))
def test_garbage_in_every_known_header(value: str) -> None:
    for name in [*HEADER_ORDER, "age"]:
        assert cache_status({name: value}).verdict in set(Cache)
