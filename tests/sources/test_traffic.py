"""Traffic-ranked URLs from analytics exports and access logs (pure parsing, real files)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from warming.errors import WarmingError
from warming.settings import SiteSettings
from warming.sources.filter import URLFilter
from warming.sources.traffic import bands, rank

SITE = "https://www.example.com"
FILTER = URLFilter.from_site(SiteSettings(base_url=SITE))

GA4 = """# ----------------------------------------
# Pages and screens: Page path and screen class
# Account: Example
# Start date: 20261101
# End date: 20261130
# ----------------------------------------

Page path and screen class,Views,Users,Views per user
/blog/post-1,"1,204",900,1.3
/,"5,310",4000,1.3
/pricing,310,200,1.5
/preview/secret,9999,1,1
"""
PLAUSIBLE = (
    "name,visitors,pageviews,bounce_rate,time_on_page\n/docs,80,120,40,33\n/,300,410,55,20\n"
)
MATOMO = "label,nb_visits,nb_hits,sum_time_spent\n/shop,10,30,100\n/shop/cart,5,50,10\n"
COMBINED = "\n".join(
    [
        '203.0.113.9 - - [01/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 512 "-" "UA"',
        '10.0.0.9 - - [01/Dec/2026:10:00:01 +0000] "GET /b?utm_source=x HTTP/1.1" 200 1 "-" "UA"',
        '203.0.113.9 - - [01/Dec/2026:10:00:02 +0000] "GET /b HTTP/1.1" 304 0 "-" "UA"',
        '203.0.113.9 - - [01/Dec/2026:10:00:03 +0000] "GET /b HTTP/2.0" 200 1 "-" "UA"',
        '203.0.113.9 - - [01/Dec/2026:10:00:04 +0000] "POST /b HTTP/1.1" 200 1 "-" "UA"',
        '203.0.113.9 - - [01/Dec/2026:10:00:05 +0000] "GET /gone HTTP/1.1" 404 1 "-" "UA"',
        '203.0.113.9 - - [01/Dec/2026:10:00:06 +0000] "GET /gone HTTP/1.1" 404 1 "-" "UA"',
        '203.0.113.9 - - [01/Dec/2026:10:00:07 +0000] "GET /a HTTP/1.1" 200 512',  # common
    ]
)
CLOUDFRONT = (
    "#Version: 1.0\n"
    "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "
    "cs(Referer) cs(User-Agent) cs-uri-query\n"
    "2026-12-01\t10:00:00\tFRA56-C1\t100\t198.51.100.1\tGET\td1.cloudfront.net\t/x\t200\t-\tUA\t-\n"
    "2026-12-01\t10:00:01\tFRA56-C1\t100\t198.51.100.1\tGET\td1.cloudfront.net\t/y\t200\t-\tUA\tp=2\n"
    "2026-12-01\t10:00:02\tFRA56-C1\t100\t198.51.100.1\tGET\td1.cloudfront.net\t/y\t200\t-\tUA\tp=2\n"
    "2026-12-01\t10:00:03\tFRA56-C1\t100\t198.51.100.1\tGET\td1.cloudfront.net\t/z\t503\t-\tUA\t-\n"
)
FASTLY_JSON = (
    '{"timestamp":"2026-12-01T10:00:00Z","method":"GET","url":"/j?q=1","status":200}\n'
    '{"timestamp":"2026-12-01T10:00:01Z","method":"GET","url":"/k","status":200}\n'
    '{"timestamp":"2026-12-01T10:00:02Z","method":"GET","url":"/k","status":200}\n'
    '{"timestamp":"2026-12-01T10:00:03Z","method":"HEAD","url":"/h","status":200}\n'
)


def _file(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def test_ga4_export_is_ranked_by_views_and_filtered(tmp_path: Path) -> None:
    got = rank(_file(tmp_path, "ga4.csv", GA4), FILTER)
    assert got.urls == [SITE + "/", SITE + "/blog/post-1", SITE + "/pricing"]
    assert got.hits[SITE + "/blog/post-1"] == 1204  # "1,204" as exported
    assert [(d.url, "deny_paths" in d.reason) for d in got.dropped] == [
        (SITE + "/preview/secret", True)
    ]
    assert got.kind == "analytics CSV (Page path and screen class by Views)"


def test_plausible_and_matomo_utf16_exports(tmp_path: Path) -> None:
    assert rank(_file(tmp_path, "p.csv", PLAUSIBLE), FILTER).urls == [SITE + "/", SITE + "/docs"]
    matomo = _file(tmp_path, "m.csv", MATOMO.encode("utf-16"))  # with its BOM, as Matomo's UI
    got = rank(matomo, FILTER)
    assert got.urls == [SITE + "/shop/cart", SITE + "/shop"] and got.hits[SITE + "/shop"] == 30


def test_combined_log_counts_successful_gets_and_adds_up_spellings(tmp_path: Path) -> None:
    got = rank(_file(tmp_path, "access.log.gz", gzip.compress(COMBINED.encode())), FILTER)
    # /b: 3 GETs (one with a tracking parameter the filter strips); the POST and 404s don't count.
    assert [(u, got.hits[u]) for u in got.urls] == [(SITE + "/b", 3), (SITE + "/a", 2)]
    assert got.kind == "access log"


def test_cloudfront_and_fastly_json_logs(tmp_path: Path) -> None:
    cf = rank(_file(tmp_path, "cf.log", CLOUDFRONT), FILTER)
    assert [(u, cf.hits[u]) for u in cf.urls] == [(SITE + "/y?p=2", 2), (SITE + "/x", 1)]
    fj = rank(_file(tmp_path, "fastly.json", FASTLY_JSON), FILTER)
    assert fj.urls == [SITE + "/k", SITE + "/j?q=1"]


def test_something_else_is_an_error_that_says_what_is_read(tmp_path: Path) -> None:
    with pytest.raises(WarmingError, match="not an export this reads"):
        rank(_file(tmp_path, "x.csv", "colour,size\nred,3\n"), FILTER)
    with pytest.raises(WarmingError, match="every page was refused"):
        rank(_file(tmp_path, "d.csv", "name,pageviews\n/draft/x,3\n"), FILTER)


def test_rank_bands() -> None:
    urls = [f"/{i}" for i in range(6)]
    assert bands(urls, 2, 4) == {"high": urls[:2], "normal": urls[2:4], "bulk": urls[4:]}
    assert bands(urls[:2], 2, 4) == {"high": urls[:2]}
    assert bands(urls, 0, 0) == {"bulk": urls}
