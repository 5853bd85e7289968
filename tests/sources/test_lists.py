"""Sitemaps fetched through a real Varnish PoP: only allowed hosts ever reach it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import SITE, SitemapOrigin, need, probe, sitemap_xml
from warming.errors import WarmingError
from warming.pop.client import PopClient
from warming.sandbox import VarnishEdge, varnish_available
from warming.settings import FetchSettings, PopSettings, SiteSettings
from warming.sources.filter import URLFilter
from warming.sources.lists import from_sitemap

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# A service on another host: an edge that routes by Host would connect there.
ELSEWHERE = 9
FOREIGN_CHILDREN = [
    f"http://127.0.0.1:{ELSEWHERE}/sitemap-evil.xml",
    f"http://2130706433:{ELSEWHERE}/sitemap-evil.xml",
    f"http://www.example.com@127.0.0.1:{ELSEWHERE}/sitemap-evil.xml",
    f"http://localhost:{ELSEWHERE}/sitemap-evil.xml",
    f"http://www.example.com:{ELSEWHERE}/sitemap-evil.xml",
    "https://cdn.other.example/sitemap-evil.xml",
]


class PoP:
    """A sitemap origin behind one real Varnish edge."""

    def __init__(self) -> None:
        self.origin = SitemapOrigin().start()
        self.edge = VarnishEdge("edge1", ("127.0.0.1", self.origin.port)).start()
        self.settings = PopSettings(name="edge1", url=self.edge.url)

    def stop(self) -> None:
        self.edge.stop()
        self.origin.stop()


@pytest.fixture(scope="module")
def pop() -> Iterator[PoP]:
    need(varnish_available(), "varnishd is not installed")
    p = PoP()
    p.origin.documents = {
        "/sitemap.xml": sitemap_xml([*FOREIGN_CHILDREN, SITE + "/sitemap-pages.xml"], index=True),
        "/sitemap-pages.xml": sitemap_xml([SITE + "/a", SITE + "/b"]),
        "/sitemap-evil.xml": sitemap_xml([SITE + "/evil"]),
    }
    yield p
    p.stop()


def site() -> SiteSettings:
    return SiteSettings(base_url=SITE)


def test_a_sitemap_index_pointing_elsewhere_fetches_only_allowed_hosts(pop: PoP) -> None:
    pop.origin.reset_counts()
    client = PopClient(FetchSettings(), site())
    got = from_sitemap(client, pop.settings, SITE + "/sitemap.xml", URLFilter.from_site(site()))
    assert got.urls == [SITE + "/a", SITE + "/b"]
    # What the PoP received, as it forwarded it to the origin: only the site's Host.
    assert pop.origin.hosts_seen == {"www.example.com"}
    assert pop.origin.requests("/sitemap-evil.xml") == 0
    assert pop.origin.counts == {"/sitemap.xml": 1, "/sitemap-pages.xml": 1}
    assert len(got.dropped) == len(FOREIGN_CHILDREN)
    assert all(d.reason.startswith("sitemap not fetched: ") for d in got.dropped), got.dropped
    reasons = " ".join(d.reason for d in got.dropped)
    assert "IP literal" in reasons and "user info" in reasons and "allow_hosts" in reasons
    assert "port" in reasons
    # Nothing of theirs is in the PoP's cache: a request for it now is a miss.
    for url in FOREIGN_CHILDREN[:3]:
        assert probe(pop.edge.url, url).headers["X-Cache"] == "MISS"


@pytest.mark.parametrize(
    "url",
    [
        f"http://127.0.0.1:{ELSEWHERE}/sitemap.xml",
        f"http://www.example.com@127.0.0.1:{ELSEWHERE}/sitemap.xml",
        "https://cdn.other.example/sitemap.xml",
        "/preview/sitemap.xml",
    ],
)
def test_a_refused_top_sitemap_is_an_error_and_is_never_requested(pop: PoP, url: str) -> None:
    pop.origin.reset_counts()
    client = PopClient(FetchSettings(), site())
    with pytest.raises(WarmingError, match=r"^sitemap .*: "):
        from_sitemap(client, pop.settings, url, URLFilter.from_site(site()))
    assert pop.origin.requests() == 0


def test_a_top_sitemap_path_is_joined_to_the_site(pop: PoP) -> None:
    pop.origin.reset_counts()
    client = PopClient(FetchSettings(), site())
    got = from_sitemap(client, pop.settings, "/sitemap-pages.xml", URLFilter.from_site(site()))
    assert got.urls == [SITE + "/a", SITE + "/b"] and got.dropped == []
