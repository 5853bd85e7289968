"""`warming warm --sitemap` end to end: real Varnish PoPs, a real worker, a real Redis."""

from __future__ import annotations

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
