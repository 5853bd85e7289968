"""Task messages pushed by our scripts: the same bytes a worker gets from `apply_async`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis

from tests.support import ROOT, Worker, env_for, probe, varnish_world, write_config
from warming.batch.publish import WarmRequest, publish
from warming.batch.report import build
from warming.runtime import use
from warming.sandbox import World
from warming.settings import load_settings

pytestmark = pytest.mark.integration

# Run in a child process, so that the Celery app is configured for this module's Redis
# database whatever other test modules did to the app of the pytest process.
_BOTH = """
import json, redis
from warming.broker.app import app
from warming.broker.messages import messages
from warming.tasks import flush_trailing, purge

r = redis.Redis.from_url(app.conf.broker_url)
out = {}
for name, task, args, countdown in [
    ("purge", purge, ("b-contract",), None),
    ("flush_trailing", flush_trailing, ("t-contract", "lead"), 1.5),
]:
    task.apply_async(args, countdown=countdown)
    queue = messages().build(task.name, args, countdown=countdown).queue
    ours = messages().build(task.name, args, countdown=countdown)
    celery = r.rpop(queue)
    out[name] = {"celery": celery.decode(), "ours": ours.payload, "queue": ours.queue,
                 "celery_queue": queue if r.llen(queue) == 0 else "leftover"}
print(json.dumps(out))
"""

_IDS = ("id", "root_id")
_PROPS = ("correlation_id", "delivery_tag")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Path:
    d = tmp_path_factory.mktemp("messages")
    return write_config(d / "warming.toml", redis_url, [{"name": "edge", "url": "http://e"}])


def test_our_envelope_is_field_for_field_what_apply_async_pushes(
    config: Path, redis_url: str
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    out = subprocess.run(
        [sys.executable, "-c", _BOTH],
        env=env_for(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for name, pair in got.items():
        celery, ours = json.loads(pair["celery"]), json.loads(pair["ours"])
        assert pair["celery_queue"] == pair["queue"], name
        assert set(ours) == set(celery), name
        assert base64.b64decode(ours["body"]) == base64.b64decode(celery["body"]), name
        for k in ("content-type", "content-encoding"):
            assert ours[k] == celery[k], (name, k)
        hc, ho = celery["headers"], ours["headers"]
        assert set(ho) == set(hc), name
        for k in set(hc) - {*_IDS, "eta"}:
            assert ho[k] == hc[k], (name, k)
        assert ho["id"] == ho["root_id"] != hc["id"]
        pc, po = celery["properties"], ours["properties"]
        assert set(po) == set(pc), name
        for k in set(pc) - set(_PROPS):
            assert po[k] == pc[k], (name, k)
        assert po["correlation_id"] == ho["id"]
        if hc["eta"] is None:
            assert ho["eta"] is None
        else:  # same countdown, built a few ms apart
            gap = datetime.fromisoformat(ho["eta"]) - datetime.fromisoformat(hc["eta"])
            assert 0 <= gap.total_seconds() < 2, (hc["eta"], ho["eta"])
    assert got["purge"]["queue"] == "warming.purge"
    assert got["flush_trailing"]["queue"] == "warming.control"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with varnish_world(n_edges=2) as w:
        yield w


def test_a_batch_queued_before_any_worker_ever_ran_is_warmed_when_one_starts(
    tmp_path: Path, redis_url: str, world: World
) -> None:
    """No kombu binding keys exist yet: the purge message must still reach a worker."""
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    config = write_config(tmp_path / "warming.toml", redis_url, world.pops())
    os.environ["WARMING_CONFIG"] = str(config)
    try:
        rt = use(load_settings())
    finally:
        del os.environ["WARMING_CONFIG"]
    world.origin.bump()
    plan = publish(rt, WarmRequest(paths=["/queued-first"]))
    assert r.llen("warming.purge") == 1
    assert not r.keys("_kombu.binding.*"), "no worker has declared anything yet"
    w = Worker(config, tmp_path / "worker.log")
    try:
        end = time.monotonic() + 30
        while rt.store.state(plan.batch_id) not in ("done", "failed") and time.monotonic() < end:
            time.sleep(0.1)
        report = build(rt.store, plan.batch_id)
    finally:
        w.stop()
    assert report is not None and report["state"] == "done", report
    assert report["counts"]["hit"] == 2, report
    for pop in world.pops():
        resp = probe(pop["url"], report["results"][0]["url"])
        assert resp.headers["X-Cache"].split(",")[-1].strip() == "HIT"
        assert f"version {world.origin.version()}" in resp.text
