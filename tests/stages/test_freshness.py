"""No false HIT: the report proves freshness for the URL a visitor requests (issue 9, 1-4).

Real Varnish PoPs that misbehave the ways a CDN can (purge ignored, a soft purge that
keeps serving the old copy, tag purges only), a real worker, a real origin. Every
verdict is checked against an independent request to the PoP for the URL as given.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support import SITE, Worker, varnish_world, warm_json, write_config
from warming.sandbox import World

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

# Longer than the age proof's slack (defaults.AGE_SLACK_S = 2 s), so an object cached
# before the purge is measurably older than the purge.
AGED_S = 4.0


def raw_get(pop_url: str, url: str) -> tuple[int, dict[str, str], str]:
    """GET exactly `url`'s path and query at a PoP (no client re-quoting), as a visitor."""
    parts = urlsplit(url)
    target = url[len(f"{parts.scheme}://{parts.netloc}") :] or "/"
    pop = urlsplit(pop_url)
    conn = http.client.HTTPConnection(pop.hostname, pop.port, timeout=10)
    try:
        conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", parts.netloc)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def served_fresh(pop_url: str, url: str, version: int) -> bool:
    """Whether a visitor now gets `version` of `url` from the PoP's cache."""
    status, headers, body = raw_get(pop_url, url)
    last = headers.get("x-cache", "").split(",")[-1].strip()
    return status == 200 and last == "HIT" and f"version {version}</p>" in body


def by_pop(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["pop"]: r for r in report["results"]}


@pytest.fixture
def run(tmp_path: Path, redis_url: str) -> Iterator[Any]:
    """run(world, **sections) -> a warm function for that world with those settings."""
    workers: list[Worker] = []

    def start(world: World, **sections: dict[str, Any]) -> Any:
        config = write_config(
            tmp_path / f"w{len(workers)}.toml", redis_url, world.pops(), **sections
        )
        workers.append(Worker(config, tmp_path / f"worker{len(workers)}.log"))

        def warm(*args: str) -> tuple[int, dict[str, Any]]:
            return warm_json(config, *args)

        return warm

    yield start
    for w in workers:
        w.stop()


def _first_then_changed(world: World, warm: Any, path: str) -> tuple[int, dict[str, Any], int]:
    """Warm `path` everywhere, change it at the origin, wait, warm again: (rc, report, v)."""
    rc, first = warm(path)
    assert rc == 0, first
    world.origin.bump(path)
    time.sleep(AGED_S)
    rc, report = warm(path)
    return rc, report, world.origin.version(path)


@pytest.mark.parametrize("quirk", ["ignore_purge", "stale_soft_purge"])
def test_a_pop_whose_purge_did_not_take_effect_is_a_miss_by_age(run: Any, quirk: str) -> None:
    with varnish_world(n_edges=2, quirks={"edge2": quirk}) as world:
        warm = run(world)
        rc, report, version = _first_then_changed(world, warm, "/post")
        pops = {p["name"]: p["url"] for p in world.pops()}
        got = by_pop(report)
        assert rc == 1 and report["state"] == "done"
        assert got["edge1"]["outcome"] == "hit", got["edge1"]
        assert got["edge2"]["outcome"] == "miss", got["edge2"]
        assert got["edge2"]["error"].startswith("stale: Age "), got["edge2"]["error"]
        assert "purged" in got["edge2"]["error"] and got["edge2"]["rewarmed"] is True
        # The report is right about what a visitor gets:
        url = SITE + "/post"
        assert served_fresh(pops["edge1"], url, version)
        assert not served_fresh(pops["edge2"], url, version)
        assert served_fresh(pops["edge2"], url, version - 1)  # the old copy, as a HIT


def test_edges_filled_from_a_shield_that_kept_its_old_copy_are_misses(run: Any) -> None:
    with varnish_world(n_edges=2, shield=True, quirks={"shield": "ignore_purge"}) as world:
        warm = run(world)
        rc, report, version = _first_then_changed(world, warm, "/page")
        got = by_pop(report)
        assert rc == 1
        # The edges were purged and refilled, but from the stale shield: its Age came along.
        for pop in ("shield", "edge1", "edge2"):
            assert got[pop]["outcome"] == "miss", got[pop]
            assert got[pop]["error"].startswith("stale: Age "), got[pop]
        pops = {p["name"]: p["url"] for p in world.pops()}
        for pop in ("edge1", "edge2"):
            assert not served_fresh(pops[pop], SITE + "/page", version)


