"""Fastly: URL purges and bulk surrogate-key purges against a double of the Purge API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.cdn.conftest import purge_batch, runtime
from tests.cdn.doubles import Answer, Bucket, Double, Seen, json_body
from tests.support import SITE
from warming.stages.outcome import Done, Failed

pytestmark = pytest.mark.integration

TOKEN = "fastly-token-0123456789"
SERVICE = "SU1Z0isxPaozGVKXdv0eY"
HOST = SITE.split("://", 1)[1]


class FastlyApi:
    """`POST /purge/{host/path}` and `POST /service/{id}/purge` as Fastly documents them."""

    def __init__(self, bucket: Bucket | None = None) -> None:
        self.bucket = bucket
        self.purged_urls: list[str] = []
        self.purged_keys: list[str] = []
        self.soft: list[bool] = []

    def __call__(self, r: Seen) -> Answer:
        if r.headers.get("fastly-key") != TOKEN:
            return Answer(403, {"msg": "Provided credentials are missing or invalid"})
        if r.method != "POST":
            return Answer(405, {"msg": "Method not allowed"})
        if self.bucket is not None and (wait := self.bucket.take()):
            return Answer(429, {"msg": "rate limited"}, {"Retry-After": str(int(wait) + 1)})
        self.soft.append("fastly-soft-purge" in r.headers)
        if r.path == f"/service/{SERVICE}/purge":
            body = json_body(r)
            keys = body.get("surrogate_keys") if isinstance(body, dict) else None
            if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
                return Answer(400, {"msg": "surrogate_keys: a non-empty list of strings"})
            if len(keys) > 256:
                return Answer(400, {"msg": "at most 256 surrogate keys per request"})
            self.purged_keys += keys
            return Answer(200, {k: f"id-{k}" for k in keys})
        if r.path.startswith(f"/purge/{HOST}/"):
            query = "&".join(f"{k}={v[0]}" for k, v in r.query.items())
            self.purged_urls.append(r.path[len("/purge/") :] + (f"?{query}" if query else ""))
            return Answer(200, {"status": "ok", "id": "108-1391560174-974124"})
        return Answer(404, {"msg": "Record not found"})


@pytest.fixture
def api() -> Iterator[tuple[Double, FastlyApi]]:
    handler = FastlyApi()
    with Double(handler) as d:
        yield d, handler


def _cdn(d: Double, **extra: object) -> dict[str, object]:
    return {
        "provider": "fastly",
        "api_url": d.url,
        "api_token": TOKEN,
        "service_id": SERVICE,
        **extra,
    }


@pytest.mark.timeout(60)
def test_urls_one_call_each_and_300_keys_in_two_bulk_calls(
    redis_url: str, api: tuple[Double, FastlyApi]
) -> None:
    d, fastly = api
    rt = runtime(redis_url, _cdn(d))
    keys = [f"product-{i}" for i in range(300)]

    got = purge_batch(rt, ["/a", "/b?page=2"], keys)

    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert d.violations == []
    assert fastly.purged_urls == [f"{HOST}/a", f"{HOST}/b?page=2"]
    assert sorted(fastly.purged_keys) == sorted(keys)
    bulk = [r for r in d.seen if r.path.endswith("/purge")]
    assert [len(r.json()["surrogate_keys"]) for r in bulk] == [256, 44]
    assert fastly.soft == [False, False, False, False]


@pytest.mark.timeout(60)
def test_soft_purge_sends_the_soft_header(redis_url: str, api: tuple[Double, FastlyApi]) -> None:
    d, fastly = api
    rt = runtime(redis_url, _cdn(d, soft=True))
    assert isinstance(purge_batch(rt, ["/soft"], ["k1"]).outcome, Done)
    assert fastly.soft == [True, True]


@pytest.mark.timeout(60)
def test_a_429_is_retried_after_retry_after_and_the_purge_completes(redis_url: str) -> None:
    handler = FastlyApi(Bucket(size=1, rate=1.0))
    with Double(handler) as d:
        rt = runtime(redis_url, _cdn(d))
        got = purge_batch(rt, ["/r1", "/r2", "/r3"])
    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert handler.purged_urls == [f"{HOST}/r1", f"{HOST}/r2", f"{HOST}/r3"]
    assert got.waits, "the double's bucket of 1 must have answered 429 at least once"
    assert all(w.seconds >= 0.9 for w in got.waits), got.waits  # Retry-After honoured


@pytest.mark.timeout(60)
def test_a_wrong_token_fails_the_batch_and_the_token_is_not_in_the_error(
    redis_url: str, api: tuple[Double, FastlyApi]
) -> None:
    d, _ = api
    rt = runtime(redis_url, {**_cdn(d), "api_token": "wrong-token-zzz"})
    got = purge_batch(rt, ["/x"])
    assert isinstance(got.outcome, Failed)
    assert "fastly answered 403" in got.batch["error"]
    assert (
        "wrong-token-zzz" not in got.batch["error"] and "wrong-token-zzz" not in got.batch["plan"]
    )


def test_the_double_refuses_what_fastly_refuses(api: tuple[Double, FastlyApi]) -> None:
    d, _ = api
    ok = {"Fastly-Key": TOKEN}
    url = f"{d.url}/service/{SERVICE}/purge"
    assert (
        requests.post(url, json={"surrogate_keys": ["a"]}, headers={"Fastly-Key": "x"}).status_code
        == 403
    )
    assert requests.post(url, json={"keys": ["a"]}, headers=ok).status_code == 400
    assert requests.post(url, json={"surrogate_keys": ["k"] * 257}, headers=ok).status_code == 400
    assert requests.post(url, json={"surrogate_keys": ["a"]}, headers=ok).status_code == 200
