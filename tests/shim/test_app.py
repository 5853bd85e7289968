"""The webhook shim over real HTTP semantics, a real Redis, and (end to end) real PoPs."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from tests.support import SITE, TEST_REDIS, Worker, probe, varnish_world, write_config
from warming import defaults
from warming import keys as K
from warming.broker import tasknames as T
from warming.cms.standard import sign
from warming.runtime import Runtime, use
from warming.sandbox import World
from warming.settings import Settings
from warming.shim.app import create_app

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"test-secret-for-the-shim-0123456").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the-previous-secret-still-valid!").decode()


def settings_for(broker_url: str, pops: list[dict[str, str]], **extra: object) -> Settings:
    os.environ["WARMING_CONFIG"] = "/nonexistent/warming.toml"
    data = {
        "broker_url": broker_url,
        "site": {"base_url": SITE},
        "pops": pops,
        "limits": {"prefetch": "300/s", "purge": "300/s"},
        "webhook": {"secrets": [SECRET, OLD_SECRET], "max_body_bytes": 4096},
        **extra,
    }
    try:
        return Settings.model_validate(data)
    finally:
        del os.environ["WARMING_CONFIG"]


def signed(
    body: dict | bytes, msg_id: str | None = None, ts: int | None = None, secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg_id = msg_id or f"msg_{time.monotonic_ns()}"
    ts = int(time.time()) if ts is None else ts
    return raw, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, raw),
        "content-type": "application/json",
    }


class Guard:
    """A listening socket that records every connection: SSRF must never reach it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.hits += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with varnish_world(n_edges=2) as w:
        yield w


@pytest.fixture(scope="module")
def rt(redis_url: str, world: World) -> Runtime:
    # As `warming serve` does. The shim queues its messages through the runtime's own
    # Redis (warming.broker.messages), whichever broker this process's Celery app was given.
    return use(settings_for(redis_url, world.pops()))


@pytest.fixture(scope="module")
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as c:
        yield c