def test_honest_tiers_pass_the_age_proof_through_a_shield(run: Any) -> None:
    with varnish_world(n_edges=2, shield=True) as world:
        warm = run(world)
        rc, report, version = _first_then_changed(world, warm, "/fine")
        assert rc == 0, report
        assert report["counts"]["hit"] == 3
        pops = {p["name"]: p["url"] for p in world.pops()}
        for pop_url in pops.values():
            assert served_fresh(pop_url, SITE + "/fine", version)


def test_the_origin_proof_catches_a_pop_serving_the_old_payload(run: Any) -> None:
    with varnish_world(n_edges=2, quirks={"edge2": "ignore_purge"}) as world:
        verify = {"freshness": "origin", "origin_url": world.origin.url}
        warm = run(world, verify=verify)
        rc, first = warm("/o")
        assert rc == 0, first
        world.origin.reset_counts()
        world.origin.bump("/o")
        rc, report = warm("/o")  # no wait: this proof does not need the object to age
        got = by_pop(report)
        assert rc == 1
        assert got["edge1"]["outcome"] == "hit", got["edge1"]
        assert got["edge2"]["outcome"] == "miss", got["edge2"]
        assert "payload differs from the origin's: ETag" in got["edge2"]["error"]
        # One origin request for the proof, not one per PoP; edge1's refill is the other.
        assert world.origin.requests("/o") == 2, world.origin.counts


def test_a_cached_error_page_is_never_a_hit_even_when_the_pop_says_hit(run: Any) -> None:
    with varnish_world(n_edges=1) as world:
        warm = run(world)
        world.origin.fail("/gone", 404, cacheable=True)
        try:
            rc, report = warm("/gone")
        finally:
            world.origin.clear_failures()
        got = by_pop(report)["edge1"]
        assert rc == 1
        assert got["outcome"] == "failed" and got["status"] == 404, got
        # The PoP does serve its cached 404 as a HIT: the report did not trust that.
        status, headers, _ = raw_get(world.pops()[0]["url"], SITE + "/gone")
        assert status == 404 and headers["x-cache"] == "HIT"


def test_the_url_is_warmed_and_reported_as_the_visitor_requests_it(run: Any) -> None:
    with varnish_world(n_edges=1) as world:
        warm = run(world)
        given = SITE + "/blog?page=2&lang=en"
        rc, report = warm(given + "&utm_source=mail")
        assert rc == 0, report
        assert [r["url"] for r in report["results"]] == [given]
        pop = world.pops()[0]["url"]
        assert served_fresh(pop, given, world.origin.version("/blog?page=2&lang=en"))
        # The sorted spelling is another cache object, never warmed: a MISS.
        status, headers, _ = raw_get(pop, SITE + "/blog?lang=en&page=2")
        assert status == 200 and headers["x-cache"] == "MISS"


@pytest.mark.parametrize(("tag_header", "outcome"), [("xkey", "miss"), ("xkey-purge", "hit")])
def test_a_tag_purge_the_vcl_does_not_read_is_caught(
    run: Any, tag_header: str, outcome: str
) -> None:
    # These PoPs purge by surrogate key only (a URL PURGE is answered 200 and ignored),
    # and read the keys from `xkey-purge`: with `cdn.tag_header = "xkey"` nothing is purged.
    with varnish_world(n_edges=1, quirks={"edge1": "tags_only"}) as world:
        warm = run(world, cdn={"provider": "varnish", "tag_header": tag_header})
        rc, first = warm("/t")
        assert rc == 0, first
        world.origin.bump("/t")
        time.sleep(AGED_S)
        rc, report = warm("--tag", "path-t")
        got = by_pop(report)["edge1"]
        assert got["url"] == SITE + "/t"
        assert got["outcome"] == outcome, got
        fresh = served_fresh(world.pops()[0]["url"], SITE + "/t", world.origin.version("/t"))
        assert fresh is (outcome == "hit")
        if outcome == "miss":
            assert got["error"].startswith("stale: Age "), got
