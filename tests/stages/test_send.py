"""Each PoP is slowed on its own: a dead PoP's errors never slow requests to healthy ones.

Real worker, real Varnish PoPs (one of them stopped: a PoP that is down), real Redis;
the slow-down factors are read where every worker reads them, in Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis

from tests.support import Worker, varnish_world, warm_json, write_config
from warming import keys as K
from warming.sandbox import World

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

RATE = 40  # requests per second for the whole cluster
HEALTHY_URLS = 40  # one prefetch and one verification each: 2 s at the full rate


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with varnish_world(n_edges=2) as w:
        yield w


def _factor(r: redis.Redis, limiter: str) -> float:
    raw = r.get(K.LIMIT.format(name=limiter) + ":factor")
    return 1.0 if raw is None else float(raw)


def _seconds(report: dict[str, object]) -> float:
    start, end = (datetime.fromisoformat(str(report[k])) for k in ("started_at", "finished_at"))
    return (end - start).total_seconds()


def test_a_dead_pop_slows_only_itself_and_the_next_healthy_batch_runs_at_full_rate(
    tmp_path: Path, redis_url: str, world: World
) -> None:
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    healthy, dead = world.pops()
    limits = {"prefetch": f"{RATE}/s", "purge": "500/s"}
    fetch = {"max_attempts": 8, "backoff_base_s": 0.25}
    both = write_config(
        tmp_path / "both.toml", redis_url, [healthy, dead], limits=limits, fetch=fetch
    )
    only_healthy = write_config(tmp_path / "healthy.toml", redis_url, [healthy], limits=limits)
    world.edges[1].stop()  # edge2 is down: every request to it is refused
    worker = Worker(both, tmp_path / "worker.log", concurrency=16)
    try:
        rc, mixed = warm_json(both, *[f"/mixed/{i}" for i in range(10)], "--no-purge", timeout=200)
        assert rc == 1
        outcomes = {(x["pop"], x["outcome"]) for x in mixed["results"]}
        assert outcomes == {("edge1", "hit"), ("edge2", "failed")}, mixed["counts"]
        dead_factor, healthy_factor = _factor(r, "pop:edge2"), _factor(r, "pop:edge1")
        cluster_factor = _factor(r, "prefetch")

        paths = [f"/healthy/{i}" for i in range(HEALTHY_URLS)]
        rc, after = warm_json(only_healthy, *paths, "--no-purge", timeout=120)
    finally:
        worker.stop()
    took = _seconds(after)
    print(
        f"factors after the dead PoP: edge2 {dead_factor:.3f}, edge1 {healthy_factor:.3f}, "
        f"cluster {cluster_factor:.3f}; mixed batch {_seconds(mixed):.1f} s; "
        f"healthy batch ({2 * HEALTHY_URLS} requests at {RATE}/s) {took:.2f} s"
    )
    assert rc == 0 and after["counts"]["hit"] == HEALTHY_URLS, json.dumps(after["counts"])
    # At the full rate 80 requests take 2 s; from a shared factor of 0.2 (recovering by
    # 5 points a second) they take about 6 s (measured 6.3 s), from 0.05 about 8 s.
    assert took < 2 * HEALTHY_URLS / RATE + 1.5, took
    assert dead_factor <= 0.5, "the dead PoP was slowed"
    assert healthy_factor == 1.0 and cluster_factor == 1.0, "nobody else was"
