"""Vercel: invalidate / dangerously delete by tags against a double of the REST API."""

from __future__ import annotations

import time

import pytest
import requests

from tests.cdn.conftest import purge_batch, runtime
from tests.cdn.doubles import Answer, Bucket, Double, Seen, json_body
from warming.stages.outcome import Done, Failed

pytestmark = pytest.mark.integration

TOKEN = "vercel-token-xyz"
PROJECT = "prj_site"
TEAM = "team_1a2b3c4d5e6f7g8h9i0j1k2l"
ACTIONS = ("/v1/edge-cache/invalidate-by-tags", "/v1/edge-cache/dangerously-delete-by-tags")


class VercelApi:
    def __init__(self, bucket: Bucket | None = None) -> None:
        self.bucket = bucket or Bucket(100, 100)
        self.purged: list[tuple[str, str]] = []

    def __call__(self, r: Seen) -> Answer:
        if r.headers.get("authorization") != f"Bearer {TOKEN}":
            return Answer(403, {"error": {"code": "forbidden", "message": "Not authorized"}})
        if r.method != "POST" or r.path not in ACTIONS:
            return Answer(404, {"error": {"code": "not_found"}})
        if r.query.get("projectIdOrName") != [PROJECT] or r.query.get("teamId") != [TEAM]:
            return Answer(
                400, {"error": {"code": "bad_request", "message": "projectIdOrName, teamId"}}
            )
        body = json_body(r)
        tags = body.get("tags") if isinstance(body, dict) else None
        if isinstance(tags, str) and len(tags) <= 8196:  # the schema's other form: one string
            tags = [tags]
        if (
            not isinstance(tags, list)
            or not 1 <= len(tags) <= 16
            or any(len(t) > 256 for t in tags)
        ):
            return Answer(
                400, {"error": {"code": "bad_request", "message": "tags: 1 - 16, each <= 256"}}
            )
        if wait := self.bucket.take():
            reset = str(int(time.time() + wait) + 1)
            return Answer(429, {"error": {"code": "rate_limited"}}, {"X-RateLimit-Reset": reset})
        self.purged += [(r.path.rsplit("/", 1)[1], t) for t in tags]
        return Answer(200, {})


def _cdn(d: Double, **extra: object) -> dict[str, object]:
    return {
        "provider": "vercel",
        "api_url": d.url,
        "api_token": TOKEN,
        "project": PROJECT,
        "team_id": TEAM,
        **extra,
    }


@pytest.mark.timeout(60)
def test_40_tags_dangerously_deleted_16_per_call(redis_url: str) -> None:
    api = VercelApi()
    with Double(api) as d:
        rt = runtime(redis_url, _cdn(d))
        tags = [f"post-{i}" for i in range(40)]
        got = purge_batch(rt, ["/blog"], tags)
    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert d.violations == []
    assert [len(r.json()["tags"]) for r in d.seen] == [16, 16, 8]
    assert api.purged == [("dangerously-delete-by-tags", t) for t in tags]


@pytest.mark.timeout(60)
def test_soft_invalidates_and_a_429_waits_for_the_reset(redis_url: str) -> None:
    api = VercelApi(Bucket(size=1, rate=0.5))
    with Double(api) as d:
        rt = runtime(redis_url, _cdn(d, soft=True, max_per_call=1))
        got = purge_batch(rt, ["/blog"], ["a", "b"])
    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert api.purged == [("invalidate-by-tags", "a"), ("invalidate-by-tags", "b")]
    assert got.waits and got.waits[0].seconds >= 0.9


@pytest.mark.timeout(60)
def test_urls_without_tags_cannot_be_purged_and_say_so(redis_url: str) -> None:
    with Double(VercelApi()) as d:
        got = purge_batch(runtime(redis_url, _cdn(d)), ["/no-tags"])
    assert isinstance(got.outcome, Failed)
    assert "Vercel purges by cache tag only" in got.batch["error"]
    assert d.seen == []


def test_the_double_refuses_what_vercel_refuses() -> None:
    with Double(VercelApi()) as d:
        url = d.url + ACTIONS[0]
        q = {"projectIdOrName": PROJECT, "teamId": TEAM}
        ok = {"Authorization": f"Bearer {TOKEN}"}
        assert (
            requests.post(
                url, params=q, json={"tags": ["a"]}, headers={"Authorization": TOKEN}
            ).status_code
            == 403
        )
        assert (
            requests.post(
                url, params={"teamId": TEAM}, json={"tags": ["a"]}, headers=ok
            ).status_code
            == 400
        )
        assert (
            requests.post(
                url, params=q, json={"tags": [f"t{i}" for i in range(17)]}, headers=ok
            ).status_code
            == 400
        )
        assert (
            requests.post(url, params=q, json={"tags": ["x" * 257]}, headers=ok).status_code == 400
        )
        assert requests.post(url, params=q, json={"tags": ["a"]}, headers=ok).status_code == 200