@pytest.fixture(scope="module")
def worker(
    redis_url: str, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    d = tmp_path_factory.mktemp("shim")
    config = write_config(
        d / "warming.toml", redis_url, world.pops(), limits={"prefetch": "300/s", "purge": "300/s"}
    )
    w = Worker(config, d / "worker.log")
    yield w
    w.stop()


def _n_batches(r: redis.Redis) -> int:
    return int(r.zcard(K.RECENT))


def _wait_done(client: TestClient, batch_id: str, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rep = client.get(f"/batches/{batch_id}").json()
        if rep.get("state") in ("done", "failed"):
            return rep
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} not finished: {rep}")


def test_signed_webhook_warms_new_content_and_a_redelivery_changes_nothing(
    client: TestClient, rt: Runtime, world: World, worker: Worker
) -> None:
    world.origin.bump("/news/today")
    version = world.origin.version("/news/today")
    body, headers = signed({"paths": ["/news/today"]})
    resp = client.post("/webhooks/generic", content=body, headers=headers)
    assert resp.status_code == 202, resp.text
    batch_id = resp.json()["batch_id"]
    assert resp.json()["status_url"] == f"/batches/{batch_id}"
    rep = _wait_done(client, batch_id)
    assert rep["counts"]["hit"] == 2 and rep["trigger"]["source"] == "webhook:generic"
    for pop in world.pops():
        got = probe(pop["url"], SITE + "/news/today")
        assert got.headers["X-Cache"] == "HIT" and f"version {version}" in got.text
    before = _n_batches(rt.redis)
    again = client.post("/webhooks/generic", content=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["batch_id"] == batch_id
    assert _n_batches(rt.redis) == before


def test_a_tag_only_webhook_warms_exactly_the_urls_last_seen_with_that_tag(
    client: TestClient, world: World, worker: Worker
) -> None:
    tagged = ["/shim-tag/a", "/shim-tag/b"]
    for path in tagged:
        world.origin.set_keys(path, ["product-9"])
    body, headers = signed({"paths": [*tagged, "/shim-tag/untagged"]})
    first = client.post("/webhooks/generic", content=body, headers=headers)
    assert _wait_done(client, first.json()["batch_id"])["counts"]["hit"] == 6
    world.origin.bump()
    # Past the coalescing window: otherwise a trailing batch would carry these URLs.
    time.sleep(defaults.COALESCE_WINDOW_S + 0.2)
    body, headers = signed({"tags": ["product-9"]})
    resp = client.post("/webhooks/generic", content=body, headers=headers)
    assert resp.status_code == 202, resp.text
    rep = _wait_done(client, resp.json()["batch_id"])
    assert sorted({r["url"] for r in rep["results"]}) == [SITE + p for p in tagged], rep
    assert rep["counts"]["hit"] == 4, rep
    for pop in world.pops():
        for path in tagged:
            got = probe(pop["url"], SITE + path)
            assert got.headers["X-Cache"] == "HIT"
            assert f"version {world.origin.version()}" in got.text
        assert (
            f"version {world.origin.version()}"
            not in probe(pop["url"], SITE + "/shim-tag/untagged").text
        )


def test_rotated_secret_still_accepted(client: TestClient, worker: Worker) -> None:
    body, headers = signed({"paths": ["/rotated"]}, secret=OLD_SECRET)
    assert client.post("/webhooks/generic", content=body, headers=headers).status_code == 202


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda b, h: (b + b" ", h), 401),  # tampered body
        (lambda b, h: (b, {**h, "webhook-signature": "v1,AAAA"}), 401),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-signature"}), 401),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-id"}), 401),
        (lambda b, h: signed(b, ts=int(time.time()) - 3600), 401),  # stale
        (lambda b, h: signed(b, ts=int(time.time()) + 3600), 401),  # from the future
        (lambda b, h: signed(b, secret="whsec_" + base64.b64encode(b"x" * 32).decode()), 401),
        (lambda b, h: signed(b"{not json"), 400),
        (lambda b, h: signed({"urls": "not-a-list"}), 422),
        (lambda b, h: signed({"urls": [1, 2]}), 422),
        (lambda b, h: signed(b"[]"), 422),
    ],
)
def test_refused_webhooks_enqueue_nothing(
    client: TestClient, rt: Runtime, mutate, status: int
) -> None:
    body, headers = signed({"paths": ["/refused"]})
    body, headers = mutate(body, headers)
    before = (_n_batches(rt.redis), rt.redis.llen(T.Q_PURGE))
    resp = client.post("/webhooks/generic", content=body, headers=headers)
    assert resp.status_code == status, resp.text
    assert "error" in resp.json() and resp.json()["error"]
    assert SECRET not in resp.text and "test-secret" not in resp.text
    assert (_n_batches(rt.redis), rt.redis.llen(T.Q_PURGE)) == before


def test_oversized_body_is_413_and_unknown_adapter_404(client: TestClient, rt: Runtime) -> None:
    body, headers = signed({"paths": ["/x" * 3000]})
    before = _n_batches(rt.redis)
    assert client.post("/webhooks/generic", content=body, headers=headers).status_code == 413
    body, headers = signed({"paths": ["/x"]})
    assert client.post("/webhooks/nosuchcms", content=body, headers=headers).status_code == 404
    assert _n_batches(rt.redis) == before


def test_unreachable_broker_is_503_and_loses_nothing(world: World) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    app = create_app(Runtime(settings_for(dead, world.pops())))
    with TestClient(app) as c:
        body, headers = signed({"paths": ["/later"]})
        resp = c.post("/webhooks/generic", content=body, headers=headers)
        assert resp.status_code == 503
        assert "retry" in resp.json()["error"]
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200


def test_ssrf_attempts_never_reach_the_network(
    client: TestClient, rt: Runtime, world: World, worker: Worker
) -> None:
    guard = Guard()
    p = guard.port
    hostile = [
        f"http://127.0.0.1:{p}/x",
        f"http://localhost:{p}/x",
        f"http://www.example.com@127.0.0.1:{p}/x",
        f"http://127.0.0.1:{p}#@www.example.com/",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{p}/_x",
        f"http://2130706433:{p}/",
        f"http://[::1]:{p}/",
        f"http://0x7f.1:{p}/",
        f"http://www.example.com:{p}/x",
        "http://www.example.com\\@127.0.0.1/",
    ]
    hostile_paths = [f"//127.0.0.1:{p}/x", f"http://127.0.0.1:{p}/", "/../../etc/passwd"]
    world.origin.reset_counts()
    body, headers = signed({"urls": hostile, "paths": [*hostile_paths, "/safe"]})
    try:
        resp = client.post("/webhooks/generic", content=body, headers=headers)
        assert resp.status_code == 202, resp.text
        rep = _wait_done(client, resp.json()["batch_id"])
        time.sleep(0.5)
    finally:
        guard.close()
    assert guard.hits == 0
    assert rep["counts"]["dropped"] >= len(hostile)
    assert {r["url"] for r in rep["results"]} <= {SITE + "/safe", SITE + "/etc/passwd"}
    assert all(d["reason"] for d in rep["dropped"])
    assert world.origin.hosts_seen == {"www.example.com"}


