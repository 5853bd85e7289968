"""`GET /batches` and the report routes over a real Redis: listing, filter, HTML, bearer token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.shim.test_app import settings_for
from warming import keys as K
from warming.batch.publish import WarmRequest, publish
from warming.runtime import Runtime, use
from warming.shim.app import create_app

pytestmark = pytest.mark.integration

TOKEN = "report-token-0123456789"
PAGE = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # Chromium's


def _runtime(redis_url: str, **extra: object) -> Runtime:
    return use(settings_for(redis_url, [{"name": "fra", "url": "http://127.0.0.1:9"}], **extra))


@pytest.fixture(scope="module")
def batches(redis_url: str) -> dict[str, str]:
    """Three batches, oldest first: failed, done, queued (no worker runs here)."""
    rt = _runtime(redis_url)
    ids = {}
    for name in ("failed", "done", "queued"):
        plan = publish(rt, WarmRequest(paths=[f"/{name}"], trigger={"source": "cli"}))
        ids[name] = plan.batch_id
        if name != "queued":
            rt.store.finish(plan.batch_id, name, error="boom" if name == "failed" else None)
    return ids


@pytest.fixture()
def client(redis_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(_runtime(redis_url))) as c:
        yield c


def test_lists_recent_batches_newest_first(client: TestClient, batches: dict[str, str]) -> None:
    got = client.get("/batches").json()["batches"]
    assert [b["batch_id"] for b in got] == [batches["queued"], batches["done"], batches["failed"]]
    assert [b["state"] for b in got] == ["queued", "done", "failed"]
    assert got[0]["counts"] is None  # still running: counts come when it ends
    assert got[1]["counts"] == {"failed": 1} and got[1]["finished_at"]
    assert got[2]["error"] == "boom"
    assert got[1]["status_url"] == f"/batches/{batches['done']}"
    assert got[1]["trigger"] == {"source": "cli"}


def test_filters_by_state_and_limits(client: TestClient, batches: dict[str, str]) -> None:
    done = client.get("/batches", params={"state": "done"}).json()["batches"]
    assert [b["batch_id"] for b in done] == [batches["done"]]
    assert len(client.get("/batches", params={"limit": 2}).json()["batches"]) == 2
    assert client.get("/batches", params={"state": "nonsense"}).status_code == 422
    assert client.get("/batches", params={"limit": 0}).status_code == 422


def test_the_list_skips_expired_batches(
    client: TestClient, batches: dict[str, str], redis_url: str
) -> None:
    rt = _runtime(redis_url)
    plan = publish(rt, WarmRequest(paths=["/gone"]))
    rt.redis.delete(K.BATCH.format(id=plan.batch_id))  # as if its TTL had passed
    ids = [b["batch_id"] for b in client.get("/batches").json()["batches"]]
    assert plan.batch_id not in ids and batches["done"] in ids


def test_a_browser_gets_the_page_json_clients_the_report(
    client: TestClient, batches: dict[str, str]
) -> None:
    bid = batches["done"]
    for accept in (None, "application/json", "*/*", "application/json, text/html"):
        r = client.get(f"/batches/{bid}", headers={"accept": accept} if accept else {})
        assert r.headers["content-type"] == "application/json", accept
        assert r.json()["batch_id"] == bid
    page = client.get(f"/batches/{bid}", headers={"accept": PAGE})
    assert page.headers["content-type"].startswith("text/html")
    assert bid in page.text and 'class="cell failed"' in page.text
    listing = client.get("/batches", headers={"accept": PAGE})
    assert f'href="/batches/{bid}"' in listing.text
    assert client.get("/batches/nope", headers={"accept": PAGE}).status_code == 404


def test_report_routes_take_an_optional_bearer_token(
    redis_url: str, batches: dict[str, str]
) -> None:
    rt = _runtime(redis_url, report={"token": TOKEN})
    with TestClient(create_app(rt)) as c:
        for path in ("/batches", f"/batches/{batches['done']}"):
            r = c.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in r.text
            assert c.get(path, headers={"authorization": "Bearer wrong"}).status_code == 401
            assert c.get(path, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get("/healthz").status_code == 200  # probes stay open
