"""Purge as the batch was planned: a worker with another config (a rolling deploy)
purges the plan's PoPs, or fails the batch saying why; it never leaves it `purging`."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from tests.support import SITE, Worker, probe, varnish_world, warm_json, warmed, write_config
from warming import keys as K
from warming.batch.publish import WarmRequest, new_batch, select
from warming.runtime import Runtime, use
from warming.sandbox import World
from warming.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with varnish_world(n_edges=2) as w:
        yield w


@pytest.fixture(scope="module")
def old_worker(
    redis_url: str, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """A worker that still has the old config: edge1 only."""
    d = tmp_path_factory.mktemp("old")
    config = write_config(d / "warming.toml", redis_url, world.pops()[:1])
    w = Worker(config, d / "worker.log")
    yield w
    w.stop()


@pytest.mark.timeout(120)
def test_a_pop_only_the_publisher_knows_is_purged_and_warmed_by_an_older_worker(
    tmp_path: Path, redis_url: str, world: World, old_worker: Worker
) -> None:
    edge1, edge2 = world.pops()
    new_pops = [edge1, {**edge2, "name": "pop9"}]
    config = write_config(tmp_path / "new.toml", redis_url, new_pops, batch={"deadline_s": 30})
    path = f"/rolling/{uuid.uuid4().hex[:8]}"
    assert probe(edge2["url"], SITE + path).status_code == 200  # pop9 caches the old page
    stale = world.origin.version(path)
    world.origin.bump(path)
    assert f"version {stale}" in probe(edge2["url"], SITE + path).text, "pop9 serves it stale"

    rc, report = warm_json(config, path, timeout=90)

    assert rc == 0, (report["state"], report.get("error"), report["results"])
    assert {(r["pop"], r["outcome"]) for r in report["results"]} == {
        ("edge1", "hit"),
        ("pop9", "hit"),
    }
    got = probe(edge2["url"], SITE + path)  # at the PoP: purged, then warmed anew
    assert got.headers["X-Cache"] == "HIT"
    assert f"version {world.origin.version(path)}" in got.text
    assert "KeyError" not in old_worker.log()


def _planned_batch(rt: Runtime, **plan_changes: object) -> str:
    """Record a batch as a publisher of another release would, and queue its purge."""
    req = WarmRequest(paths=["/planned-elsewhere"], trigger={"source": "cli"})
    bid = uuid.uuid4().hex
    new = new_batch(rt.settings, rt.messages, req, select(rt.url_filter, rt.redis, req), bid)
    rt.store.create(replace(new, plan=replace(new.plan, **plan_changes)))
    return bid


def _wait_final(r: redis.Redis, bid: str, timeout_s: float) -> tuple[str, float]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        state = (r.hget(K.BATCH.format(id=bid), "state") or b"").decode()
        if state in ("done", "failed"):
            return state, time.monotonic() - t0
        time.sleep(0.2)
    return state, time.monotonic() - t0


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("cdn", "reason"),
    [
        ({"provider": "limelight", "service_id": "svc1"}, "planned with 'limelight', which this"),
        ({"provider": "varnish", "flux_capacitor": 1}, "cdn.flux_capacitor"),
        # Another account's token is never lent: this worker holds none for Fastly's svc1.
        ({"provider": "fastly", "service_id": "svc1"}, "cdn.api_token: is needed to purge"),
    ],
)
def test_a_plan_the_worker_cannot_honour_fails_the_batch_at_once_saying_why(
    redis_url: str, world: World, old_worker: Worker, cdn: dict[str, object], reason: str
) -> None:
    os.environ["WARMING_CONFIG"] = "/nonexistent/warming.toml"
    try:
        settings = Settings.model_validate(
            {"broker_url": redis_url, "site": {"base_url": SITE}, "pops": world.pops()[:1]}
        )
    finally:
        del os.environ["WARMING_CONFIG"]
    rt = use(settings)
    bid = _planned_batch(rt, cdn=cdn)

    state, took = _wait_final(rt.redis, bid, 60)

    batch = {k.decode(): v.decode() for k, v in rt.redis.hgetall(K.BATCH.format(id=bid)).items()}
    assert state == "failed", batch
    assert took < 20, "failed by the purge task, not by the watchdog at the deadline"
    assert "cannot purge as the batch was planned" in batch["error"] and reason in batch["error"]
    assert warmed(rt.redis, bid) == 0 and not rt.redis.exists(K.WARM.format(id=bid)), "warmed"
