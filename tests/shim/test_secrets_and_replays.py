"""The shim with per-adapter secrets and body-digest replay protection, over a real Redis.

Every refusal and every replay is checked where it matters: no batch recorded, no
purge queued, no replay key taken.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from tests.support import SITE
from warming import keys as K
from warming.broker import tasknames as T
from warming.cms.standard import sign
from warming.runtime import Runtime
from warming.settings import Settings
from warming.shim.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# Valid base64, as many real tokens are: under a shared list it also decodes to a
# Standard Webhooks key, so whoever holds it could sign `generic` webhooks.
STRAPI_TOKEN = base64.b64encode(b"strapi-api-token-0123456789abcdef").decode()
PRISMIC_SECRET = "prismic-secret-0123456789abcdef"
GENERIC_SECRET = "whsec_" + base64.b64encode(b"generic-signing-key-0123456789ab").decode()
SHARED = "shared-fallback-secret-0123456789"  # webhook.secrets: for adapters without their own
TOLERANCE_S = 300


def settings_for(broker_url: str, tolerance_s: int = TOLERANCE_S) -> Settings:
    os.environ["WARMING_CONFIG"] = "/nonexistent/warming.toml"
    try:
        return Settings.model_validate(
            {
                "broker_url": broker_url,
                "site": {"base_url": SITE},
                "pops": [{"name": "edge1", "url": "http://127.0.0.1:9"}],
                "webhook": {
                    "secrets": [SHARED],
                    "adapters": {
                        "generic": {"secrets": [GENERIC_SECRET]},
                        "strapi": {"secrets": [STRAPI_TOKEN]},
                        "prismic": {"secrets": [PRISMIC_SECRET]},
                    },
                    "tolerance_s": tolerance_s,
                    # No coalescing: a webhook that gets in queues a purge of its own.
                    "coalesce_window_s": 0,
                },
                "routes": [{"content_type": "article", "urls": ["/articles/{slug}"]}],
            }
        )
    finally:
        del os.environ["WARMING_CONFIG"]


@pytest.fixture(scope="module")
def rt(redis_url: str) -> Runtime:
    return Runtime(settings_for(redis_url))


@pytest.fixture(scope="module")
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as c:
        yield c


# --- requests as each vendor sends them -------------------------------------------------

Request = tuple[str, bytes, dict[str, str]]  # adapter, body, headers


def _unique() -> str:
    return str(time.monotonic_ns())


def generic(secret: str) -> Request:
    body = json.dumps({"paths": [f"/generic/{_unique()}"]}).encode()
    msg_id, ts = f"msg_{_unique()}", int(time.time())
    sig = sign(secret, msg_id, ts, body)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}
    return "generic", body, headers


def strapi(token: str) -> Request:
    entry = {"id": 1, "slug": f"post-{_unique()}"}
    body = json.dumps({"event": "entry.publish", "model": "article", "entry": entry}).encode()
    return "strapi", body, {"authorization": f"Bearer {token}"}


def wordpress(secret: str) -> Request:
    post = {"ID": 7, "post_name": "hello", "post_type": "post"}
    permalink = f"{SITE}/wp/{_unique()}/"
    body = json.dumps({"post_id": 7, "post": post, "post_permalink": permalink}).encode()
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return "wordpress", body, {"x-wp-webhook-signature": sig}


def storyblok(secret: str) -> Request:
    story = {"action": "published", "story_id": 2, "full_slug": f"blog/{_unique()}"}
    body = json.dumps(story).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return "storyblok", body, {"webhook-signature": sig}


def prismic(secret: str) -> Request:
    doc = {"type": "api-update", "documents": [f"doc-{_unique()}"], "secret": secret}
    return "prismic", json.dumps(doc).encode(), {}


def post(client: TestClient, request: Request) -> tuple[int, dict[str, str]]:
    adapter, body, headers = request
    headers = {**headers, "content-type": "application/json"}
    resp = client.post(f"/webhooks/{adapter}", content=body, headers=headers)
    return resp.status_code, resp.json()


def recorded(r: redis.Redis) -> tuple[int, int, int]:
    """Batches recorded, purges queued, replay keys taken."""
    replay_keys = sum(1 for _ in r.scan_iter(K.WEBHOOK_ID.format(id="*")))
    return int(r.zcard(K.RECENT)), int(r.llen(T.Q_PURGE)), replay_keys


# --- point 14: each adapter its own secrets ---------------------------------------------


@pytest.mark.parametrize(
    ("request_for", "secret"),
    [
        (generic, "whsec_" + STRAPI_TOKEN),  # the Strapi token as a Standard Webhooks key
        (generic, STRAPI_TOKEN),
        (strapi, PRISMIC_SECRET),
        (strapi, SHARED),  # strapi has its own list: the shared one is not its
        (prismic, STRAPI_TOKEN),
        (wordpress, STRAPI_TOKEN),  # wordpress falls back to the shared list only
        (storyblok, PRISMIC_SECRET),
    ],
    ids=[
        "generic-signed-with-the-strapi-token-as-whsec",
        "generic-signed-with-the-strapi-token",
        "strapi-bearing-the-prismic-secret",
        "strapi-bearing-the-shared-secret",
        "prismic-carrying-the-strapi-token",
        "wordpress-signed-with-the-strapi-token",
        "storyblok-signed-with-the-prismic-secret",
    ],
)
def test_another_adapters_secret_is_refused_and_nothing_is_written(
    client: TestClient, rt: Runtime, request_for: Callable[[str], Request], secret: str
) -> None:
    before = recorded(rt.redis)
    status, answer = post(client, request_for(secret))
    assert status == 401, answer
    assert recorded(rt.redis) == before
    for value in (STRAPI_TOKEN, PRISMIC_SECRET, GENERIC_SECRET, SHARED):
        assert value not in json.dumps(answer)


@pytest.mark.parametrize(
    ("request_for", "secret"),
    [
        (generic, GENERIC_SECRET),
        (strapi, STRAPI_TOKEN),
        (prismic, PRISMIC_SECRET),
        (wordpress, SHARED),
        (storyblok, SHARED),
    ],
    ids=["generic", "strapi", "prismic", "wordpress-shared", "storyblok-shared"],
)
def test_each_adapter_accepts_its_own_secret_or_the_shared_one(
    client: TestClient, rt: Runtime, request_for: Callable[[str], Request], secret: str
) -> None:
    before = recorded(rt.redis)
    status, answer = post(client, request_for(secret))
    assert status == 202, answer
    assert rt.redis.exists(K.BATCH.format(id=answer["batch_id"]))
    assert recorded(rt.redis)[:2] == (before[0] + 1, before[1] + 1)


# --- point 15: replays of senders with no delivery id -----------------------------------

BODY_REPLAYED = {
    strapi: STRAPI_TOKEN,
    wordpress: SHARED,
    storyblok: SHARED,
    prismic: PRISMIC_SECRET,
}


@pytest.mark.parametrize("request_for", list(BODY_REPLAYED), ids=lambda f: f.__name__)
def test_a_replayed_body_is_200_with_the_first_batch_and_enqueues_nothing(
    client: TestClient, rt: Runtime, request_for: Callable[[str], Request]
) -> None:
    request = request_for(BODY_REPLAYED[request_for])
    adapter, body, _ = request
    status, first = post(client, request)
    assert status == 202, first
    key = K.WEBHOOK_ID.format(id=f"{adapter}:body:{hashlib.sha256(body).hexdigest()}")
    assert rt.redis.get(key) == first["batch_id"].encode()
    assert 0 < rt.redis.ttl(key) <= TOLERANCE_S
    before = recorded(rt.redis)
    for _ in range(2):
        status, again = post(client, request)
        assert (status, again["batch_id"]) == (200, first["batch_id"]), again
    assert recorded(rt.redis) == before
    # The same change again with another body is a new delivery.
    status, other = post(client, request_for(BODY_REPLAYED[request_for]))
    assert status == 202 and other["batch_id"] != first["batch_id"]


def test_a_body_is_remembered_for_the_tolerance_window_only(redis_url: str) -> None:
    rt = Runtime(settings_for(redis_url, tolerance_s=1))
    with TestClient(create_app(rt)) as c:
        request = strapi(STRAPI_TOKEN)
        status, first = post(c, request)
        assert status == 202
        assert post(c, request) == (200, first)
        time.sleep(1.2)
        status, later = post(c, request)
        assert status == 202 and later["batch_id"] != first["batch_id"]


def test_a_sender_with_a_delivery_id_keeps_it_for_days(client: TestClient, rt: Runtime) -> None:
    request = generic(GENERIC_SECRET)
    headers = request[2]
    status, first = post(client, request)
    assert status == 202
    key = K.WEBHOOK_ID.format(id=f"generic:{headers['webhook-id']}")
    assert rt.redis.get(key) == first["batch_id"].encode()
    assert rt.redis.ttl(key) > TOLERANCE_S
    assert not list(rt.redis.scan_iter(K.WEBHOOK_ID.format(id="generic:body:*")))
