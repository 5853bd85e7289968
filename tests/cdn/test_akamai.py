"""Akamai Fast Purge (CCU v3) against a double that checks EdgeGrid signatures and limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest
import requests

from tests.cdn.conftest import purge_batch, runtime
from tests.cdn.doubles import Answer, Bucket, Double, Seen, json_body
from tests.support import SITE
from warming.stages.outcome import Done, Failed

pytestmark = pytest.mark.integration

CLIENT_TOKEN = "akab-client-token-xxx"
CLIENT_SECRET = "C113nt53KR3TN6N90yVuAgICxIRwsObLi0E67/N8eRN="
ACCESS_TOKEN = "akab-access-token-xxx"
CREDS = {"client_token": CLIENT_TOKEN, "client_secret": CLIENT_SECRET, "access_token": ACCESS_TOKEN}
TYPES = {"url": str, "tag": str, "cpcode": int}


def _b64_hmac(key: str, data: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), data.encode(), hashlib.sha256).digest()).decode()


def edgegrid_problem(r: Seen) -> str | None:
    """Why this request's EdgeGrid signature is wrong (Akamai's "Authenticate with
    EdgeGrid": EG1-HMAC-SHA256 over method, scheme, host, path, headers, body hash)."""
    auth = r.headers.get("authorization", "")
    if not auth.startswith("EG1-HMAC-SHA256 ") or ";signature=" not in auth:
        return "no EdgeGrid Authorization"
    fields = dict(kv.split("=", 1) for kv in auth.split(" ", 1)[1].split(";") if "=" in kv)
    if fields.get("client_token") != CLIENT_TOKEN or fields.get("access_token") != ACCESS_TOKEN:
        return "unknown client or access token"
    stamp = datetime.strptime(fields.get("timestamp", ""), "%Y%m%dT%H:%M:%S+0000").replace(
        tzinfo=UTC
    )
    if abs((datetime.now(UTC) - stamp).total_seconds()) > 300:
        return "timestamp out of range"
    unsigned = auth[: auth.index("signature=")]
    digest = base64.b64encode(hashlib.sha256(r.body[:131072]).digest()).decode() if r.body else ""
    data = "\t".join([r.method, "http", r.headers["host"], r.target, "", digest, unsigned])
    if not hmac.compare_digest(
        fields["signature"], _b64_hmac(_b64_hmac(CLIENT_SECRET, fields["timestamp"]), data)
    ):
        return "signature does not match"
    return None


class FastPurge:
    """`POST /ccu/v3/{invalidate|delete}/{url|tag|cpcode}/{production|staging}`."""

    def __init__(self, estimated_s: int = 2, requests_bucket: Bucket | None = None) -> None:
        self.estimated_s = estimated_s
        self.bucket = requests_bucket or Bucket(100, 50)
        self.purged: list[tuple[str, str, str, object]] = []
        self.done_at: list[float] = []

    def __call__(self, r: Seen) -> Answer:
        if problem := edgegrid_problem(r):
            return Answer(401, {"httpStatus": 401, "title": "Unauthorized", "detail": problem})
        parts = r.path.split("/")
        if r.method != "POST" or len(parts) != 6 or parts[1:3] != ["ccu", "v3"]:
            return Answer(404, {"httpStatus": 404, "detail": "Not found"})
        action, kind, network = parts[3:]
        if (
            action not in ("invalidate", "delete")
            or kind not in TYPES
            or network not in ("production", "staging")
        ):
            return Answer(404, {"httpStatus": 404, "detail": "Not found"})
        if len(r.body) > 50_000:
            return Answer(
                413,
                {
                    "httpStatus": 413,
                    "detail": "exceeds the maximum message body size, 50,000 bytes",
                },
            )
        body = json_body(r)
        objects = body.get("objects") if isinstance(body, dict) else None
        if (
            not isinstance(objects, list)
            or not objects
            or not all(type(o) is TYPES[kind] for o in objects)
        ):
            return Answer(400, {"httpStatus": 400, "detail": f"objects: a list of {kind}s"})
        if self.bucket.take():
            return Answer(
                429, {"httpStatus": 429, "title": "Rate Limit exceeded", "rateLimitRemaining": 0}
            )
        self.purged += [(action, kind, network, o) for o in objects]
        self.done_at.append(time.monotonic() + self.estimated_s)
        return Answer(
            201,
            {
                "httpStatus": 201,
                "detail": "Request accepted",
                "estimatedSeconds": self.estimated_s,
                "purgeId": f"edcp-{len(self.done_at)}",
                "supportId": "edcp-x",
            },
        )


