"""The core pipeline end to end: real Redis, a real worker, real Varnish PoPs, a real origin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import SITE, Worker, probe, run_cli, varnish_world, warm_json, write_config
from warming.sandbox import World

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with varnish_world(n_edges=2, shield=True) as w:
        yield w


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, redis_url: str, world: World) -> Path:
    d = tmp_path_factory.mktemp("pipeline")
    return write_config(d / "warming.toml", redis_url, world.pops())


@pytest.fixture(scope="module")
def worker(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = Worker(config, tmp_path_factory.mktemp("worker") / "worker.log")
    yield w
    w.stop()


def _by_pair(report: dict) -> dict[tuple[str, str], dict]:
    return {(r["url"], r["pop"]): r for r in report["results"]}


def test_every_pair_ends_hit_and_the_pops_really_serve_it(
    config: Path, world: World, worker: Worker
) -> None:
    paths = ["/", "/blog", "/blog/one", "/about?b=2&a=1", "/news"]
    world.origin.bump()
    version = world.origin.version()
    rc, report = warm_json(config, *paths)
    assert rc == 0, report
    assert report["state"] == "done"
    assert report["counts"]["total"] == len(paths) * 3
    assert report["counts"]["hit"] == len(paths) * 3
    assert {r["pop"] for r in report["results"]} == {"shield", "edge1", "edge2"}
    # Not only the report: each PoP, asked directly, answers HIT with the new content.
    pops = {p["name"]: p["url"] for p in world.pops()}
    for (url, pop), _ in _by_pair(report).items():
        resp = probe(pops[pop], url)
        assert resp.status_code == 200
        assert resp.headers["X-Cache"].split(",")[-1].strip() == "HIT", (url, pop, resp.headers)
        assert f"version {version}" in resp.text
    assert world.origin.hosts_seen == {"www.example.com"}


def test_shield_first_means_the_origin_renders_each_url_once(
    config: Path, world: World, worker: Worker
) -> None:
    world.origin.bump()
    world.origin.reset_counts()
    paths = [f"/once/{i}" for i in range(6)]
    rc, report = warm_json(config, *paths)
    assert rc == 0, report
    for p in paths:
        assert world.origin.requests(p) == 1, (p, world.origin.counts)


def test_failing_urls_are_reported_failed_with_a_reason_and_verify_still_runs(
    config: Path, world: World, worker: Worker
) -> None:
    world.origin.bump()
    world.origin.fail("/broken", 500)
    world.origin.fail("/gone", 404)
    try:
        rc, report = warm_json(config, "/fine", "/broken", "/gone")
    finally:
        world.origin.clear_failures()
    assert rc == 1
    assert report["state"] == "done"
    pairs = _by_pair(report)
    assert len(pairs) == 9 and report["counts"]["total"] == 9
    for pop in ("shield", "edge1", "edge2"):
        assert pairs[(SITE + "/fine", pop)]["outcome"] == "hit"
        broken = pairs[(SITE + "/broken", pop)]
        assert broken["outcome"] == "failed"
        assert "500" in broken["error"] and "gave up after" in broken["error"]
        gone = pairs[(SITE + "/gone", pop)]
        assert gone["outcome"] == "failed" and "404" in gone["error"]
        assert gone["attempts"] == 1  # a 404 is not retried
    assert report["counts"] == {**report["counts"], "hit": 3, "failed": 6, "miss": 0}


def test_purge_makes_new_content_visible_and_no_purge_leaves_it_stale(
    config: Path, world: World, worker: Worker
) -> None:
    rc, _ = warm_json(config, "/article")
    assert rc == 0
    pops = {p["name"]: p["url"] for p in world.pops()}
    world.origin.bump("/article")
    new = world.origin.version("/article")
    rc, report = warm_json(config, "/article", "--no-purge")
    # Without a purge the PoPs keep the old object: verification passes on stale content,
    # which is exactly why the pipeline purges first.
    assert rc == 0
    assert f"version {new}" not in probe(pops["edge1"], SITE + "/article").text
    rc, report = warm_json(config, "/article")
    assert rc == 0, report
    for url in pops.values():
        resp = probe(url, SITE + "/article")
        assert f"version {new}" in resp.text and resp.headers["X-Cache"].endswith("HIT")


def test_tag_purge_uses_the_surrogate_key_index(config: Path, world: World, worker: Worker) -> None:
    world.origin.set_keys("/tagged/a", ["product-7"])
    world.origin.set_keys("/tagged/b", ["product-7"])
    rc, _ = warm_json(config, "/tagged/a", "/tagged/b", "/untagged")
    assert rc == 0
    world.origin.bump()
    rc, report = warm_json(config, "--tag", "product-7")
    assert rc == 0, report
    assert sorted({r["url"] for r in report["results"]}) == [SITE + "/tagged/a", SITE + "/tagged/b"]
    edge = world.pops()[1]["url"]
    assert f"version {world.origin.version()}" in probe(edge, SITE + "/tagged/a").text
    assert f"version {world.origin.version()}" not in probe(edge, SITE + "/untagged").text


def test_publish_without_wait_then_report(config: Path, world: World, worker: Worker) -> None:
    res = run_cli(config, "warm", "/later", "--json")
    assert res.returncode == 0, res.stderr
    import json
    import time

    batch_id = json.loads(res.stdout)["batch_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rep = run_cli(config, "report", batch_id, "--json")
        if json.loads(rep.stdout)["state"] == "done":
            break
        time.sleep(0.2)
    assert rep.returncode == 0, rep.stdout
    assert json.loads(rep.stdout)["counts"]["hit"] == 3
    missing = run_cli(config, "report", "nope")
    assert missing.returncode == 1 and "no batch nope" in missing.stderr


def test_dropped_urls_are_listed_and_never_fetched(
    config: Path, world: World, worker: Worker
) -> None:
    world.origin.reset_counts()
    rc, report = warm_json(
        config,
        "/ok",
        "https://evil.example.net/x",
        "/preview/draft-1",
        "/p?token=abc",
        "file:///etc/passwd",
    )
    assert rc == 0
    assert report["counts"]["dropped"] == 4
    reasons = {d["url"]: d["reason"] for d in report["dropped"]}
    assert any("allow_hosts" in r for r in reasons.values())
    assert any("deny_paths" in r for r in reasons.values())
    assert any("token" in r for r in reasons.values())
    assert set(world.origin.counts) == {"/ok"}


def test_each_variant_is_warmed_and_verified_separately(
    tmp_path: Path, redis_url: str, world: World, worker: Worker
) -> None:
    # Workers take variants from the batch's plan, so the publisher's config decides.
    variants = [
        {"name": "gzip", "headers": {"Accept-Encoding": "gzip"}},
        {"name": "identity", "headers": {"Accept-Encoding": "identity"}},
    ]
    config = write_config(
        tmp_path / "warming.toml", redis_url, world.pops(), site={"variants": variants}
    )
    world.origin.bump()
    rc, report = warm_json(config, "/v/1", "/v/2")
    assert rc == 0, report
    assert report["variants"] == ["gzip", "identity"]
    assert report["counts"]["total"] == 2 * 3 * 2 == report["counts"]["hit"]
    seen = {(r["url"], r["pop"], r["variant"]) for r in report["results"]}
    assert len(seen) == 12


def test_slices_launch_in_a_window_so_the_broker_queue_stays_bounded(
    tmp_path: Path, redis_url: str, world: World, worker: Worker
) -> None:
    import threading
    import time

    import redis as redis_lib

    # 40 URLs x 3 PoPs in slices of 4 pairs, at most 2 slices in flight: 30 slices
    # per phase, never more than 8 prefetch messages waiting in the broker.
    config = write_config(
        tmp_path / "warming.toml",
        redis_url,
        world.pops(),
        batch={"slice_size": 4, "slices_in_flight": 2},
    )
    r = redis_lib.Redis.from_url(redis_url)
    depths: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            depths.append(int(r.llen("warming.prefetch")))
            time.sleep(0.005)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        rc, report = warm_json(config, *[f"/window/{i}" for i in range(40)])
    finally:
        stop.set()
        t.join(2)
    assert rc == 0, report["counts"]
    assert report["counts"]["hit"] == 120
    assert max(depths) <= 8, max(depths)
    assert len(depths) > 20  # the watcher really sampled during the run
