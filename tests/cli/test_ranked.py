"""`warming warm --analytics LOG --top N` end to end: real Varnish PoPs, a worker, Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import SITE, SitemapOrigin, Worker, need, probe, run_cli, write_config
from warming.sandbox import VarnishEdge, varnish_available

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HITS = {"/r1": 5, "/r2": 3, "/r3": 2, "/r4": 1, "/draft/x": 9}


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


def test_the_most_visited_urls_are_warmed_top_first_in_rank_bands(
    world: tuple[SitemapOrigin, list[dict[str, str]]], redis_url: str, tmp_path: Path
) -> None:
    origin, pops = world
    log = tmp_path / "access.log"
    log.write_text(
        "".join(
            f'198.51.100.7 - - [01/Dec/2026:10:00:00 +0000] "GET {p} HTTP/1.1" 200 9 "-" "UA"\n'
            for p, n in HITS.items()
            for _ in range(n)
        )
    )
    config = write_config(
        tmp_path / "warming.toml", redis_url, pops, traffic={"high": 1, "normal": 2}
    )
    dry = run_cli(config, "warm", "--analytics", str(log), "--top", "3", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert "access log: 4 URLs ranked, the top 3 warmed in high 1, normal 1, bulk 1" in dry.stderr
    plans = json.loads(dry.stdout)
    assert [(p["priority"], p["urls"], p["hits"]) for p in plans] == [
        ("high", [SITE + "/r1"], [5]),
        ("normal", [SITE + "/r2"], [3]),
        ("bulk", [SITE + "/r3"], [2]),
    ]
    origin.reset_counts()
    worker = Worker(config, tmp_path / "worker.log")
    try:
        res = run_cli(config, "warm", "--analytics", str(log), "--top", "3", "--wait", "--json")
    finally:
        worker.stop()
    assert res.returncode == 0, res.stderr
    reports = json.loads(res.stdout)
    assert [(r["trigger"]["band"], sorted({x["url"] for x in r["results"]})) for r in reports] == [
        ("high", [SITE + "/r1"]),
        ("normal", [SITE + "/r2"]),
        ("bulk", [SITE + "/r3"]),
    ]
    assert all(r["counts"]["hit"] == r["counts"]["total"] == 2 for r in reports)
    assert [d["url"] for d in reports[0]["dropped"]] == [SITE + "/draft/x"]
    assert origin.requests("/r4") == 0 and origin.requests("/draft/x") == 0
    for pop in pops:
        assert probe(pop["url"], SITE + "/r1").headers["X-Cache"] == "HIT"
    bad = run_cli(config, "warm", "/x", "--analytics", str(log))
    assert bad.returncode == 2 and "--analytics warms its own ranked URLs only" in bad.stderr
