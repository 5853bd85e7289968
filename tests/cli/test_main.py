"""`warming warm --sitemap` end to end: real Varnish PoPs, a real worker, a real Redis."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import (
    SITE,
    SitemapOrigin,
    Worker,
    need,
    probe,
    run_cli,
    sitemap_xml,
    warm_json,
    write_config,
)
from warming import keys as K
from warming.sandbox import VarnishEdge, varnish_available

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ELSEWHERE = 9  # a port on another host: an edge that routes by Host would connect there
FOREIGN = [
    f"http://127.0.0.1:{ELSEWHERE}/sitemap-evil.xml",
    f"http://2130706433:{ELSEWHERE}/sitemap-evil.xml",
    f"http://www.example.com@127.0.0.1:{ELSEWHERE}/sitemap-evil.xml",
]


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[SitemapOrigin, list[dict[str, str]]]]:
    need(varnish_available(), "varnishd is not installed")
    origin = SitemapOrigin().start()
    edges = [VarnishEdge(f"edge{i}", ("127.0.0.1", origin.port)) for i in (1, 2)]
    try:
        for e in edges:
            e.start()
        yield origin, [{"name": e.name, "url": e.url} for e in edges]
    finally:
        for e in edges:
            e.stop()
        origin.stop()


def test_warm_a_sitemap_index_pointing_elsewhere(
    world: tuple[SitemapOrigin, list[dict[str, str]]], redis_url: str, tmp_path: Path
) -> None:
    origin, pops = world
    origin.documents = {
        "/sitemap.xml": sitemap_xml([*FOREIGN, SITE + "/sitemap-pages.xml"], index=True),
        "/sitemap-pages.xml": sitemap_xml([SITE + "/a", SITE + "/b"]),
        "/sitemap-evil.xml": sitemap_xml([SITE + "/evil"]),
    }
    config = write_config(tmp_path / "warming.toml", redis_url, pops)
    worker = Worker(config, tmp_path / "worker.log")
    try:
        code, report = warm_json(config, "--sitemap", SITE + "/sitemap.xml")
    finally:
        worker.stop()
    assert code == 0, report
    assert sorted({r["url"] for r in report["results"]}) == [SITE + "/a", SITE + "/b"]
    assert report["counts"]["hit"] == report["counts"]["total"] == 4
    # What the batch recorded in Redis: each foreign child, with its reason.
    stored = redis.Redis.from_url(redis_url).hget(K.BATCH.format(id=report["batch_id"]), "dropped")
    dropped = {d["url"]: d["reason"] for d in json.loads(stored or b"[]")}
    assert set(dropped) == set(FOREIGN), dropped
    assert all(r.startswith("sitemap not fetched: ") for r in dropped.values())
    # What the PoPs received and forwarded: only the site's Host, never a foreign sitemap.
    assert origin.hosts_seen == {"www.example.com"}
    assert origin.requests("/sitemap-evil.xml") == 0 and origin.requests("/evil") == 0
    for pop in pops:
        assert probe(pop["url"], SITE + "/a").headers["X-Cache"] == "HIT"


def test_warm_robots_txt_sitemaps_changed_since(
    world: tuple[SitemapOrigin, list[dict[str, str]]], redis_url: str, tmp_path: Path
) -> None:
    origin, pops = world
    pages = (
        f"<url><loc>{SITE}/fresh</loc><lastmod>2026-11-30T10:00:00Z</lastmod></url>"
        f"<url><loc>{SITE}/stale</loc><lastmod>2025-01-01</lastmod></url>"
    )
    ns = "http://www.sitemaps.org/schemas/sitemap/0.9"
    origin.documents = {
        # Paths of their own: the edges cache what the other tests' sitemaps were.
        "/robots.txt": f"User-agent: *\nSitemap: {SITE}/sitemap-index.xml\n".encode(),
        "/sitemap-index.xml": sitemap_xml([SITE + "/pages.xml.gz"], index=True),
        "/pages.xml.gz": gzip.compress(f'<urlset xmlns="{ns}">{pages}</urlset>'.encode()),
    }
    config = write_config(tmp_path / "warming.toml", redis_url, pops)
    worker = Worker(config, tmp_path / "worker.log")
    try:
        code, report = warm_json(
            config, "--sitemap", "/robots.txt", "--changed-since", "2026-11-29"
        )
    finally:
        worker.stop()
    assert code == 0, report
    assert {r["url"] for r in report["results"]} == {SITE + "/fresh"}
    assert report["counts"]["hit"] == report["counts"]["total"] == 2
    assert origin.requests("/stale") == 0


def test_a_sitemap_without_urls_stops_the_command_saying_why(
    world: tuple[SitemapOrigin, list[dict[str, str]]], redis_url: str, tmp_path: Path
) -> None:
    origin, pops = world
    origin.documents = {"/empty.xml": sitemap_xml([])}
    config = write_config(tmp_path / "warming.toml", redis_url, pops)
    before = set(redis.Redis.from_url(redis_url).scan_iter("warming:batch:*"))
    res = run_cli(config, "warm", "--sitemap", "/empty.xml", "--json")
    assert res.returncode == 1, res
    assert res.stderr.strip() == (
        f"warming: sitemap {SITE}/empty.xml gives no URL: "
        "it lists no <url><loc> (or feed item) with an http(s) URL"
    )
    assert res.stdout == ""
    assert set(redis.Redis.from_url(redis_url).scan_iter("warming:batch:*")) == before
    # A text sitemap with a line that is no URL: read, and no library warning on stderr.
    origin.documents["/mixed.txt"] = f"# pages\n{SITE}/m\n".encode()
    mixed = run_cli(config, "warm", "--sitemap", "/mixed.txt", "--dry-run")
    assert mixed.returncode == 0 and f"  {SITE}/m\n" in mixed.stdout
    assert mixed.stderr == ""
    bad = run_cli(config, "warm", "--sitemap", "/empty.xml", "--changed-since", "soon")
    assert bad.returncode == 2 and "--changed-since: 'soon' is neither" in bad.stderr
