"""Priorities that differ: high ahead of normal ahead of bulk, each on its own prefetch queue.

Real Varnish, a real worker, a real Redis and the webhook shim's own publish: a big warm
is in progress when a more urgent batch arrives, which must not wait behind it.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from tests.support import (
    SITE,
    SitemapOrigin,
    Worker,
    need,
    run_cli,
    sitemap_xml,
    write_config,
)
from warming import defaults
from warming.broker import tasknames as T
from warming.cms.standard import sign
from warming.runtime import use
from warming.sandbox import VarnishEdge, varnish_available
from warming.settings import Settings
from warming.shim.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SECRET = "whsec_" + base64.b64encode(b"priorities-test-secret-012345678").decode()
BIG = 1500  # pairs at RATE: 15 s of work, far longer than the allowed delay
RATE = "100/s"
CONCURRENCY = 8
# What an urgent batch cannot skip: a worker slot frees when a running chunk ends, and its
# requests queue in the cluster limiter behind those the running chunks reserved. Each is
# at most CONCURRENCY chunks of batch.chunk_size pairs at RATE (2 s here); 3 s more for
# the purge, the launch and the polling.
IN_FLIGHT_S = CONCURRENCY * defaults.CHUNK_SIZE / 100
ALLOWED_DELAY_S = 2 * IN_FLIGHT_S + 3


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[SitemapOrigin, list[dict[str, str]]]]:
    need(varnish_available(), "varnishd is not installed")
    origin = SitemapOrigin().start()
    edge = VarnishEdge("edge1", ("127.0.0.1", origin.port))
    try:
        edge.start()
        origin.documents = {"/big.xml": sitemap_xml([f"{SITE}/big/{i}" for i in range(BIG)])}
        yield origin, [{"name": edge.name, "url": edge.url}]
    finally:
        edge.stop()
        origin.stop()


@pytest.fixture
def config(
    world: tuple[SitemapOrigin, list[dict[str, str]]], redis_url: str, tmp_path: Path
) -> Iterator[Path]:
    redis.Redis.from_url(redis_url).flushdb()  # no backlog left by the previous case
    yield write_config(
        tmp_path / "warming.toml",
        redis_url,
        world[1],
        limits={"prefetch": RATE, "purge": "500/s"},
        webhook={"secrets": [SECRET]},
    )
    redis.Redis.from_url(redis_url).flushdb()


def _report(config: Path, batch_id: str) -> dict[str, Any]:
    res = run_cli(config, "report", batch_id, "--json")
    return dict(json.loads(res.stdout))


def _webhook(config: Path, redis_url: str, paths: list[str]) -> str:
    os.environ["WARMING_CONFIG"] = str(config)
    try:
        rt = use(Settings())
    finally:
        del os.environ["WARMING_CONFIG"]
    body = json.dumps({"paths": paths}).encode()
    msg_id, ts = f"msg_{time.monotonic_ns()}", int(time.time())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, msg_id, ts, body),
        "content-type": "application/json",
    }
    with TestClient(create_app(rt)) as client:
        res = client.post("/webhooks/generic", content=body, headers=headers)
    assert res.status_code == 202, res.text
    return str(res.json()["batch_id"])


def _start_background(config: Path, redis_url: str, priority: str) -> str:
    """Start a big warm and return once its prefetches are queued and being worked on."""
    args = ["--sitemap", "/big.xml"] + ([] if priority == "bulk" else ["--priority", priority])
    res = run_cli(config, "warm", *args)
    assert res.returncode == 0, res.stderr
    batch_id = res.stdout.strip()
    r = redis.Redis.from_url(redis_url)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        done = sum(_report(config, batch_id)["counts"][k] for k in ("hit", "miss", "failed"))
        if r.llen(T.prefetch_queue(priority)) > 10 and done > 0:
            return batch_id
        time.sleep(0.2)
    raise AssertionError(f"the {priority} warm never got going")


def _until_final(config: Path, batch_id: str, timeout_s: float = 60) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        rep = _report(config, batch_id)
        if rep["state"] in ("done", "failed"):
            return rep
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} not finished in {timeout_s} s")


def _urgent(config: Path, redis_url: str, how: str, tag: str) -> tuple[dict[str, Any], float]:
    paths = [f"/{tag}/{i}" for i in range(5)]
    t0 = time.monotonic()
    if how == "webhook":
        batch_id = _webhook(config, redis_url, paths)
    else:
        res = run_cli(config, "warm", *paths, "--priority", how)
        assert res.returncode == 0, res.stderr
        batch_id = res.stdout.strip()
    rep = _until_final(config, batch_id)
    return rep, time.monotonic() - t0


@pytest.mark.parametrize(
    ("background", "urgent"),
    [("bulk", "webhook"), ("normal", "webhook"), ("bulk", "normal")],
)
def test_a_big_warm_in_progress_delays_a_more_urgent_batch_by_seconds_at_most(
    config: Path, redis_url: str, tmp_path: Path, background: str, urgent: str
) -> None:
    worker = Worker(config, tmp_path / "worker.log", concurrency=CONCURRENCY)
    try:
        idle, idle_s = _urgent(config, redis_url, urgent, "idle")
        assert idle["counts"]["hit"] == idle["counts"]["total"] == 5, idle
        big = _start_background(config, redis_url, background)
        rep, busy_s = _urgent(config, redis_url, urgent, "busy")
        behind = _report(config, big)
    finally:
        worker.kill()
    print(f"{background} warm in progress, {urgent} batch: {busy_s:.1f} s (idle {idle_s:.1f} s)")
    assert rep["counts"]["hit"] == rep["counts"]["total"] == 5, rep
    assert rep["trigger"]["source"] == ("webhook:generic" if urgent == "webhook" else "cli")
    # The big warm was still going: the urgent batch went past it, it did not wait it out.
    # ("verifying" once its last phase's first slice is verified: still running.)
    assert behind["state"] in ("warming", "verifying"), behind["state"]
    left = BIG - sum(behind["counts"][k] for k in ("hit", "miss", "failed"))
    assert left > 300, f"only {left} pairs of the {background} warm were left"
    assert busy_s - idle_s <= ALLOWED_DELAY_S, (busy_s, idle_s)
