"""Sitemap formats, read through a real Varnish PoP: indexes, .gz, .txt, robots.txt, lastmod."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.support import SITE, SitemapOrigin, need, sitemap_xml
from warming.errors import WarmingError
from warming.pop.client import PopClient
from warming.sandbox import VarnishEdge, varnish_available
from warming.settings import FetchSettings, PopSettings, SiteSettings
from warming.sources.filter import URLFilter
from warming.sources.lists import from_sitemap
from warming.sources.sitemaps import Sitemap, parse_since

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def urlset(body: str, ns: str | None = "http://www.sitemaps.org/schemas/sitemap/0.9") -> bytes:
    xmlns = f' xmlns="{ns}"' if ns else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset{xmlns}>{body}</urlset>'.encode()


def entry(path: str, lastmod: str | None = None) -> str:
    mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
    return f"<url><loc>{SITE}{path}</loc>{mod}</url>"


DOCS = {
    "/robots.txt": (
        b"User-agent: *\nDisallow: /admin\n"
        b"Sitemap: https://cdn.other.example/sitemap.xml\n"
        b"Sitemap: http://www.example.com/index.xml\n"
    ),
    "/index.xml": sitemap_xml(
        [SITE + "/pages.xml.gz", SITE + "/old.xml", SITE + "/plain.xml", SITE + "/list.txt"],
        index=True,
    ),
    "/pages.xml.gz": gzip.compress(sitemap_xml([SITE + "/gz-a", SITE + "/gz-b"])),
    "/old.xml": urlset(entry("/old-ns"), ns="http://www.google.com/schemas/sitemap/0.84"),
    "/plain.xml": urlset(entry("/no-ns"), ns=None),
    "/list.txt": f"{SITE}/txt-a\n\n{SITE}/txt-b\n".encode(),
    "/dated.xml": urlset(
        entry("/new", "2026-11-30T10:00:00+00:00")
        + entry("/old", "2026-01-01")
        + entry("/undated")
        + entry("/yesterday", "2026-11-30")
    ),
    "/dated-old.xml": urlset(entry("/a", "2026-01-01") + entry("/b", "2025-06-30T00:00:00Z")),
    "/empty.xml": urlset(""),
    "/page.html": b"<!doctype html><html><body>not a sitemap</body></html>",
    "/empty.txt": b"just words\n/relative/path\n",
    "/bad-index.xml": sitemap_xml(
        [SITE + "/missing.xml", SITE + "/empty.xml", "https://cdn.other.example/x.xml"],
        index=True,
    ),
}


class PoP:
    """A sitemap origin behind one real Varnish edge."""

    def __init__(self) -> None:
        self.origin = SitemapOrigin().start()
        self.edge = VarnishEdge("edge1", ("127.0.0.1", self.origin.port)).start()
        self.settings = PopSettings(name="edge1", url=self.edge.url)

    def read(self, url: str, since: datetime | None = None) -> Sitemap:
        site = SiteSettings(base_url=SITE)
        client = PopClient(FetchSettings(), site)
        return from_sitemap(client, self.settings, url, URLFilter.from_site(site), since)


@pytest.fixture(scope="module")
def pop() -> Iterator[PoP]:
    need(varnish_available(), "varnishd is not installed")
    p = PoP()
    p.origin.documents = dict(DOCS)
    p.origin.fail("/missing.xml", 404)
    yield p
    p.edge.stop()
    p.origin.stop()


def test_robots_txt_leads_to_an_index_of_gz_old_namespace_no_namespace_and_text_sitemaps(
    pop: PoP,
) -> None:
    pop.origin.reset_counts()
    got = pop.read("/robots.txt")
    assert sorted(got.urls) == sorted(
        SITE + p for p in ["/gz-a", "/gz-b", "/old-ns", "/no-ns", "/txt-a", "/txt-b"]
    )
    # The foreign Sitemap: line is dropped with its reason and never requested.
    assert [(d.url, d.reason.split(":")[0]) for d in got.dropped] == [
        ("https://cdn.other.example/sitemap.xml", "sitemap not fetched")
    ]
    assert pop.origin.hosts_seen == {"www.example.com"}
    assert set(pop.origin.counts) == {
        "/robots.txt", "/index.xml", "/pages.xml.gz", "/old.xml", "/plain.xml", "/list.txt"
    }  # fmt: skip


def test_an_index_may_list_a_gzipped_sitemap(pop: PoP) -> None:
    assert pop.read(SITE + "/pages.xml.gz").urls == [SITE + "/gz-a", SITE + "/gz-b"]


def test_changed_since_keeps_newer_and_undated_pages(pop: PoP) -> None:
    got = pop.read("/dated.xml", since=datetime(2026, 11, 29, tzinfo=UTC))
    assert got.urls == [SITE + "/new", SITE + "/undated", SITE + "/yesterday"]
    assert got.unchanged == 1
    assert len(pop.read("/dated.xml").urls) == 4


def test_nothing_changed_is_an_error_that_says_so(pop: PoP) -> None:
    with pytest.raises(WarmingError, match=r"none of its 2 URLs changed since 2026-11-29 00:00"):
        pop.read(SITE + "/dated-old.xml", since=datetime(2026, 11, 29, tzinfo=UTC))


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/empty.xml", r"gives no URL: it lists no <url><loc>"),
        ("/page.html", r"is not a sitemap \(no <urlset>, <sitemapindex>, RSS or Atom"),
        ("/empty.txt", r"gives no URL: no line of it is an http\(s\) URL"),
        ("/missing.xml", r"answered 404 through PoP edge1"),
        (
            "/bad-index.xml",
            r"the sitemap index's sitemaps gave none \(https://cdn.other.example/x.xml: "
            r"sitemap not fetched: .*; http://www.example.com/missing.xml: answered 404 .*; "
            r"http://www.example.com/empty.xml: lists no URL\)",
        ),
    ],
)
def test_a_sitemap_that_gives_no_url_is_an_error_that_says_why(
    pop: PoP, path: str, why: str
) -> None:
    with pytest.raises(WarmingError, match=why):
        pop.read(path)


def test_robots_txt_without_sitemap_lines_says_so(pop: PoP) -> None:
    pop.origin.documents["/r/robots.txt"] = b"User-agent: *\nDisallow: /\n"
    with pytest.raises(WarmingError, match=r"the robots.txt has no Sitemap: line"):
        pop.read("/r/robots.txt")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("90m", datetime(2026, 12, 1, 10, 30, tzinfo=UTC)),
        ("24h", datetime(2026, 11, 30, 12, 0, tzinfo=UTC)),
        ("7d", datetime(2026, 11, 24, 12, 0, tzinfo=UTC)),
        ("2026-11-30", datetime(2026, 11, 30, tzinfo=UTC)),
        ("2026-11-30T08:00:00+01:00", datetime(2026, 11, 30, 7, 0, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, want: datetime) -> None:
    assert parse_since(text, NOW) == want


def test_parse_since_refuses_anything_else() -> None:
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", NOW)
