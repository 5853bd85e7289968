"""Cloudflare: `purge_cache` by files, tags, hosts and prefixes against a double of the API."""

from __future__ import annotations

import pytest
import requests

from tests.cdn.conftest import purge_batch, runtime
from tests.cdn.doubles import Answer, Bucket, Double, Seen, json_body
from tests.support import SITE
from warming.stages.outcome import Done, Failed

pytestmark = pytest.mark.integration

TOKEN = "cf-token-abcdef"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
KINDS = ("files", "tags", "hosts", "prefixes", "purge_everything")


class CloudflareApi:
    """`POST /zones/{zone}/purge_cache`: one kind per body, at most 100 operations."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self.purged: dict[str, list[str]] = {k: [] for k in KINDS}

    def __call__(self, r: Seen) -> Answer:
        if r.headers.get("authorization") != f"Bearer {TOKEN}":
            return Answer(403, _err(10000, "Authentication error"))
        if r.method != "POST" or r.path != f"/zones/{ZONE}/purge_cache":
            return Answer(404, _err(7003, "Could not route to this path"))
        body = json_body(r)
        if not isinstance(body, dict) or len(body) != 1 or next(iter(body)) not in KINDS:
            return Answer(
                400, _err(1012, "Request must contain one of files, tags, hosts, prefixes")
            )
        kind, items = next(iter(body.items()))
        if not isinstance(items, list) or not items:
            return Answer(400, _err(1012, f"{kind} must be a non-empty list"))
        if len(items) > 100:
            return Answer(400, _err(1019, "Maximum of 100 operations per request exceeded"))
        if kind == "files" and not all(str(u).startswith(("http://", "https://")) for u in items):
            return Answer(400, _err(1012, "files must be absolute URLs"))
        if wait := self.bucket.take():
            return Answer(429, _err(10429, "rate limited"), {"Retry-After": str(int(wait) + 1)})
        self.purged[kind] += items
        return Answer(200, {"success": True, "errors": [], "messages": [], "result": {"id": ZONE}})


def _err(code: int, message: str) -> dict[str, object]:
    return {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }


def _cdn(d: Double, **extra: object) -> dict[str, object]:
    return {
        "provider": "cloudflare",
        "api_url": d.url,
        "api_token": TOKEN,
        "zone_id": ZONE,
        **extra,
    }


@pytest.mark.timeout(60)
def test_250_urls_in_calls_of_100_then_tags_hosts_and_prefixes(redis_url: str) -> None:
    api = CloudflareApi(Bucket(size=50, rate=10))
    with Double(api) as d:
        cdn = _cdn(d, hosts=["www.example.com"], prefixes=["www.example.com/blog/"])
        rt = runtime(redis_url, cdn)
        paths = [f"/p/{i}" for i in range(250)]
        got = purge_batch(rt, paths, ["blog", "home"])
    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert d.violations == []
    assert api.purged["files"] == [SITE + p for p in paths]
    sizes = [len(r.json()["files"]) for r in d.seen if "files" in r.json()]
    assert sizes == [100, 100, 50]
    assert api.purged["tags"] == ["blog", "home"]
    assert api.purged["hosts"] == ["www.example.com"]
    assert api.purged["prefixes"] == ["www.example.com/blog/"]
    assert api.purged["purge_everything"] == []


@pytest.mark.timeout(90)
def test_the_free_plans_bucket_answers_429_and_retry_after_is_honoured(redis_url: str) -> None:
    api = CloudflareApi(Bucket(size=2, rate=1.0))  # a tiny bucket, refilled at 1/s
    with Double(api) as d:
        rt = runtime(redis_url, _cdn(d, max_per_call=1))
        got = purge_batch(rt, ["/q1", "/q2", "/q3", "/q4"])
    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert api.purged["files"] == [SITE + f"/q{i}" for i in range(1, 5)]
    assert len(d.seen) > 4 and got.waits, "the bucket of 2 must have refused some calls"
    assert all(w.seconds >= 0.9 for w in got.waits)


@pytest.mark.timeout(60)
def test_a_token_without_purge_permission_fails_the_batch(redis_url: str) -> None:
    with Double(CloudflareApi(Bucket(50, 10))) as d:
        rt = runtime(redis_url, {**_cdn(d), "api_token": "read-only-token"})
        got = purge_batch(rt, ["/denied"])
    assert isinstance(got.outcome, Failed)
    assert (
        "cloudflare answered 403" in got.batch["error"]
        and "Authentication error" in got.batch["error"]
    )
    assert "read-only-token" not in got.batch["error"]


def test_the_double_refuses_what_cloudflare_refuses() -> None:
    with Double(CloudflareApi(Bucket(50, 10))) as d:
        url = f"{d.url}/zones/{ZONE}/purge_cache"
        ok = {"Authorization": f"Bearer {TOKEN}"}
        assert (
            requests.post(
                url, json={"files": [SITE + "/"]}, headers={"X-Auth-Key": TOKEN}
            ).status_code
            == 403
        )
        assert requests.post(url, json={"urls": [SITE + "/"]}, headers=ok).status_code == 400
        assert requests.post(url, json={"files": ["/relative"]}, headers=ok).status_code == 400
        too_many = {"files": [f"{SITE}/{i}" for i in range(101)]}
        assert requests.post(url, json=too_many, headers=ok).status_code == 400
        both = {"files": [SITE + "/"], "tags": ["a"]}
        assert requests.post(url, json=both, headers=ok).status_code == 400
        assert (
            requests.post(url, json={"files": [SITE + "/"]}, headers=ok).json()["success"] is True
        )