def test_a_burst_is_coalesced_into_one_run_plus_one_trailing(
    client: TestClient, rt: Runtime, world: World, worker: Worker
) -> None:
    url = SITE + "/burst"
    ids = []
    for _ in range(8):
        body, headers = signed({"urls": [url]})
        resp = client.post("/webhooks/generic", content=body, headers=headers)
        assert resp.status_code == 202
        ids.append(resp.json()["batch_id"])
        time.sleep(0.1)
    time.sleep(rt.settings.webhook.coalesce_window_s + 0.5)
    carriers = {ids[0]}
    for bid in ids[1:]:
        rep = client.get(f"/batches/{bid}").json()
        assert rep["counts"]["total"] == 0, rep  # nothing of its own to warm
        carriers.add(rep["carried_by"][url])
    assert ids[0] in carriers and len(carriers) <= 2, carriers
    warmed = [b for b in carriers if b.startswith("t")] + [ids[0]]
    for bid in warmed:
        rep = _wait_done(client, bid)
        assert rep["counts"]["hit"] == 2, rep


def test_a_coalesced_webhook_that_fails_midway_is_503_leaves_no_record_and_its_retry_lands(
    rt: Runtime, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between settling the coalesced URLs and recording the batch, Redis goes away."""
    url = SITE + "/midway"
    app = create_app(rt)
    with TestClient(app) as c:
        body, headers = signed({"urls": [url]})
        leader = c.post("/webhooks/generic", content=body, headers=headers).json()["batch_id"]
        # A second change: it coalesces with the leader (carried, or a trailing run).
        body, headers = signed({"urls": [url]})
        key = K.WEBHOOK_ID.format(id=f"generic:{headers['webhook-id']}")
        shim = app.state.shim
        real = shim._record

        def down(*a: object, **k: object) -> object:
            raise redis.ConnectionError("Redis went away")

        monkeypatch.setattr(shim, "_record", down)
        before = _n_batches(rt.redis)
        resp = c.post("/webhooks/generic", content=body, headers=headers)
        assert resp.status_code == 503 and "retry" in resp.json()["error"]
        assert _n_batches(rt.redis) == before, "nothing recorded"
        assert rt.redis.get(key) is None, "the webhook-id is not taken: the retry is not a dup"

        monkeypatch.setattr(shim, "_record", real)
        retry = c.post("/webhooks/generic", content=body, headers=headers)
        assert retry.status_code == 202, retry.text
        bid = retry.json()["batch_id"]
        carrier = c.get(f"/batches/{bid}").json()["carried_by"][url]
        again = c.post("/webhooks/generic", content=body, headers=headers)
        assert again.status_code == 200 and again.json()["batch_id"] == bid
        assert _n_batches(rt.redis) == before + 1
        time.sleep(rt.settings.webhook.coalesce_window_s + 0.5)
        for b in {leader, carrier}:
            assert _wait_done(c, b)["counts"]["hit"] == 2


def test_openapi_describes_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/webhooks/{adapter}", "/batches/{batch_id}", "/healthz", "/readyz"} <= set(
        spec["paths"]
    )
    assert "413" in spec["paths"]["/webhooks/{adapter}"]["post"]["responses"]


def test_a_bad_route_template_stops_the_shim_at_start(world: World) -> None:
    from warming.errors import ConfigError

    bad = settings_for(
        f"{TEST_REDIS}/15",
        world.pops(),
        routes=[{"content_type": "post", "urls": ["/blog/{slug"]}],
    )
    with pytest.raises(ConfigError) as info:
        create_app(Runtime(bad))
    assert info.value.key == "routes[0].urls[0]"