def _cdn(d: Double, **extra: object) -> dict[str, object]:
    return {"provider": "akamai", "api_url": d.url, **CREDS, **extra}


@pytest.mark.timeout(90)
def test_2000_urls_in_bodies_under_50kb_and_warming_waits_estimated_seconds(redis_url: str) -> None:
    api = FastPurge(estimated_s=2)
    with Double(api) as d:
        rt = runtime(redis_url, _cdn(d))
        paths = [f"/articles/2026/12/a-rather-long-slug-{i:05d}" for i in range(2000)]
        got = purge_batch(rt, paths)
        finished = time.monotonic()
    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert d.violations == []
    assert len(d.seen) >= 2 and all(len(r.body) <= 50_000 for r in d.seen)
    assert [o for _, _, _, o in api.purged] == [SITE + p for p in paths]
    assert {(a, k, n) for a, k, n, _ in api.purged} == {("delete", "url", "production")}
    assert finished >= max(api.done_at), "warming started before Akamai's estimatedSeconds"
    assert got.waited_s >= 2


@pytest.mark.timeout(60)
def test_soft_invalidate_on_staging_by_cp_code_and_tag(redis_url: str) -> None:
    api = FastPurge(estimated_s=1)
    with Double(api) as d:
        rt = runtime(redis_url, _cdn(d, soft=True, network="staging", cp_codes=[12345, 67890]))
        got = purge_batch(rt, ["/x"], ["product-42"])
    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert api.purged == [
        ("invalidate", "cpcode", "staging", 12345),
        ("invalidate", "cpcode", "staging", 67890),
        ("invalidate", "tag", "staging", "product-42"),
    ]


@pytest.mark.timeout(60)
def test_a_429_without_retry_after_waits_akamais_five_seconds(redis_url: str) -> None:
    api = FastPurge(estimated_s=0, requests_bucket=Bucket(size=1, rate=0.25))
    with Double(api) as d:
        rt = runtime(redis_url, _cdn(d, max_per_call=1, cp_codes=[1, 2]))
        got = purge_batch(rt, ["/x"])
    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert [o for *_, o in api.purged] == [1, 2]
    assert got.waits and got.waits[0].seconds >= 4.5


@pytest.mark.timeout(60)
def test_a_wrong_client_secret_fails_the_batch_without_showing_it(redis_url: str) -> None:
    with Double(FastPurge()) as d:
        rt = runtime(redis_url, {**_cdn(d), "client_secret": "not-the-secret-123"})
        got = purge_batch(rt, ["/x"])
    assert isinstance(got.outcome, Failed)
    assert (
        "akamai answered 401" in got.batch["error"]
        and "signature does not match" in got.batch["error"]
    )
    assert "not-the-secret-123" not in json.dumps(got.batch)


def test_the_double_refuses_what_akamai_refuses() -> None:
    from akamai.edgegrid import EdgeGridAuth

    with Double(FastPurge()) as d:
        url = f"{d.url}/ccu/v3/delete/url/production"
        signed = requests.Session()
        signed.auth = EdgeGridAuth(CLIENT_TOKEN, CLIENT_SECRET, ACCESS_TOKEN)
        assert requests.post(url, json={"objects": [SITE + "/"]}).status_code == 401
        forged = requests.Session()
        forged.auth = EdgeGridAuth(CLIENT_TOKEN, "another-secret", ACCESS_TOKEN)
        assert forged.post(url, json={"objects": [SITE + "/"]}).status_code == 401
        big = {"objects": [f"{SITE}/{i:060d}" for i in range(700)]}
        assert signed.post(url, json=big).status_code == 413
        assert signed.post(url, json={"urls": [SITE + "/"]}).status_code == 400
        assert (
            signed.post(
                f"{d.url}/ccu/v3/delete/cpcode/production", json={"objects": ["12"]}
            ).status_code
            == 400
        )
        assert signed.post(url, json={"objects": [SITE + "/"]}).status_code == 201
